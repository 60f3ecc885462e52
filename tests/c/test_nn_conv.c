/* test_nn_conv.c — linear, conv2d, conv1d, max_pool2d, avg_pool2d and adaptive_avg_pool2d:
 * finite-difference checks of every backward over one table of configurations (stride,
 * padding, dilation, groups, ceil_mode, count_include_pad, 1x1 kernels, unbatched and
 * non-contiguous inputs) with PyTorch's node names; float32 forward and gradients against
 * constants computed by PyTorch 1.13 (generator at the end of the file); max-pool's edge
 * semantics (NaN, -inf, windows wholly in padding); shapes, saved-tensor checks and errors. */
#include "gradcheck.h"

/* The generator's values: ((i * 7 + seed * 3) % 17 - 8) / 8, exact in float32. */
static mt_tensor *pattern(mt_dtype dt, int ndim, const int64_t *sizes, int seed) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) return NULL;
  for (int64_t i = 0; i < mt_numel(t); i++) mt_set_flat(t, i, mt_scalar_float((double)((i * 7 + seed * 3) % 17 - 8) / 8.0));
  return t;
}

static bool same_shape(const mt_tensor *t, int ndim, const int64_t *sizes) {
  if (t->ndim != ndim) return false;
  for (int d = 0; d < ndim; d++)
    if (t->sizes[d] != sizes[d]) return false;
  return true;
}

/* ---- the gradcheck table -------------------------------------------------------------------- */

typedef enum op_kind { OP_LINEAR, OP_CONV2D, OP_CONV1D, OP_MAXPOOL, OP_AVGPOOL, OP_ADAPTIVE } op_kind;

typedef struct gcase {
  const char *node; /* PyTorch's grad_fn name for the result */
  op_kind op;
  int nin;          /* input[, weight[, bias]] */
  int ndim[3];
  int64_t sizes[3][4];
  bool transposed;  /* the op gets transpose(leaf 0, 0, -1): a non-contiguous input */
  int64_t kernel[2];   /* pools; the output size for the adaptive pool */
  int64_t stride[2];   /* {0, 0}: NULL (the kernel size, for pools) */
  int64_t padding[2], dilation[2], groups;
  bool ceil_mode, count_include_pad;
} gcase;

static mt_status run_op(mt_tensor **out, mt_tensor **indices, const gcase *c, mt_tensor *const *in) {
  const mt_tensor *bias = c->nin > 2 ? in[2] : NULL;
  const int64_t *stride = c->stride[0] ? c->stride : NULL;
  const int64_t dil[2] = {c->dilation[0] ? c->dilation[0] : 1, c->dilation[1] ? c->dilation[1] : 1};
  switch (c->op) {
  case OP_LINEAR: return mt_linear(out, in[0], in[1], bias);
  case OP_CONV2D: return mt_conv2d(out, in[0], in[1], bias, c->stride, c->padding, dil, c->groups);
  case OP_CONV1D: return mt_conv1d(out, in[0], in[1], bias, c->stride[0], c->padding[0], dil[0], c->groups);
  case OP_MAXPOOL: return mt_max_pool2d(out, indices, in[0], c->kernel, stride, c->padding, dil, c->ceil_mode);
  case OP_AVGPOOL: return mt_avg_pool2d(out, in[0], c->kernel, stride, c->padding, c->ceil_mode, c->count_include_pad);
  case OP_ADAPTIVE: return mt_adaptive_avg_pool2d(out, in[0], c->kernel);
  }
  return MT_EARG;
}

static mt_status run_case(mt_tensor **out, mt_tensor *const *leaves, void *vctx) {
  const gcase *c = vctx;
  mt_tensor *in[3] = {leaves[0], c->nin > 1 ? leaves[1] : NULL, c->nin > 2 ? leaves[2] : NULL}, *tr = NULL;
  if (c->transposed) {
    mt_status st = mt_transpose(&tr, leaves[0], 0, -1);
    if (st) return st;
    in[0] = tr;
  }
  mt_status st = run_op(out, NULL, c, in);
  mt_tensor_release(tr);
  return st;
}

#define SZ(...) {__VA_ARGS__}
#define NONE 0, 0, 0, 0
/* linear / conv: shapes, then stride, padding, dilation, groups */
#define LIN(node, n, d0, s0, d1, s1, d2, s2, tr) {node, OP_LINEAR, n, {d0, d1, d2}, {s0, s1, s2}, tr, {0}, {0}, {0}, {0}, 0, 0, 0}
#define CONV(node, op, n, d0, s0, d1, s1, d2, s2, tr, st, pad, dil, g) \
  {node, op, n, {d0, d1, d2}, {s0, s1, s2}, tr, {0}, st, pad, dil, g, 0, 0}
#define POOL(node, op, d0, s0, tr, k, st, pad, dil, ceil, cip) \
  {node, op, 1, {d0}, {s0}, tr, k, st, pad, dil, 0, ceil, cip}

