/*
 * nn_norm.c — batch_norm and layer_norm, forward and backward, as PyTorch 1.13's CPU kernels.
 *
 * Both run on a contiguous copy of the input in the compute dtype (float64 for float64,
 * float32 for the other floats; no copy when the input already is one). Statistics
 * accumulate in double; the per-channel (batch norm) or per-row (layer norm) mean and
 * 1/std are kept by the node in double, rounded through the compute dtype as PyTorch's
 * saved tensors are, so that backward sees the numbers the forward used.
 *
 * batch_norm sees the input as [N, C, S] (S: the product of the dims after 1); layer_norm as
 * [M, D] (D: the product of normalized_shape). Backward formulas are PyTorch's
 * native_batch_norm_backward and native_layer_norm_backward.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* -O2's "very cheap" vectorizer cost model leaves loops with a runtime trip count scalar, and
 * with trapping math GCC will not turn a float compare-and-select (leaky_relu, the clamps)
 * into vector code. Nothing here reads the floating-point exception flags. */
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")
#endif
#include "mt_internal.h"

#include <math.h>
#include <stdlib.h>

/* The loop carries no dependency from one element to the next (for loops whose output may be
 * one of their inputs, element for element, where restrict would be wrong). Clang gets no
 * pragma: it vectorises such loops behind a run-time overlap check anyway, and its
 * vectorize(assume_safety) warns wherever a build (the fuzzers') does not vectorise. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_CARRIED_DEP _Pragma("GCC ivdep")
#else
#define NO_CARRIED_DEP
#endif

static mt_dtype compute_dtype(mt_dtype dt) { return dt == MT_FLOAT64 ? MT_FLOAT64 : MT_FLOAT32; }

/* t converted to dt and made contiguous (t itself, retained, when it already is). Grad mode
 * must be off: these copies are internal. */
static mt_status dense(mt_tensor **out, const mt_tensor *t, mt_dtype dt) {
  mt_tensor *c;
  mt_status st = mt_to_dtype(&c, t, dt);
  if (st) return st;
  st = mt_contiguous(out, c);
  mt_tensor_release(c);
  return st;
}

/* A small parameter tensor (weight, running stats) read into a malloc'ed double array. */
static mt_status read_f64(double **out, const mt_tensor *t) {
  mt_tensor *d;
  mt_status st = dense(&d, t, MT_FLOAT64);
  if (st) return st;
  size_t n = (size_t)mt_numel(d);
  double *a = malloc((n ? n : 1) * sizeof *a);
  if (!a) st = mt_fail(MT_ENOMEM, "out of memory");
  else memcpy(a, mt_data(d), n * sizeof *a), *out = a;
  mt_tensor_release(d);
  return st;
}

/* A fresh tensor of dtype dt and the given shape holding the doubles v. */
static mt_status tensor_from_f64(mt_tensor **out, mt_dtype dt, int ndim, const int64_t *sizes, const double *v) {
  mt_tensor *t;
  mt_status st = mt_empty(&t, dt, ndim, sizes);
  if (st) return st;
  int64_t n = mt_numel(t);
  if (dt == MT_FLOAT64) memcpy(mt_data(t), v, (size_t)n * sizeof *v);
  else
    for (int64_t i = 0; i < n; i++) ((float *)mt_data(t))[i] = (float)v[i];
  *out = t;
  return MT_OK;
}

static bool same_shape(const mt_tensor *t, int ndim, const int64_t *sizes) {
  return t->ndim == ndim && memcmp(t->sizes, sizes, (size_t)ndim * sizeof *sizes) == 0;
}

static mt_status check_float(const mt_tensor *t, const char *what) {
  if (!mt_dtype_is_float(t->dtype))
    return mt_fail(MT_EDTYPE, "expected a floating-point %s, got %s", what, mt_dtype_name(t->dtype));
  return MT_OK;
}

/* Sums of a row, and of its squared deviations from m (the square taken in T, as PyTorch's
 * kernels do). Blocks of up to 256 elements accumulate in T across 16 lanes, so that the
 * loop vectorises; the blocks' sums are added in double, which keeps long rows accurate. */
