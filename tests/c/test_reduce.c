/* test_reduce.c — reductions, softmax / log_softmax / cumsum, sort / topk.
 *
 * Constants were computed with PyTorch 1.13 (the expression is given above each table).
 * Strided views are checked against the same op on a contiguous copy (the contiguous path
 * being checked against PyTorch), and large shapes against a naive loop, so that every
 * kernel shape (rows, column chunks, pairwise splits, the copying fallback) is exercised. */
#include "mt_test.h"

#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------------------------ */

static const mt_dtype all_dtypes[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16, MT_INT64,
                                      MT_INT32,   MT_INT16,   MT_INT8,    MT_UINT8,    MT_BOOL};
#define NDT (int)(sizeof all_dtypes / sizeof all_dtypes[0])

static mt_tensor *tensor_of(mt_dtype dt, int ndim, const int64_t *sizes, const double *v) {
  mt_tensor *t, *c;
  if (mt_empty(&t, MT_FLOAT64, ndim, sizes)) abort();
  for (int64_t i = 0, n = mt_numel(t); i < n; i++) ((double *)mt_data(t))[i] = v[i];
  if (mt_to_dtype(&c, t, dt)) abort();
  mt_tensor_release(t);
  return c;
}

static double at(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  if (mt_get_flat(t, i, &s)) abort();
  return mt_scalar_to_f64(s);
}

/* v as the dtype would hold it (float16 rounding and overflow, bool truthiness). */
static double in_dtype(mt_dtype dt, double v) {
  mt_tensor *s;
  if (mt_scalar_tensor(&s, dt, mt_scalar_float(v))) abort();
  double r = at(s, 0);
  mt_tensor_release(s);
  return r;
}

static double tol_of(mt_dtype dt) {
  switch (dt) {
  case MT_FLOAT64: return 1e-12;
  case MT_FLOAT32: return 2e-6;
  case MT_FLOAT16: return 1e-3;
  case MT_BFLOAT16: return 8e-3;
  default: return 0;
  }
}

static bool close_to(double a, double b, double tol) {
  if (isnan(b)) return isnan(a);
  if (isinf(b)) return a == b;
  return fabs(a - b) <= tol * (1 + fabs(b));
}

/* One check: t has dtype dt, the given shape and (within tol) the values. */
static void expect(const char *what, const mt_tensor *t, mt_dtype dt, int ndim, const int64_t *sizes,
                   const double *vals, double tol) {
  mt_test_checks++;
  bool ok = t && t->dtype == dt && t->ndim == ndim && mt_is_contiguous(t);
  for (int d = 0; ok && d < ndim; d++) ok = t->sizes[d] == sizes[d];
  int64_t bad = -1;
  for (int64_t i = 0, n = ok ? mt_numel(t) : 0; i < n && bad < 0; i++)
    if (!close_to(at(t, i), vals[i], tol)) bad = i;
  if (!ok || bad >= 0) {
    mt_test_failures++;
    if (!t) fprintf(stderr, "%s: no tensor (%s)\n", what, mt_last_error());
    else if (!ok) fprintf(stderr, "%s: got dtype %s, %d-D, expected %s, %d-D\n", what, mt_dtype_info(t->dtype)->name,
                          t->ndim, mt_dtype_info(dt)->name, ndim);
    else fprintf(stderr, "%s: element %lld is %.17g, expected %.17g\n", what, (long long)bad, at(t, bad), vals[bad]);
  }
}

/* Same dtype, shape and values (within tol). */
static void expect_same(const char *what, const mt_tensor *a, const mt_tensor *b, double tol) {
  if (!a || !b) {
    mt_test_checks++, mt_test_failures++;
    fprintf(stderr, "%s: missing result (%s)\n", what, mt_last_error());
    return;
  }
  int64_t n = mt_numel(b);
  double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  for (int64_t i = 0; i < n; i++) v[i] = at(b, i);
  expect(what, a, b->dtype, b->ndim, b->sizes, v, tol);
  free(v);
}

/* ---- value reductions against PyTorch ------------------------------------------------------ */

typedef enum op_t { OP_SUM, OP_PROD, OP_MEAN, OP_VAR, OP_STD, OP_AMAX, OP_AMIN, OP_ALL, OP_ANY, NOPS } op_t;
static const char *const op_names[] = {"sum", "prod", "mean", "var", "std", "amax", "amin", "all", "any"};

/* var is unbiased (correction 1), std the population one (correction 0). */
static mt_status run_op(op_t op, mt_tensor **out, const mt_tensor *t, int nd, const int64_t *dims, bool keep) {
  switch (op) {
  case OP_SUM: return mt_sum(out, t, nd, dims, keep);
  case OP_PROD: return mt_prod(out, t, nd, dims, keep);
  case OP_MEAN: return mt_mean(out, t, nd, dims, keep);
  case OP_VAR: return mt_var(out, t, nd, dims, 1, keep);
  case OP_STD: return mt_std(out, t, nd, dims, 0, keep);
  case OP_AMAX: return mt_amax(out, t, nd, dims, keep);
  case OP_AMIN: return mt_amin(out, t, nd, dims, keep);
  case OP_ALL: return mt_all(out, t, nd, dims, keep);
  default: return mt_any(out, t, nd, dims, keep);
  }
}

/* PyTorch's result dtypes (checked with torch for every input dtype). */
static mt_dtype result_dtype(op_t op, mt_dtype dt) {
  bool fl = dt <= MT_BFLOAT16;
  if (op == OP_SUM || op == OP_PROD) return fl ? dt : MT_INT64;
  if (op == OP_ALL || op == OP_ANY) return dt == MT_UINT8 ? MT_UINT8 : MT_BOOL;
  return dt;
}

/* X = torch.tensor([(i*7) % 5 for i in range(24)]).view(2, 3, 4) */
static const double X[24] = {0, 2, 4, 1, 3, 0, 2, 4, 1, 3, 0, 2, 4, 1, 3, 0, 2, 4, 1, 3, 0, 2, 4, 1};
static const int64_t XS[3] = {2, 3, 4};

typedef struct red_case {
  op_t op;
  int nd;
  int64_t dims[3];
  double v[12];
} red_case;

/* X.sum(dims), (X + 1).prod(dims) (no zeros), X.mean, X.var(correction=1), X.std(correction=0),
 * X.amax, X.amin, X.all, X.any, over dims (), (0,), (1,), (-1,), (0, 2), (-1, 0, 1). */