static const gcase cases[] = {
    /* linear: 2-D, N-D, 1-D, a transposed input, a broadcast [1] bias, no rows */
    LIN("AddmmBackward0", 3, 2, SZ(3, 4), 2, SZ(5, 4), 1, SZ(5), false),
    LIN("UnsafeViewBackward0", 2, 3, SZ(2, 3, 4), 2, SZ(5, 4), 0, SZ(0), false),
    LIN("ViewBackward0", 3, 3, SZ(2, 3, 4), 2, SZ(2, 4), 1, SZ(2), false),
    LIN("AddBackward0", 3, 1, SZ(4), 2, SZ(3, 4), 1, SZ(3), false),
    LIN("SqueezeBackward3", 2, 1, SZ(4), 2, SZ(3, 4), 0, SZ(0), false),
    LIN("AddBackward0", 3, 3, SZ(4, 3, 2), 2, SZ(5, 4), 1, SZ(5), true),
    LIN("MmBackward0", 2, 2, SZ(4, 3), 2, SZ(2, 4), 0, SZ(0), true),
    LIN("AddmmBackward0", 3, 2, SZ(3, 4), 2, SZ(5, 4), 1, SZ(1), false),
    LIN("AddmmBackward0", 3, 2, SZ(0, 4), 2, SZ(3, 4), 1, SZ(3), false),
    /* conv2d */
    CONV("ConvolutionBackward0", OP_CONV2D, 3, 4, SZ(2, 3, 5, 5), 4, SZ(4, 3, 3, 3), 1, SZ(4), false, SZ(1, 1), SZ(0, 0), SZ(1, 1), 1),
    CONV("ConvolutionBackward0", OP_CONV2D, 3, 4, SZ(2, 2, 6, 5), 4, SZ(3, 2, 3, 3), 1, SZ(3), false, SZ(2, 2), SZ(1, 1), SZ(1, 1), 1),
    CONV("ConvolutionBackward0", OP_CONV2D, 2, 4, SZ(1, 2, 7, 7), 4, SZ(2, 2, 3, 2), 0, SZ(0), false, SZ(1, 1), SZ(2, 1), SZ(2, 2), 1),
    CONV("ConvolutionBackward0", OP_CONV2D, 3, 4, SZ(2, 4, 5, 5), 4, SZ(6, 2, 3, 3), 1, SZ(6), false, SZ(2, 1), SZ(1, 0), SZ(1, 1), 2),
    CONV("ConvolutionBackward0", OP_CONV2D, 3, 4, SZ(1, 3, 5, 5), 4, SZ(3, 1, 3, 3), 1, SZ(3), false, SZ(2, 2), SZ(1, 1), SZ(2, 2), 3),
    CONV("ConvolutionBackward0", OP_CONV2D, 3, 4, SZ(2, 3, 4, 5), 4, SZ(4, 3, 1, 1), 1, SZ(4), false, SZ(1, 1), SZ(0, 0), SZ(1, 1), 1),
    CONV("ConvolutionBackward0", OP_CONV2D, 2, 4, SZ(2, 4, 3, 3), 4, SZ(4, 2, 1, 1), 0, SZ(0), false, SZ(1, 1), SZ(0, 0), SZ(1, 1), 2),
    CONV("ConvolutionBackward0", OP_CONV2D, 2, 4, SZ(1, 3, 5, 5), 4, SZ(2, 3, 1, 1), 0, SZ(0), false, SZ(2, 2), SZ(0, 0), SZ(1, 1), 1),
    CONV("ConvolutionBackward0", OP_CONV2D, 3, 4, SZ(1, 1, 2, 2), 4, SZ(1, 1, 3, 3), 1, SZ(1), false, SZ(1, 1), SZ(1, 1), SZ(1, 1), 1),
    CONV("SqueezeBackward1", OP_CONV2D, 3, 3, SZ(3, 5, 5), 4, SZ(2, 3, 3, 3), 1, SZ(2), false, SZ(1, 1), SZ(1, 1), SZ(1, 1), 1),
    CONV("ConvolutionBackward0", OP_CONV2D, 2, 4, SZ(5, 3, 5, 2), 4, SZ(2, 3, 2, 2), 0, SZ(0), true, SZ(1, 2), SZ(0, 1), SZ(1, 1), 1),
    /* conv1d */
    CONV("ConvolutionBackward0", OP_CONV1D, 3, 3, SZ(2, 3, 8), 3, SZ(4, 3, 3), 1, SZ(4), false, SZ(2), SZ(1), SZ(2), 1),
    CONV("SqueezeBackward1", OP_CONV1D, 3, 2, SZ(4, 7), 3, SZ(2, 2, 3), 1, SZ(2), false, SZ(1), SZ(0), SZ(1), 2),
    CONV("ConvolutionBackward0", OP_CONV1D, 2, 3, SZ(2, 3, 5), 3, SZ(2, 3, 1), 0, SZ(0), false, SZ(1), SZ(0), SZ(1), 1),
    CONV("ConvolutionBackward0", OP_CONV1D, 2, 3, SZ(6, 2, 2), 3, SZ(3, 2, 2), 0, SZ(0), true, SZ(1), SZ(1), SZ(1), 1),
    /* max_pool2d */
    POOL("MaxPool2DWithIndicesBackward0", OP_MAXPOOL, 4, SZ(2, 2, 5, 5), false, SZ(2, 2), SZ(0, 0), SZ(0, 0), SZ(1, 1), false, false),
    POOL("MaxPool2DWithIndicesBackward0", OP_MAXPOOL, 4, SZ(1, 2, 6, 6), false, SZ(3, 3), SZ(2, 2), SZ(1, 1), SZ(1, 1), true, false),
    POOL("MaxPool2DWithIndicesBackward0", OP_MAXPOOL, 4, SZ(1, 1, 7, 7), false, SZ(3, 3), SZ(1, 1), SZ(1, 1), SZ(2, 2), false, false),
    POOL("MaxPool2DWithIndicesBackward0", OP_MAXPOOL, 3, SZ(2, 5, 4), false, SZ(2, 3), SZ(1, 2), SZ(0, 1), SZ(1, 1), true, false),
    POOL("MaxPool2DWithIndicesBackward0", OP_MAXPOOL, 4, SZ(5, 2, 5, 2), true, SZ(2, 2), SZ(2, 1), SZ(1, 0), SZ(1, 2), false, false),
    /* avg_pool2d */
    POOL("AvgPool2DBackward0", OP_AVGPOOL, 4, SZ(2, 2, 5, 5), false, SZ(2, 2), SZ(0, 0), SZ(0, 0), SZ(0, 0), false, true),
    POOL("AvgPool2DBackward0", OP_AVGPOOL, 4, SZ(1, 2, 6, 6), false, SZ(3, 3), SZ(2, 2), SZ(1, 1), SZ(0, 0), true, false),
    POOL("AvgPool2DBackward0", OP_AVGPOOL, 4, SZ(1, 2, 6, 7), false, SZ(3, 2), SZ(2, 3), SZ(1, 1), SZ(0, 0), true, true),
    POOL("AvgPool2DBackward0", OP_AVGPOOL, 3, SZ(2, 5, 4), false, SZ(3, 2), SZ(2, 1), SZ(1, 1), SZ(0, 0), false, false),
    POOL("AvgPool2DBackward0", OP_AVGPOOL, 4, SZ(5, 2, 4, 2), true, SZ(2, 2), SZ(1, 2), SZ(1, 0), SZ(0, 0), true, true),
    /* adaptive_avg_pool2d (kernel = output size): shrinking, to 1 x 1, growing */
    POOL("AdaptiveAvgPool2DBackward0", OP_ADAPTIVE, 4, SZ(2, 2, 5, 7), false, SZ(3, 4), SZ(0, 0), SZ(0, 0), SZ(0, 0), false, false),
    POOL("MeanBackward1", OP_ADAPTIVE, 4, SZ(1, 2, 4, 4), false, SZ(1, 1), SZ(0, 0), SZ(0, 0), SZ(0, 0), false, false),
    POOL("AdaptiveAvgPool2DBackward0", OP_ADAPTIVE, 3, SZ(3, 3, 5), false, SZ(5, 2), SZ(0, 0), SZ(0, 0), SZ(0, 0), false, false),
    POOL("AdaptiveAvgPool2DBackward0", OP_ADAPTIVE, 4, SZ(5, 2, 6, 1), true, SZ(2, 3), SZ(0, 0), SZ(0, 0), SZ(0, 0), false, false),
};

static void test_gradcheck(void) {
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const gcase *c = &cases[k];
    mt_tensor *leaves[3] = {0};
    for (int i = 0; i < c->nin; i++) leaves[i] = gc_tensor(c->ndim[i], c->sizes[i], -1.0, 1.0, (int)(k * 3 + i));
    char name[64];
    snprintf(name, sizeof name, "case %zu (%s)", k, c->node);
    CHECK(gradcheck(name, run_case, (void *)c, c->nin, leaves));
    /* the node PyTorch would name, with every input requiring grad */
    for (int i = 0; i < c->nin; i++) mt_requires_grad_(leaves[i], true);
    mt_tensor *out = NULL;
    OK(run_case(&out, leaves, (void *)c));
    if (out) {
      CHECK(out->grad_fn && strcmp(mt_node_name(out->grad_fn), c->node) == 0);
      if (out->grad_fn && strcmp(mt_node_name(out->grad_fn), c->node) != 0)
        fprintf(stderr, "%s: node %s\n", name, mt_node_name(out->grad_fn));
    }
    mt_tensor_release(out);
    for (int i = 0; i < c->nin; i++) mt_tensor_release(leaves[i]);
  }
}

/* ---- parity with PyTorch (float32) ---------------------------------------------------------- */

typedef struct parity {
  const char *name;
  gcase c;
  const double *out, *idx, *grad[3];
  size_t nout, nidx, ngrad[3];
} parity;

static bool close_to(const mt_tensor *t, const double *want, size_t n, const char *what, const char *name) {
  if ((size_t)mt_numel(t) != n) {
    fprintf(stderr, "parity %s %s: %lld elements, PyTorch has %zu\n", name, what, (long long)mt_numel(t), n);
    return false;
  }
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    double v = val(t, (int64_t)i);
    if (fabs(v - want[i]) > 1e-5 + 1e-5 * fabs(want[i]) && bad++ < 3)
      fprintf(stderr, "parity %s %s[%zu]: %.9g, PyTorch %.9g\n", name, what, i, v, want[i]);
  }
  return bad == 0;
}

static void check_parity(const parity *p) {
  const gcase *c = &p->c;
  mt_tensor *in[3] = {0}, *out = NULL, *idx = NULL, *g = NULL;
  for (int i = 0; i < c->nin; i++) {
    in[i] = pattern(MT_FLOAT32, c->ndim[i], c->sizes[i], i + 1);
    OK(mt_requires_grad_(in[i], true));
  }
  OK(run_op(&out, c->op == OP_MAXPOOL ? &idx : NULL, c, in));
  if (!out) goto done;
  CHECK(out->dtype == MT_FLOAT32);
  CHECK(close_to(out, p->out, p->nout, "output", p->name));
  if (p->idx) {
    CHECK(idx && idx->dtype == MT_INT64 && same_shape(idx, out->ndim, out->sizes));
    if (idx) CHECK(close_to(idx, p->idx, p->nidx, "indices", p->name));
  }
  g = pattern(MT_FLOAT32, out->ndim, out->sizes, 9);
  OK(mt_backward(out, g, false));
  for (int i = 0; i < c->nin; i++) {
    CHECK(in[i]->grad && in[i]->grad->dtype == MT_FLOAT32);
    if (in[i]->grad) CHECK(close_to(in[i]->grad, p->grad[i], p->ngrad[i], i == 0 ? "grad input" : i == 1 ? "grad weight" : "grad bias", p->name));
  }
done:
  mt_tensor_release(out), mt_tensor_release(idx), mt_tensor_release(g);
  for (int i = 0; i < c->nin; i++) mt_tensor_release(in[i]);
}
/* ---- PyTorch's numbers, from this generator (run with PyTorch 1.13) -------------------------
# Generates the PyTorch parity constants of tests/c/test_nn_conv.c (float32).
import torch, torch.nn.functional as F
def vals(shape, seed):
    n = 1
    for s in shape: n *= s
    return torch.tensor([((i * 7 + seed * 3) % 17 - 8) / 8.0 for i in range(n)], dtype=torch.float32).reshape(shape)
def leaf(shape, seed):
    return vals(shape, seed).requires_grad_()
cases = []
def emit(name, tensors):
    for k, t in tensors:
        flat = t.detach().reshape(-1).tolist()
        items = [("%.9g" % v) if isinstance(v, float) else str(v) for v in flat]
        lines, cur = [], ""
        for it in items:
            if len(cur) + len(it) + 2 > 108: lines.append(cur); cur = ""
            cur += it + ", "
        lines.append(cur.rstrip(", "))
        print("static const double %s_%s[] = {\n%s};" % (name, k, "\n".join("    " + l.rstrip() for l in lines)))
def run(name, f, shapes):
    xs = [leaf(s, i + 1) for i, s in enumerate(shapes)]
    out = f(*xs)
    idx = None
    if isinstance(out, tuple): out, idx = out
    g = vals(out.shape, 9)
    out.backward(g)
    ts = [("out", out)] + ([("idx", idx)] if idx is not None else []) + [("g%d" % i, x.grad) for i, x in enumerate(xs)]
    emit(name, ts)
run("linear", lambda x, w, b: F.linear(x, w, b), [(2, 3, 4), (5, 4), (5,)])
run("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2), [(2, 4, 5, 5), (4, 2, 3, 3), (4,)])
run("conv2d_unbatched", lambda x, w: F.conv2d(x, w, None, stride=2, padding=1), [(2, 5, 6), (3, 2, 2, 3)])
run("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2), [(2, 4, 9), (6, 2, 3), (6,)])
run("maxpool", lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, return_indices=True), [(2, 2, 6, 6)])
run("maxpool_dil", lambda x: F.max_pool2d(x, 2, stride=1, padding=1, dilation=2, return_indices=True), [(1, 2, 6, 7)])
run("avgpool", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), [(2, 2, 6, 6)])
run("avgpool_pad", lambda x: F.avg_pool2d(x, (3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True, count_include_pad=True), [(1, 2, 6, 7)])
run("adaptive", lambda x: F.adaptive_avg_pool2d(x, (3, 4)), [(2, 2, 5, 7)])
*/
static const double linear_out[] = {
    1.03125, 0.90625, -0.8125, 1.71875, -1.859375, -0.828125, 1.03125, -0.296875, -0.296875, 1.03125, 1.03125,
    0.359375, -0.578125, 1.40625, -1.390625, -0.296875, 2.609375, -0.859375, 0.1875, -0.625, -0.828125,
    1.140625, -0.34375, -0.234375, 0.9375, 1.03125, 0.46875, -0.625, 1.46875, -1.484375};