#define DEFINE_SUMS(S, T)                                                                          \
  static double sum_##S(const T *p, int64_t n) {                                                  \
    double total = 0;                                                                             \
    for (int64_t i0 = 0; i0 < n; i0 += 256) {                                                     \
      const int64_t len = n - i0 < 256 ? n - i0 : 256, full = len & ~(int64_t)15;                 \
      T a[16] = {0};                                                                              \
      for (int64_t j = 0; j < full; j += 16)                                                      \
        for (int k = 0; k < 16; k++) a[k] += p[i0 + j + k];                                       \
      for (int64_t j = full; j < len; j++) a[j - full] += p[i0 + j];                              \
      for (int k = 0; k < 8; k++) a[k] += a[k + 8];                                               \
      total += (double)((a[0] + a[4]) + (a[2] + a[6])) + (double)((a[1] + a[5]) + (a[3] + a[7])); \
    }                                                                                             \
    return total;                                                                                 \
  }                                                                                               \
  static double sqdev_##S(const T *p, int64_t n, T m) {                                           \
    double total = 0;                                                                             \
    for (int64_t i0 = 0; i0 < n; i0 += 256) {                                                     \
      const int64_t len = n - i0 < 256 ? n - i0 : 256, full = len & ~(int64_t)15;                 \
      T a[16] = {0};                                                                              \
      for (int64_t j = 0; j < full; j += 16)                                                      \
        for (int k = 0; k < 16; k++) {                                                            \
          const T d = p[i0 + j + k] - m;                                                          \
          a[k] += d * d;                                                                          \
        }                                                                                         \
      for (int64_t j = full; j < len; j++) {                                                      \
        const T d = p[i0 + j] - m;                                                                \
        a[j - full] += d * d;                                                                     \
      }                                                                                           \
      for (int k = 0; k < 8; k++) a[k] += a[k + 8];                                               \
      total += (double)((a[0] + a[4]) + (a[2] + a[6])) + (double)((a[1] + a[5]) + (a[3] + a[7])); \
    }                                                                                             \
    return total;                                                                                 \
  }                                                                                               \
  /* sg = sum g w and sgd = sum g w (x - m), w NULL meaning 1: the sums both backward passes need. \
   * Element j + k of a block goes to lane k (the tail too, from lane 0), as in sum_; the full     \
   * groups of 16 are split out (and w hoisted) so that they vectorise. */                        \
  static void gsums_##S(const T *x, const T *g, const T *w, int64_t n, T m, double *sg, double *sgd) { \
    double tg = 0, td = 0;                                                                        \
    for (int64_t i0 = 0; i0 < n; i0 += 256) {                                                     \
      const int64_t len = n - i0 < 256 ? n - i0 : 256, full = len & ~(int64_t)15;                 \
      const T *xb = x + i0, *gb = g + i0, *wb = w ? w + i0 : NULL;                                \
      T a[16] = {0}, b[16] = {0};                                                                 \
      if (wb)                                                                                     \
        for (int64_t j = 0; j < full; j += 16)                                                    \
          for (int k = 0; k < 16; k++) {                                                          \
            const T gw = gb[j + k] * wb[j + k];                                                   \
            a[k] += gw, b[k] += gw * (xb[j + k] - m);                                             \
          }                                                                                       \
      else                                                                                        \
        for (int64_t j = 0; j < full; j += 16)                                                    \
          for (int k = 0; k < 16; k++) {                                                          \
            const T gw = gb[j + k];                                                               \
            a[k] += gw, b[k] += gw * (xb[j + k] - m);                                             \
          }                                                                                       \
      for (int64_t j = full; j < len; j++) {                                                      \
        const T gw = wb ? gb[j] * wb[j] : gb[j];                                                  \
        a[j - full] += gw, b[j - full] += gw * (xb[j] - m);                                       \
      }                                                                                           \
      for (int k = 0; k < 8; k++) a[k] += a[k + 8], b[k] += b[k + 8];                             \
      tg += (double)((a[0] + a[4]) + (a[2] + a[6])) + (double)((a[1] + a[5]) + (a[3] + a[7]));    \
      td += (double)((b[0] + b[4]) + (b[2] + b[6])) + (double)((b[1] + b[5]) + (b[3] + b[7]));    \
    }                                                                                             \
    *sg = tg, *sgd = td;                                                                          \
  }
DEFINE_SUMS(f64, double)
#if defined(__SSE2__)
#include <emmintrin.h>
/* The float32 sums with the 16 lanes held as four SSE registers: lane k of a block still
 * accumulates the block's elements j + k in the same order, so the bits are DEFINE_SUMS's. GCC
 * keeps DEFINE_SUMS's lane array in memory, and the store-to-load chain through it, not memory
 * bandwidth, bounded these passes (about 1.7x slower). The registers are named, four of them:
 * GCC -O2 would not unroll a loop over an array of them either. */
#define LANES_ZERO(a) __m128 a##0 = _mm_setzero_ps(), a##1 = a##0, a##2 = a##0, a##3 = a##0
#define LANES_STORE(arr, a) \
  _mm_storeu_ps(arr, a##0), _mm_storeu_ps(arr + 4, a##1), _mm_storeu_ps(arr + 8, a##2), _mm_storeu_ps(arr + 12, a##3)
/* A block's total as DEFINE_SUMS folds it, its tail (ntail elements from t, each onto lane j)
 * added first: t[j], or (t[j] - m) squared (w NULL, dev), or (t[j] - m) * w[j]. */
static inline double lanes_total(float a[16], const float *t, int64_t ntail, const float *w, float m, bool dev) {
  for (int64_t j = 0; j < ntail; j++) {
    const float d = dev ? t[j] - m : t[j];
    a[j] += w ? d * w[j] : dev ? d * d : d;
  }
  for (int k = 0; k < 8; k++) a[k] += a[k + 8];
  return (double)((a[0] + a[4]) + (a[2] + a[6])) + (double)((a[1] + a[5]) + (a[3] + a[7]));
}
static double sum_f32(const float *p, int64_t n) {
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 256) {
    const int64_t len = n - i0 < 256 ? n - i0 : 256, full = len & ~(int64_t)15;
    const float *b = p + i0;
    LANES_ZERO(l);
    for (int64_t j = 0; j < full; j += 16) {
      l0 = _mm_add_ps(l0, _mm_loadu_ps(b + j));
      l1 = _mm_add_ps(l1, _mm_loadu_ps(b + j + 4));
      l2 = _mm_add_ps(l2, _mm_loadu_ps(b + j + 8));
      l3 = _mm_add_ps(l3, _mm_loadu_ps(b + j + 12));
    }
    float a[16];
    LANES_STORE(a, l);
    total += lanes_total(a, b + full, len - full, NULL, 0, false);
  }
  return total;
}
static double sqdev_f32(const float *p, int64_t n, float m) {
  double total = 0;
  const __m128 mv = _mm_set1_ps(m);
#define SQ(k, o)                                          \
  {                                                         \
    const __m128 d = _mm_sub_ps(_mm_loadu_ps(b + j + o), mv); \
    l##k = _mm_add_ps(l##k, _mm_mul_ps(d, d));              \
  }
  for (int64_t i0 = 0; i0 < n; i0 += 256) {
    const int64_t len = n - i0 < 256 ? n - i0 : 256, full = len & ~(int64_t)15;
    const float *b = p + i0;
    LANES_ZERO(l);
    for (int64_t j = 0; j < full; j += 16) {
      SQ(0, 0) SQ(1, 4) SQ(2, 8) SQ(3, 12)
    }
    float a[16];
    LANES_STORE(a, l);
    total += lanes_total(a, b + full, len - full, NULL, m, true);
  }
#undef SQ
  return total;
}
/* as DEFINE_SUMS's gsums_ */
static void gsums_f32(const float *x, const float *g, const float *w, int64_t n, float m, double *sg, double *sgd) {
  double tg = 0, td = 0;
  const __m128 mv = _mm_set1_ps(m);
#define GS(k, o, GW)                                                                  \
  {                                                                                   \
    const __m128 gw = GW;                                                             \
    a##k = _mm_add_ps(a##k, gw);                                                      \
    b##k = _mm_add_ps(b##k, _mm_mul_ps(gw, _mm_sub_ps(_mm_loadu_ps(xb + j + o), mv))); \
  }
#define GW_W(o) _mm_mul_ps(_mm_loadu_ps(gb + j + o), _mm_loadu_ps(wb + j + o))
#define GW_1(o) _mm_loadu_ps(gb + j + o)
  for (int64_t i0 = 0; i0 < n; i0 += 256) {
    const int64_t len = n - i0 < 256 ? n - i0 : 256, full = len & ~(int64_t)15;
    const float *xb = x + i0, *gb = g + i0, *wb = w ? w + i0 : NULL;
    LANES_ZERO(a);
    LANES_ZERO(b);
    if (wb)
      for (int64_t j = 0; j < full; j += 16) {
        GS(0, 0, GW_W(0)) GS(1, 4, GW_W(4)) GS(2, 8, GW_W(8)) GS(3, 12, GW_W(12))
      }
    else
      for (int64_t j = 0; j < full; j += 16) {
        GS(0, 0, GW_1(0)) GS(1, 4, GW_1(4)) GS(2, 8, GW_1(8)) GS(3, 12, GW_1(12))
      }
    float ta[16], tb[16], gt[16]; /* gt: the tail's g w, for both totals */
    LANES_STORE(ta, a);
    LANES_STORE(tb, b);
    const int64_t nt = len - full;
    for (int64_t j = 0; j < nt; j++) gt[j] = wb ? gb[full + j] * wb[full + j] : gb[full + j];
    tg += lanes_total(ta, gt, nt, NULL, 0, false);
    td += lanes_total(tb, xb + full, nt, gt, m, true);
  }
#undef GS
#undef GW_W
#undef GW_1
  *sg = tg, *sgd = td;
}
#else
DEFINE_SUMS(f32, float)
#endif