static const red_case x_cases[] = {
    {OP_SUM, 0, {0}, {47}},
    {OP_SUM, 1, {0}, {4, 3, 7, 1, 5, 4, 3, 7, 1, 5, 4, 3}},
    {OP_SUM, 1, {1}, {4, 5, 6, 7, 6, 7, 8, 4}},
    {OP_SUM, 1, {-1}, {7, 9, 6, 8, 10, 7}},
    {OP_SUM, 2, {0, 2}, {15, 19, 13}},
    {OP_SUM, 3, {-1, 0, 1}, {47}},
    {OP_PROD, 0, {0}, {6220800000.0}},
    {OP_PROD, 1, {0}, {5, 6, 20, 2, 12, 5, 6, 20, 2, 12, 5, 6}},
    {OP_PROD, 1, {1}, {8, 12, 15, 30, 15, 30, 40, 8}},
    {OP_PROD, 1, {-1}, {30, 60, 24, 40, 120, 30}},
    {OP_PROD, 2, {0, 2}, {1200, 7200, 720}},
    {OP_PROD, 3, {-1, 0, 1}, {6220800000.0}},
    {OP_MEAN, 0, {0}, {1.9583333333333333}},
    {OP_MEAN, 1, {0}, {2.0, 1.5, 3.5, 0.5, 2.5, 2.0, 1.5, 3.5, 0.5, 2.5, 2.0, 1.5}},
    {OP_MEAN, 1, {1}, {1.3333333333333333, 1.6666666666666667, 2.0, 2.3333333333333335, 2.0, 2.3333333333333335,
                       2.6666666666666665, 1.3333333333333333}},
    {OP_MEAN, 1, {-1}, {1.75, 2.25, 1.5, 2.0, 2.5, 1.75}},
    {OP_MEAN, 2, {0, 2}, {1.875, 2.375, 1.625}},
    {OP_MEAN, 3, {-1, 0, 1}, {1.9583333333333333}},
    {OP_VAR, 0, {0}, {2.1286231884057973}},
    {OP_VAR, 1, {0}, {8.0, 0.5, 0.5, 0.5, 0.5, 8.0, 0.5, 0.5, 0.5, 0.5, 8.0, 0.5}},
    {OP_VAR, 1, {1}, {2.3333333333333335, 2.3333333333333335, 4.0, 2.3333333333333335, 4.0, 2.3333333333333335,
                      2.3333333333333335, 2.3333333333333335}},
    {OP_VAR, 1, {-1}, {2.9166666666666665, 2.9166666666666665, 1.6666666666666667, 3.3333333333333335,
                       1.6666666666666667, 2.9166666666666665}},
    {OP_VAR, 2, {0, 2}, {2.6964285714285716, 1.9821428571428572, 1.9821428571428572}},
    {OP_VAR, 3, {-1, 0, 1}, {2.1286231884057973}},
    {OP_STD, 0, {0}, {1.4282613750835509}},
    {OP_STD, 1, {0}, {2.0, 0.5, 0.5, 0.5, 0.5, 2.0, 0.5, 0.5, 0.5, 0.5, 2.0, 0.5}},
    {OP_STD, 1, {1}, {1.247219128924647, 1.247219128924647, 1.632993161855452, 1.247219128924647, 1.632993161855452,
                      1.247219128924647, 1.247219128924647, 1.247219128924647}},
    {OP_STD, 1, {-1}, {1.479019945774904, 1.479019945774904, 1.118033988749895, 1.5811388300841898,
                       1.118033988749895, 1.479019945774904}},
    {OP_STD, 2, {0, 2}, {1.5360257159305635, 1.3169567191065923, 1.3169567191065923}},
    {OP_STD, 3, {-1, 0, 1}, {1.4282613750835509}},
    {OP_AMAX, 0, {0}, {4}},
    {OP_AMAX, 1, {0}, {4, 2, 4, 1, 3, 4, 2, 4, 1, 3, 4, 2}},
    {OP_AMAX, 1, {1}, {3, 3, 4, 4, 4, 4, 4, 3}},
    {OP_AMAX, 1, {-1}, {4, 4, 3, 4, 4, 4}},
    {OP_AMAX, 2, {0, 2}, {4, 4, 4}},
    {OP_AMAX, 3, {-1, 0, 1}, {4}},
    {OP_AMIN, 0, {0}, {0}},
    {OP_AMIN, 1, {0}, {0, 1, 3, 0, 2, 0, 1, 3, 0, 2, 0, 1}},
    {OP_AMIN, 1, {1}, {0, 0, 0, 1, 0, 1, 1, 0}},
    {OP_AMIN, 1, {-1}, {0, 0, 0, 0, 1, 0}},
    {OP_AMIN, 2, {0, 2}, {0, 0, 0}},
    {OP_AMIN, 3, {-1, 0, 1}, {0}},
    {OP_ALL, 0, {0}, {0}},
    {OP_ALL, 1, {0}, {0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1}},
    {OP_ALL, 1, {1}, {0, 0, 0, 1, 0, 1, 1, 0}},
    {OP_ALL, 1, {-1}, {0, 0, 0, 0, 1, 0}},
    {OP_ALL, 2, {0, 2}, {0, 0, 0}},
    {OP_ALL, 3, {-1, 0, 1}, {0}},
    {OP_ANY, 0, {0}, {1}},
    {OP_ANY, 1, {0}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
    {OP_ANY, 1, {1}, {1, 1, 1, 1, 1, 1, 1, 1}},
    {OP_ANY, 1, {-1}, {1, 1, 1, 1, 1, 1}},
    {OP_ANY, 2, {0, 2}, {1, 1, 1}},
    {OP_ANY, 3, {-1, 0, 1}, {1}},
};

/* The same for the bool tensor X != 0 where it differs (sum, prod, amax, amin). */
static const red_case bool_cases[] = {
    {OP_SUM, 0, {0}, {19}},
    {OP_SUM, 1, {0}, {1, 2, 2, 1, 2, 1, 2, 2, 1, 2, 1, 2}},
    {OP_SUM, 1, {1}, {2, 2, 2, 3, 2, 3, 3, 2}},
    {OP_SUM, 1, {-1}, {3, 3, 3, 3, 4, 3}},
    {OP_SUM, 2, {0, 2}, {6, 7, 6}},
    {OP_SUM, 3, {-1, 0, 1}, {19}},
    {OP_PROD, 0, {0}, {0}},
    {OP_PROD, 1, {0}, {0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1}},
    {OP_PROD, 1, {1}, {0, 0, 0, 1, 0, 1, 1, 0}},
    {OP_PROD, 1, {-1}, {0, 0, 0, 0, 1, 0}},
    {OP_PROD, 2, {0, 2}, {0, 0, 0}},
    {OP_PROD, 3, {-1, 0, 1}, {0}},
    {OP_AMAX, 0, {0}, {1}},
    {OP_AMAX, 1, {0}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
    {OP_AMAX, 1, {1}, {1, 1, 1, 1, 1, 1, 1, 1}},
    {OP_AMAX, 1, {-1}, {1, 1, 1, 1, 1, 1}},
    {OP_AMAX, 2, {0, 2}, {1, 1, 1}},
    {OP_AMAX, 3, {-1, 0, 1}, {1}},
    {OP_AMIN, 0, {0}, {0}},
    {OP_AMIN, 1, {0}, {0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1}},
    {OP_AMIN, 1, {1}, {0, 0, 0, 1, 0, 1, 1, 0}},
    {OP_AMIN, 1, {-1}, {0, 0, 0, 0, 1, 0}},
    {OP_AMIN, 2, {0, 2}, {0, 0, 0}},
    {OP_AMIN, 3, {-1, 0, 1}, {0}},
};

static int result_shape(int ndim, const int64_t *sizes, int nd, const int64_t *dims, bool keep, int64_t *out) {
  bool red[MT_MAX_DIMS] = {false};
  for (int i = 0; i < nd; i++) red[(dims[i] + ndim) % ndim] = true;
  int n = 0;
  for (int d = 0; d < ndim; d++)
    if (nd == 0 || red[d]) {
      if (keep) out[n++] = 1;
    } else {
      out[n++] = sizes[d];
    }
  return n;
}

static void test_against_torch(void) {
  double xp1[24];
  for (int i = 0; i < 24; i++) xp1[i] = X[i] + 1;
  for (int k = 0; k < NDT; k++) {
    const mt_dtype dt = all_dtypes[k];
    mt_tensor *x = tensor_of(dt, 3, XS, X), *xp = tensor_of(dt, 3, XS, xp1);
    for (size_t c = 0; c < sizeof x_cases / sizeof x_cases[0]; c++) {
      const red_case *rc = &x_cases[c];
      if (dt == MT_BOOL && (rc->op == OP_SUM || rc->op == OP_PROD || rc->op == OP_AMAX || rc->op == OP_AMIN))
        rc = &bool_cases[(rc->op == OP_SUM ? 0 : rc->op == OP_PROD ? 1 : rc->op == OP_AMAX ? 2 : 3) * 6 + c % 6];
      const mt_tensor *in = (rc->op == OP_PROD && dt != MT_BOOL) ? xp : x;
      for (int keep = 0; keep < 2; keep++) {
        char what[96];
        snprintf(what, sizeof what, "%s %s dims#%zu keepdim=%d", op_names[rc->op], mt_dtype_info(dt)->name, c, keep);
        mt_tensor *r = NULL;
        mt_status st = run_op(rc->op, &r, in, rc->nd, rc->dims, keep);
        if ((rc->op == OP_MEAN || rc->op == OP_VAR || rc->op == OP_STD) && dt >= MT_INT64) {
          mt_test_checks++;
          if (st != MT_EDTYPE || !strstr(mt_last_error(), mt_dtype_info(dt)->name) || r) {
            mt_test_failures++;
            fprintf(stderr, "%s: expected a dtype error, got %s\n", what, mt_last_error());
          }
          continue;
        }
        int64_t shape[3];
        int n = result_shape(3, XS, rc->nd, rc->dims, keep, shape);
        const mt_dtype rdt = result_dtype(rc->op, dt);
        double want[12];
        for (int i = 0; i < 12; i++) want[i] = in_dtype(rdt, rc->v[i]);
        expect(what, st ? NULL : r, rdt, n, shape, want, tol_of(rdt));
        mt_tensor_release(r);
      }
    }
    mt_tensor_release(x);
    mt_tensor_release(xp);
  }
}

/* ---- accuracy, wrapping, NaN ---------------------------------------------------------------- */

static double item(mt_tensor *t) { /* reads and releases a one-element result */
  double v = t ? at(t, 0) : NAN;
  mt_tensor_release(t);
  return v;
}

static void test_accuracy(void) {
  mt_tensor *t, *r;
  int64_t n = 10000000, two[2] = {5000000, 2}, d0 = 0;
  OK(mt_full(&t, MT_FLOAT32, 1, &n, mt_scalar_float(1)));
  OK(mt_sum(&r, t, 0, NULL, false));
  CHECK(item(r) == 1e7);
  mt_tensor *v;
  OK(mt_view(&v, t, 2, two));
  OK(mt_sum(&r, v, 1, &d0, false)); /* column shape: 5e6 rows of two */
  CHECK(r && at(r, 0) == 5e6 && at(r, 1) == 5e6);
  mt_tensor_release(r);
  mt_tensor_release(v);
  OK(mt_fill_(t, mt_scalar_float(0.1)));
  OK(mt_mean(&r, t, 0, NULL, false)); /* a float32 running sum would give 0.1088 */
  CHECK(item(r) == (double)0.1f);
  OK(mt_var(&r, t, 0, NULL, 1, false));
  CHECK(item(r) == 0);
  mt_tensor_release(t);

  /* torch.tensor([1e8+1, 1e8+2, 1e8+3, 1e8+4.5], dtype=float64).var() = 2.2291666666666665 */
  static const double big[4] = {1e8 + 1, 1e8 + 2, 1e8 + 3, 1e8 + 4.5};
  int64_t four = 4;
  t = tensor_of(MT_FLOAT64, 1, &four, big);
  OK(mt_var(&r, t, 0, NULL, 1, false));
  CHECK_NEAR(item(r), 2.2291666666666665, 1e-9);
  mt_tensor_release(t);
  static const double big32[4] = {1e4 + 1, 1e4 + 2, 1e4 + 3, 1e4 + 4.5};
  t = tensor_of(MT_FLOAT32, 1, &four, big32);
  OK(mt_std(&r, t, 0, NULL, 1, false));
  CHECK_NEAR(item(r), 1.4930394055974097, 1e-6);
  mt_tensor_release(t);

  /* torch.tensor([2**62] * 3).sum() wraps to -4611686018427387904; int8 [100]*3 sums to 300 */
  int64_t three = 3;
  OK(mt_full(&t, MT_INT64, 1, &three, mt_scalar_int(INT64_C(1) << 62)));
  OK(mt_sum(&r, t, 0, NULL, false));
  CHECK(r && r->dtype == MT_INT64 && ((int64_t *)mt_data(r))[0] == -INT64_C(4611686018427387904));
  mt_tensor_release(r);
  mt_tensor_release(t);
  OK(mt_full(&t, MT_INT8, 1, &three, mt_scalar_int(100)));
  OK(mt_sum(&r, t, 0, NULL, false));
  CHECK(r && r->dtype == MT_INT64 && item(r) == 300);
  OK(mt_prod(&r, t, 0, NULL, false));
  CHECK(item(r) == 1e6);
  mt_tensor_release(t);
}

static void test_nan(void) {
  /* M = [[1, 3, 3, 0], [2, nan, 5, nan], [-1, -1, -2, 7]] */
  static const double M[12] = {1, 3, 3, 0, 2, NAN, 5, NAN, -1, -1, -2, 7};
  int64_t ms[2] = {3, 4}, d0 = 0, d1 = 1;
  for (int k = 0; k < 2; k++) {
    const mt_dtype dt = k ? MT_FLOAT64 : MT_FLOAT32;
    mt_tensor *m = tensor_of(dt, 2, ms, M), *r, *i;
    /* M.amax(1) = [3, nan, 7], M.amin(0) = [-1, nan, -2, nan], M.sum(1) = [7, nan, 3] */
    OK(mt_amax(&r, m, 1, &d1, false));
    expect("amax nan d1", r, dt, 1, (int64_t[]){3}, (double[]){3, NAN, 7}, 0);
    mt_tensor_release(r);
    OK(mt_amin(&r, m, 1, &d0, false));
    expect("amin nan d0", r, dt, 1, (int64_t[]){4}, (double[]){-1, NAN, -2, NAN}, 0);
    mt_tensor_release(r);
    OK(mt_sum(&r, m, 1, &d1, false));
    expect("sum nan", r, dt, 1, (int64_t[]){3}, (double[]){7, NAN, 3}, 0);
    mt_tensor_release(r);
    OK(mt_amax(&r, m, 0, NULL, false));
    CHECK(isnan(item(r)));
    /* M.max(0) = ([2, nan, 5, nan], [1, 1, 1, 1]); M.min(1) = ([0, nan, -2], [3, 1, 2]) */
    OK(mt_max_dim(&r, &i, m, 0, false));
    expect("max_dim nan d0 values", r, dt, 1, (int64_t[]){4}, (double[]){2, NAN, 5, NAN}, 0);
    expect("max_dim nan d0 indices", i, MT_INT64, 1, (int64_t[]){4}, (double[]){1, 1, 1, 1}, 0);
    mt_tensor_release(r);
    mt_tensor_release(i);
    OK(mt_min_dim(&r, &i, m, 1, true));
    expect("min_dim nan d1 values", r, dt, 2, (int64_t[]){3, 1}, (double[]){0, NAN, -2}, 0);
    expect("min_dim nan d1 indices", i, MT_INT64, 2, (int64_t[]){3, 1}, (double[]){3, 1, 2}, 0);
    mt_tensor_release(r);
    mt_tensor_release(i);
    /* M.argmax() = M.argmin() = 5 (the first NaN); M.t().argmax() = 4; M.t().max(0).indices = [1, 1, 3] */
    OK(mt_argmax(&i, m, true, 0, false));
    CHECK(item(i) == 5);
    OK(mt_argmin(&i, m, true, 0, false));
    CHECK(item(i) == 5);
    mt_tensor *mt;
    OK(mt_transpose(&mt, m, 0, 1));
    OK(mt_argmax(&i, mt, true, 0, false));
    CHECK(item(i) == 4);
    OK(mt_argmax(&i, mt, false, 0, false));
    expect("argmax nan transposed", i, MT_INT64, 1, (int64_t[]){3}, (double[]){1, 1, 3}, 0);
    mt_tensor_release(i);
    mt_tensor_release(mt);
    mt_tensor_release(m);
  }
  /* torch.tensor([nan]).all() is True (NaN is non-zero); torch.tensor([-0.0]).any() is False */
  int64_t one = 1;
  mt_tensor *t = tensor_of(MT_FLOAT32, 1, &one, (double[]){NAN}), *r;
  OK(mt_all(&r, t, 0, NULL, false));
  CHECK(item(r) == 1);
  mt_tensor_release(t);
  t = tensor_of(MT_FLOAT32, 1, &one, (double[]){-0.0});
  OK(mt_any(&r, t, 0, NULL, false));
  CHECK(item(r) == 0);
  mt_tensor_release(t);
}

/* ---- index reductions against PyTorch ------------------------------------------------------- */

static void test_arg_reductions(void) {
  /* N = [[1, 3, 3, 0], [2, 6, 5, 6], [4, 4, 2, 7]]: ties everywhere, first index wins.
   * N.max(0) = ([4, 6, 5, 7], [2, 1, 1, 2]); N.min(0) = ([1, 3, 2, 0], [0, 0, 2, 0])
   * N.max(1) = ([3, 6, 7], [1, 1, 3]); N.min(1) = ([0, 2, 2], [3, 0, 2])
   * N.argmax() = 11, N.argmin() = 3, N.t().argmin() = 9 */
  static const double N[12] = {1, 3, 3, 0, 2, 6, 5, 6, 4, 4, 2, 7};
  static const struct { bool max; int dim; double v[4], i[4]; } rows[] = {
      {true, 0, {4, 6, 5, 7}, {2, 1, 1, 2}}, {false, 0, {1, 3, 2, 0}, {0, 0, 2, 0}},
      {true, 1, {3, 6, 7}, {1, 1, 3}},       {false, 1, {0, 2, 2}, {3, 0, 2}},
  };
  int64_t ns[2] = {3, 4};
  for (int k = 0; k < NDT; k++) {
    const mt_dtype dt = all_dtypes[k];
    if (dt == MT_BOOL) continue;
    mt_tensor *n = tensor_of(dt, 2, ns, N), *v, *i;
    char what[64];
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
      for (int keep = 0; keep < 2; keep++) {
        int64_t shape[2] = {rows[r].dim ? 3 : 1, rows[r].dim ? 1 : 4}, flat = rows[r].dim ? 3 : 4;
        const int64_t *sh = keep ? shape : &flat;
        snprintf(what, sizeof what, "%s_dim %s dim %d", rows[r].max ? "max" : "min", mt_dtype_info(dt)->name,
                 rows[r].dim);
        v = i = NULL;
        OK((rows[r].max ? mt_max_dim : mt_min_dim)(&v, &i, n, rows[r].dim, keep));
        expect(what, v, dt, keep ? 2 : 1, sh, rows[r].v, 0);
        expect(what, i, MT_INT64, keep ? 2 : 1, sh, rows[r].i, 0);
        mt_tensor_release(v);
        mt_tensor_release(i);
        i = NULL;
        OK((rows[r].max ? mt_argmax : mt_argmin)(&i, n, false, rows[r].dim - 2, keep));
        expect(what, i, MT_INT64, keep ? 2 : 1, sh, rows[r].i, 0);
        mt_tensor_release(i);
      }
    }
    OK(mt_argmax(&i, n, true, 0, false));
    CHECK(i && i->ndim == 0 && item(i) == 11);
    OK(mt_argmin(&i, n, true, 0, true)); /* keepdim with all dims: shape [1, 1], as PyTorch */
    expect("argmin all keepdim", i, MT_INT64, 2, (int64_t[]){1, 1}, (double[]){3}, 0);
    mt_tensor_release(i);
    mt_tensor *nt;
    OK(mt_transpose(&nt, n, 0, 1));
    OK(mt_argmin(&i, nt, true, 0, false));
    CHECK(item(i) == 9);
    mt_tensor_release(nt);
    mt_tensor_release(n);
  }
  /* B = N % 2 == 1: B.max(1) = ([1, 1, 1], [0, 2, 3]); B.min(0) = ([0, 0, 0, 0], [1, 1, 2, 0]) */
  double bv[12];
  for (int j = 0; j < 12; j++) bv[j] = (int)N[j] % 2;
  mt_tensor *b = tensor_of(MT_BOOL, 2, ns, bv), *v, *i;
  OK(mt_max_dim(&v, &i, b, 1, false));
  expect("bool max_dim values", v, MT_BOOL, 1, (int64_t[]){3}, (double[]){1, 1, 1}, 0);
  expect("bool max_dim indices", i, MT_INT64, 1, (int64_t[]){3}, (double[]){0, 2, 3}, 0);
  mt_tensor_release(v);
  mt_tensor_release(i);
  OK(mt_min_dim(&v, &i, b, 0, false));
  expect("bool min_dim indices", i, MT_INT64, 1, (int64_t[]){4}, (double[]){1, 1, 2, 0}, 0);
  mt_tensor_release(v);
  mt_tensor_release(i);
  mt_tensor_release(b);
}

/* ---- empty and 0-dim tensors, errors --------------------------------------------------------- */

static void test_edges(void) {
  mt_tensor *e, *r = NULL, *i = NULL, *sentinel = (mt_tensor *)&sentinel;
  int64_t es[2] = {0, 3}, d0 = 0, d1 = 1;
  OK(mt_zeros(&e, MT_FLOAT32, 2, es));
  /* torch.zeros(0, 3): sum() 0, prod() 1, mean() nan, var() nan, all() True, any() False */
  static const struct { op_t op; double v; } whole[] = {
      {OP_SUM, 0}, {OP_PROD, 1}, {OP_MEAN, NAN}, {OP_VAR, NAN}, {OP_STD, NAN}, {OP_ALL, 1}, {OP_ANY, 0}};
  for (size_t k = 0; k < sizeof whole / sizeof whole[0]; k++) {
    r = NULL;
    OK(run_op(whole[k].op, &r, e, 0, NULL, false));
    expect(op_names[whole[k].op], r, result_dtype(whole[k].op, MT_FLOAT32), 0, NULL, &whole[k].v, 0);
    mt_tensor_release(r);
  }
  /* zeros(0, 3).sum(0) = [0, 0, 0]; .mean(0) = [nan] * 3; .amax(1) and .argmax(1) have shape [0] */
  OK(mt_sum(&r, e, 1, &d0, false));
  expect("empty sum(0)", r, MT_FLOAT32, 1, (int64_t[]){3}, (double[]){0, 0, 0}, 0);
  mt_tensor_release(r);
  OK(mt_mean(&r, e, 1, &d0, true));
  expect("empty mean(0)", r, MT_FLOAT32, 2, (int64_t[]){1, 3}, (double[]){NAN, NAN, NAN}, 0);
  mt_tensor_release(r);
  OK(mt_amax(&r, e, 1, &d1, false));
  expect("empty amax(1)", r, MT_FLOAT32, 1, (int64_t[]){0}, NULL, 0);
  mt_tensor_release(r);
  OK(mt_argmax(&i, e, false, 1, true));
  expect("empty argmax(1)", i, MT_INT64, 2, (int64_t[]){0, 1}, NULL, 0);
  mt_tensor_release(i);
  /* zeros(2, 0).var(1, correction=-1) = [nan, nan] */
  mt_tensor *e2;
  OK(mt_zeros(&e2, MT_FLOAT64, 2, (int64_t[]){2, 0}));
  OK(mt_var(&r, e2, 1, &d1, -1, false));
  expect("empty var correction -1", r, MT_FLOAT64, 1, (int64_t[]){2}, (double[]){NAN, NAN}, 0);
  mt_tensor_release(r);
  mt_tensor_release(e2);

  /* max and min have no identity (PyTorch: "Expected reduction dim 0 to have non-zero size") */
  r = i = sentinel;
  FAILS(mt_amax(&r, e, 1, &d0, false), MT_ESHAPE, "over dim 0: it has size 0");
  FAILS(mt_amin(&r, e, 0, NULL, false), MT_ESHAPE, "min of an empty tensor");
  FAILS(mt_max_dim(&r, &i, e, 0, false), MT_ESHAPE, "max over dim 0");
  FAILS(mt_argmax(&i, e, true, 0, false), MT_ESHAPE, "argmax of an empty tensor");
  FAILS(mt_argmin(&i, e, false, -2, false), MT_ESHAPE, "argmin over dim 0");
  CHECK(r == sentinel && i == sentinel);
  mt_tensor_release(e);

  /* 0-dim: dim 0 and -1 are allowed; torch.tensor(3.).sum(0) = 3, .max(0) = (3, 0) */
  mt_tensor *s;
  OK(mt_scalar_tensor(&s, MT_FLOAT64, mt_scalar_float(3)));
  int64_t dm1 = -1, d2[2] = {0, -1};
  OK(mt_sum(&r, s, 1, &dm1, true));
  expect("0-dim sum", r, MT_FLOAT64, 0, NULL, (double[]){3}, 0);
  mt_tensor_release(r);
  OK(mt_std(&r, s, 1, &d0, 0, false));
  expect("0-dim std", r, MT_FLOAT64, 0, NULL, (double[]){0}, 0);
  mt_tensor_release(r);
  OK(mt_max_dim(&r, &i, s, 0, true));
  expect("0-dim max", r, MT_FLOAT64, 0, NULL, (double[]){3}, 0);
  expect("0-dim max index", i, MT_INT64, 0, NULL, (double[]){0}, 0);
  mt_tensor_release(r);
  mt_tensor_release(i);
  r = sentinel;
  FAILS(mt_sum(&r, s, 1, &d1, false), MT_EINDEX, "out of range");
  FAILS(mt_sum(&r, s, 2, d2, false), MT_EARG, "dim 0 appears more than once");
  CHECK(r == sentinel);
  mt_tensor_release(s);

  mt_tensor *t;
  OK(mt_zeros(&t, MT_INT64, 2, (int64_t[]){2, 3}));
  int64_t dup[2] = {1, -1}, bad[1] = {2};
  FAILS(mt_amax(&r, t, 2, dup, false), MT_EARG, "dim 1 appears more than once");
  FAILS(mt_sum(&r, t, 1, bad, false), MT_EINDEX, "dim 2 is out of range");
  FAILS(mt_sum(&r, t, -1, bad, false), MT_EARG, "");
  FAILS(mt_mean(&r, t, 0, NULL, false), MT_EDTYPE, "got int64");
  FAILS(mt_std(&r, t, 1, &d0, 1, false), MT_EDTYPE, "floating-point");
  FAILS(mt_argmax(&r, t, false, 5, false), MT_EINDEX, "out of range");
  CHECK(r == sentinel);
  mt_tensor_release(t);

  /* torch.tensor([[1., 2], [4, 3]]).var(0, correction=5) = [inf, inf]; zeros(2, 3).var(0, correction=5) = nan */
  t = tensor_of(MT_FLOAT32, 2, (int64_t[]){2, 2}, (double[]){1, 2, 4, 3});
  OK(mt_var(&r, t, 1, &d0, 5, false));
  expect("var correction > N", r, MT_FLOAT32, 1, (int64_t[]){2}, (double[]){INFINITY, INFINITY}, 0);
  mt_tensor_release(r);
  OK(mt_fill_(t, mt_scalar_float(2)));
  OK(mt_std(&r, t, 1, &d0, 5, false));
  expect("std correction > N, no spread", r, MT_FLOAT32, 1, (int64_t[]){2}, (double[]){NAN, NAN}, 0);
  mt_tensor_release(r);
  mt_tensor_release(t);
}

/* ---- strided views against contiguous copies ------------------------------------------------- */

typedef mt_status (*view_fn)(mt_tensor **out, const mt_tensor *y);
static mt_status v_transpose(mt_tensor **o, const mt_tensor *y) { return mt_transpose(o, y, 0, 2); }
static mt_status v_narrow(mt_tensor **o, const mt_tensor *y) { return mt_narrow(o, y, 1, 1, 3); }
static mt_status v_permute(mt_tensor **o, const mt_tensor *y) { return mt_permute(o, y, 3, (int64_t[]){1, 2, 0}); }
static mt_status v_select(mt_tensor **o, const mt_tensor *y) { return mt_select(o, y, 1, 2); }
static mt_status v_narrow_t(mt_tensor **o, const mt_tensor *y) {
  mt_tensor *n;
  mt_status st = mt_narrow(&n, y, 2, 2, 3);
  if (!st) st = mt_transpose(o, n, 0, 1);
  mt_tensor_release(n);
  return st;
}
static mt_status v_expand(mt_tensor **o, const mt_tensor *y) {
  mt_tensor *n;
  mt_status st = mt_narrow(&n, y, 0, 1, 1);
  if (!st) st = mt_expand(o, n, 3, (int64_t[]){3, 5, 6});
  mt_tensor_release(n);
  return st;
}

static void test_views(void) {
  static const view_fn views[] = {v_transpose, v_narrow, v_permute, v_select, v_narrow_t, v_expand};
  static const mt_dtype dts[] = {MT_FLOAT64, MT_FLOAT32, MT_INT64, MT_INT32, MT_UINT8, MT_BFLOAT16};
  int64_t ys[3] = {4, 5, 6};
  double yv[120];
  for (int j = 0; j < 120; j++) yv[j] = (j * 37) % 11 + (j % 3 == 0 ? 0.5 : 0); /* ties, no NaN */
  for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
    const mt_dtype dt = dts[k];
    mt_tensor *y = tensor_of(dt, 3, ys, yv);
    for (size_t vi = 0; vi < sizeof views / sizeof views[0]; vi++) {
      mt_tensor *v, *c;
      OK(views[vi](&v, y));
      OK(mt_clone(&c, v));
      CHECK(!mt_is_contiguous(v) && mt_is_contiguous(c));
      char what[96];
      /* every subset of dims, every op */
      for (uint32_t mask = 0; mask < (1u << v->ndim); mask++) {
        int64_t dims[MT_MAX_DIMS];
        int nd = 0;
        for (int d = 0; d < v->ndim; d++)
          if (mask >> d & 1) dims[nd++] = d - (d % 2) * v->ndim; /* mix negative dims in */
        for (int op = 0; op < NOPS; op++) {
          if ((op == OP_MEAN || op == OP_VAR || op == OP_STD) && dt >= MT_INT64) continue;
          mt_tensor *a = NULL, *b = NULL;
          OK(run_op(op, &a, v, nd, dims, mask & 1));
          OK(run_op(op, &b, c, nd, dims, mask & 1));
          snprintf(what, sizeof what, "view %zu %s %s mask %u", vi, op_names[op], mt_dtype_info(dt)->name, mask);
          expect_same(what, a, b, tol_of(dt) * 4);
          mt_tensor_release(a);
          mt_tensor_release(b);
        }
      }
      for (int d = -1; d < v->ndim; d++) { /* -1: argmax over all dims */
        mt_tensor *a[2] = {NULL, NULL}, *b[2] = {NULL, NULL};
        snprintf(what, sizeof what, "view %zu index ops %s dim %d", vi, mt_dtype_info(dt)->name, d);
        for (int mx = 0; mx < 2; mx++) {
          OK((mx ? mt_argmax : mt_argmin)(&a[0], v, d < 0, d, false));
          OK((mx ? mt_argmax : mt_argmin)(&b[0], c, d < 0, d, false));
          expect_same(what, a[0], b[0], 0);
          for (int j = 0; j < 2; j++) mt_tensor_release(a[j]), mt_tensor_release(b[j]), a[j] = b[j] = NULL;
          if (d < 0) continue;
          OK((mx ? mt_max_dim : mt_min_dim)(&a[0], &a[1], v, d, true));
          OK((mx ? mt_max_dim : mt_min_dim)(&b[0], &b[1], c, d, true));
          expect_same(what, a[0], b[0], 0);
          expect_same(what, a[1], b[1], 0);
          for (int j = 0; j < 2; j++) mt_tensor_release(a[j]), mt_tensor_release(b[j]), a[j] = b[j] = NULL;
          OK(mt_sort(&a[0], &a[1], v, d, mx));
          OK(mt_sort(&b[0], &b[1], c, d, mx));
          expect_same(what, a[0], b[0], 0);
          expect_same(what, a[1], b[1], 0);
          for (int j = 0; j < 2; j++) mt_tensor_release(a[j]), mt_tensor_release(b[j]), a[j] = b[j] = NULL;
          OK(mt_topk(&a[0], &a[1], v, 2, d, mx));
          OK(mt_topk(&b[0], &b[1], c, 2, d, mx));
          expect_same(what, a[0], b[0], 0);
          expect_same(what, a[1], b[1], 0);
          for (int j = 0; j < 2; j++) mt_tensor_release(a[j]), mt_tensor_release(b[j]), a[j] = b[j] = NULL;
          OK(mt_cumsum(&a[0], v, d));
          OK(mt_cumsum(&b[0], c, d));
          expect_same(what, a[0], b[0], 0);
          mt_tensor_release(a[0]), mt_tensor_release(b[0]), a[0] = b[0] = NULL;
          if (dt >= MT_INT64) continue;
          OK((mx ? mt_softmax : mt_log_softmax)(&a[0], v, d));
          OK((mx ? mt_softmax : mt_log_softmax)(&b[0], c, d));
          expect_same(what, a[0], b[0], tol_of(dt));
          mt_tensor_release(a[0]), mt_tensor_release(b[0]);
        }
      }
      mt_tensor_release(v);
      mt_tensor_release(c);
    }
    mt_tensor_release(y);
  }
}