static const double linear_g0[] = {
    0.109375, 0.890625, -1.78125, 0.859375, 0.078125, 0.875, -1.78125, 0.875, 0.046875, 0.859375, -1.78125,
    0.890625, 0.8125, -0.21875, -0.1875, 0.640625, 0.78125, -0.234375, -0.1875, 0.65625, 0.75, -0.25, -0.1875,
    0.671875};
static const double linear_g1[] = {
    0.015625, 0.578125, 0.078125, -0.6875, 0.171875, -0.515625, 0.390625, 1.03125, 0.0625, 0.25, 0.171875,
    -0.171875, 0.484375, 0.484375, -1.640625, 0.484375, 0.109375, -0.078125, 0.265625, 0.34375};
static const double linear_g2[] = {
    3.375, -4.125, 1.125, 0, -1.125};
static const double conv2d_out[] = {
    -0.09375, 0.84375, -1.1875, 0.671875, 0.671875, -0.875, -0.21875, 0.296875, 1.46875, -0.484375, -0.421875,
    -0.09375, 0.671875, 0.34375, 1.09375, 0.09375, 1.578125, 0.40625, 2.6875, 2.140625, -0.0625, 0.6875, 1.25,
    1.75, 0.640625, 0.59375, 0.5, 2.359375, -1.0625, -0.828125, 2.171875, -0.96875, -0.65625, 0.21875,
    -0.84375, -2.375, 1.96875, -2.5, 1.0625, 1.4375, 0.21875, -0.390625, 1.84375, -0.53125, 0.265625, 1.265625,
    0.40625, 0.5625, 1.03125, 1.59375, -1.71875, 2.5, -0.6875, 1.171875, 1.09375, 0.6875, -0.375, 2.15625,
    -2.25, 2, -1.1875, 1.265625, -0.46875, 0.0625, -0.578125, -1.140625, 2.375, -0.484375, -0.28125, 0.40625,
    1.328125, -0.21875, 3.125, -2.03125, 1.578125, 0, 2.0625, 0.96875, 2.09375, -0.015625, 0.46875, 1.75,
    0.578125, 1.078125, -0.046875, -0.375, -0.578125, -1.328125, 2.171875, -1.15625, -0.59375, 0.8125, 0.125,
    -1.921875, 1.90625, -2.5, 0, 0.96875, -0.34375, 0.953125, 1.71875, -0.203125, 0.265625, 2.078125, -0.0625,
    0.78125, 1.1875, 1.96875, -1.75, 2.5, -0.75, 0.703125};
static const double conv2d_g0[] = {
    0, 0, 0, 0, 0, 1.03125, 0.46875, 0.703125, -0.65625, -0.953125, 0, 0, 0, 0, 0, 0.75, 0.125, -1.828125,
    1.265625, -0.15625, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.609375, 0.5, 0.546875, 0.859375, -0.953125, 0, 0, 0,
    0, 0, -2.21875, 0.6875, 0.40625, -2, 1.4375, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2.34375, -0.03125, -0.28125,
    2.65625, -2.90625, 0, 0, 0, 0, 0, 1.640625, -1.0625, 0.484375, -1.421875, -0.671875, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, -2.6875, 1.125, -0.109375, -0.015625, 2.46875, 0, 0, 0, 0, 0, -1.265625, 0.359375, -0.9375,
    1.484375, -0.609375, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.875, 0.3125, 0.546875, -0.8125, -0.578125, 0, 0, 0, 0,
    0, 0.546875, -0.078125, -2.03125, 1.0625, -0.890625, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.640625, 0.46875,
    0.515625, 0.828125, 0.875, 0, 0, 0, 0, 0, -2.03125, 0.875, 0.59375, -1.8125, 2.421875, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 2.421875, -1.8125, 0.59375, 0.875, -2.03125, 0, 0, 0, 0, 0, 0.875, 0.828125, 0.515625, 0.46875,
    -0.640625, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.890625, 1.0625, -2.03125, -0.078125, 0.546875, 0, 0, 0, 0, 0,
    -0.578125, -0.8125, 0.546875, 0.3125, 0.875, 0, 0, 0, 0, 0};
static const double conv2d_g1[] = {
    3.6875, -1.984375, 1.640625, 3.140625, -2.6875, 2.640625, 3.53125, -1.671875, 0.03125, -0.078125,
    -0.859375, 1.8125, -0.171875, -0.203125, 0.5625, -1.0625, -0.84375, 1.765625, -0.84375, -0.9375, 1.890625,
    0.265625, -1.84375, 1.890625, 0.140625, -1.875, 3.546875, -1.625, 1.84375, -0.796875, -1.859375, 0.5,
    -0.328125, -1.734375, 1.671875, -1.03125, 1.6875, -1.90625, 1.9375, 5.34375, -3.765625, 2, 3.75, -1.765625,
    0.15625, -0.890625, -0.921875, 1.96875, -1.703125, 0.03125, 3.09375, -1.78125, -0.015625, 0.15625,
    -0.859375, -0.734375, 1.78125, -1, -2.671875, 3.09375, -0.046875, -1.84375, 1.9375, -1.78125, 1.90625,
    -1.046875, -2.609375, 2.046875, -2.59375, -1.796875, 3.6875, -1.984375};
static const double conv2d_g2[] = {
    0.125, 1, -2.375, 0.625};
static const double conv2d_unbatched_out[] = {
    1.46875, 0.75, -1.046875, 2.734375, -2.25, -2.59375, 1.71875, -2.1875, -2.53125, 0.046875, -1.4375, 0.5,
    1.3125, -0.375, -1.21875, -0.109375, -0.390625, -1.234375, -0.046875, 0.625, 1.78125, 1.484375, 1.234375,
    -0.109375, -0.078125, 1.140625, -0.203125};
static const double conv2d_unbatched_g0[] = {
    -1.5, 0.25, 1.390625, -0.078125, 0.03125, -0.078125, 0.34375, -0.5625, 0.328125, -0.328125, -0.21875,
    0.71875, -1.0625, 0.0625, 1.828125, -0.265625, -1.390625, 0.34375, -0.234375, -0.125, 0.015625, -0.421875,
    0.53125, -0.40625, 1.5, -0.125, 0.140625, 0.078125, -0.953125, -0.03125, 0.296875, -0.4375, -0.03125,
    1.03125, -0.09375, -0.203125, -0.078125, 0.6875, -0.65625, -0.203125, 0.625, -0.03125, 0.109375, 0.25,
    -0.21875, -0.40625, 0.25, -0.40625, 0.046875, -0.125, -0.265625, 0.578125, -0.3125, 0.34375, -0.078125,
    1.203125, -0.140625, -1.3125, 0.0625, 0.71875};
static const double conv2d_unbatched_g1[] = {
    1.421875, -0.515625, 0.296875, -0.71875, 1.125, -0.421875, -0.671875, -1.640625, -0.828125, -1, -0.390625,
    -0.609375, -0.28125, 0.25, -0.359375, 0.3125, -1.046875, 0.1875, 0, 0.828125, -0.3125, 0.40625, 0.125,
    0.5625, -2.25, 0.21875, 0.84375, 0.28125, 2.09375, -0.265625, 0.40625, 0.90625, 0.46875, 0.75, -0.15625,
    -0.921875};
