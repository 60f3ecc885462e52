/* test_autograd_pointwise.c — backward of the unary ops, clamp, where, masked_fill, softmax,
 * log_softmax and cumsum: finite-difference checks in float64 over shapes (0-dim, empty,
 * broadcasting, non-contiguous leaves and gradients), PyTorch's values at the kinks, node
 * names, dtypes of gradients, and saved tensors modified in place. */
#include "gradcheck.h"

static const char *grad_fn_name(const mt_tensor *t) { return t->grad_fn ? mt_node_name(t->grad_fn) : "(none)"; }

/* A float64 leaf holding `n` given values, shape [n]. */
static mt_tensor *vec(int64_t n, const double *v) {
  mt_tensor *t;
  if (mt_empty(&t, MT_FLOAT64, 1, &n)) return NULL;
  for (int64_t i = 0; i < n; i++) mt_set_flat(t, i, mt_scalar_float(v[i]));
  return t;
}

/* A non-contiguous [rows, cols] float64 tensor: the transpose of a fresh [cols, rows] one. */
static mt_tensor *transposed(int64_t rows, int64_t cols, double lo, double hi, int seed) {
  int64_t sz[2] = {cols, rows};
  mt_tensor *base = gc_tensor(2, sz, lo, hi, seed), *t = NULL;
  if (base && mt_transpose(&t, base, 0, 1)) t = NULL;
  mt_tensor_release(base);
  return t;
}

/* The shapes every op is checked on: [3, 4], 0-dim, [2, 0] and a transposed [3, 4] leaf. */
enum { N_SHAPES = 4 };
static mt_tensor *shape_case(int k, double lo, double hi, int seed) {
  static const int64_t s34[2] = {3, 4}, s20[2] = {2, 0};
  switch (k) {
  case 0: return gc_tensor(2, s34, lo, hi, seed);
  case 1: return gc_tensor(0, NULL, lo, hi, seed);
  case 2: return gc_tensor(2, s20, lo, hi, seed);
  default: return transposed(3, 4, lo, hi, seed);
  }
}

/* ---- unary ops --------------------------------------------------------------------------- */

static const struct {
  mt_unop op;
  const char *name; /* PyTorch's grad_fn */
  double lo, hi;    /* a domain where the op is smooth (or piecewise constant) */
} unary_rows[] = {
    {MT_NEG, "NegBackward0", -2, 2},          {MT_ABS, "AbsBackward0", -2, 2},
    {MT_SIGN, "SignBackward0", -2, 2},        {MT_RELU, "ReluBackward0", -2, 2},
    {MT_FLOOR, "FloorBackward0", -2, 2},      {MT_CEIL, "CeilBackward0", -2, 2},
    {MT_ROUND, "RoundBackward0", -2, 2},      {MT_TRUNC, "TruncBackward0", -2, 2},
    {MT_SQUARE, "PowBackward0", -2, 2},       {MT_EXP, "ExpBackward0", -2, 2},
    {MT_LOG, "LogBackward0", 0.5, 3},         {MT_LOG2, "Log2Backward0", 0.5, 3},
    {MT_LOG1P, "Log1PBackward0", -0.5, 3},    {MT_EXPM1, "Expm1Backward0", -2, 2},
    {MT_SQRT, "SqrtBackward0", 0.5, 3},       {MT_RSQRT, "RsqrtBackward0", 0.5, 3},
    {MT_RECIPROCAL, "ReciprocalBackward0", 0.5, 3}, {MT_SIN, "SinBackward0", -3, 3},
    {MT_COS, "CosBackward0", -3, 3},          {MT_TAN, "TanBackward0", -1.2, 1.2},
    {MT_TANH, "TanhBackward0", -2, 2},        {MT_SIGMOID, "SigmoidBackward0", -4, 4},
    {MT_ERF, "ErfBackward0", -2, 2},
};
enum { N_UNARY = sizeof unary_rows / sizeof unary_rows[0] };