/* ============================================================================================ */
/* batch_norm                                                                                   */

typedef struct bn_geom {
  int64_t n, c, s; /* batch (and every dim but 1 before S), channels, trailing size */
} bn_geom;

/* Work handed to the pool (src/parallel.c). Channel loops give each channel's sums to one
 * chunk, plane loops each (sample, channel) plane; both leave results bit-identical to a
 * serial run. */
typedef struct bn_job {
  const void *x;
  void *y; /* bn_apply: the output; bn_grad_sums: gy */
  bn_geom g;
  const double *in1, *in2;
  double *out1, *out2;
} bn_job;

typedef struct bn_gi_job {
  const void *x, *gy;
  void *gx;
  bn_geom g;
  const double *mean, *invstd, *w, *sum_g, *dotp;
  bool training;
} bn_gi_job;

/* ~64K elements a chunk: one channel of a batch is often that much alone */
static int64_t channel_grain(bn_geom g) {
  const int64_t per = g.n * g.s;
  return per >= 65536 ? 1 : 65536 / (per ? per : 1);
}
/* For loops whose results do not depend on how channels are grouped (each channel's sums run
 * in one chunk, in batch order): as many chunks as threads, so each streams a wide block. */
static int64_t channel_span(bn_geom g) {
  const int64_t t = mt_get_num_threads(), per = g.n * g.s;
  if (t <= 1 || g.c * per < 65536) return g.c ? g.c : 1;
  return (g.c + t - 1) / t;
}
static int64_t plane_grain(bn_geom g) { return g.s >= 32768 ? 1 : 32768 / (g.s ? g.s : 1); }