static const double conv1d_out[] = {
    0.828125, 0.828125, -0.875, -0.671875, 0.171875, 2.265625, 2.03125, 0.1875, -0.21875, -1.078125, 0.953125,
    0.25, 1.46875, -1.078125, 0.296875, 1.1875, -1.265625, 0.03125, -0.84375, -1.359375, 1.046875, -0.453125,
    0.140625, 0.34375, 0.984375, -0.875, -1.25, 0.796875, 1.75, 2.03125, 0.734375, -0.640625, -0.9375,
    0.953125, -0.46875, 0.84375, 0.046875, 0.296875, 0.34375, 1.609375, -0.46875, -0.84375, -0.65625,
    -1.640625, -0.453125, 0.140625, -0.328125, 0.15625};
static const double conv1d_g0[] = {
    0, 1.515625, 0, -2.8125, 0, 1.75, 0, -0.53125, 0, 0, 0, 0, 0.734375, 0, 1.265625, 0, -2.375, 0, 0, -0.625,
    0, 1.046875, 0, -0.515625, 0, 1.078125, 0, 0, -2.25, 0, 1.640625, 0, -2.09375, 0, 0.453125, 0, 0, 0.796875,
    0, 0.171875, 0, -0.578125, 0, 0.359375, 0, 0, 0.65625, 0, -3.25, 0, 1, 0, -0.640625, 0, 0, -0.53125, 0,
    0.203125, 0, 1.5625, 0, -2, 0, 0, -2.375, 0, 1.265625, 0, 1.515625, 0, -1.25, 0};
static const double conv1d_g1[] = {
    -0.96875, -0.078125, -0.515625, 0.5, 1.765625, -0.8125, -0.09375, -0.796875, 1.78125, 1.265625, 0.28125,
    -0.21875, 1.046875, -0.1875, 0.09375, -0.890625, -1.203125, -0.421875, -0.578125, 0.578125, 0.609375,
    0.296875, -0.40625, -0.015625, -0.71875, -0.078125, -1.03125, 0.046875, -0.234375, -0.171875, -0.0625,
    -1.265625, 0.515625, -0.734375, -0.0625, 0.203125};
static const double conv1d_g2[] = {
    0.875, -0.875, -0.5, 2, -1.875, 0.625};
static const double maxpool_out[] = {
    0.375, 0.875, 0.875, 0.5, 0.375, 1, 0.875, 0.5, 1, 1, 0.75, 0.375, 1, 1, 0.625, 0.25, 0.875, 0.875, 0.5,
    0.125, 1, 0.875, 0.5, 0.125, 0.875, 0.75, 1, 1, 0.625, 0.625, 0.25, -0.125, 0.75, 0.5, 1, 0.875, 0.625,
    0.5, 1, 0.75, 0.5, 1, 1, 0.625, 0.25, 0.25, 0.75, -0.5, 0.375, 1, 0.875, 0.5, 0.25, 1, 0.75, 0.375, 1, 1,
    0.625, 0.25, -0.125, 0.75, 0.375, -0.875};
static const double maxpool_idx[] = {
    6, 9, 9, 11, 6, 14, 9, 11, 31, 31, 21, 23, 31, 31, 33, 35, 7, 7, 9, 11, 12, 7, 9, 11, 24, 19, 29, 29, 31,
    31, 33, 35, 0, 7, 10, 5, 12, 7, 10, 17, 24, 27, 27, 29, 31, 31, 34, 35, 0, 8, 3, 5, 12, 8, 15, 17, 25, 25,
    27, 29, 31, 32, 34, 35};
static const double maxpool_g0[] = {
    0, 0, 0, 0, 0, 0, -0.25, 0, 0, -2, 0, 0.75, 0, 0, 0.375, 0, 0, 0, 0, 0, 0, 0.5, 0, -0.75, 0, 0, 0, 0, 0, 0,
    0, 1.625, 0, -0.25, 0, 0.625, 0, 0, 0, 0, 0, 0, 0, -0.875, 0, -0.625, 0, -1, 0.75, 0, 0, 0, 0, 0, 0, 0.875,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0.125, 0, -0.625, 0, 1, 0, -0.25, 0.625, 0, 0, 0, 0, -1, 0, 0.125, 0, 0, -0.25,
    0, -0.125, 0, 0, 0, 0, 0.375, 0, 0, 0, 0, 0, 0, -0.875, 0, 0, 0.875, 0, -0.375, 0, -0.25, 0, 0, 0.125, 1,
    -0.25, 0, 0, -0.625, 0, 0.25, 0, 0, 0.5, 0, 0, 0, -1, 0, 0, 0.75, 0, -0.5, 0, 0, 0, 0, 0, 0, 0, -0.5, 0, 0,
    0, 0.875, 0, -0.375, 0.5, 0, -0.75, 0.125};
static const double maxpool_dil_out[] = {
    0, 0.875, 0, 0.875, -0.375, 0.5, -0.75, 0.25, 1, 0.25, 0.75, -0.125, 0.75, -0.5, 0, 0.875, 0, 0.875, 0.875,
    0.5, 0.875, -0.25, 1, 1, 0.625, 1, 0.25, 0.625, -0.5, 0.75, 0.75, 0.375, 0.875, 0, 0.875, -0.75, 0.5, 1,
    0.125, 1, -0.25, 0.625, 0.625, -0.25, 0.625, -0.625, 0.25, 0.75, -0.125, 0.875, 0, 0.875, 0.875, 0.5, 1,
    0.125, 0.625, 1, 0.625, 1, 0.25, 0.75, -0.125, 0.375, 0.75, 0.375, 0.875, 0, 0.875, -0.375, 0.125, 1,
    0.125, 1, 1, 0.625, 1, -0.125, 0.75, -0.125, 0.75, -0.5, 0.375, -0.875};
static const double maxpool_dil_idx[] = {
    8, 9, 8, 9, 10, 11, 12, 1, 14, 1, 4, 3, 4, 5, 8, 9, 8, 9, 26, 11, 26, 15, 14, 31, 16, 31, 18, 33, 22, 21,
    38, 23, 26, 25, 26, 29, 28, 31, 30, 31, 32, 33, 8, 7, 8, 9, 10, 13, 12, 1, 0, 1, 18, 3, 6, 5, 8, 23, 8, 23,
    10, 13, 12, 15, 30, 15, 18, 17, 18, 19, 22, 23, 22, 23, 40, 25, 40, 29, 30, 29, 30, 31, 32, 33};
static const double maxpool_dil_g0[] = {
    0, -0.375, 0, -0.75, 0.625, 1, 0, 0, -0.75, 0.625, -0.5, 0.25, -0.875, 0, 1.25, -0.5, 0, 0, -0.375, 0, 0,
    0.125, -0.75, -0.25, 0, -0.625, 0.625, 0, -0.125, -1, -0.5, 1.125, -0.875, 0.5, 0, 0, 0, 0, 1, 0, 0, 0,
    -0.625, 0.875, 0, -0.125, 0, -0.5, 0.75, -0.375, 1.75, -0.75, -0.25, 0, -1, 1.5, 0, -0.125, 0, -0.625,
    -0.125, -1, 0, 0, -0.625, 1.125, 0, 0, 0, 0, 0, -1.125, 1.625, 1, -0.25, 0.625, 0, 0, 0, 0, 0, 0, 0, 0};
static const double avgpool_out[] = {
    -0.21875, -0.145833328, 0.1875, 0, -0.3125, 0.055555556, 0.152777776, 0.0833333358, -0.0833333358,
    0.166666672, 0.027777778, -0.0416666679, 0.5625, 0.458333343, 0.0833333358, 0.25, -0.0625, 0.1875, -0.1875,
    -0.375, 0.375, 0.152777776, -0.222222224, -0.291666657, 0.25, 0.027777778, -0.111111112, 0.291666657,
    0.1875, 0.0833333358, -0.291666657, -0.125, 0.09375, -0.1875, 0.145833328, 0.3125, 0, -0.222222224,
    0.111111112, 0.0416666679, -0.125, -0.111111112, 0.222222224, -0.0833333358, -0.1875, -0.291666657,
    0.0416666679, -0.5, -0.28125, 0.145833328, 0.125, -0.0625, -0.375, 0.111111112, -0.027777778, -0.333333343,
    -0.145833328, 0.222222224, -0.152777776, -0.458333343, -0.5625, 0.0416666679, -0.333333343, -0.875};
