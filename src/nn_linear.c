/*
 * nn_linear.c — linear: out[..., o] = sum_i input[..., i] * weight[o, i] + bias[o].
 *
 * The forward is one gemm: the input's leading dims fold into rows (a view when its layout
 * allows, else one copy), the weight goes to BLAS as the transpose it already is (no copy of
 * weight^T is ever made), and the bias is broadcast into the output first so that gemm adds
 * onto it (beta = 1). A few rows (batch-1 inference) take one gemv each instead. The backward
 * is three more products over the same flattened rows: grad_input = G W, grad_weight = G^T X,
 * grad_bias = the column sums of G.
 */
#include "mt_internal.h"

#include <cblas.h>
#include <limits.h>

/* How BLAS reads an r x c matrix with element strides rs, cs (row-major calls): as is with
 * ld = rs (unit column stride) or as the transpose of a c x r matrix with ld = cs. A stride
 * along a size-1 dim is never used. False when neither works (the caller copies). */
static bool blas_layout(int64_t r, int64_t c, int64_t rs, int64_t cs, CBLAS_TRANSPOSE *tr, int *ld) {
  int64_t need = c > 1 ? c : 1;
  if (c == 1 || cs == 1) {
    int64_t l = r == 1 ? need : rs;
    if (l >= need && l <= INT_MAX) return *tr = CblasNoTrans, *ld = (int)l, true;
  }
  need = r > 1 ? r : 1;
  if (r == 1 || rs == 1) {
    int64_t l = c == 1 ? need : cs;
    if (l >= need && l <= INT_MAX) return *tr = CblasTrans, *ld = (int)l, true;
  }
  return false;
}

/* t as a [rows, cols] matrix BLAS can read: a view when the layout allows, else a copy. */
static mt_status as_matrix(mt_tensor **out, const mt_tensor *t, int64_t rows, int64_t cols, CBLAS_TRANSPOSE *tr,
                           int *ld) {
  int64_t sz[2] = {rows, cols};
  mt_tensor *m;
  mt_status st = mt_reshape(&m, t, 2, sz);
  if (st) return st;
  if (!blas_layout(rows, cols, m->strides[0], m->strides[1], tr, ld)) {
    mt_tensor *c;
    st = mt_clone(&c, m);
    mt_tensor_release(m);
    if (st) return st;
    m = c;
    blas_layout(rows, cols, m->strides[0], m->strides[1], tr, ld); /* contiguous: always readable */
  }
  *out = m;
  return MT_OK;
}

/* Up to this many rows, one gemv per row: gemm packs (copies) the whole weight before it
 * multiplies, which for a single row costs several times the product (~7x for 3136 -> 128). */
#define GEMV_ROWS 4

/* C rows [rows, out] (holding the bias, or zeros) += W x_r for each row x_r of input, by gemv;
 * tb / ldw say how BLAS reads weight^T (blas_layout). False, with nothing written, when the
 * input's element stride does not suit BLAS (the caller takes the gemm path). */
static bool gemv_rows(const mt_tensor *input, int64_t rows, int64_t in_f, int64_t out_f, CBLAS_TRANSPOSE tb,
                      const void *W, int ldw, char *C) {
  const int64_t inc = in_f == 1 ? 1 : input->strides[input->ndim - 1];
  if (inc < 1 || inc > INT_MAX) return false;
  const size_t es = mt_dtype_size(input->dtype);
  /* weight^T read as a transpose (the usual contiguous weight): weight is row-major [out, in] */
  const CBLAS_TRANSPOSE t = tb == CblasTrans ? CblasNoTrans : CblasTrans;
  const int m = (int)(tb == CblasTrans ? out_f : in_f), n = (int)(tb == CblasTrans ? in_f : out_f);
  for (int64_t r = 0; r < rows; r++) {
    int64_t off = 0, rem = r; /* the row's element offset over the leading dims */
    for (int d = input->ndim - 2; d >= 0; d--) {
      off += rem % input->sizes[d] * input->strides[d];
      rem /= input->sizes[d];
    }
    const char *xr = (const char *)mt_data(input) + off * (int64_t)es;
    char *yr = C + (size_t)(r * out_f) * es;
    if (input->dtype == MT_FLOAT32)
      cblas_sgemv(CblasRowMajor, t, m, n, 1.0f, W, ldw, (const float *)xr, (int)inc, 1.0f, (float *)yr, 1);
    else
      cblas_dgemv(CblasRowMajor, t, m, n, 1.0, W, ldw, (const double *)xr, (int)inc, 1.0, (double *)yr, 1);
  }
  return true;
}