/* Per-channel mean (rounded to T) and sum of squared deviations. */
#define DEFINE_BN(S, T)                                                                            \
  /* channels [c0, c1): the same sums in the same order whichever thread runs them */             \
  static void bn_stats_chunk_##S(void *p, int64_t c0, int64_t c1, int chunk, int worker) {        \
    (void)chunk, (void)worker;                                                                    \
    const bn_job *j = p;                                                                          \
    const T *x = j->x;                                                                            \
    const bn_geom g = j->g;                                                                       \
    const double count = (double)(g.n * g.s);                                                     \
    for (int64_t c = c0; c < c1; c++) {                                                           \
      double acc = 0;                                                                             \
      for (int64_t i = 0; i < g.n; i++) acc += sum_##S(x + (i * g.c + c) * g.s, g.s);             \
      const T m = (T)(acc / count);                                                               \
      double v = 0;                                                                               \
      for (int64_t i = 0; i < g.n; i++) v += sqdev_##S(x + (i * g.c + c) * g.s, g.s, m);          \
      j->out1[c] = m, j->out2[c] = v;                                                             \
    }                                                                                             \
  }                                                                                               \
  static void bn_stats_##S(const T *x, bn_geom g, double *mean, double *var_sum) {                \
    const double count = (double)(g.n * g.s);                                                     \
    for (int64_t c = 0; c < g.c; c++) mean[c] = var_sum[c] = 0;                                   \
    if (g.s == 1) { /* [N, C]: walk rows, accumulate across channels (vectorises) */             \
      for (int64_t i = 0; i < g.n; i++)                                                           \
        for (int64_t c = 0; c < g.c; c++) mean[c] += x[i * g.c + c];                              \
      for (int64_t c = 0; c < g.c; c++) mean[c] = (T)(mean[c] / count);                           \
      for (int64_t i = 0; i < g.n; i++)                                                           \
        for (int64_t c = 0; c < g.c; c++) {                                                       \
          T d = x[i * g.c + c] - (T)mean[c];                                                      \
          var_sum[c] += d * d;                                                                    \
        }                                                                                         \
      return;                                                                                     \
    }                                                                                             \
    bn_job j = {.x = x, .g = g, .out1 = mean, .out2 = var_sum};                                   \
    mt_parallel_for(g.c, channel_grain(g), bn_stats_chunk_##S, &j);                               \
  }                                                                                               \
  /* y = x * alpha[c] + beta[c] */                                                                \
  static void bn_apply_chunk_##S(void *p, int64_t q0, int64_t q1, int chunk, int worker) {        \
    (void)chunk, (void)worker;                                                                    \
    const bn_job *j = p;                                                                          \
    const bn_geom g = j->g;                                                                       \
    for (int64_t q = q0; q < q1; q++) { /* plane q = (i, c) */                                    \
      const int64_t c = q % g.c;                                                                  \
      const T a = (T)j->in1[c], b = (T)j->in2[c];                                                 \
      const T *restrict xr = (const T *)j->x + q * g.s;                                           \
      T *restrict yr = (T *)j->y + q * g.s;                                                       \
      for (int64_t k = 0; k < g.s; k++) yr[k] = xr[k] * a + b;                                    \
    }                                                                                             \
  }                                                                                               \
  static void bn_apply_##S(const T *x, T *y, bn_geom g, const double *alpha, const double *beta) { \
    bn_job j = {.x = x, .y = y, .g = g, .in1 = alpha, .in2 = beta};                               \
    mt_parallel_for(g.n * g.c, plane_grain(g), bn_apply_chunk_##S, &j);                           \
  }                                                                                               \
  /* channels [c0, c1), each summed over the batch in order (as a serial loop would); the batch  \
   * loop is outside so that the chunk's planes are read in memory order */                      \
  static void bn_grad_sums_chunk_##S(void *p, int64_t c0, int64_t c1, int chunk, int worker) {    \
    (void)chunk, (void)worker;                                                                    \
    const bn_job *j = p;                                                                          \
    const T *x = j->x, *gy = j->y;                                                                \
    const bn_geom g = j->g;                                                                       \
    for (int64_t c = c0; c < c1; c++) j->out1[c] = j->out2[c] = 0;                                \
    for (int64_t i = 0; i < g.n; i++)                                                             \
      for (int64_t c = c0; c < c1; c++) {                                                         \
        double s, d;                                                                              \
        gsums_##S(x + (i * g.c + c) * g.s, gy + (i * g.c + c) * g.s, NULL, g.s, (T)j->in1[c], &s, &d); \
        j->out1[c] += s, j->out2[c] += d;                                                         \
      }                                                                                           \
  }                                                                                               \
  /* Per channel: sum of gy and of (x - mean) * gy. */                                            \
  static void bn_grad_sums_##S(const T *x, const T *gy, bn_geom g, const double *mean, double *sum_g, \
                               double *dotp) {                                                    \
    for (int64_t c = 0; c < g.c; c++) sum_g[c] = dotp[c] = 0;                                     \
    if (g.s == 1) { /* [N, C]: across channels, as in bn_stats */                                 \
      for (int64_t i = 0; i < g.n; i++)                                                           \
        for (int64_t c = 0; c < g.c; c++) {                                                       \
          const T gv = gy[i * g.c + c];                                                           \
          sum_g[c] += gv, dotp[c] += gv * (x[i * g.c + c] - (T)mean[c]);                          \
        }                                                                                         \
      return;                                                                                     \
    }                                                                                             \
    bn_job j = {.x = x, .y = (void *)gy, .g = g, .in1 = mean, .out1 = sum_g, .out2 = dotp};        \
    mt_parallel_for(g.c, channel_span(g), bn_grad_sums_chunk_##S, &j);                            \
  }                                                                                               \
  /* training: gx = (gy - mean(gy) - (x - mean) * dotp * invstd^2 / n) * invstd * w;              \
   * evaluation: gx = gy * invstd * w (the running statistics are constants) */                   \
  static void bn_grad_input_chunk_##S(void *p, int64_t q0, int64_t q1, int chunk, int worker) {   \
    (void)chunk, (void)worker;                                                                    \
    const bn_gi_job *j = p;                                                                       \
    const bn_geom g = j->g;                                                                       \
    const double count = (double)(g.n * g.s);                                                     \
    const double *mean = j->mean, *invstd = j->invstd, *w = j->w, *sum_g = j->sum_g, *dotp = j->dotp; \
    for (int64_t q = q0; q < q1; q++) { /* plane q = (i, c) */                                    \
      const int64_t c = q % g.c;                                                                  \
      /* o may be gr itself (bn_backward): NO_CARRIED_DEP, not restrict */                        \
      const T *xr = (const T *)j->x + q * g.s, *gr = (const T *)j->gy + q * g.s;                  \
      T *o = (T *)j->gx + q * g.s;                                                                \
      const T f = (T)(invstd[c] * (w ? w[c] : 1.0));                                              \
      if (!j->training) {                                                                         \
        NO_CARRIED_DEP for (int64_t k = 0; k < g.s; k++) o[k] = gr[k] * f;                        \
        continue;                                                                                 \
      }                                                                                           \
      const T m = (T)mean[c], gm = (T)(sum_g[c] / count),                                         \
              kk = (T)(dotp[c] * invstd[c] * invstd[c] / count);                                  \
      NO_CARRIED_DEP for (int64_t k = 0; k < g.s; k++) o[k] = (gr[k] - gm - (xr[k] - m) * kk) * f; \
    }                                                                                             \
  }                                                                                               \
  static void bn_grad_input_##S(const T *x, const T *gy, T *gx, bn_geom g, const double *mean,    \
                                const double *invstd, const double *w, const double *sum_g,       \
                                const double *dotp, bool training) {                              \
    bn_gi_job j = {x, gy, gx, g, mean, invstd, w, sum_g, dotp, training};                         \
    mt_parallel_for(g.n * g.c, plane_grain(g), bn_grad_input_chunk_##S, &j);                      \
  }
DEFINE_BN(f32, float)
DEFINE_BN(f64, double)

typedef struct bn_node {
  mt_node base;
  mt_saved input, weight;
  double *mean, *invstd; /* [C] each, one allocation */
  bool training;
} bn_node;

static void bn_release(mt_node *n) {
  bn_node *b = (bn_node *)n;
  mt_saved_release(&b->input);
  mt_saved_release(&b->weight);
  free(b->mean);
  b->mean = b->invstd = NULL;
}

static bn_geom bn_geometry(const mt_tensor *x) {
  bn_geom g = {x->sizes[0], x->sizes[1], 1};
  for (int d = 2; d < x->ndim; d++) g.s *= x->sizes[d];
  return g;
}

static mt_status bn_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  bn_node *bn = (bn_node *)n;
  const mt_tensor *g = gout[0];
  if (!g) return MT_OK;
  const bool need_x = mt_edge_live(&n->next[0]), need_w = mt_edge_live(&n->next[1]),
             need_b = mt_edge_live(&n->next[2]);
  mt_tensor *input, *weight = NULL;
  mt_status st = mt_saved_get(&bn->input, n, &input);
  if (st || (bn->weight.t && (st = mt_saved_get(&bn->weight, n, &weight)))) return st;
  const mt_dtype cdt = compute_dtype(input->dtype);
  const bn_geom geo = bn_geometry(input);
  const int64_t C = geo.c;
  mt_tensor *x = NULL, *gy = NULL, *gx = NULL, *gw = NULL, *gb = NULL;
  double *w = NULL, *sums = malloc((size_t)(2 * C + 1) * sizeof *sums);
  if (!sums) return mt_fail(MT_ENOMEM, "out of memory");
  double *sum_g = sums, *dotp = sums + C;
  /* gx may take gy's place when no one but the engine holds the incoming gradient (the test
   * src/autograd.c makes to adopt a gradient as a leaf's .grad); asked before dense() retains
   * it. Writing over the bytes just read spares a fresh buffer and its cache misses. */
  const bool reuse = g->dtype == cdt && g->refcount == 1 && mt_storage_refcount(g->storage) == 1 && !g->grad_fn &&
                     mt_is_contiguous(g);
  if ((st = dense(&x, input, cdt)) || (st = dense(&gy, g, cdt))) goto done;
  if (weight && (st = read_f64(&w, weight))) goto done;
  if (cdt == MT_FLOAT64) bn_grad_sums_f64(mt_data(x), mt_data(gy), geo, bn->mean, sum_g, dotp);
  else bn_grad_sums_f32(mt_data(x), mt_data(gy), geo, bn->mean, sum_g, dotp);
  if (need_x) {
    if (reuse && gy == g) mt_tensor_retain(gx = gy);
    else if ((st = mt_empty(&gx, cdt, input->ndim, input->sizes))) goto done;
    if (cdt == MT_FLOAT64)
      bn_grad_input_f64(mt_data(x), mt_data(gy), mt_data(gx), geo, bn->mean, bn->invstd, w, sum_g, dotp, bn->training);
    else
      bn_grad_input_f32(mt_data(x), mt_data(gy), mt_data(gx), geo, bn->mean, bn->invstd, w, sum_g, dotp, bn->training);
  }
  if (need_w) { /* d/dw = sum (x - mean) * invstd * gy */
    for (int64_t c = 0; c < C; c++) dotp[c] *= bn->invstd[c];
    if ((st = tensor_from_f64(&gw, cdt, 1, &C, dotp))) goto done;
  }
  if (need_b && (st = tensor_from_f64(&gb, cdt, 1, &C, sum_g))) goto done;
done:
  mt_tensor_release(x);
  mt_tensor_release(gy);
  free(w);
  free(sums);
  if (st) {
    mt_tensor_release(gx), mt_tensor_release(gw), mt_tensor_release(gb);
    return st;
  }
  gin[0] = gx, gin[1] = gw, gin[2] = gb;
  return MT_OK;
}