static const double avgpool_g0[] = {
    0.0625, -0.104166672, -0.166666672, -0.1875, -0.020833334, 0.354166657, -0.0208333358, -0.145833328,
    -0.125, -0.243055552, -0.11805556, 0.256944418, -0.0833333358, -0.0416666679, 0.0416666679, -0.055555556,
    -0.0972222239, -0.0972222239, 0.0624999925, 0.0624999888, 0, -0.0416666679, -0.0416666679, -0.291666657,
    0.145833328, 0.104166657, -0.0416666679, 0.0138888881, 0.055555556, -0.194444448, 0.208333328, 0.5,
    0.291666687, 0.263888896, -0.0277777798, 0.347222209, -0.15625, -0.114583328, 0.0416666679, -0.125,
    -0.166666672, -0.229166672, -0.03125, -0.0451388843, -0.0138888881, -0.138888881, -0.125, -0.479166657,
    0.125, 0.0694444478, -0.055555556, -0.0138888881, 0.0416666679, -0.249999985, 0.125, 0.166666672,
    0.0416666679, 0.0416666679, 0, -0.124999985, 0, 0.0972222239, 0.0972222239, 0.055555556, -0.0416666679,
    0.125, -0.375, -0.236111119, 0.138888896, 0.430555582, 0.291666687, 0.208333343, 0.15625, 0.0520833358,
    -0.104166664, -0.0624999963, 0.0416666679, -0.458333343, 0.135416672, 0.114583336, -0.0208333284,
    -0.0347222164, -0.0138888881, -0.388888896, -0.020833334, 0.0625, 0.0833333358, 0.0277777798, -0.055555556,
    0.0694444478, -0.166666657, -0.0833333284, 0.0833333358, 0.125, 0.0416666679, 0.0416666716, -0.145833328,
    -0.145833328, 0, 0.0972222239, 0.0972222239, -0.0277777761, 0.104166672, -0.145833328, -0.25, -0.111111104,
    0.138888896, 1.01388884, -0.0625, 0.0416666642, 0.104166664, 0, -0.104166664, 0.0208333358, -0.229166672,
    -0.138888896, 0.0902777761, 0.0694444478, -0.0208333284, -0.0625, -0.166666672, -0.180555567, -0.013888889,
    0.0694444478, 0.0833333358, -0.0833333358, -0.104166672, -0.215277791, -0.111111112, -0.0277777761,
    0.0833333358, 0.208333313, 0.0625, -0.0347222239, -0.0972222239, -0.0972222239, 0, 0.291666657, -0.125,
    -0.0555555522, 0.0694444478, -0.180555552, -0.25, 0.166666657};
static const double avgpool_pad_out[] = {
    -0.25, -0.104166664, -0.125, 0.145833328, 0, -0.208333328, 0.25, 0.208333328, 0, 0.0625, 0.15625, -0.125,
    -0.0416666679, -0.0416666679, 0.291666657, -0.25, -0.0833333358, 0.0625, -0.145833328, 0.125,
    -0.0833333358, 0.21875, -0.0625, 0.1875};
static const double avgpool_pad_g0[] = {
    0.0416666679, 0, -0.166666672, -0.166666672, 0, -0.020833334, -0.020833334, 0.166666672, 0, -0.25, -0.25,
    0, 0.0416666642, 0.0416666642, 0.125, 0, -0.0833333358, -0.0833333358, 0, 0.0625, 0.0625, -0.0208333284, 0,
    -0.0833333358, -0.0833333358, 0, 0.208333328, 0.208333328, -0.145833328, 0, 0, 0, 0, 0.145833328,
    0.145833328, -0.239583328, 0, 0.125, 0.125, 0, -0.0416666716, -0.0416666716, 0.020833334, 0, 0.166666672,
    0.166666672, 0, -0.0416666679, -0.0416666679, 0.125, 0, 0.0625000075, 0.0625000075, 0, 0, 0, 0.104166664,
    0, -0.104166664, -0.104166664, 0, 0.0416666679, 0.0416666679, -0.0625000075, 0, -0.125, -0.125, 0,
    0.166666672, 0.166666672, -0.166666672, 0, -0.020833334, -0.020833334, 0, 0.125, 0.125, -0.291666687, 0,
    0.0729166642, 0.0729166642, 0, -0.09375, -0.09375};
static const double adaptive_out[] = {
    -0.3125, -0.0625, -0.0833333358, -0.1875, 0.020833334, -0.0833333358, -0.222222224, -0.208333328, 0,
    -0.104166664, 0.229166672, 0.125, 0.03125, 0.104166664, 0.0833333358, 0.15625, 0.1875, 0.0833333358,
    -0.055555556, 0.3125, -0.1875, 0.0625, 0.0416666679, -0.0625, -0.15625, -0.0833333358, -0.104166664,
    -0.03125, 0, -0.222222224, 0.111111112, 0.125, 0.15625, 0.229166672, 0.208333328, -0.25, 0.1875,
    0.0833333358, 0.0625, 0.3125, -0.1875, -0.055555556, 0.0416666679, -0.0625, -0.03125, 0.0416666679,
    -0.333333343, -0.4375};
static const double adaptive_g0[] = {
    0.0625, -0.104166672, -0.166666672, -0.1875, -0.020833334, 0.166666672, 0.1875, -0.0208333358,
    -0.145833328, -0.125, -0.243055552, -0.118055552, 0.0694444552, 0.1875, -0.0833333358, -0.0416666679,
    0.0416666679, -0.0555555485, -0.0972222164, -0.0972222164, 0, 0.135416657, 0.114583328, -0.0208333321,
    -0.0347222164, -0.0138888806, -0.201388881, -0.1875, 0.21875, 0.15625, -0.0625, 0.0208333358, 0.0833333358,
    -0.104166664, -0.1875, 0.03125, 0.197916672, 0.166666672, 0.125, -0.0416666679, 0.114583328, 0.15625,
    -0.0729166642, 0.121527784, 0.194444448, 0.0416666642, -0.152777776, -0.0173611175, 0.135416672,
    -0.104166664, -0.0763888881, 0.027777778, -0.0833333358, -0.111111112, -0.131944448, -0.020833334,
    0.0833333358, 0.0277777761, -0.0555555597, -0.104166672, -0.0486111119, -0.288194448, -0.239583328, 0.1875,
    0.104166664, -0.0833333358, -0.0208333358, 0.0625, -0.15625, -0.21875, 0, 0.145833328, 0.145833328,
    0.0833333284, -0.0625, 0.0625, 0.125, -0.125, 0.0347222164, 0.159722224, 0.208333328, 0.0486111119,
    0.131944433, 0.0833333284, -0.125, -0.111111112, 0.013888889, 0.125, 0.111111112, 0.0694444478,
    -0.0416666679, 0.03125, -0.0590277761, -0.0902777761, 0.0625, 0.152777776, -0.138888881, -0.291666657,
    0.15625, 0.0520833358, -0.104166664, -0.0624999963, 0.0416666679, -0.208333328, -0.25, -0.03125, 0.09375,
    0.125, 0.0416666642, -0.0833333358, 0.0104166642, 0.09375, -0.177083328, -0.0520833284, 0.125, 0.138888881,
    0.0138888806, 0.0451388806, 0.03125, -0.145833328, -0.145833328, 0, 0.0972222164, 0.0972222164,
    0.0347222164, -0.0625, -0.0208333284, -0.145833328, -0.125, -0.00694444962, 0.118055552, 0.305555552,
    0.1875, 0.125, 0, -0.125, -0.104166664, 0.020833334, 0.270833343, 0.25};