/* ---- large shapes against a naive loop --------------------------------------------------------- */

/* Shape [2, 4500, 300]: reducing dim 1 runs columns in chunks with more than one pairwise block,
 * dim 2 runs rows, (0, 1) coalesces, (0, 2) takes the copying fallback, () splits pairwise. */
static void test_large(void) {
  enum { A = 2, B = 4500, C = 300 };
  const int64_t sizes[3] = {A, B, C};
  mt_tensor *t;
  OK(mt_empty(&t, MT_FLOAT64, 3, sizes));
  double *x = mt_data(t);
  for (int64_t j = 0; j < A * B * C; j++) x[j] = (double)((j * 2654435761u) % 1000) - 500; /* exact sums */
  static const uint32_t masks[] = {1, 2, 4, 3, 5, 6, 7};
  for (int k = 0; k < 2; k++) {
    mt_tensor *in = t;
    if (k && mt_to_dtype(&in, t, MT_INT32)) abort();
    for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++) {
      int64_t dims[3], on = 1;
      int nd = 0;
      for (int d = 0; d < 3; d++)
        if (masks[m] >> d & 1) dims[nd++] = d;
        else on *= sizes[d];
      double *sum = calloc((size_t)on, sizeof *sum), *mx = malloc((size_t)on * sizeof *mx);
      for (int64_t o = 0; o < on; o++) mx[o] = -INFINITY;
      for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++)
          for (int64_t c = 0; c < C; c++) {
            int64_t o = 0;
            if (!(masks[m] & 1)) o = o * A + a;
            if (!(masks[m] & 2)) o = o * B + b;
            if (!(masks[m] & 4)) o = o * C + c;
            double v = x[(a * B + b) * C + c];
            sum[o] += v;
            if (v > mx[o]) mx[o] = v;
          }
      mt_tensor *r = NULL;
      int64_t shape[3];
      int n = result_shape(3, sizes, nd, dims, false, shape);
      char what[64];
      snprintf(what, sizeof what, "large sum %s mask %u", mt_dtype_info(in->dtype)->name, masks[m]);
      OK(mt_sum(&r, in, nd, dims, false));
      expect(what, r, k ? MT_INT64 : MT_FLOAT64, n, shape, sum, 0);
      mt_tensor_release(r);
      r = NULL;
      OK(mt_amax(&r, in, nd, dims, false));
      expect(what, r, in->dtype, n, shape, mx, 0);
      mt_tensor_release(r);
      if (!k) {
        r = NULL;
        for (int64_t o = 0; o < on; o++) sum[o] /= (double)(A * B * C / on);
        OK(mt_mean(&r, in, nd, dims, false));
        expect(what, r, MT_FLOAT64, n, shape, sum, 1e-12);
        mt_tensor_release(r);
      }
      free(sum);
      free(mx);
    }
    if (k) mt_tensor_release(in);
  }
  /* variance along the long dim: columns (dim 1) and rows (the transposed view) agree */
  mt_tensor *v1 = NULL, *v2 = NULL, *tt;
  int64_t d1 = 1;
  OK(mt_var(&v1, t, 1, &d1, 1, false));
  OK(mt_transpose(&tt, t, 1, 2));
  mt_tensor *cc;
  OK(mt_contiguous(&cc, tt));
  OK(mt_var(&v2, cc, 1, &(int64_t){2}, 1, false));
  expect_same("large var columns vs rows", v1, v2, 1e-12);
  mt_tensor_release(v1);
  mt_tensor_release(v2);
  /* argmax down the long dim of the transposed copy equals max_dim of the original */
  mt_tensor *i1 = NULL, *i2 = NULL, *mv = NULL;
  OK(mt_argmax(&i1, cc, false, 2, false));
  OK(mt_max_dim(&mv, &i2, t, 1, false));
  expect_same("large argmax rows vs columns", i1, i2, 0);
  mt_tensor_release(i1);
  mt_tensor_release(i2);
  mt_tensor_release(mv);
  /* long strided rows (t[:, :, 7] reduced over its 4500-long dim 1, stride 300) split pairwise */
  mt_tensor *sel, *sc;
  OK(mt_select(&sel, t, 2, 7));
  OK(mt_clone(&sc, sel));
  for (int op = 0; op < NOPS; op++) {
    mt_tensor *a = NULL, *b = NULL;
    OK(run_op(op, &a, sel, 1, &d1, false));
    OK(run_op(op, &b, sc, 1, &d1, false));
    expect_same(op_names[op], a, b, 1e-12);
    mt_tensor_release(a);
    mt_tensor_release(b);
  }
  mt_tensor_release(sel);
  mt_tensor_release(sc);
  mt_tensor_release(cc);
  mt_tensor_release(tt);
  mt_tensor_release(t);
}