/* Shapes and dtypes of batch_norm's arguments. */
static mt_status bn_check(const mt_tensor *input, const mt_tensor *const params[4], bool training) {
  static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN], c[MT_SHAPE_STRLEN];
  mt_status st = check_float(input, "input");
  if (st) return st;
  if (input->ndim < 2)
    return mt_fail(MT_ESHAPE, "expected an input of at least 2 dims [N, C, ...], got %s",
                   mt_shape_str(a, sizeof a, input->ndim, input->sizes));
  const int64_t C = input->sizes[1];
  for (int i = 0; i < 4; i++) {
    const mt_tensor *p = params[i];
    if (!p) continue;
    if ((st = check_float(p, names[i]))) return st;
    if (!same_shape(p, 1, &C))
      return mt_fail(MT_ESHAPE, "%s should have shape %s (one value per channel of the input %s), got %s", names[i],
                     mt_shape_str(a, sizeof a, 1, &C), mt_shape_str(b, sizeof b, input->ndim, input->sizes),
                     mt_shape_str(c, sizeof c, p->ndim, p->sizes));
  }
  if (!training && (!params[2] || !params[3]))
    return mt_fail(MT_EARG, "running_mean and running_var are needed in evaluation mode");
  if (!!params[2] != !!params[3]) return mt_fail(MT_EARG, "running_mean and running_var must be given together");
  if (training) {
    int64_t per_channel = mt_numel(input) / (C ? C : 1);
    if (C > 0 && per_channel == 1)
      return mt_fail(MT_EARG, "expected more than 1 value per channel when training, got an input of shape %s",
                     mt_shape_str(a, sizeof a, input->ndim, input->sizes));
    for (int i = 2; i < 4 && params[i]; i++) {
      if (params[i]->requires_grad && mt_is_grad_enabled())
        return mt_fail(MT_EARG, "%s is updated in place and must not require grad", names[i]);
      if ((st = mt_check_writable(params[i]))) return st;
    }
  }
  return MT_OK;
}