static mt_status run_unary(mt_tensor **out, mt_tensor *const *in, void *ctx) {
  return mt_unary(out, *(const mt_unop *)ctx, in[0]);
}

static void test_unary_gradcheck(void) {
  CHECK((int)N_UNARY == (int)MT_LOGICAL_NOT); /* every float op but logical_not is in the table */
  for (int r = 0; r < N_UNARY; r++)
    for (int k = 0; k < N_SHAPES; k++) {
      mt_tensor *x = shape_case(k, unary_rows[r].lo, unary_rows[r].hi, r + 1);
      mt_unop op = unary_rows[r].op;
      bool ok = gradcheck(unary_rows[r].name, run_unary, &op, 1, &x);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (%s, shape case %d)\n", mt_unop_name(op), k);
      mt_tensor_release(x);
    }
}

/* Names, gradient dtypes (float32 and float16 leaves), zero gradients that still arrive. */
static void test_unary_nodes(void) {
  static const mt_dtype dts[2] = {MT_FLOAT32, MT_FLOAT16};
  int64_t sz[1] = {4};
  for (int d = 0; d < 2; d++)
    for (int r = 0; r < N_UNARY; r++) {
      mt_tensor *x64 = gc_tensor(1, sz, unary_rows[r].lo, unary_rows[r].hi, 7), *x, *y, *ones;
      mt_tensor *xd, *yd, *onesd;
      OK(mt_to_dtype(&x, x64, dts[d]));
      OK(mt_to_dtype(&xd, x, MT_FLOAT64)); /* the same values, for the float64 formula */
      OK(mt_requires_grad_(x, true));
      OK(mt_requires_grad_(xd, true));
      OK(mt_unary(&y, unary_rows[r].op, x));
      CHECK(strcmp(grad_fn_name(y), unary_rows[r].name) == 0);
      /* the forward's internal conversions (float16 runs as float32) record nothing */
      CHECK(y->grad_fn && mt_node_num_next(y->grad_fn) == 1 && mt_node_next(y->grad_fn, 0) == NULL);
      CHECK(y->dtype == dts[d]);
      OK(mt_full(&ones, dts[d], 1, sz, mt_scalar_float(1)));
      OK(mt_backward(y, ones, false));
      CHECK(x->grad && x->grad->dtype == dts[d] && x->grad->ndim == 1 && x->grad->sizes[0] == 4);
      OK(mt_unary(&yd, unary_rows[r].op, xd));
      OK(mt_full(&onesd, MT_FLOAT64, 1, sz, mt_scalar_float(1)));
      OK(mt_backward(yd, onesd, false));
      double tol = dts[d] == MT_FLOAT32 ? 1e-5 : 2e-2;
      for (int i = 0; i < 4 && x->grad; i++) {
        double want = val(xd->grad, i), got = val(x->grad, i);
        CHECK(fabs(got - want) <= tol * (1 + fabs(want)));
      }
      mt_tensor_release(xd), mt_tensor_release(yd), mt_tensor_release(onesd);
      mt_tensor_release(x64), mt_tensor_release(x), mt_tensor_release(y), mt_tensor_release(ones);
    }

  /* logical_not and integer inputs give no node; grad mode off records nothing */
  mt_tensor *x = gc_tensor(1, sz, -1, 1, 3), *y, *i64;
  OK(mt_requires_grad_(x, true));
  OK(mt_unary(&y, MT_LOGICAL_NOT, x));
  CHECK(y->dtype == MT_BOOL && !y->requires_grad && !y->grad_fn);
  mt_tensor_release(y);
  mt_set_grad_enabled(false);
  OK(mt_unary(&y, MT_EXP, x));
  CHECK(!y->requires_grad && !y->grad_fn);
  mt_tensor_release(y);
  mt_set_grad_enabled(true);
  OK(mt_zeros(&i64, MT_INT64, 1, sz));
  OK(mt_unary(&y, MT_EXP, i64));
  CHECK(y->dtype == MT_FLOAT32 && !y->grad_fn);
  mt_tensor_release(y);
  mt_tensor_release(i64);
  mt_tensor_release(x);
}