/* The product itself; shapes and dtypes are checked, grad mode is off. */
static mt_status linear_compute(mt_tensor **out, const mt_tensor *input, const mt_tensor *weight,
                                const mt_tensor *bias) {
  const int64_t in_f = weight->sizes[1], out_f = weight->sizes[0];
  int64_t sizes[MT_MAX_DIMS], rows = 1;
  for (int d = 0; d < input->ndim - 1; d++) rows *= (sizes[d] = input->sizes[d]);
  sizes[input->ndim - 1] = out_f;
  if (rows > INT_MAX || in_f > INT_MAX || out_f > INT_MAX)
    return mt_fail(MT_EARG, "linear of %lld rows, %lld inputs and %lld outputs is too large for BLAS (at most %d)",
                   (long long)rows, (long long)in_f, (long long)out_f, INT_MAX);
  mt_tensor *r = NULL, *x = NULL, *w = NULL;
  mt_status st = mt_empty(&r, input->dtype, input->ndim, sizes);
  if (st) return st;
  const size_t es = mt_dtype_size(r->dtype);
  char *C = mt_data(r);
  if (rows == 0 || out_f == 0) goto done;

  /* the bias into row 0 (it may be 0-dim or [1] and broadcast), then into every row */
  if (bias) {
    mt_tensor *row0;
    if ((st = mt_make_view(&row0, r, 0, 1, &out_f, (const int64_t[]){1}))) goto done;
    st = mt_copy_into(row0, bias);
    mt_tensor_release(row0);
    if (st) goto done;
    for (int64_t i = 1; i < rows; i++) memcpy(C + (size_t)(i * out_f) * es, C, (size_t)out_f * es);
  }
  if (in_f == 0) { /* an empty sum: the bias alone, or zeros */
    if (!bias) memset(C, 0, (size_t)(rows * out_f) * es);
    goto done;
  }
  CBLAS_TRANSPOSE ta, tb;
  int lda, ldb;
  /* weight^T is [in, out] with strides (weight's dim-1 stride, weight's dim-0 stride) */
  if (!blas_layout(in_f, out_f, weight->strides[1], weight->strides[0], &tb, &ldb)) {
    if ((st = mt_clone(&w, weight))) goto done;
    blas_layout(in_f, out_f, w->strides[1], w->strides[0], &tb, &ldb);
  }
  const void *B = mt_data(w ? w : weight);
  const int M = (int)rows, N = (int)out_f, K = (int)in_f;
  if (rows <= GEMV_ROWS) {
    if (!bias) memset(C, 0, (size_t)(rows * out_f) * es); /* gemv adds onto its output */
    if (gemv_rows(input, rows, in_f, out_f, tb, B, ldb, C)) goto done;
  }
  if ((st = as_matrix(&x, input, rows, in_f, &ta, &lda))) goto done;
  const void *A = mt_data(x);
  mt_gemm(r->dtype == MT_FLOAT64, ta == CblasTrans, tb == CblasTrans, M, N, K, 1.0, A, lda, B, ldb, bias ? 1.0 : 0.0, C,
          N);
done:
  mt_tensor_release(x);
  mt_tensor_release(w);
  if (st) {
    mt_tensor_release(r);
    return st;
  }
  *out = r;
  return MT_OK;
}

/* ---- backward ------------------------------------------------------------------------------ */

typedef struct linear_node {
  mt_node base;
  mt_saved input, weight;
} linear_node;

static void linear_release(mt_node *n) {
  mt_saved_release(&((linear_node *)n)->input);
  mt_saved_release(&((linear_node *)n)->weight);
}

static mt_status linear_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  linear_node *ln = (linear_node *)n;
  if (!gout[0]) return MT_OK;
  const mt_edge *ein = &n->next[0];
  const bool need_x = mt_edge_live(ein), need_w = mt_edge_live(&n->next[1]), need_b = mt_edge_live(&n->next[2]);
  const int64_t out_f = n->next[1].sizes[0], in_f = n->next[1].sizes[1];
  int64_t rows = 1;
  for (int d = 0; d < ein->ndim - 1; d++) rows *= ein->sizes[d];
  mt_tensor *x = NULL, *w = NULL, *g2 = NULL, *gt = NULL, *x2 = NULL, *gx = NULL, *gw = NULL, *gb = NULL;
  mt_status st;
  if (need_w && (st = mt_saved_get(&ln->input, n, &x))) return st;
  if (need_x && (st = mt_saved_get(&ln->weight, n, &w))) return st;
  if ((st = mt_reshape(&g2, gout[0], 2, (const int64_t[]){rows, out_f}))) return st;
  if (need_x) { /* G [rows, out] @ W [out, in], back in the input's shape */
    mt_tensor *p;
    if (!(st = mt_matmul(&p, g2, w))) {
      st = mt_reshape(&gx, p, ein->ndim, ein->sizes);
      mt_tensor_release(p);
    }
    if (st) goto fail;
  }
  if (need_w) { /* G^T [out, rows] @ X [rows, in]; matmul reads the transposed view as is */
    if ((st = mt_transpose(&gt, g2, 0, 1)) || (st = mt_reshape(&x2, x, 2, (const int64_t[]){rows, in_f})) ||
        (st = mt_matmul(&gw, gt, x2)))
      goto fail;
  }
  if (need_b && (st = mt_sum(&gb, g2, 1, (const int64_t[]){0}, false))) goto fail;
  mt_tensor_release(g2), mt_tensor_release(gt), mt_tensor_release(x2);
  gin[0] = gx, gin[1] = gw, gin[2] = gb;
  return MT_OK;