/* running = momentum * batch + (1 - momentum) * running, written in place without history. */
static mt_status bn_update_running(mt_tensor *running, const double *batch, double momentum) {
  double *old;
  mt_status st = read_f64(&old, running);
  if (st) return st;
  const int64_t C = running->sizes[0];
  for (int64_t c = 0; c < C; c++) old[c] = momentum * batch[c] + (1 - momentum) * old[c];
  mt_tensor *v;
  if (!(st = tensor_from_f64(&v, MT_FLOAT64, 1, &C, old))) {
    if (!(st = mt_copy_into(running, v))) mt_bump_version(running);
    mt_tensor_release(v);
  }
  free(old);
  return st;
}

MT_API mt_status mt_batch_norm(mt_tensor **out, const mt_tensor *input, const mt_tensor *weight, const mt_tensor *bias,
                               mt_tensor *running_mean, mt_tensor *running_var, bool training, double momentum,
                               double eps) {
  if (!out || !input) return mt_fail(MT_EARG, "missing tensor argument");
  const mt_tensor *params[4] = {weight, bias, running_mean, running_var};
  mt_status st = bn_check(input, params, training);
  if (st) return st;
  /* a replayed graph would not write the statistics back */
  if (training && running_mean && mt_tracing()) mt_trace_refuse("updating batch_norm's running statistics");
  const mt_dtype cdt = compute_dtype(input->dtype);
  const bn_geom geo = bn_geometry(input);
  const int64_t C = geo.c, count = geo.n * geo.s;
  /* mean and invstd (kept by the node), alpha and beta (y = x * alpha + beta), and the
   * batch's unbiased variance (for running_var) */
  double *stats = calloc((size_t)(5 * C + 1), sizeof *stats), *w = NULL, *b = NULL, *rm = NULL, *rv = NULL;
  if (!stats) return mt_fail(MT_ENOMEM, "out of memory");
  double *mean = stats, *invstd = stats + C, *alpha = stats + 2 * C, *beta = stats + 3 * C, *unbiased = stats + 4 * C;
  mt_tensor *x = NULL, *res = NULL;
  bool grad_on = mt_is_grad_enabled();
  mt_trace *const tr = mt_active_trace;
  mt_set_grad_enabled(false); /* the internal copies record nothing, neither for autograd */
  mt_active_trace = NULL;     /* nor for a trace (the op records itself) */
  if ((st = dense(&x, input, cdt))) goto done;
  if ((weight && (st = read_f64(&w, weight))) || (bias && (st = read_f64(&b, bias)))) goto done;
  if (training) {
    if (count > 0) { /* an empty batch leaves everything at 0 and the running stats alone */
      if (cdt == MT_FLOAT64) bn_stats_f64(mt_data(x), geo, mean, unbiased);
      else bn_stats_f32(mt_data(x), geo, mean, unbiased);
      for (int64_t c = 0; c < C; c++) {
        double is = 1.0 / sqrt(unbiased[c] / (double)count + eps);
        invstd[c] = cdt == MT_FLOAT64 ? is : (float)is;
        unbiased[c] /= (double)(count - 1);
      }
    }
  } else {
    if ((st = read_f64(&rm, running_mean)) || (st = read_f64(&rv, running_var))) goto done;
    for (int64_t c = 0; c < C; c++) { /* in the compute dtype, as PyTorch */
      if (cdt == MT_FLOAT64) mean[c] = rm[c], invstd[c] = 1.0 / sqrt(rv[c] + eps);
      else mean[c] = (float)rm[c], invstd[c] = 1.0f / sqrtf((float)rv[c] + (float)eps);
    }
  }
  for (int64_t c = 0; c < C; c++) {
    double a = invstd[c] * (w ? w[c] : 1.0);
    alpha[c] = cdt == MT_FLOAT32 ? (float)a : a;
    beta[c] = (b ? b[c] : 0.0) - mean[c] * alpha[c];
  }
  if ((st = mt_empty(&res, cdt, input->ndim, input->sizes))) goto done;
  if (cdt == MT_FLOAT64) bn_apply_f64(mt_data(x), mt_data(res), geo, alpha, beta);
  else bn_apply_f32(mt_data(x), mt_data(res), geo, alpha, beta);
  if (res->dtype != input->dtype) {
    mt_tensor *conv;
    if ((st = mt_to_dtype(&conv, res, input->dtype))) goto done;
    mt_tensor_release(res);
    res = conv;
  }
  /* The running statistics change only once the output exists. */
  if (training && count > 0 && running_mean &&
      ((st = bn_update_running(running_mean, mean, momentum)) ||
       (st = bn_update_running(running_var, unbiased, momentum))))
    goto done;
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;

  const mt_tensor *ins[3] = {input, weight, bias};
  if (mt_grad_needed(3, ins)) {
    bn_node *n = (bn_node *)mt_node_new(sizeof *n, "NativeBatchNormBackward0", bn_backward, bn_release, 3, ins, 1);
    if (!n) {
      st = MT_ENOMEM;
      goto done;
    }
    n->training = training;
    n->mean = stats, n->invstd = stats + C; /* the node owns the statistics now */
    stats = NULL;
    if (!(st = mt_save_tensor(&n->input, input)) && (!weight || !(st = mt_save_tensor(&n->weight, weight))))
      mt_node_set_output(&n->base, res, 0);
    mt_node_release(&n->base);
  }
  if (!st && tr) {
    const mt_tensor *tins[5] = {input, weight, bias, running_mean, running_var};
    mt_trace_record("batch_norm", 5, tins, 1, &res, "training=b momentum=f eps=f", (int)training, momentum, eps);
  }
done:
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;
  mt_tensor_release(x);
  free(stats), free(w), free(b), free(rm), free(rv);
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

/* ============================================================================================ */
/* layer_norm                                                                                   */

#define DEFINE_LN(S, T)                                                                            \
  /* Per row: mean and 1/sqrt(var + eps), rounded through T; y = (x * r - r * mean) * w + b. */    \
  static void ln_forward_##S(const T *restrict x, T *restrict y, int64_t M, int64_t D, const T *w, \
                             const T *b, double eps, double *mean, double *rstd) {                \
    for (int64_t i = 0; i < M; i++) {                                                             \
      const T *xr = x + i * D;                                                                    \
      T *yr = y + i * D;                                                                          \
      const T m = (T)(sum_##S(xr, D) / (double)D);                                                \
      double var = sqdev_##S(xr, D, m) / (double)D;                                               \
      const T r = (T)(1.0 / sqrt((var > 0 ? var : 0) + eps));                                     \
      mean[i] = m, rstd[i] = r;                                                                   \
      const T sc = r, sh = -r * m;                                                                \
      if (w && b)                                                                                 \
        for (int64_t j = 0; j < D; j++) yr[j] = (xr[j] * sc + sh) * w[j] + b[j];                  \
      else if (w)                                                                                 \
        for (int64_t j = 0; j < D; j++) yr[j] = (xr[j] * sc + sh) * w[j];                         \
      else if (b)                                                                                 \
        for (int64_t j = 0; j < D; j++) yr[j] = (xr[j] * sc + sh) + b[j];                         \
      else                                                                                        \
        for (int64_t j = 0; j < D; j++) yr[j] = xr[j] * sc + sh;                                  \
    }                                                                                             \
  }                                                                                               \
  /* PyTorch's LayerNormBackwardKernel: per row, with ds = sum(gy w x), db = sum(gy w),           \
   * gx = r gy w + p x + q, p = (db mean - ds) r^3 / D, q = -p mean - db r / D;                    \
   * gw += gy (x - mean) r and gb += gy over the rows (in double). */                             \
  static void ln_backward_##S(const T *restrict x, const T *restrict gy, T *restrict gx, int64_t M, \
                              int64_t D, const T *w, const double *mean, const double *rstd,      \
                              double *gw, double *gb) {                                           \
    for (int64_t i = 0; i < M; i++) {                                                             \
      const T *xr = x + i * D, *gr = gy + i * D;                                                  \
      const double m = mean[i], r = rstd[i];                                                      \
      if (gw)                                                                                     \
        for (int64_t j = 0; j < D; j++) gw[j] += (double)gr[j] * ((double)xr[j] - m) * r;         \
      if (gb)                                                                                     \
        for (int64_t j = 0; j < D; j++) gb[j] += gr[j];                                           \
      if (!gx) continue;                                                                          \
      double db, dd; /* dd = ds - mean * db */                                                    \
      gsums_##S(xr, gr, w, D, (T)m, &db, &dd);                                                    \
      const double p = -dd * r * r * r / (double)D, q = -p * m - db * r / (double)D;              \
      const T rt = (T)r, pt = (T)p, qt = (T)q;                                                    \
      T *o = gx + i * D;                                                                          \
      if (w)                                                                                      \
        for (int64_t j = 0; j < D; j++) o[j] = rt * gr[j] * w[j] + pt * xr[j] + qt;               \
      else                                                                                        \
        for (int64_t j = 0; j < D; j++) o[j] = rt * gr[j] + pt * xr[j] + qt;                      \
    }                                                                                             \
  }