/* PyTorch's values where the derivative is not classical. */
static void test_unary_kinks(void) {
  const double nan = NAN;
  const double xs[5] = {nan, 0.0, -0.0, 2.0, -1.0};
  static const struct {
    mt_unop op;
    double want[5]; /* gradient of sum(op(x)); 99 stands for NaN */
  } rows[] = {
      {MT_ABS, {0, 0, 0, 1, -1}},
      {MT_RELU, {1, 0, 0, 1, 0}}, /* threshold_backward: g passes unless y <= 0 */
      {MT_SQRT, {99, INFINITY, -INFINITY, 0.35355339059327373, 99}},
      {MT_SIGN, {0, 0, 0, 0, 0}},
      {MT_FLOOR, {0, 0, 0, 0, 0}},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    mt_tensor *x = vec(5, xs), *y, *ones;
    int64_t sz[1] = {5};
    OK(mt_requires_grad_(x, true));
    OK(mt_unary(&y, rows[r].op, x));
    OK(mt_full(&ones, MT_FLOAT64, 1, sz, mt_scalar_float(1)));
    OK(mt_backward(y, ones, false));
    for (int i = 0; i < 5 && x->grad; i++) {
      double got = val(x->grad, i), want = rows[r].want[i];
      bool same = want == 99 ? isnan(got) : isinf(want) ? got == want : fabs(got - want) < 1e-12;
      CHECK(same);
      if (!same) fprintf(stderr, "  %s'(%g): got %g, want %g\n", mt_unop_name(rows[r].op), xs[i], got, want);
    }
    CHECK(x->grad != NULL);
    mt_tensor_release(x), mt_tensor_release(y), mt_tensor_release(ones);
  }
}

/* A non-contiguous incoming gradient (a transposed view) gives the same result as a
 * contiguous one, for each kind of backward in these files. */
typedef mt_status (*op_fn)(mt_tensor **out, const mt_tensor *x);
static mt_status op_sigmoid(mt_tensor **o, const mt_tensor *x) { return mt_unary(o, MT_SIGMOID, x); }
static mt_status op_softmax0(mt_tensor **o, const mt_tensor *x) { return mt_softmax(o, x, 0); }
static mt_status op_log_softmax1(mt_tensor **o, const mt_tensor *x) { return mt_log_softmax(o, x, 1); }
static mt_status op_cumsum0(mt_tensor **o, const mt_tensor *x) { return mt_cumsum(o, x, 0); }
static mt_status op_clamp(mt_tensor **o, const mt_tensor *x) {
  mt_scalar lo = mt_scalar_float(-0.5), hi = mt_scalar_float(0.5);
  return mt_clamp(o, x, &lo, &hi);
}
static mt_status op_masked_fill(mt_tensor **o, const mt_tensor *x) {
  mt_tensor *m, *z;
  mt_status st = mt_scalar_tensor(&z, MT_FLOAT64, mt_scalar_float(0));
  if (st) return st;
  if ((st = mt_binary(&m, MT_GT, x, z))) return mt_tensor_release(z), st;
  st = mt_masked_fill(o, x, m, mt_scalar_float(3));
  mt_tensor_release(m), mt_tensor_release(z);
  return st;
}