fail:
  mt_tensor_release(g2), mt_tensor_release(gt), mt_tensor_release(x2);
  mt_tensor_release(gx), mt_tensor_release(gw), mt_tensor_release(gb);
  return st;
}

/* The grad_fn PyTorch 1.13's composite linear ends with in each case. */
static const char *linear_node_name(const mt_tensor *input, bool has_bias) {
  if (input->ndim == 1) return has_bias ? "AddBackward0" : "SqueezeBackward3";
  if (input->ndim == 2) return has_bias ? "AddmmBackward0" : "MmBackward0";
  if (!has_bias) return "UnsafeViewBackward0";
  return input->ndim == 3 && mt_is_contiguous(input) ? "ViewBackward0" : "AddBackward0";
}

/* ---- entry point --------------------------------------------------------------------------- */

static mt_status check_dtype(const char *what, const mt_tensor *t, mt_dtype want) {
  if (t->dtype != want)
    return mt_fail(MT_EDTYPE, "%s must have the input's dtype %s, got %s", what, mt_dtype_name(want),
                   mt_dtype_name(t->dtype));
  return MT_OK;
}

MT_API mt_status mt_linear(mt_tensor **out, const mt_tensor *input, const mt_tensor *weight, const mt_tensor *bias) {
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  mt_status st;
  if (input->dtype != MT_FLOAT32 && input->dtype != MT_FLOAT64)
    return mt_fail(MT_EDTYPE, "linear supports float32 and float64 inputs, got %s", mt_dtype_name(input->dtype));
  if ((st = check_dtype("weight", weight, input->dtype)) || (bias && (st = check_dtype("bias", bias, input->dtype))))
    return st;
  if (weight->ndim != 2)
    return mt_fail(MT_ESHAPE, "weight must be a 2-D [out_features, in_features] tensor, got shape %s",
                   mt_shape_str(a, sizeof a, weight->ndim, weight->sizes));
  if (input->ndim == 0) return mt_fail(MT_ESHAPE, "input must have at least 1 dim, got a 0-dim tensor");
  if (input->sizes[input->ndim - 1] != weight->sizes[1])
    return mt_fail(MT_ESHAPE, "input of shape %s does not fit weight of shape %s: %lld input features, %lld expected",
                   mt_shape_str(a, sizeof a, input->ndim, input->sizes),
                   mt_shape_str(b, sizeof b, weight->ndim, weight->sizes), (long long)input->sizes[input->ndim - 1],
                   (long long)weight->sizes[1]);
  if (bias && (bias->ndim > 1 || (mt_numel(bias) != 1 && mt_numel(bias) != weight->sizes[0])))
    return mt_fail(MT_ESHAPE, "bias of shape %s does not fit %lld output features",
                   mt_shape_str(a, sizeof a, bias->ndim, bias->sizes), (long long)weight->sizes[0]);

  const mt_tensor *ins[3] = {input, weight, bias};
  const bool record = mt_grad_needed(3, ins);
  const bool was = mt_is_grad_enabled();
  mt_tensor *r = NULL;
  mt_trace *const tr = mt_active_trace;
  mt_set_grad_enabled(false); /* the internal reshapes and copies record nothing, */
  mt_active_trace = NULL;     /* neither for autograd nor for a trace (linear records itself) */
  st = linear_compute(&r, input, weight, bias);
  mt_active_trace = tr;
  mt_set_grad_enabled(was);
  if (st) return st;
  if (record) {
    linear_node *n = (linear_node *)mt_node_new(sizeof *n, linear_node_name(input, bias != NULL), linear_backward,
                                                linear_release, 3, ins, 1);
    if (!n) st = MT_ENOMEM;
    else {
      if (weight->requires_grad) st = mt_save_tensor(&n->input, input); /* dW needs X, dX needs W */
      if (!st && input->requires_grad) st = mt_save_tensor(&n->weight, weight);
      if (!st) mt_node_set_output(&n->base, r, 0);
      mt_node_release(&n->base);
    }
    if (st) {
      mt_tensor_release(r);
      return st;
    }
  }
  if (tr) mt_trace_record("linear", 3, ins, 1, &r, "");
  *out = r;
  return MT_OK;
}