#define N_(a) (sizeof a / sizeof a[0])
static void test_parity(void) {
  /* designated initialisers keep each row short: name, op, results */
  const parity ps[] = {
      {.name = "linear", .c = LIN("", 3, 3, SZ(2, 3, 4), 2, SZ(5, 4), 1, SZ(5), false), .out = linear_out,
       .nout = N_(linear_out), .grad = {linear_g0, linear_g1, linear_g2},
       .ngrad = {N_(linear_g0), N_(linear_g1), N_(linear_g2)}},
      {.name = "conv2d",
       .c = CONV("", OP_CONV2D, 3, 4, SZ(2, 4, 5, 5), 4, SZ(4, 2, 3, 3), 1, SZ(4), false, SZ(2, 1), SZ(1, 2), SZ(2, 1), 2),
       .out = conv2d_out, .nout = N_(conv2d_out), .grad = {conv2d_g0, conv2d_g1, conv2d_g2},
       .ngrad = {N_(conv2d_g0), N_(conv2d_g1), N_(conv2d_g2)}},
      {.name = "conv2d unbatched",
       .c = CONV("", OP_CONV2D, 2, 3, SZ(2, 5, 6), 4, SZ(3, 2, 2, 3), 0, SZ(0), false, SZ(2, 2), SZ(1, 1), SZ(1, 1), 1),
       .out = conv2d_unbatched_out, .nout = N_(conv2d_unbatched_out), .grad = {conv2d_unbatched_g0, conv2d_unbatched_g1},
       .ngrad = {N_(conv2d_unbatched_g0), N_(conv2d_unbatched_g1)}},
      {.name = "conv1d",
       .c = CONV("", OP_CONV1D, 3, 3, SZ(2, 4, 9), 3, SZ(6, 2, 3), 1, SZ(6), false, SZ(2), SZ(1), SZ(2), 2),
       .out = conv1d_out, .nout = N_(conv1d_out), .grad = {conv1d_g0, conv1d_g1, conv1d_g2},
       .ngrad = {N_(conv1d_g0), N_(conv1d_g1), N_(conv1d_g2)}},
      {.name = "max_pool2d",
       .c = POOL("", OP_MAXPOOL, 4, SZ(2, 2, 6, 6), false, SZ(3, 3), SZ(2, 2), SZ(1, 1), SZ(1, 1), true, false),
       .out = maxpool_out, .nout = N_(maxpool_out), .idx = maxpool_idx, .nidx = N_(maxpool_idx),
       .grad = {maxpool_g0}, .ngrad = {N_(maxpool_g0)}},
      {.name = "max_pool2d dilated",
       .c = POOL("", OP_MAXPOOL, 4, SZ(1, 2, 6, 7), false, SZ(2, 2), SZ(1, 1), SZ(1, 1), SZ(2, 2), false, false),
       .out = maxpool_dil_out, .nout = N_(maxpool_dil_out), .idx = maxpool_dil_idx, .nidx = N_(maxpool_dil_idx),
       .grad = {maxpool_dil_g0}, .ngrad = {N_(maxpool_dil_g0)}},
      {.name = "avg_pool2d",
       .c = POOL("", OP_AVGPOOL, 4, SZ(2, 2, 6, 6), false, SZ(3, 3), SZ(2, 2), SZ(1, 1), SZ(0, 0), true, false),
       .out = avgpool_out, .nout = N_(avgpool_out), .grad = {avgpool_g0}, .ngrad = {N_(avgpool_g0)}},
      {.name = "avg_pool2d count_include_pad",
       .c = POOL("", OP_AVGPOOL, 4, SZ(1, 2, 6, 7), false, SZ(3, 2), SZ(2, 3), SZ(1, 1), SZ(0, 0), true, true),
       .out = avgpool_pad_out, .nout = N_(avgpool_pad_out), .grad = {avgpool_pad_g0}, .ngrad = {N_(avgpool_pad_g0)}},
      {.name = "adaptive_avg_pool2d",
       .c = POOL("", OP_ADAPTIVE, 4, SZ(2, 2, 5, 7), false, SZ(3, 4), SZ(0, 0), SZ(0, 0), SZ(0, 0), false, false),
       .out = adaptive_out, .nout = N_(adaptive_out), .grad = {adaptive_g0}, .ngrad = {N_(adaptive_g0)}},
  };
  for (size_t i = 0; i < N_(ps); i++) check_parity(&ps[i]);
}

/* ---- max-pool edge semantics ---------------------------------------------------------------- */

static mt_tensor *from_values(mt_dtype dt, int ndim, const int64_t *sizes, const double *v) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) return NULL;
  for (int64_t i = 0; i < mt_numel(t); i++) mt_set_flat(t, i, mt_scalar_float(v[i]));
  return t;
}

static void test_max_pool_edges(void) {
  const int64_t s4[4] = {1, 1, 2, 2}, k2[2] = {2, 2}, one[2] = {1, 1}, zero[2] = {0, 0}, three[2] = {3, 3};
  mt_tensor *x, *y = NULL, *ind = NULL;
  /* a window wholly in the padding: -inf, and PyTorch's index (first position past the padding) */
  x = from_values(MT_FLOAT32, 4, s4, (const double[]){0, 1, 2, 3});
  OK(mt_requires_grad_(x, true));
  OK(mt_max_pool2d(&y, &ind, x, k2, one, one, three, false));
  if (y && ind) {
    CHECK(mt_numel(y) == 1 && isinf(val(y, 0)) && val(y, 0) < 0 && val(ind, 0) == 6);
    OK(mt_backward(y, NULL, false)); /* the gradient has nowhere to go */
    CHECK(x->grad && val(x->grad, 0) == 0 && val(x->grad, 3) == 0);
  }
  mt_tensor_release(x), mt_tensor_release(y), mt_tensor_release(ind);
  /* NaN wins, and the last NaN is kept; all -inf: the first position */
  x = from_values(MT_FLOAT64, 4, s4, (const double[]){NAN, 1, NAN, 2});
  OK(mt_max_pool2d(&y, &ind, x, k2, NULL, zero, one, false));
  if (y && ind) CHECK(isnan(val(y, 0)) && val(ind, 0) == 2);
  mt_tensor_release(x), mt_tensor_release(y), mt_tensor_release(ind);
  x = from_values(MT_FLOAT64, 4, s4, (const double[]){-INFINITY, -INFINITY, -INFINITY, -INFINITY});
  OK(mt_max_pool2d(&y, &ind, x, k2, NULL, NULL, NULL, false));
  if (y && ind) CHECK(isinf(val(y, 0)) && val(ind, 0) == 0);
  mt_tensor_release(x), mt_tensor_release(y), mt_tensor_release(ind);
}

/* ---- shapes, layouts, graph rules -------------------------------------------------------- */

static void test_shapes(void) {
  const int64_t s1[2] = {1, 1}, s2[2] = {2, 2}, z[2] = {0, 0}, k3[2] = {3, 3};
  mt_tensor *x, *w, *b, *y = NULL;
  /* empty batch: conv and pools keep N = 0 */
  x = gc_tensor(4, (const int64_t[]){0, 3, 5, 5}, -1, 1, 1);
  w = gc_tensor(4, (const int64_t[]){4, 3, 3, 3}, -1, 1, 2);
  OK(mt_conv2d(&y, x, w, NULL, s1, z, s1, 1));
  if (y) CHECK(same_shape(y, 4, (const int64_t[]){0, 4, 3, 3}));
  mt_tensor_release(y), y = NULL;
  OK(mt_max_pool2d(&y, NULL, x, s2, NULL, z, s1, false));
  if (y) CHECK(same_shape(y, 4, (const int64_t[]){0, 3, 2, 2}));
  mt_tensor_release(y), y = NULL;
  OK(mt_adaptive_avg_pool2d(&y, x, (const int64_t[]){2, 3}));
  if (y) CHECK(same_shape(y, 4, (const int64_t[]){0, 3, 2, 3}));
  mt_tensor_release(y), y = NULL;
  mt_tensor_release(x), mt_tensor_release(w);
  /* an empty adaptive output */
  x = gc_tensor(4, (const int64_t[]){2, 3, 4, 4}, -1, 1, 3);
  OK(mt_adaptive_avg_pool2d(&y, x, (const int64_t[]){0, 2}));
  if (y) CHECK(same_shape(y, 4, (const int64_t[]){2, 3, 0, 2}));
  mt_tensor_release(y), y = NULL;
  mt_tensor_release(x);
  /* no input channels (or features): the output is the bias */
  x = gc_tensor(4, (const int64_t[]){2, 0, 4, 4}, -1, 1, 4);
  w = gc_tensor(4, (const int64_t[]){3, 0, 3, 3}, -1, 1, 5);
  b = gc_tensor(1, (const int64_t[]){3}, -1, 1, 6);
  OK(mt_conv2d(&y, x, w, b, s1, z, s1, 1));
  if (y) {
    CHECK(same_shape(y, 4, (const int64_t[]){2, 3, 2, 2}));
    CHECK(val(y, 0) == val(b, 0) && val(y, 4) == val(b, 1) && val(y, 23) == val(b, 2));
  }
  mt_tensor_release(y), y = NULL;
  mt_tensor_release(x), mt_tensor_release(w), mt_tensor_release(b);
  x = gc_tensor(2, (const int64_t[]){3, 0}, -1, 1, 7);
  w = gc_tensor(2, (const int64_t[]){2, 0}, -1, 1, 8);
  OK(mt_linear(&y, x, w, NULL));
  if (y) CHECK(same_shape(y, 2, (const int64_t[]){3, 2}) && val(y, 0) == 0 && val(y, 5) == 0);
  mt_tensor_release(y), y = NULL;
  mt_tensor_release(x), mt_tensor_release(w);
  /* output shapes: unbatched conv1d, ceil_mode dropping a window that starts in the padding */
  x = gc_tensor(2, (const int64_t[]){4, 9}, -1, 1, 9);
  w = gc_tensor(3, (const int64_t[]){6, 2, 3}, -1, 1, 10);
  OK(mt_conv1d(&y, x, w, NULL, 2, 1, 2, 2));
  if (y) CHECK(same_shape(y, 2, (const int64_t[]){6, 4}));
  mt_tensor_release(y), y = NULL;
  mt_tensor_release(x), mt_tensor_release(w);
  x = gc_tensor(4, (const int64_t[]){1, 1, 5, 7}, -1, 1, 11);
  OK(mt_avg_pool2d(&y, x, (const int64_t[]){2, 2}, (const int64_t[]){3, 3}, s1, true, true));
  if (y) CHECK(same_shape(y, 4, (const int64_t[]){1, 1, 2, 3})); /* a third row of windows would start in the padding */
  mt_tensor_release(y), y = NULL;
  OK(mt_max_pool2d(&y, NULL, x, k3, s2, s1, s1, true));
  if (y) CHECK(same_shape(y, 4, (const int64_t[]){1, 1, 3, 4}));
  mt_tensor_release(y), y = NULL;
  mt_tensor_release(x);
}