static void test_strided_grad(void) {
  static const op_fn ops[] = {op_sigmoid, op_softmax0, op_log_softmax1, op_cumsum0, op_clamp, op_masked_fill};
  int64_t sz[2] = {3, 4};
  for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
    mt_tensor *x = gc_tensor(2, sz, -1, 1, 11), *gt = transposed(3, 4, -1, 1, 12), *gc, *y, *g1 = NULL;
    OK(mt_clone(&gc, gt)); /* same values, contiguous */
    CHECK(!mt_is_contiguous(gt) && mt_is_contiguous(gc));
    OK(mt_requires_grad_(x, true));
    for (int pass = 0; pass < 2; pass++) {
      OK(ops[k](&y, x));
      OK(mt_backward(y, pass ? gt : gc, false));
      mt_tensor_release(y);
      if (!pass) {
        g1 = x->grad;
        mt_tensor_retain(g1);
        OK(mt_set_grad(x, NULL));
      }
    }
    for (int i = 0; i < 12 && x->grad && g1; i++) CHECK(val(x->grad, i) == val(g1, i));
    mt_tensor_release(g1), mt_tensor_release(x), mt_tensor_release(gt), mt_tensor_release(gc);
  }
}

/* ---- clamp ------------------------------------------------------------------------------- */

typedef struct {
  bool has_lo, has_hi;
  double lo, hi;
} clamp_ctx;

static mt_status run_clamp(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  const clamp_ctx *c = vctx;
  mt_scalar lo = mt_scalar_float(c->lo), hi = mt_scalar_float(c->hi);
  return mt_clamp(out, in[0], c->has_lo ? &lo : NULL, c->has_hi ? &hi : NULL);
}

static void test_clamp(void) {
  static const clamp_ctx rows[] = {{true, true, -0.5, 0.7}, {true, false, 0.1, 0}, {false, true, 0, -0.3}};
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
    for (int k = 0; k < N_SHAPES; k++) {
      mt_tensor *x = shape_case(k, -2, 2, (int)r + 20);
      bool ok = gradcheck("clamp", run_clamp, (void *)&rows[r], 1, &x);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (clamp row %zu, shape case %d)\n", r, k);
      mt_tensor_release(x);
    }

  /* at the bounds the gradient passes (PyTorch's subgradient 1); NaN x, a NaN bound and
   * lo > hi pass nothing */
  const double xs[5] = {NAN, 0.0, 1.0, 2.0, 0.5};
  static const struct {
    clamp_ctx c;
    double want[5];
  } cases[] = {
      {{true, true, 0, 1}, {0, 1, 1, 0, 1}},
      {{true, false, 1, 0}, {0, 0, 1, 1, 0}},
      {{false, true, 0, 1}, {0, 1, 1, 0, 1}},
      {{true, true, NAN, 1}, {0, 0, 0, 0, 0}},
      {{true, true, 3, 1}, {0, 0, 0, 0, 0}},
  };
  for (size_t r = 0; r < sizeof cases / sizeof cases[0]; r++) {
    mt_tensor *x = vec(5, xs), *y, *ones;
    int64_t sz[1] = {5};
    OK(mt_requires_grad_(x, true));
    OK(run_clamp(&y, &x, (void *)&cases[r].c));
    CHECK(strcmp(grad_fn_name(y), "ClampBackward1") == 0);
    OK(mt_full(&ones, MT_FLOAT64, 1, sz, mt_scalar_float(1)));
    OK(mt_backward(y, ones, false));
    for (int i = 0; i < 5 && x->grad; i++) CHECK(val(x->grad, i) == cases[r].want[i]);
    CHECK(x->grad != NULL);
    mt_tensor_release(x), mt_tensor_release(y), mt_tensor_release(ones);
  }
}

/* ---- where and masked_fill ----------------------------------------------------------------- */

/* A bool tensor of the given shape with a fixed irregular pattern. */
static mt_tensor *mask_of(int ndim, const int64_t *sizes, int seed) {
  mt_tensor *m;
  if (mt_empty(&m, MT_BOOL, ndim, sizes)) return NULL;
  for (int64_t i = 0; i < mt_numel(m); i++) mt_set_flat(m, i, mt_scalar_bool((i * 5 + seed) % 3 != 0));
  return m;
}

typedef struct {
  const mt_tensor *mask;
} mask_ctx;