DEFINE_LN(f32, float)
DEFINE_LN(f64, double)

typedef struct ln_node {
  mt_node base;
  mt_saved input, weight;
  int64_t rows, cols;
  int nshape;
  int64_t shape[MT_MAX_DIMS]; /* normalized_shape: weight's and bias's */
  double *mean, *rstd;        /* [rows] each, one allocation */
} ln_node;

static void ln_release(mt_node *n) {
  ln_node *l = (ln_node *)n;
  mt_saved_release(&l->input);
  mt_saved_release(&l->weight);
  free(l->mean);
  l->mean = l->rstd = NULL;
}

static mt_status ln_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  ln_node *ln = (ln_node *)n;
  const mt_tensor *g = gout[0];
  if (!g) return MT_OK;
  const bool need_x = mt_edge_live(&n->next[0]), need_w = mt_edge_live(&n->next[1]),
             need_b = mt_edge_live(&n->next[2]);
  mt_tensor *input, *weight = NULL;
  mt_status st = mt_saved_get(&ln->input, n, &input);
  if (st || (ln->weight.t && (st = mt_saved_get(&ln->weight, n, &weight)))) return st;
  const mt_dtype cdt = compute_dtype(input->dtype);
  const int64_t M = ln->rows, D = ln->cols;
  mt_tensor *x = NULL, *gy = NULL, *w = NULL, *gx = NULL, *gw = NULL, *gb = NULL;
  double *acc = calloc((size_t)(2 * D + 1), sizeof *acc);
  if (!acc) return mt_fail(MT_ENOMEM, "out of memory");
  if ((st = dense(&x, input, cdt)) || (st = dense(&gy, g, cdt)) || (weight && (st = dense(&w, weight, cdt))))
    goto done;
  if (need_x && (st = mt_empty(&gx, cdt, input->ndim, input->sizes))) goto done;
  double *aw = need_w ? acc : NULL, *ab = need_b ? acc + D : NULL;
  if (cdt == MT_FLOAT64)
    ln_backward_f64(mt_data(x), mt_data(gy), gx ? mt_data(gx) : NULL, M, D, w ? mt_data(w) : NULL, ln->mean,
                    ln->rstd, aw, ab);
  else
    ln_backward_f32(mt_data(x), mt_data(gy), gx ? mt_data(gx) : NULL, M, D, w ? mt_data(w) : NULL, ln->mean,
                    ln->rstd, aw, ab);
  if (need_w && (st = tensor_from_f64(&gw, cdt, ln->nshape, ln->shape, aw))) goto done;
  if (need_b && (st = tensor_from_f64(&gb, cdt, ln->nshape, ln->shape, ab))) goto done;