static bool equal_tensors(const mt_tensor *a, const mt_tensor *b, double tol) {
  if (!a || !b || a->ndim != b->ndim || !same_shape(a, b->ndim, b->sizes)) return false;
  for (int64_t i = 0; i < mt_numel(a); i++)
    if (fabs(val(a, i) - val(b, i)) > tol) return false;
  return true;
}

/* Strided operands give the contiguous operands' results, through every copy-or-not path. */
static void test_layouts(void) {
  mt_tensor *base = gc_tensor(3, (const int64_t[]){5, 4, 2}, -1, 1, 20), *xb = gc_tensor(3, (const int64_t[]){3, 4, 2}, -1, 1, 21);
  mt_tensor *w = NULL, *wc = NULL, *x = NULL, *xc = NULL, *wt = NULL, *wtt = NULL, *y1 = NULL, *y2 = NULL, *y3 = NULL;
  OK(mt_select(&w, base, 2, 1));  /* [5, 4], strides (8, 2): BLAS cannot read it, a copy */
  OK(mt_select(&x, xb, 2, 0));    /* [3, 4], strides (8, 2) */
  OK(mt_clone(&wc, w));
  OK(mt_clone(&xc, x));
  OK(mt_linear(&y1, x, w, NULL));
  OK(mt_linear(&y2, xc, wc, NULL));
  CHECK(equal_tensors(y1, y2, 1e-12));
  OK(mt_transpose(&wt, wc, 0, 1));
  OK(mt_clone(&wtt, wt));              /* [4, 5] contiguous ... */
  mt_tensor *wv = NULL;
  OK(mt_transpose(&wv, wtt, 0, 1));    /* ... seen as [5, 4] with strides (1, 5): BLAS reads it as is */
  OK(mt_linear(&y3, xc, wv, NULL));
  CHECK(equal_tensors(y3, y2, 1e-12));
  mt_tensor_release(wv);
  mt_tensor_release(base), mt_tensor_release(xb), mt_tensor_release(w), mt_tensor_release(wc);
  mt_tensor_release(x), mt_tensor_release(xc), mt_tensor_release(wt), mt_tensor_release(wtt);
  mt_tensor_release(y1), mt_tensor_release(y2), mt_tensor_release(y3);

  /* conv2d and the pools on a permuted (channels-last-like) input */
  const int64_t s1[2] = {1, 1}, s2[2] = {2, 2}, p1[2] = {1, 1};
  mt_tensor *nhwc = gc_tensor(4, (const int64_t[]){2, 5, 6, 3}, -1, 1, 22), *nchw = NULL, *cont = NULL;
  mt_tensor *k = gc_tensor(4, (const int64_t[]){4, 3, 3, 3}, -1, 1, 23);
  OK(mt_permute(&nchw, nhwc, 4, (const int64_t[]){0, 3, 1, 2}));
  OK(mt_clone(&cont, nchw));
  OK(mt_conv2d(&y1, nchw, k, NULL, s2, p1, s1, 1));
  OK(mt_conv2d(&y2, cont, k, NULL, s2, p1, s1, 1));
  CHECK(equal_tensors(y1, y2, 1e-12));
  mt_tensor_release(y1), mt_tensor_release(y2), y1 = y2 = NULL;
  OK(mt_avg_pool2d(&y1, nchw, s2, NULL, p1, false, false));
  OK(mt_avg_pool2d(&y2, cont, s2, NULL, p1, false, false));
  CHECK(equal_tensors(y1, y2, 0));
  mt_tensor_release(y1), mt_tensor_release(y2);
  mt_tensor_release(nhwc), mt_tensor_release(nchw), mt_tensor_release(cont), mt_tensor_release(k);
}

/* A batch that nn_conv.c's backward splits into chunks (each with its own grad_weight
 * partial, summed in chunk order) gives what each element gives alone, forward and backward. */
static void test_batch_chunks(void) {
  const int64_t N = 40, s1[2] = {1, 1}, p1[2] = {1, 1}; /* 8 chunks of 5 with nn_conv.c's constants */
  mt_tensor *x = gc_tensor(4, (const int64_t[]){N, 3, 32, 32}, -1, 1, 50), *w = gc_tensor(4, (const int64_t[]){4, 3, 3, 3}, -1, 1, 51);
  mt_tensor *b = gc_tensor(1, (const int64_t[]){4}, -1, 1, 52), *y = NULL, *g = NULL, *gw_sum = NULL;
  OK(mt_requires_grad_(x, true));
  OK(mt_requires_grad_(w, true));
  OK(mt_requires_grad_(b, true));
  OK(mt_conv2d(&y, x, w, b, s1, p1, s1, 1));
  if (!y) goto done;
  g = gc_tensor(y->ndim, y->sizes, -1, 1, 53);
  OK(mt_backward(y, g, false));
  if (!x->grad || !w->grad) goto done;
  mt_tensor *gw_all = w->grad, *gx_all = x->grad;
  mt_tensor_retain(gw_all), mt_tensor_retain(gx_all);
  OK(mt_zeros(&gw_sum, MT_FLOAT64, 4, w->sizes));
  bool fwd_ok = true, gx_ok = true;
  for (int64_t n = 0; n < N; n++) {
    mt_tensor *xn = NULL, *yn = NULL, *gn = NULL, *ref = NULL, *gxn = NULL;
    OK(mt_set_grad(w, NULL));
    OK(mt_select(&xn, x, 0, n));        /* a view of a leaf that requires grad: recorded */
    OK(mt_conv2d(&yn, xn, w, b, s1, p1, s1, 1)); /* unbatched */
    OK(mt_select(&ref, y, 0, n));
    OK(mt_select(&gn, g, 0, n));
    OK(mt_set_grad(x, NULL));
    if (yn && ref && gn) {
      fwd_ok = fwd_ok && equal_tensors(yn, ref, 1e-12);
      OK(mt_backward(yn, gn, false));
      mt_tensor *part = NULL;
      OK(mt_select(&part, gx_all, 0, n));
      if (x->grad && part) {
        OK(mt_select(&gxn, x->grad, 0, n));
        gx_ok = gx_ok && equal_tensors(gxn, part, 1e-12);
      }
      mt_tensor_release(part);
      if (w->grad) OK(mt_binary_(MT_ADD, gw_sum, w->grad));
    }
    mt_tensor_release(xn), mt_tensor_release(yn), mt_tensor_release(gn), mt_tensor_release(ref), mt_tensor_release(gxn);
  }
  CHECK(fwd_ok);
  CHECK(gx_ok);
  CHECK(equal_tensors(gw_sum, gw_all, 1e-9));
  mt_tensor_release(gw_all), mt_tensor_release(gx_all);
done:
  mt_tensor_release(x), mt_tensor_release(w), mt_tensor_release(b), mt_tensor_release(y), mt_tensor_release(g);
  mt_tensor_release(gw_sum);
}

static void test_graph_rules(void) {
  const int64_t s1[2] = {1, 1}, z[2] = {0, 0}, k2[2] = {2, 2};
  mt_tensor *x = gc_tensor(4, (const int64_t[]){2, 3, 5, 5}, -1, 1, 30), *w = gc_tensor(4, (const int64_t[]){4, 3, 3, 3}, -1, 1, 31);
  mt_tensor *y = NULL, *ind = NULL;
  /* no grad mode: nothing recorded */
  OK(mt_requires_grad_(w, true));
  mt_set_grad_enabled(false);
  OK(mt_conv2d(&y, x, w, NULL, s1, z, s1, 1));
  mt_set_grad_enabled(true);
  if (y) CHECK(!y->grad_fn && !y->requires_grad);
  mt_tensor_release(y), y = NULL;
  /* only the weight requires grad: the input gets none; the saved input is version-checked */
  OK(mt_conv2d(&y, x, w, NULL, s1, z, s1, 1));
  if (y) {
    FAILS(mt_backward(y, NULL, true), MT_ESHAPE, "a gradient can be implied only");
    mt_tensor *g = NULL;
    OK(mt_full(&g, MT_FLOAT64, y->ndim, y->sizes, mt_scalar_float(1)));
    OK(mt_backward(y, g, true));
    CHECK(!x->grad && w->grad);
    OK(mt_fill_(x, mt_scalar_float(0.5)));
    FAILS(mt_backward(y, g, false), MT_ESTATE, "modified by an in-place operation");
    mt_tensor_release(g);
  }
  mt_tensor_release(y), y = NULL;
  /* max pool's saved indices are version-checked too */
  OK(mt_requires_grad_(x, true));
  OK(mt_max_pool2d(&y, &ind, x, k2, NULL, z, s1, false));
  if (y && ind) {
    mt_tensor *g = NULL;
    OK(mt_full(&g, MT_FLOAT64, y->ndim, y->sizes, mt_scalar_float(1)));
    CHECK(!ind->requires_grad && !ind->grad_fn);
    OK(mt_fill_(ind, mt_scalar_int(0)));
    FAILS(mt_backward(y, g, false), MT_ESTATE, "modified by an in-place operation");
    mt_tensor_release(g);
  }
  mt_tensor_release(y), mt_tensor_release(ind);
  mt_tensor_release(x), mt_tensor_release(w);
}