static mt_status run_where(mt_tensor **out, mt_tensor *const *in, void *ctx) {
  return mt_where(out, ((mask_ctx *)ctx)->mask, in[0], in[1]);
}
static mt_status run_masked_fill(mt_tensor **out, mt_tensor *const *in, void *ctx) {
  return mt_masked_fill(out, in[0], ((mask_ctx *)ctx)->mask, mt_scalar_float(-7));
}

static void test_where(void) {
  /* shapes of cond, a and b: equal, all broadcasting, 0-dim operands, empty */
  static const struct {
    int nc, na, nb;
    int64_t c[3], a[3], b[3];
  } rows[] = {
      {2, 2, 2, {3, 4}, {3, 4}, {3, 4}},
      {2, 2, 1, {3, 1}, {1, 4}, {4}},
      {3, 0, 2, {2, 3, 4}, {0}, {3, 4}},
      {0, 2, 0, {0}, {2, 3}, {0}},
      {2, 2, 2, {0, 3}, {1, 3}, {0, 1}},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    mt_tensor *cond = mask_of(rows[r].nc, rows[r].c, (int)r);
    mt_tensor *in[2] = {gc_tensor(rows[r].na, rows[r].a, -2, 2, 1), gc_tensor(rows[r].nb, rows[r].b, -2, 2, 2)};
    mask_ctx ctx = {cond};
    bool ok = gradcheck("where", run_where, &ctx, 2, in);
    CHECK(ok);
    if (!ok) fprintf(stderr, "  (where row %zu)\n", r);
    mt_tensor_release(in[0]), mt_tensor_release(in[1]), mt_tensor_release(cond);
  }
  /* a transposed a */
  int64_t s34[2] = {3, 4};
  mt_tensor *cond = mask_of(2, s34, 1), *in[2] = {transposed(3, 4, -2, 2, 3), gc_tensor(2, s34, -2, 2, 4)};
  mask_ctx ctx = {cond};
  CHECK(gradcheck("where (transposed)", run_where, &ctx, 2, in));

  /* PyTorch's edges: (a, b); a host number or a tensor without grad has a dead edge, and
   * float32 a with float64 b gets a float32 gradient */
  mt_tensor *a32, *k, *y, *ones;
  OK(mt_to_dtype(&a32, in[0], MT_FLOAT32));
  OK(mt_requires_grad_(a32, true));
  OK(mt_wrap_number(&k, mt_scalar_float(2)));
  OK(mt_where(&y, cond, a32, k));
  CHECK(strcmp(grad_fn_name(y), "WhereBackward0") == 0 && mt_node_num_next(y->grad_fn) == 2);
  mt_tensor_release(y);
  OK(mt_requires_grad_(in[1], true));
  OK(mt_where(&y, cond, a32, in[1]));
  CHECK(y->dtype == MT_FLOAT64);
  OK(mt_full(&ones, MT_FLOAT64, 2, s34, mt_scalar_float(1)));
  OK(mt_backward(y, ones, false));
  CHECK(a32->grad && a32->grad->dtype == MT_FLOAT32 && in[1]->grad && in[1]->grad->dtype == MT_FLOAT64);
  for (int64_t i = 0; i < 12 && a32->grad && in[1]->grad; i++) {
    bool c = val(cond, i) != 0;
    CHECK(val(a32->grad, i) == (c ? 1 : 0) && val(in[1]->grad, i) == (c ? 0 : 1));
  }
  mt_tensor_release(y);

  /* the saved condition modified in place since */
  OK(mt_where(&y, cond, a32, k));
  mt_tensor *f;
  OK(mt_scalar_tensor(&f, MT_BOOL, mt_scalar_bool(false)));
  OK(mt_copy_(cond, f));
  FAILS(mt_backward(y, ones, false), MT_ESTATE, "modified by an in-place operation");
  mt_tensor_release(y), mt_tensor_release(f), mt_tensor_release(k), mt_tensor_release(a32), mt_tensor_release(ones);
  mt_tensor_release(in[0]), mt_tensor_release(in[1]), mt_tensor_release(cond);
}