/* ---- softmax, log_softmax, cumsum ------------------------------------------------------------- */

static void test_softmax_cumsum(void) {
  /* S = X / 2 - 1; S.softmax(0), S.log_softmax(0), S.softmax(-1), S.log_softmax(-1), S.cumsum(1) */
  static const double sm0[24] = {
      0.11920291930437088, 0.622459352016449,   0.622459352016449,   0.622459352016449,   0.622459352016449,
      0.11920291930437088, 0.622459352016449,   0.622459352016449,   0.622459352016449,   0.622459352016449,
      0.11920291930437088, 0.622459352016449,   0.8807970881462097,  0.3775406777858734,  0.3775406777858734,
      0.3775406777858734,  0.3775406777858734,  0.8807970881462097,  0.3775406777858734,  0.3775406777858734,
      0.3775406777858734,  0.3775406777858734,  0.8807970881462097,  0.3775406777858734};
  static const double lsm0[24] = {
      -2.1269280910491943,  -0.4740769863128662,  -0.4740769863128662, -0.4740769863128662, -0.4740769863128662,
      -2.1269280910491943,  -0.4740769863128662,  -0.4740769863128662, -0.4740769863128662, -0.4740769863128662,
      -2.1269280910491943,  -0.4740769863128662,  -0.12692801654338837, -0.9740769863128662, -0.9740769863128662,
      -0.9740769863128662,  -0.9740769863128662,  -0.12692801654338837, -0.9740769863128662, -0.9740769863128662,
      -0.9740769863128662,  -0.9740769863128662,  -0.12692801654338837, -0.9740769863128662};
  static const double sm1[24] = {
      0.07839411497116089, 0.21309730410575867, 0.5792585015296936,  0.12925004959106445, 0.28748998045921326,
      0.06414768844842911, 0.17437148094177246, 0.47399085760116577, 0.16740509867668152, 0.45505422353744507,
      0.101536326110363,   0.2760043442249298,  0.5089068412780762,  0.11355246603488922, 0.3086676001548767,
      0.06887305527925491, 0.16740509867668152, 0.45505422353744507, 0.101536326110363,   0.2760043442249298,
      0.07839411497116089, 0.21309730410575867, 0.5792585015296936,  0.12925004959106445};
  static const double lsm1[24] = {
      -2.546006441116333, -1.546006441116333, -0.5460063815116882, -2.046006441116333,  -1.2465672492980957,
      -2.7465672492980957, -1.7465672492980957, -0.7465672492980957, -1.7873386144638062, -0.7873386740684509,
      -2.2873387336730957, -1.2873386144638062, -0.6754902601242065, -2.175490379333496,  -1.1754902601242065,
      -2.675490379333496,  -1.7873386144638062, -0.7873386740684509, -2.2873387336730957, -1.2873386144638062,
      -2.546006441116333,  -1.546006441116333,  -0.5460063815116882, -2.046006441116333};
  static const double cs1[24] = {-1.0, 0.0, 1.0, -0.5, -0.5, -1.0, 1.0, 0.5,  -1.0, -0.5, 0.0, 0.5,
                                 1.0,  -0.5, 0.5, -1.0, 1.0,  0.5,  0.0, -0.5, 0.0,  0.5,  1.0, -1.0};
  double s[24];
  for (int j = 0; j < 24; j++) s[j] = X[j] / 2 - 1;
  static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16};
  for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
    const mt_dtype dt = dts[k];
    const double tol = dt == MT_FLOAT64 ? 1e-6 : tol_of(dt) * 2; /* the constants are float32 */
    mt_tensor *t = tensor_of(dt, 3, XS, s), *r = NULL;
    OK(mt_softmax(&r, t, 0));
    expect("softmax 0", r, dt, 3, XS, sm0, tol);
    mt_tensor_release(r), r = NULL;
    OK(mt_log_softmax(&r, t, -3));
    expect("log_softmax 0", r, dt, 3, XS, lsm0, tol);
    mt_tensor_release(r), r = NULL;
    OK(mt_softmax(&r, t, -1));
    expect("softmax -1", r, dt, 3, XS, sm1, tol);
    mt_tensor_release(r), r = NULL;
    OK(mt_log_softmax(&r, t, 2));
    expect("log_softmax -1", r, dt, 3, XS, lsm1, tol);
    mt_tensor_release(r), r = NULL;
    OK(mt_cumsum(&r, t, 1));
    expect("cumsum 1", r, dt, 3, XS, cs1, 0);
    mt_tensor_release(r);
    mt_tensor_release(t);
  }
  /* softmax([-inf, -inf]) = [nan, nan]; softmax([inf, 1]) = [nan, nan]; a NaN spoils its row */
  int64_t two = 2, d0 = 0;
  static const double rows[3][2] = {{-INFINITY, -INFINITY}, {INFINITY, 1}, {NAN, 0}};
  for (int j = 0; j < 3; j++) {
    mt_tensor *t = tensor_of(MT_FLOAT32, 1, &two, rows[j]), *r = NULL;
    OK(mt_softmax(&r, t, 0));
    expect("softmax special", r, MT_FLOAT32, 1, &two, (double[]){NAN, NAN}, 0);
    mt_tensor_release(r), r = NULL;
    OK(mt_log_softmax(&r, t, 0));
    expect("log_softmax special", r, MT_FLOAT32, 1, &two, (double[]){NAN, NAN}, 0);
    mt_tensor_release(r);
    mt_tensor_release(t);
  }
  /* int8 [100, 100, -50, 127, -128].cumsum(0) = int64 [100, 200, 150, 277, 149] */
  int64_t five = 5;
  mt_tensor *t = tensor_of(MT_INT8, 1, &five, (double[]){100, 100, -50, 127, -128}), *r = NULL;
  OK(mt_cumsum(&r, t, 0));
  expect("cumsum int8", r, MT_INT64, 1, &five, (double[]){100, 200, 150, 277, 149}, 0);
  mt_tensor_release(r), r = NULL;
  mt_tensor *sentinel = (mt_tensor *)&sentinel;
  r = sentinel;
  FAILS(mt_softmax(&r, t, 0), MT_EDTYPE, "got int8");
  FAILS(mt_log_softmax(&r, t, 0), MT_EDTYPE, "floating-point");
  FAILS(mt_cumsum(&r, t, 1), MT_EINDEX, "out of range");
  CHECK(r == sentinel);
  mt_tensor_release(t);
  /* bool cumsum counts; 0-dim: softmax 1, log_softmax 0, cumsum itself; empty stays empty */
  t = tensor_of(MT_BOOL, 1, &five, (double[]){1, 0, 1, 1, 0});
  OK(mt_cumsum(&r, t, -1));
  expect("cumsum bool", r, MT_INT64, 1, &five, (double[]){1, 1, 2, 3, 3}, 0);
  mt_tensor_release(r);
  mt_tensor_release(t);
  OK(mt_scalar_tensor(&t, MT_FLOAT32, mt_scalar_float(3)));
  OK(mt_softmax(&r, t, 0));
  expect("0-dim softmax", r, MT_FLOAT32, 0, NULL, (double[]){1}, 0);
  mt_tensor_release(r);
  OK(mt_log_softmax(&r, t, -1));
  expect("0-dim log_softmax", r, MT_FLOAT32, 0, NULL, (double[]){0}, 0);
  mt_tensor_release(r);
  OK(mt_cumsum(&r, t, 0));
  expect("0-dim cumsum", r, MT_FLOAT32, 0, NULL, (double[]){3}, 0);
  mt_tensor_release(r);
  mt_tensor_release(t);
  OK(mt_zeros(&t, MT_FLOAT32, 2, (int64_t[]){0, 3}));
  OK(mt_softmax(&r, t, d0));
  expect("empty softmax", r, MT_FLOAT32, 2, (int64_t[]){0, 3}, NULL, 0);
  mt_tensor_release(r);
  mt_tensor_release(t);
}