done:
  mt_tensor_release(x), mt_tensor_release(gy), mt_tensor_release(w);
  free(acc);
  if (st) {
    mt_tensor_release(gx), mt_tensor_release(gw), mt_tensor_release(gb);
    return st;
  }
  gin[0] = gx, gin[1] = gw, gin[2] = gb;
  return MT_OK;
}

MT_API mt_status mt_layer_norm(mt_tensor **out, const mt_tensor *input, int nshape, const int64_t *normalized_shape,
                               const mt_tensor *weight, const mt_tensor *bias, double eps) {
  if (!out || !input || (nshape > 0 && !normalized_shape)) return mt_fail(MT_EARG, "missing argument");
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  mt_status st = check_float(input, "input");
  if (st) return st;
  if (nshape < 1 || nshape > MT_MAX_DIMS)
    return mt_fail(MT_EARG, "normalized_shape must have 1 to %d dims, got %d", MT_MAX_DIMS, nshape);
  const int lead = input->ndim - nshape;
  if (lead < 0 || memcmp(input->sizes + lead, normalized_shape, (size_t)nshape * sizeof *normalized_shape) != 0) {
    char s[MT_SHAPE_STRLEN + 4];
    mt_shape_str(s, sizeof s, nshape, normalized_shape);
    memmove(s + 4, s + 1, strlen(s)); /* "[3]" -> "[*, 3]" */
    memcpy(s + 1, "*, ", 3);
    return mt_fail(MT_ESHAPE, "given normalized_shape %s, expected an input of shape %s, got %s",
                   mt_shape_str(a, sizeof a, nshape, normalized_shape), s,
                   mt_shape_str(b, sizeof b, input->ndim, input->sizes));
  }
  const mt_tensor *params[2] = {weight, bias};
  for (int i = 0; i < 2; i++) {
    if (!params[i]) continue;
    if ((st = check_float(params[i], i ? "bias" : "weight"))) return st;
    if (!same_shape(params[i], nshape, normalized_shape))
      return mt_fail(MT_ESHAPE, "expected %s of shape %s (normalized_shape), got %s", i ? "bias" : "weight",
                     mt_shape_str(a, sizeof a, nshape, normalized_shape),
                     mt_shape_str(b, sizeof b, params[i]->ndim, params[i]->sizes));
  }
  int64_t D = 1, M = 1;
  for (int d = 0; d < input->ndim; d++) *(d < lead ? &M : &D) *= input->sizes[d];
  const mt_dtype cdt = compute_dtype(input->dtype);
  double *stats = malloc((size_t)(2 * M + 1) * sizeof *stats);
  if (!stats) return mt_fail(MT_ENOMEM, "out of memory");
  mt_tensor *x = NULL, *w = NULL, *bb = NULL, *res = NULL;
  bool grad_on = mt_is_grad_enabled();
  mt_trace *const tr = mt_active_trace;
  mt_set_grad_enabled(false); /* the internal copies record nothing, neither for autograd */
  mt_active_trace = NULL;     /* nor for a trace (the op records itself) */
  if ((st = dense(&x, input, cdt)) || (weight && (st = dense(&w, weight, cdt))) ||
      (bias && (st = dense(&bb, bias, cdt))) || (st = mt_empty(&res, cdt, input->ndim, input->sizes)))
    goto done;
  if (D > 0) {
    if (cdt == MT_FLOAT64)
      ln_forward_f64(mt_data(x), mt_data(res), M, D, w ? mt_data(w) : NULL, bb ? mt_data(bb) : NULL, eps, stats,
                     stats + M);
    else
      ln_forward_f32(mt_data(x), mt_data(res), M, D, w ? mt_data(w) : NULL, bb ? mt_data(bb) : NULL, eps, stats,
                     stats + M);
  } else {
    for (int64_t i = 0; i < 2 * M; i++) stats[i] = 0;
  }
  if (res->dtype != input->dtype) {
    mt_tensor *conv;
    if ((st = mt_to_dtype(&conv, res, input->dtype))) goto done;
    mt_tensor_release(res);
    res = conv;
  }
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;

  const mt_tensor *ins[3] = {input, weight, bias};
  if (mt_grad_needed(3, ins)) {
    ln_node *n = (ln_node *)mt_node_new(sizeof *n, "NativeLayerNormBackward0", ln_backward, ln_release, 3, ins, 1);
    if (!n) {
      st = MT_ENOMEM;
      goto done;
    }
    n->rows = M, n->cols = D;
    n->nshape = nshape;
    memcpy(n->shape, normalized_shape, (size_t)nshape * sizeof *normalized_shape);
    n->mean = stats, n->rstd = stats + M;
    stats = NULL;
    if (!(st = mt_save_tensor(&n->input, input)) && (!weight || !(st = mt_save_tensor(&n->weight, weight))))
      mt_node_set_output(&n->base, res, 0);
    mt_node_release(&n->base);
  }
  if (!st && tr)
    mt_trace_record("layer_norm", 3, ins, 1, &res, "normalized_shape=In eps=f", nshape, normalized_shape, eps);
done:
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;
  mt_tensor_release(x), mt_tensor_release(w), mt_tensor_release(bb);
  free(stats);
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}