static void test_masked_fill(void) {
  /* shapes of t and mask: equal, mask broadcast, 0-dim both ways, empty */
  static const struct {
    int nt, nm;
    int64_t t[3], m[3];
  } rows[] = {
      {2, 2, {3, 4}, {3, 4}}, {3, 1, {2, 3, 4}, {4}}, {2, 0, {3, 4}, {0}}, {0, 0, {0}, {0}}, {2, 1, {0, 4}, {4}},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
    for (int seed = 0; seed < 2; seed++) { /* a 0-dim mask both true and false */
      mt_tensor *mask = mask_of(rows[r].nm, rows[r].m, seed), *t = gc_tensor(rows[r].nt, rows[r].t, -2, 2, 5);
      mask_ctx ctx = {mask};
      bool ok = gradcheck("masked_fill", run_masked_fill, &ctx, 1, &t);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (masked_fill row %zu)\n", r);
      mt_tensor_release(mask), mt_tensor_release(t);
    }
  int64_t s34[2] = {3, 4};
  mt_tensor *mask = mask_of(2, s34, 2), *t = transposed(3, 4, -2, 2, 6), *y;
  mask_ctx ctx = {mask};
  CHECK(gradcheck("masked_fill (transposed)", run_masked_fill, &ctx, 1, &t));
  OK(mt_requires_grad_(t, true));
  OK(mt_masked_fill(&y, t, mask, mt_scalar_float(1)));
  CHECK(strcmp(grad_fn_name(y), "MaskedFillBackward0") == 0 && mt_node_num_next(y->grad_fn) == 1);
  mt_tensor_release(y), mt_tensor_release(mask), mt_tensor_release(t);
}

/* ---- softmax, log_softmax, cumsum ---------------------------------------------------------- */

typedef struct {
  int which; /* 0 softmax, 1 log_softmax, 2 cumsum */
  int64_t dim;
} dim_ctx;

static mt_status run_dim_op(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  const dim_ctx *c = vctx;
  return c->which == 0 ? mt_softmax(out, in[0], c->dim)
         : c->which == 1 ? mt_log_softmax(out, in[0], c->dim)
                         : mt_cumsum(out, in[0], c->dim);
}

static void test_dim_ops(void) {
  static const char *const names[3] = {"SoftmaxBackward0", "LogSoftmaxBackward0", "CumsumBackward0"};
  /* (shape, dim): rows (inner 1), columns and a middle dim (inner > 1), a middle dim wider
   * than the kernels' 256-column chunk, 0-dim, empty, and a transposed leaf */
  static const struct {
    int ndim;
    int64_t sizes[3];
    int64_t dim;
    bool transpose;
  } rows[] = {
      {2, {3, 4}, 1, false},  {2, {3, 4}, 0, false},   {3, {2, 3, 4}, 1, false}, {3, {2, 3, 4}, -1, false},
      {3, {2, 3, 300}, 1, false}, {0, {0}, 0, false}, {0, {0}, -1, false},      {2, {2, 0}, 0, false},
      {2, {3, 4}, 0, true},   {2, {3, 4}, 1, true},
  };
  for (int w = 0; w < 3; w++)
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
      mt_tensor *x = rows[r].transpose ? transposed(rows[r].sizes[0], rows[r].sizes[1], -2, 2, 9)
                                       : gc_tensor(rows[r].ndim, rows[r].sizes, -2, 2, 8);
      dim_ctx ctx = {w, rows[r].dim};
      bool ok = gradcheck(names[w], run_dim_op, &ctx, 1, &x);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (%s row %zu)\n", names[w], r);
      mt_tensor_release(x);
    }

  /* names, one edge, float32 / float16 gradients against float64 */
  int64_t sz[2] = {3, 5};
  for (int w = 0; w < 3; w++)
    for (int d = 0; d < 2; d++) {
      mt_dtype dt = d ? MT_FLOAT16 : MT_FLOAT32;
      mt_tensor *x64 = gc_tensor(2, sz, -2, 2, 4), *gw = gc_tensor(2, sz, -1, 1, 5), *x, *g, *y, *xd, *yd;
      OK(mt_to_dtype(&x, x64, dt));
      OK(mt_to_dtype(&g, gw, dt));
      OK(mt_to_dtype(&xd, x, MT_FLOAT64));
      OK(mt_requires_grad_(x, true));
      OK(mt_requires_grad_(xd, true));
      dim_ctx ctx = {w, 1};
      OK(run_dim_op(&y, &x, &ctx));
      OK(run_dim_op(&yd, &xd, &ctx));
      CHECK(strcmp(grad_fn_name(y), names[w]) == 0 && mt_node_num_next(y->grad_fn) == 1 &&
            mt_node_next(y->grad_fn, 0) == NULL);
      OK(mt_backward(y, g, false));
      OK(mt_backward(yd, gw, false));
      CHECK(x->grad && x->grad->dtype == dt);
      double tol = d ? 2e-2 : 1e-5;
      for (int i = 0; i < 15 && x->grad && xd->grad; i++)
        CHECK(fabs(val(x->grad, i) - val(xd->grad, i)) <= tol * (1 + fabs(val(xd->grad, i))));
      mt_tensor_release(x64), mt_tensor_release(gw), mt_tensor_release(x), mt_tensor_release(g);
      mt_tensor_release(y), mt_tensor_release(xd), mt_tensor_release(yd);
    }

  /* cumsum of an integer tensor has no node */
  mt_tensor *i, *y;
  OK(mt_zeros(&i, MT_INT32, 2, sz));
  OK(mt_cumsum(&y, i, 0));
  CHECK(y->dtype == MT_INT64 && !y->grad_fn);
  mt_tensor_release(i), mt_tensor_release(y);
}