/* ---- sort and topk ---------------------------------------------------------------------------- */

static void test_sort(void) {
  /* V = [3, 1, nan, 1, 2, nan, 3, -0.0, 0.0, -5]; V.sort(stable=True[, descending=True]) */
  static const double V[10] = {3, 1, NAN, 1, 2, NAN, 3, -0.0, 0.0, -5};
  static const double asc_v[10] = {-5, -0.0, 0.0, 1, 1, 2, 3, 3, NAN, NAN}, asc_i[10] = {9, 7, 8, 1, 3, 4, 0, 6, 2, 5};
  static const double desc_v[10] = {NAN, NAN, 3, 3, 2, 1, 1, -0.0, 0.0, -5},
                      desc_i[10] = {2, 5, 0, 6, 4, 1, 3, 7, 8, 9};
  int64_t ten = 10;
  static const mt_dtype fdts[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16};
  for (size_t k = 0; k < sizeof fdts / sizeof fdts[0]; k++) {
    mt_tensor *t = tensor_of(fdts[k], 1, &ten, V), *v = NULL, *i = NULL;
    OK(mt_sort(&v, &i, t, 0, false));
    expect("sort asc", v, fdts[k], 1, &ten, asc_v, 0);
    expect("sort asc indices", i, MT_INT64, 1, &ten, asc_i, 0);
    CHECK(v && signbit(at(v, 1)) && !signbit(at(v, 2))); /* -0.0 and 0.0 tie: original order */
    mt_tensor_release(v), mt_tensor_release(i), v = i = NULL;
    OK(mt_sort(&v, &i, t, -1, true));
    expect("sort desc", v, fdts[k], 1, &ten, desc_v, 0);
    expect("sort desc indices", i, MT_INT64, 1, &ten, desc_i, 0);
    mt_tensor_release(v), mt_tensor_release(i), v = i = NULL;
    /* V.topk(4) values = [nan, nan, 3, 3] (ties: the lowest index first here; PyTorch leaves
     * tie order unspecified); V.topk(3, largest=False) = ([-5, -0.0, 0.0], [9, 7, 8]) */
    int64_t four = 4, three = 3;
    OK(mt_topk(&v, &i, t, 4, 0, true));
    expect("topk largest", v, fdts[k], 1, &four, (double[]){NAN, NAN, 3, 3}, 0);
    expect("topk largest indices", i, MT_INT64, 1, &four, (double[]){2, 5, 0, 6}, 0);
    mt_tensor_release(v), mt_tensor_release(i), v = i = NULL;
    OK(mt_topk(&v, &i, t, 3, 0, false));
    expect("topk smallest", v, fdts[k], 1, &three, (double[]){-5, -0.0, 0.0}, 0);
    expect("topk smallest indices", i, MT_INT64, 1, &three, (double[]){9, 7, 8}, 0);
    mt_tensor_release(v), mt_tensor_release(i);
    mt_tensor_release(t);
  }
  /* W = [[5, 1, 5], [2, 2, 9], [5, 1, 0], [2, 7, 5]]; W.sort(dim=0, stable=True[, descending]),
   * W.topk(2, 0) = ([[5, 7, 9], [5, 2, 5]], [[0, 3, 1], [2, 1, 3]]), where the last index is
   * one of a tie (rows 0 and 3 hold 5): here the lower index wins, 0. */
  static const double W[12] = {5, 1, 5, 2, 2, 9, 5, 1, 0, 2, 7, 5};
  static const double wa_v[12] = {2, 1, 0, 2, 1, 5, 5, 2, 5, 5, 7, 9}, wa_i[12] = {1, 0, 2, 3, 2, 0, 0, 1, 3, 2, 3, 1};
  static const double wd_v[12] = {5, 7, 9, 5, 2, 5, 2, 1, 5, 2, 1, 0}, wd_i[12] = {0, 3, 1, 2, 1, 0, 1, 0, 3, 3, 2, 2};
  int64_t ws[2] = {4, 3}, ks[2] = {2, 3};
  for (int k = 0; k < NDT; k++) {
    const mt_dtype dt = all_dtypes[k];
    if (dt == MT_BOOL) continue;
    mt_tensor *t = tensor_of(dt, 2, ws, W), *v = NULL, *i = NULL;
    OK(mt_sort(&v, &i, t, 0, false));
    expect("sort dim 0", v, dt, 2, ws, wa_v, 0);
    expect("sort dim 0 indices", i, MT_INT64, 2, ws, wa_i, 0);
    mt_tensor_release(v), mt_tensor_release(i), v = i = NULL;
    OK(mt_sort(&v, &i, t, -2, true));
    expect("sort dim 0 desc", v, dt, 2, ws, wd_v, 0);
    expect("sort dim 0 desc indices", i, MT_INT64, 2, ws, wd_i, 0);
    mt_tensor_release(v), mt_tensor_release(i), v = i = NULL;
    OK(mt_topk(&v, &i, t, 2, 0, true));
    expect("topk dim 0", v, dt, 2, ks, (double[]){5, 7, 9, 5, 2, 5}, 0);
    expect("topk dim 0 indices", i, MT_INT64, 2, ks, (double[]){0, 3, 1, 2, 1, 0}, 0);
    mt_tensor_release(v), mt_tensor_release(i);
    mt_tensor_release(t);
  }
  /* bool: torch.tensor([True, False]).sort() = ([False, True], [1, 0]) */
  int64_t two = 2;
  mt_tensor *t = tensor_of(MT_BOOL, 1, &two, (double[]){1, 0}), *v = NULL, *i = NULL;
  OK(mt_sort(&v, &i, t, 0, false));
  expect("sort bool", v, MT_BOOL, 1, &two, (double[]){0, 1}, 0);
  expect("sort bool indices", i, MT_INT64, 1, &two, (double[]){1, 0}, 0);
  mt_tensor_release(v), mt_tensor_release(i);
  mt_tensor_release(t);

  /* topk's heap (small k) and its full sort (large k) give the first k of the stable sort */
  enum { L = 20000 };
  mt_tensor *big;
  int64_t len = L;
  OK(mt_empty(&big, MT_INT32, 1, &len));
  for (int j = 0; j < L; j++) ((int32_t *)mt_data(big))[j] = (int32_t)((j * 7919u) % 500); /* many ties */
  for (int largest = 0; largest < 2; largest++) {
    mt_tensor *sv = NULL, *si = NULL;
    OK(mt_sort(&sv, &si, big, 0, largest));
    static const int64_t kk[] = {0, 1, 5, 37, 1250, 1251, 5000, L - 1, L}; /* heap up to L / 16 */
    for (size_t q = 0; q < sizeof kk / sizeof kk[0]; q++) {
      const int64_t k = kk[q];
      mt_tensor *tv = NULL, *ti = NULL, *nv = NULL, *ni = NULL;
      OK(mt_topk(&tv, &ti, big, k, 0, largest));
      OK(mt_narrow(&nv, sv, 0, 0, k));
      OK(mt_narrow(&ni, si, 0, 0, k));
      mt_tensor *cv = NULL, *ci = NULL;
      OK(mt_contiguous(&cv, nv));
      OK(mt_contiguous(&ci, ni));
      expect_same("topk vs sort values", tv, cv, 0);
      expect_same("topk vs sort indices", ti, ci, 0);
      mt_tensor *list[] = {tv, ti, nv, ni, cv, ci};
      for (int j = 0; j < 6; j++) mt_tensor_release(list[j]);
    }
    /* the sort is ordered and, within ties, by index */
    int bad = 0;
    for (int j = 1; j < L; j++) {
      double a = at(sv, j - 1), b = at(sv, j);
      if (largest ? a < b : a > b) bad++;
      if (a == b && at(si, j - 1) > at(si, j)) bad++;
    }
    CHECK(bad == 0);
    mt_tensor_release(sv);
    mt_tensor_release(si);
  }
  mt_tensor *sentinel = (mt_tensor *)&sentinel;
  v = i = sentinel;
  FAILS(mt_topk(&v, &i, big, L + 1, 0, true), MT_EARG, "k = 20001 is out of range");
  FAILS(mt_topk(&v, &i, big, -1, 0, true), MT_EARG, "expected 0 to 20000");
  FAILS(mt_sort(&v, &i, big, 1, true), MT_EINDEX, "out of range");
  CHECK(v == sentinel && i == sentinel);
  mt_tensor_release(big);

  /* 0-dim: torch.tensor(3.).sort() = (3, 0); .topk(1) and .topk(0) = (3, 0); .topk(2) fails */
  OK(mt_scalar_tensor(&t, MT_FLOAT32, mt_scalar_float(3)));
  for (int64_t k = 0; k < 2; k++) {
    OK(mt_topk(&v, &i, t, k, 0, true));
    expect("0-dim topk", v, MT_FLOAT32, 0, NULL, (double[]){3}, 0);
    expect("0-dim topk index", i, MT_INT64, 0, NULL, (double[]){0}, 0);
    mt_tensor_release(v), mt_tensor_release(i);
  }
  OK(mt_sort(&v, &i, t, -1, false));
  expect("0-dim sort", v, MT_FLOAT32, 0, NULL, (double[]){3}, 0);
  mt_tensor_release(v), mt_tensor_release(i);
  FAILS(mt_topk(&v, &i, t, 2, 0, true), MT_EARG, "out of range");
  mt_tensor_release(t);
  /* empty: zeros(3, 0).sort() and zeros(0, 3).topk(0) keep their shapes */
  OK(mt_zeros(&t, MT_FLOAT32, 2, (int64_t[]){3, 0}));
  OK(mt_sort(&v, &i, t, 1, false));
  expect("empty sort", v, MT_FLOAT32, 2, (int64_t[]){3, 0}, NULL, 0);
  expect("empty sort indices", i, MT_INT64, 2, (int64_t[]){3, 0}, NULL, 0);
  mt_tensor_release(v), mt_tensor_release(i);
  OK(mt_topk(&v, &i, t, 0, 0, false));
  expect("topk k = 0", v, MT_FLOAT32, 2, (int64_t[]){0, 0}, NULL, 0);
  mt_tensor_release(v), mt_tensor_release(i);
  mt_tensor_release(t);
}

int main(void) {
  test_against_torch();
  test_accuracy();
  test_nan();
  test_arg_reductions();
  test_edges();
  test_views();
  test_large();
  test_softmax_cumsum();
  test_sort();
  return mt_test_finish("test_reduce");
}