/* ---- errors --------------------------------------------------------------------------------- */

static void test_errors(void) {
  const int64_t s1[2] = {1, 1}, s0[2] = {0, 1}, z[2] = {0, 0}, neg[2] = {-1, 0}, k2[2] = {2, 2}, k0[2] = {0, 2},
                p2[2] = {2, 2}, k3[2] = {3, 3}, k7[2] = {7, 7}, d0[2] = {1, 0};
  mt_tensor *x = gc_tensor(4, (const int64_t[]){2, 3, 5, 5}, -1, 1, 40), *w = gc_tensor(4, (const int64_t[]){4, 3, 3, 3}, -1, 1, 41);
  mt_tensor *x2 = gc_tensor(2, (const int64_t[]){2, 3}, -1, 1, 42), *w2 = gc_tensor(2, (const int64_t[]){4, 5}, -1, 1, 43);
  mt_tensor *b5 = gc_tensor(1, (const int64_t[]){5}, -1, 1, 44), *w3 = gc_tensor(3, (const int64_t[]){4, 3, 3}, -1, 1, 45);
  mt_tensor *short1d = gc_tensor(2, (const int64_t[]){3, 2}, -1, 1, 47);
  mt_tensor *xl = NULL, *x32 = NULL, *s = NULL, *out = NULL, *empty = gc_tensor(4, (const int64_t[]){2, 0, 4, 4}, -1, 1, 46);
  OK(mt_to_dtype(&xl, x, MT_INT64));
  OK(mt_to_dtype(&x32, x, MT_FLOAT32));
  OK(mt_scalar_tensor(&s, MT_FLOAT64, mt_scalar_float(1)));

  FAILS(mt_linear(&out, xl, w2, NULL), MT_EDTYPE, "linear supports float32 and float64 inputs, got int64");
  FAILS(mt_linear(&out, x32, w2, NULL), MT_EDTYPE, "weight must have the input's dtype float32, got float64");
  FAILS(mt_linear(&out, x2, w3, NULL), MT_ESHAPE, "weight must be a 2-D [out_features, in_features] tensor, got shape [4, 3, 3]");
  FAILS(mt_linear(&out, s, w2, NULL), MT_ESHAPE, "input must have at least 1 dim");
  FAILS(mt_linear(&out, x2, w2, NULL), MT_ESHAPE, "input of shape [2, 3] does not fit weight of shape [4, 5]: 3 input features, 5 expected");
  FAILS(mt_linear(&out, w2, w2, b5), MT_ESHAPE, "bias of shape [5] does not fit 4 output features");

  FAILS(mt_conv2d(&out, xl, w, NULL, s1, z, s1, 1), MT_EDTYPE, "conv2d supports float32 and float64 inputs, got int64");
  FAILS(mt_conv2d(&out, x32, w, NULL, s1, z, s1, 1), MT_EDTYPE, "weight must have the input's dtype float32, got float64");
  FAILS(mt_conv2d(&out, x2, w, NULL, s1, z, s1, 1), MT_ESHAPE, "expected 3-D (unbatched) or 4-D (batched) input to conv2d, got input of shape [2, 3]");
  FAILS(mt_conv2d(&out, x, w3, NULL, s1, z, s1, 1), MT_ESHAPE, "weight must be a 4-D [out_channels, in_channels / groups, kH, kW] tensor, got shape [4, 3, 3]");
  FAILS(mt_conv2d(&out, x, w, NULL, s1, z, s1, 2), MT_ESHAPE, "given groups=2, weight of shape [4, 3, 3, 3], expected input of shape [2, 3, 5, 5] to have 6 channels, but got 3 channels");
  FAILS(mt_conv2d(&out, x, w, NULL, s1, z, s1, 3), MT_ESHAPE, "given groups=3, expected weight to be divisible by 3 at dim 0, but got weight of shape [4, 3, 3, 3]");
  FAILS(mt_conv2d(&out, x, w, b5, s1, z, s1, 1), MT_ESHAPE, "given weight of shape [4, 3, 3, 3], expected bias to be 1-D with 4 elements, but got bias of shape [5]");
  FAILS(mt_conv2d(&out, x, w, NULL, s0, z, s1, 1), MT_EARG, "stride must be positive, got 0");
  FAILS(mt_conv2d(&out, x, w, NULL, s1, neg, s1, 1), MT_EARG, "padding must not be negative, got -1");
  FAILS(mt_conv2d(&out, x, w, NULL, s1, z, d0, 1), MT_EARG, "dilation must be positive, got 0");
  FAILS(mt_conv2d(&out, x, w, NULL, s1, z, s1, 0), MT_EARG, "groups must be positive, got 0");
  FAILS(mt_conv2d(&out, x, w, NULL, s1, z, (const int64_t[]){3, 1}, 1), MT_ESHAPE, "padded input of size (5 x 5) per channel is smaller than the kernel (7 x 3 with dilation)");
  FAILS(mt_conv1d(&out, x, w3, NULL, 1, 0, 1, 1), MT_ESHAPE, "expected 2-D (unbatched) or 3-D (batched) input to conv1d, got input of shape [2, 3, 5, 5]");
  FAILS(mt_conv1d(&out, short1d, w3, NULL, 1, 0, 1, 1), MT_ESHAPE, "padded input of size (2) per channel is smaller than the kernel (3 with dilation)");
  FAILS(mt_conv1d(&out, short1d, w3, NULL, 1, 1, 2, 1), MT_ESHAPE, "padded input of size (4) per channel is smaller than the kernel (5 with dilation)");
  OK(mt_conv1d(&out, short1d, w3, NULL, 1, 1, 1, 1)); /* padding makes room */
  if (out) CHECK(same_shape(out, 2, (const int64_t[]){4, 2}));
  mt_tensor_release(out), out = NULL;

  FAILS(mt_max_pool2d(&out, NULL, xl, k2, NULL, z, s1, false), MT_EDTYPE, "max_pool2d supports float32 and float64 inputs, got int64");
  FAILS(mt_max_pool2d(&out, NULL, x2, k2, NULL, z, s1, false), MT_ESHAPE, "expected a 3-D or 4-D (batched) input with non-empty channel and spatial dims, got shape [2, 3]");
  FAILS(mt_max_pool2d(&out, NULL, empty, k2, NULL, z, s1, false), MT_ESHAPE, "got shape [2, 0, 4, 4]");
  FAILS(mt_max_pool2d(&out, NULL, x, k0, NULL, z, s1, false), MT_EARG, "kernel size must be positive, got (0, 2)");
  FAILS(mt_max_pool2d(&out, NULL, x, k2, s0, z, s1, false), MT_EARG, "stride must be positive, got (0, 1)");
  FAILS(mt_max_pool2d(&out, NULL, x, k2, NULL, z, d0, false), MT_EARG, "dilation must be positive, got (1, 0)");
  FAILS(mt_max_pool2d(&out, NULL, x, k3, NULL, p2, s1, false), MT_EARG, "padding should be between 0 and half of the kernel size, but got padding (2, 2) and kernel size (3, 3)");
  FAILS(mt_max_pool2d(&out, NULL, x, k7, NULL, z, s1, false), MT_ESHAPE, "input of shape [2, 3, 5, 5] gives an output of size 0 x 0, which is too small");
  FAILS(mt_avg_pool2d(&out, xl, k2, NULL, z, false, true), MT_EDTYPE, "avg_pool2d supports float32 and float64 inputs, got int64");
  FAILS(mt_avg_pool2d(&out, x, k3, NULL, p2, false, true), MT_EARG, "padding should be between 0 and half of the kernel size");
  FAILS(mt_avg_pool2d(&out, x, k7, NULL, z, false, true), MT_ESHAPE, "gives an output of size 0 x 0");
  FAILS(mt_avg_pool2d(&out, x, k2, NULL, neg, false, true), MT_EARG, "padding should be between 0 and half");
  FAILS(mt_adaptive_avg_pool2d(&out, xl, k2), MT_EDTYPE, "adaptive_avg_pool2d supports float32 and float64 inputs, got int64");
  FAILS(mt_adaptive_avg_pool2d(&out, x, neg), MT_EARG, "output size must be between 0 and 2147483647, got (-1, 0)");
  FAILS(mt_adaptive_avg_pool2d(&out, empty, k2), MT_ESHAPE, "got shape [2, 0, 4, 4]");
  CHECK(out == NULL); /* failures leave the output alone */

  mt_tensor_release(x), mt_tensor_release(w), mt_tensor_release(x2), mt_tensor_release(w2), mt_tensor_release(b5);
  mt_tensor_release(w3), mt_tensor_release(xl), mt_tensor_release(x32), mt_tensor_release(s), mt_tensor_release(empty);
  mt_tensor_release(short1d);
}

int main(void) {
  test_gradcheck();
  test_parity();
  test_max_pool_edges();
  test_shapes();
  test_layouts();
  test_batch_chunks();
  test_graph_rules();
  test_errors();
  return mt_test_finish("test_nn_conv");
}
