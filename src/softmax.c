/*
 * softmax.c — softmax, log_softmax and cumsum along one dim.
 *
 * The input is made contiguous (no copy when it already is) and seen as [outer, n, inner].
 * When inner == 1 each row is contiguous; otherwise a chunk of CH columns is processed row
 * after row, so the innermost loop still runs over contiguous memory. float16 and bfloat16
 * run as float32 and are converted back; softmax accumulates float32 in float64, and so does
 * cumsum, as PyTorch's CPU kernels do. The backward passes use the same layout.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* -O2's "very cheap" vectorizer cost model leaves loops with a runtime trip count scalar. */
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include "mt_internal.h"

#include <math.h>
#include <stdlib.h>

#define CH 256

typedef struct line {
  int64_t outer, n, inner;
} line;

static bool is_half(mt_dtype dt) { return dt == MT_FLOAT16 || dt == MT_BFLOAT16; }

/* x = t in dtype cdt, contiguous, seen as [outer, n, inner] around `dim`. */
static mt_status prepare(const mt_tensor *t, int64_t dim, mt_dtype cdt, mt_tensor **x, line *L) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st) return st;
  mt_tensor *c;
  if ((st = mt_to_dtype(&c, t, cdt))) return st;
  st = mt_contiguous(x, c);
  mt_tensor_release(c);
  if (st) return st;
  *L = (line){1, 1, 1};
  /* Nothing to walk in an empty tensor, whose other dims may be huge: an outer count from them
   * would overflow, or loop 2^40 times over empty lines. */
  if (mt_numel(t) == 0) L->outer = 0;
  for (int i = 0; i < t->ndim && L->outer; i++) {
    if (i < d) L->outer *= t->sizes[i];
    else if (i == d) L->n = t->sizes[i];
    else L->inner *= t->sizes[i];
  }
  return MT_OK;
}