/* ---- saved tensors ----------------------------------------------------------------------- */

/* Inputs and outputs saved for backward are checked against in-place changes, and released
 * after backward unless the graph is retained. */
static void test_saved(void) {
  int64_t sz[1] = {3};
  mt_tensor *x = gc_tensor(1, sz, 0.5, 1, 1), *y, *z, *ones, *one;
  OK(mt_full(&ones, MT_FLOAT64, 1, sz, mt_scalar_float(1)));
  OK(mt_wrap_number(&one, mt_scalar_float(1)));
  OK(mt_requires_grad_(x, true));

  OK(mt_unary(&y, MT_SIN, x)); /* saves x */
  mt_set_grad_enabled(false);
  OK(mt_binary_(MT_ADD, x, one));
  mt_set_grad_enabled(true);
  FAILS(mt_backward(y, ones, false), MT_ESTATE, "modified by an in-place operation");
  mt_tensor_release(y);

  /* exp saves its output: changing it through a detached alias is caught */
  OK(mt_unary(&y, MT_EXP, x));
  OK(mt_detach(&z, y));
  OK(mt_binary_(MT_ADD, z, one));
  FAILS(mt_backward(y, ones, false), MT_ESTATE, "modified by an in-place operation");
  mt_tensor_release(z), mt_tensor_release(y);

  OK(mt_softmax(&y, x, 0));
  OK(mt_backward(y, ones, true));
  OK(mt_backward(y, ones, false));
  FAILS(mt_backward(y, ones, false), MT_ESTATE, "second time");
  mt_tensor_release(y);

  mt_tensor_release(x), mt_tensor_release(ones), mt_tensor_release(one);
}

int main(void) {
  test_unary_gradcheck();
  test_unary_nodes();
  test_unary_kinks();
  test_strided_grad();
  test_clamp();
  test_where();
  test_masked_fill();
  test_dim_ops();
  test_saved();
  return mt_test_finish("test_autograd_pointwise");
}