/* Wraps up: converts a float32 result back to the input's half dtype when needed. */
static mt_status finish(mt_tensor **out, mt_tensor *res, mt_dtype dt, mt_status st) {
  if (!st && res->dtype != dt) {
    mt_tensor *c;
    st = mt_to_dtype(&c, res, dt);
    mt_tensor_release(res);
    res = st ? NULL : c;
  }
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

/* ---- softmax / log_softmax --------------------------------------------------------------- */

/* Subtracting the row max keeps exp() in range. A NaN anywhere in a row makes the sum NaN and
 * so the whole row NaN; an all -inf row gives NaN as in PyTorch (-inf - -inf). */
#define DEFINE_SOFTMAX(S, T, EXP, LOG)                                                            \
  static void softmax_##S(const T *restrict x, T *restrict y, line L, bool lg) {                  \
    for (int64_t o = 0; o < L.outer; o++) {                                                       \
      const T *xb = x + o * L.n * L.inner;                                                        \
      T *yb = y + o * L.n * L.inner;                                                              \
      if (L.inner == 1) {                                                                         \
        T m = -INFINITY;                                                                          \
        for (int64_t i = 0; i < L.n; i++) m = xb[i] > m ? xb[i] : m;                              \
        double s = 0;                                                                             \
        for (int64_t i = 0; i < L.n; i++) {                                                       \
          T e = EXP(xb[i] - m);                                                                   \
          if (!lg) yb[i] = e;                                                                     \
          s += e;                                                                                 \
        }                                                                                         \
        if (lg) {                                                                                 \
          const T ls = (T)LOG(s);                                                                 \
          for (int64_t i = 0; i < L.n; i++) yb[i] = (xb[i] - m) - ls;                             \
        } else {                                                                                  \
          const T ts = (T)s;                                                                      \
          for (int64_t i = 0; i < L.n; i++) yb[i] /= ts;                                          \
        }                                                                                         \
        continue;                                                                                 \
      }                                                                                           \
      for (int64_t j0 = 0; j0 < L.inner; j0 += CH) {                                              \
        const int64_t nj = L.inner - j0 < CH ? L.inner - j0 : CH;                                 \
        T m[CH];                                                                                  \
        double s[CH];                                                                             \
        for (int64_t j = 0; j < nj; j++) m[j] = -INFINITY, s[j] = 0;                              \
        for (int64_t i = 0; i < L.n; i++) {                                                       \
          const T *r = xb + i * L.inner + j0;                                                     \
          for (int64_t j = 0; j < nj; j++) m[j] = r[j] > m[j] ? r[j] : m[j];                      \
        }                                                                                         \
        for (int64_t i = 0; i < L.n; i++) {                                                       \
          const T *r = xb + i * L.inner + j0;                                                     \
          T *w = yb + i * L.inner + j0;                                                           \
          for (int64_t j = 0; j < nj; j++) {                                                      \
            T e = EXP(r[j] - m[j]);                                                               \
            if (!lg) w[j] = e;                                                                    \
            s[j] += e;                                                                            \
          }                                                                                       \
        }                                                                                         \
        T f[CH];                                                                                  \
        for (int64_t j = 0; j < nj; j++) f[j] = lg ? (T)LOG(s[j]) : (T)s[j];                      \
        for (int64_t i = 0; i < L.n; i++) {                                                       \
          const T *r = xb + i * L.inner + j0;                                                     \
          T *w = yb + i * L.inner + j0;                                                           \
          if (lg)                                                                                 \
            for (int64_t j = 0; j < nj; j++) w[j] = (r[j] - m[j]) - f[j];                         \
          else                                                                                    \
            for (int64_t j = 0; j < nj; j++) w[j] /= f[j];                                        \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
  }
DEFINE_SOFTMAX(f32, float, expf, log)
DEFINE_SOFTMAX(f64, double, exp, log)

/* The backward passes, in the same layout (g, y and the result all [outer, n, inner]):
 *   softmax:     gx = y * (g - sum(g * y))
 *   log_softmax: gx = g - exp(y) * sum(g)
 * the sums running along the dim, accumulated in double. */
#define DEFINE_SOFTMAX_BACKWARD(S, T, EXP)                                                        \
  static void softmax_backward_##S(const T *restrict g, const T *restrict y, T *restrict gx, line L, bool lg) { \
    for (int64_t o = 0; o < L.outer; o++) {                                                       \
      const T *gb = g + o * L.n * L.inner, *yb = y + o * L.n * L.inner;                           \
      T *xb = gx + o * L.n * L.inner;                                                             \
      if (L.inner == 1) {                                                                         \
        double s = 0;                                                                             \
        if (lg)                                                                                   \
          for (int64_t i = 0; i < L.n; i++) s += gb[i];                                           \
        else                                                                                      \
          for (int64_t i = 0; i < L.n; i++) s += (double)gb[i] * yb[i];                           \
        const T ts = (T)s;                                                                        \
        if (lg)                                                                                   \
          for (int64_t i = 0; i < L.n; i++) xb[i] = gb[i] - EXP(yb[i]) * ts;                      \
        else                                                                                      \
          for (int64_t i = 0; i < L.n; i++) xb[i] = yb[i] * (gb[i] - ts);                         \
        continue;                                                                                 \
      }                                                                                           \
      for (int64_t j0 = 0; j0 < L.inner; j0 += CH) {                                              \
        const int64_t nj = L.inner - j0 < CH ? L.inner - j0 : CH;                                 \
        double s[CH];                                                                             \
        for (int64_t j = 0; j < nj; j++) s[j] = 0;                                                \
        for (int64_t i = 0; i < L.n; i++) {                                                       \
          const T *gr = gb + i * L.inner + j0, *yr = yb + i * L.inner + j0;                       \
          if (lg)                                                                                 \
            for (int64_t j = 0; j < nj; j++) s[j] += gr[j];                                       \
          else                                                                                    \
            for (int64_t j = 0; j < nj; j++) s[j] += (double)gr[j] * yr[j];                       \
        }                                                                                         \
        T ts[CH];                                                                                 \
        for (int64_t j = 0; j < nj; j++) ts[j] = (T)s[j];                                         \
        for (int64_t i = 0; i < L.n; i++) {                                                       \
          const T *gr = gb + i * L.inner + j0, *yr = yb + i * L.inner + j0;                       \
          T *w = xb + i * L.inner + j0;                                                           \
          if (lg)                                                                                 \
            for (int64_t j = 0; j < nj; j++) w[j] = gr[j] - EXP(yr[j]) * ts[j];                   \
          else                                                                                    \
            for (int64_t j = 0; j < nj; j++) w[j] = yr[j] * (gr[j] - ts[j]);                      \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
  }
DEFINE_SOFTMAX_BACKWARD(f32, float, expf)
DEFINE_SOFTMAX_BACKWARD(f64, double, exp)

static mt_status record_softmax(mt_tensor *out, const mt_tensor *t, int64_t dim, bool lg);

static mt_status softmax_common(mt_tensor **out, const mt_tensor *t, int64_t dim, bool lg) {
  if (!out || !t) return mt_fail(MT_EARG, "missing tensor argument");
  if (!mt_dtype_is_float(t->dtype))
    return mt_fail(MT_EDTYPE, "expected a floating-point tensor, got %s", mt_dtype_name(t->dtype));
  const mt_dtype cdt = t->dtype == MT_FLOAT64 ? MT_FLOAT64 : MT_FLOAT32;
  mt_tensor *x, *res = NULL;
  line L;
  /* The conversions and copies here are internal: they must not record nodes. */
  bool grad_on = mt_is_grad_enabled();
  mt_set_grad_enabled(false);
  mt_status st = prepare(t, dim, cdt, &x, &L);
  if (!st) {
    if (!(st = mt_empty(&res, cdt, t->ndim, t->sizes))) {
      if (cdt == MT_FLOAT64) softmax_f64(mt_data(x), mt_data(res), L, lg);
      else softmax_f32(mt_data(x), mt_data(res), L, lg);
    }
    mt_tensor_release(x);
    st = finish(&res, res, t->dtype, st);
  }
  mt_set_grad_enabled(grad_on);
  if (st) return st;
  if ((st = record_softmax(res, t, dim, lg))) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

/* While tracing, an op along `dim` that succeeded records itself; passes st through. */
static mt_status traced(mt_status st, const char *op, const mt_tensor *t, mt_tensor **out, int64_t dim) {
  if (st == MT_OK && mt_tracing()) mt_trace_record(op, 1, &t, 1, out, "dim=i", dim);
  return st;
}

MT_API mt_status mt_softmax(mt_tensor **out, const mt_tensor *t, int64_t dim) {
  return traced(softmax_common(out, t, dim, false), "softmax", t, out, dim);
}
MT_API mt_status mt_log_softmax(mt_tensor **out, const mt_tensor *t, int64_t dim) {
  return traced(softmax_common(out, t, dim, true), "log_softmax", t, out, dim);
}

/* ---- cumsum ---------------------------------------------------------------------------- */

/* Integers accumulate in uint64 (PyTorch's wrapping int64 sum, without signed-overflow UB). */
#define DEFINE_CUMSUM(S, T, A, O)                                                                 \
  static void cumsum_##S(const void *x_, void *y_, line L) {                                      \
    const T *restrict x = x_;                                                                     \
    O *restrict y = y_;                                                                           \
    for (int64_t o = 0; o < L.outer; o++) {                                                       \
      const T *xb = x + o * L.n * L.inner;                                                        \
      O *yb = y + o * L.n * L.inner;                                                              \
      if (L.inner == 1) {                                                                         \
        A acc = 0;                                                                                \
        for (int64_t i = 0; i < L.n; i++) yb[i] = (O)(acc += (A)xb[i]);                           \
        continue;                                                                                 \
      }                                                                                           \
      for (int64_t j0 = 0; j0 < L.inner; j0 += CH) {                                              \
        const int64_t nj = L.inner - j0 < CH ? L.inner - j0 : CH;                                 \
        A acc[CH];                                                                                \
        for (int64_t j = 0; j < nj; j++) acc[j] = 0;                                              \
        for (int64_t i = 0; i < L.n; i++) {                                                       \
          const T *r = xb + i * L.inner + j0;                                                     \
          O *w = yb + i * L.inner + j0;                                                           \
          for (int64_t j = 0; j < nj; j++) w[j] = (O)(acc[j] += (A)r[j]);                         \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
  }
DEFINE_CUMSUM(f32, float, double, float)
DEFINE_CUMSUM(f64, double, double, double)
DEFINE_CUMSUM(i64, int64_t, uint64_t, int64_t)
DEFINE_CUMSUM(i32, int32_t, uint64_t, int64_t)
DEFINE_CUMSUM(i16, int16_t, uint64_t, int64_t)
DEFINE_CUMSUM(i8, int8_t, uint64_t, int64_t)
DEFINE_CUMSUM(u8, uint8_t, uint64_t, int64_t)
DEFINE_CUMSUM(b8, bool, uint64_t, int64_t)

/* Backward: the gradient of a cumulative sum is the reversed cumulative sum of g. */
#define DEFINE_CUMSUM_BACKWARD(S, T)                                                              \
  static void cumsum_backward_##S(const T *restrict g, T *restrict gx, line L) {                  \
    for (int64_t o = 0; o < L.outer; o++) {                                                       \
      const T *gb = g + o * L.n * L.inner;                                                        \
      T *xb = gx + o * L.n * L.inner;                                                             \
      if (L.inner == 1) {                                                                         \
        double acc = 0;                                                                           \
        for (int64_t i = L.n - 1; i >= 0; i--) xb[i] = (T)(acc += gb[i]);                         \
        continue;                                                                                 \
      }                                                                                           \
      for (int64_t j0 = 0; j0 < L.inner; j0 += CH) {                                              \
        const int64_t nj = L.inner - j0 < CH ? L.inner - j0 : CH;                                 \
        double acc[CH];                                                                           \
        for (int64_t j = 0; j < nj; j++) acc[j] = 0;                                              \
        for (int64_t i = L.n - 1; i >= 0; i--) {                                                  \
          const T *r = gb + i * L.inner + j0;                                                     \
          T *w = xb + i * L.inner + j0;                                                           \
          for (int64_t j = 0; j < nj; j++) w[j] = (T)(acc[j] += r[j]);                            \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
  }
DEFINE_CUMSUM_BACKWARD(f32, float)
DEFINE_CUMSUM_BACKWARD(f64, double)

typedef void (*cumsum_fn)(const void *x, void *y, line L);
static const cumsum_fn cumsum_kernels[MT_NUM_DTYPES] = {
    [MT_FLOAT32] = cumsum_f32, [MT_FLOAT64] = cumsum_f64, [MT_INT64] = cumsum_i64, [MT_INT32] = cumsum_i32,
    [MT_INT16] = cumsum_i16,   [MT_INT8] = cumsum_i8,     [MT_UINT8] = cumsum_u8,  [MT_BOOL] = cumsum_b8,
};

static mt_status record_cumsum(mt_tensor *out, const mt_tensor *t, int64_t dim);

MT_API mt_status mt_cumsum(mt_tensor **out, const mt_tensor *t, int64_t dim) {
  if (!out || !t) return mt_fail(MT_EARG, "missing tensor argument");
  const mt_dtype dt = t->dtype, cdt = is_half(dt) ? MT_FLOAT32 : dt;
  const mt_dtype rdt = mt_dtype_is_float(cdt) ? cdt : MT_INT64; /* integers and bool give int64 */
  mt_tensor *x, *res = NULL;
  line L;
  bool grad_on = mt_is_grad_enabled();
  mt_set_grad_enabled(false); /* internal conversions and copies record nothing */
  mt_status st = prepare(t, dim, cdt, &x, &L);
  if (!st) {
    if (!(st = mt_empty(&res, rdt, t->ndim, t->sizes))) cumsum_kernels[cdt](mt_data(x), mt_data(res), L);
    mt_tensor_release(x);
    st = finish(&res, res, is_half(dt) ? dt : rdt, st);
  }
  mt_set_grad_enabled(grad_on);
  if (st) return st;
  if ((st = record_cumsum(res, t, dim))) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return traced(MT_OK, "cumsum", t, out, dim);
}

/* ---- backward ---------------------------------------------------------------------------- */

typedef struct dim_node {
  mt_node base;
  int64_t dim;
  bool lg;    /* log_softmax */
  mt_saved y; /* softmax / log_softmax: the output, as PyTorch saves it */
} dim_node;

static void dim_release(mt_node *n) { mt_saved_release(&((dim_node *)n)->y); }

/* Runs in float64 for float64 gradients and float32 otherwise; the engine casts the result
 * to the input's dtype. */
static mt_dtype grad_compute(mt_dtype dt) { return dt == MT_FLOAT64 ? MT_FLOAT64 : MT_FLOAT32; }

static mt_status softmax_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  dim_node *dn = (dim_node *)n;
  const mt_tensor *g = gout[0];
  if (!g || !mt_edge_live(&n->next[0])) return MT_OK;
  mt_tensor *y, *gc = NULL, *yc = NULL, *res = NULL;
  mt_status st = mt_saved_get(&dn->y, n, &y);
  if (st) return st;
  const mt_dtype cdt = grad_compute(y->dtype);
  line L;
  if (!(st = prepare(g, dn->dim, cdt, &gc, &L)) && !(st = prepare(y, dn->dim, cdt, &yc, &L)) &&
      !(st = mt_empty(&res, cdt, y->ndim, y->sizes))) {
    if (cdt == MT_FLOAT64) softmax_backward_f64(mt_data(gc), mt_data(yc), mt_data(res), L, dn->lg);
    else softmax_backward_f32(mt_data(gc), mt_data(yc), mt_data(res), L, dn->lg);
  }
  mt_tensor_release(gc);
  mt_tensor_release(yc);
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  gin[0] = res;
  return MT_OK;
}

static mt_status cumsum_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  const mt_tensor *g = gout[0];
  if (!g || !mt_edge_live(&n->next[0])) return MT_OK;
  const mt_dtype cdt = grad_compute(g->dtype);
  mt_tensor *gc, *res;
  line L;
  mt_status st = prepare(g, ((dim_node *)n)->dim, cdt, &gc, &L);
  if (st) return st;
  if (!(st = mt_empty(&res, cdt, g->ndim, g->sizes))) {
    if (cdt == MT_FLOAT64) cumsum_backward_f64(mt_data(gc), mt_data(res), L);
    else cumsum_backward_f32(mt_data(gc), mt_data(res), L);
    gin[0] = res;
  }
  mt_tensor_release(gc);
  return st;
}

static mt_status record_dim_op(mt_tensor *out, const mt_tensor *t, const char *name, mt_backward_fn backward,
                               int64_t dim, bool lg, bool save_out) {
  const mt_tensor *ins[1] = {t};
  if (!mt_grad_needed(1, ins) || !mt_dtype_is_float(out->dtype)) return MT_OK;
  dim_node *n = (dim_node *)mt_node_new(sizeof *n, name, backward, dim_release, 1, ins, 1);
  if (!n) return MT_ENOMEM;
  n->dim = dim;
  n->lg = lg;
  mt_status st = save_out ? mt_save_tensor(&n->y, out) : MT_OK;
  if (!st) mt_node_set_output(&n->base, out, 0);
  mt_node_release(&n->base);
  return st;
}

static mt_status record_softmax(mt_tensor *out, const mt_tensor *t, int64_t dim, bool lg) {
  return record_dim_op(out, t, lg ? "LogSoftmaxBackward0" : "SoftmaxBackward0", softmax_backward, dim, lg, true);
}

static mt_status record_cumsum(mt_tensor *out, const mt_tensor *t, int64_t dim) {
  return record_dim_op(out, t, "CumsumBackward0", cumsum_backward, dim, false, false);
}
