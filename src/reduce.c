/*
 * reduce.c — reductions over a set of dims (sum, prod, mean, var, std, amax, amin, all, any)
 * and the index-giving ones along one dim (max/min with indices, argmax, argmin).
 *
 * Every reduction runs on a plan [outer, red, inner] with element strides (a `geom`): the
 * input's dims are ordered by stride and coalesced, which covers one dim of a contiguous
 * tensor, transposed views and whole-tensor reductions without a copy. Anything else is
 * permuted to [kept..., reduced...] and copied once. Kernels then take one of two shapes:
 *  - inner == 1: each output reduces one (maybe strided) row, pairwise above PW elements and
 *    with eight independent accumulators below, so the contiguous case vectorises;
 *  - inner > 1: a chunk of CH outputs accumulates row after row, so the innermost loop runs
 *    over contiguous memory (the fast way to reduce a dim that is not innermost).
 * float32 accumulates in float64 (summing 1e7 ones is exact); integer sums and products wrap
 * in uint64, which is PyTorch's int64 arithmetic without signed-overflow UB. float16 and
 * bfloat16 are converted to float32 first (PyTorch accumulates them in float32 too).
 * sum, prod, mean, var, std, amax, amin and the values of max/min along a dim are
 * differentiable; their backward follows each family's forward.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* -O2's "very cheap" vectorizer cost model leaves loops with a runtime trip count scalar. */
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include "mt_internal.h"

#include <math.h>

#define CH 256  /* outputs per chunk in the inner > 1 shape: accumulators stay in L1 */
#define PW 4096 /* longer runs are split pairwise: error grows with log(n), not n */

typedef struct geom {
  int64_t outer, red, inner;
  int64_t in_os, in_rs, in_is; /* input strides, elements */
  int64_t out_os, out_is;      /* output strides, elements */
} geom;

/* ---- planning ------------------------------------------------------------------------ */

typedef struct gdim {
  int64_t size, is, os;
  bool red;
} gdim;

/* Plans reducing the dims in `mask` of x into a contiguous output of x's kept dims. False
 * when the coalesced dims do not fall into the [kept] [reduced] [kept] pattern. */
static bool plan(const mt_tensor *x, uint32_t mask, geom *g) {
  int64_t ostr[MT_MAX_DIMS], acc = 1;
  for (int d = x->ndim - 1; d >= 0; d--) {
    ostr[d] = (mask >> d & 1) ? 0 : acc;
    if (!(mask >> d & 1)) acc *= x->sizes[d];
  }
  gdim v[MT_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < x->ndim; d++) {
    if (x->sizes[d] == 1) continue;
    gdim e = {x->sizes[d], x->strides[d], ostr[d], (mask >> d & 1) != 0};
    int i = n++; /* stable insertion sort, input stride descending */
    while (i > 0 && v[i - 1].is < e.is) v[i] = v[i - 1], i--;
    v[i] = e;
  }
  int m = 0;
  for (int i = 0; i < n; i++) {
    gdim *p = m ? &v[m - 1] : NULL;
    if (p && p->red == v[i].red && p->is == v[i].is * v[i].size && (p->red || p->os == v[i].os * v[i].size)) {
      p->size *= v[i].size, p->is = v[i].is, p->os = v[i].os;
      continue;
    }
    v[m++] = v[i];
  }
  const gdim *k0 = NULL, *r = NULL, *k1 = NULL;
  int i = 0;
  if (i < m && !v[i].red) k0 = &v[i++];
  if (i < m && v[i].red) r = &v[i++];
  if (i < m && !v[i].red) k1 = &v[i++];
  if (i < m) return false;
  if (k0 && !r && !k1) k1 = k0, k0 = NULL; /* nothing reduced: run it as the vector loop */
  *g = (geom){
      .outer = k0 ? k0->size : 1, .in_os = k0 ? k0->is : 0, .out_os = k0 ? k0->os : 0,
      .red = r ? r->size : 1,     .in_rs = r ? r->is : 0,
      .inner = k1 ? k1->size : 1, .in_is = k1 ? k1->is : 0, .out_is = k1 ? k1->os : 0,
  };
  return true;
}

/* Runs `body(g, x)` on x or, when x does not plan, on a copy permuted to [kept, reduced]. */
typedef void (*geom_body)(const geom *g, const mt_tensor *x, void *ctx);

static mt_status with_plan(const mt_tensor *x, uint32_t mask, int64_t out_numel, geom_body body, void *ctx) {
  geom g;
  if (mt_numel(x) == 0) { /* nothing to read: every output reduces zero elements */
    g = (geom){.outer = out_numel, .red = 0, .inner = 1, .out_os = 1};
    body(&g, x, ctx);
    return MT_OK;
  }
  if (plan(x, mask, &g)) {
    body(&g, x, ctx);
    return MT_OK;
  }
  int64_t perm[MT_MAX_DIMS];
  int nk = 0;
  for (int d = 0; d < x->ndim; d++)
    if (!(mask >> d & 1)) perm[nk++] = d;
  for (int d = 0, j = nk; d < x->ndim; d++)
    if (mask >> d & 1) perm[j++] = d;
  mt_tensor *p, *c;
  mt_status st = mt_permute(&p, x, x->ndim, perm);
  if (st) return st;
  st = mt_contiguous(&c, p);
  mt_tensor_release(p);
  if (st) return st;
  plan(c, ((1u << x->ndim) - 1) & ~((1u << nk) - 1), &g); /* contiguous [kept, reduced]: plans */
  body(&g, c, ctx);
  mt_tensor_release(c);
  return MT_OK;
}

/* ---- kernels --------------------------------------------------------------------------- */

#define IS_NAN_F(x) ((x) != (x))
#define IS_NAN_I(x) ((void)(x), 0)

/* The dtypes with native kernels: X(ENUM, ctype, suffix, lowest, highest, sum acc, sum out, isnan) */
#define NATIVE_DTYPES(X)                                                                          \
  X(MT_FLOAT32, float, f32, -INFINITY, INFINITY, double, float, IS_NAN_F)                         \
  X(MT_FLOAT64, double, f64, -INFINITY, INFINITY, double, double, IS_NAN_F)                       \
  NATIVE_INT_DTYPES(X)
#define NATIVE_INT_DTYPES(X)                                                                      \
  X(MT_INT64, int64_t, i64, INT64_MIN, INT64_MAX, uint64_t, int64_t, IS_NAN_I)                    \
  X(MT_INT32, int32_t, i32, INT32_MIN, INT32_MAX, uint64_t, int64_t, IS_NAN_I)                    \
  X(MT_INT16, int16_t, i16, INT16_MIN, INT16_MAX, uint64_t, int64_t, IS_NAN_I)                    \
  X(MT_INT8, int8_t, i8, INT8_MIN, INT8_MAX, uint64_t, int64_t, IS_NAN_I)                         \
  X(MT_UINT8, uint8_t, u8, 0, UINT8_MAX, uint64_t, int64_t, IS_NAN_I)                             \
  X(MT_BOOL, bool, b8, false, true, uint64_t, int64_t, IS_NAN_I)

/* Fully unrolled, so the accumulator array lives in (vector) registers, not on the stack. */
#define UNROLLED(loop) _Pragma("GCC unroll 8") loop

typedef void (*kern_fn)(const geom *g, const void *in, void *out, int64_t correction);

/* A reduction with accumulator A from INIT folded by STEP(acc, x) (which must also combine
 * two accumulators) and written as FIN(acc), an O. `cnt` (elements per output) is in scope.
 * DEFINE_ROW makes NAME_row, the inner == 1 shape; DEFINE_OUTER the driver over a geom. */
#define DEFINE_REDUCE(NAME, T, A, O, INIT, STEP, FIN)                                             \
  DEFINE_ROW(NAME, T, A, INIT, STEP)                                                              \
  DEFINE_OUTER(NAME, T, A, O, INIT, STEP, FIN)

#define DEFINE_ROW(NAME, T, A, INIT, STEP)                                                        \
  static A NAME##_row(const T *x, int64_t n, int64_t s) {                                         \
    if (n > PW) {                                                                                 \
      int64_t h = n / 2;                                                                          \
      A a = NAME##_row(x, h, s), b = NAME##_row(x + h * s, n - h, s);                             \
      return STEP(a, b);                                                                          \
    }                                                                                             \
    A acc[8];                                                                                     \
    for (int k = 0; k < 8; k++) acc[k] = INIT;                                                    \
    int64_t i = 0;                                                                                \
    if (s == 1)                                                                                   \
      for (; i + 8 <= n; i += 8)                                                                  \
        UNROLLED(for (int k = 0; k < 8; k++) acc[k] = STEP(acc[k], x[i + k]);)                    \
    for (; i < n; i++) acc[0] = STEP(acc[0], x[i * s]);                                           \
    for (int k = 1; k < 8; k++) acc[0] = STEP(acc[0], acc[k]);                                    \
    return acc[0];                                                                                \
  }

/* inner > 1: chunks of CH outputs accumulate in memory. Contiguous rows are taken two at a
 * time when they are short (loop overhead) or the accumulator is wider than the data (the
 * conversions make it compute-bound); otherwise one at a time measured faster. */
#define DEFINE_OUTER(NAME, T, A, O, INIT, STEP, FIN)                                              \
  static void NAME(const geom *g, const void *in_, void *out_, int64_t correction) {              \
    (void)correction;                                                                             \
    const T *in = in_;                                                                            \
    O *out = out_;                                                                                \
    const double cnt = (double)g->red;                                                            \
    (void)cnt;                                                                                    \
    for (int64_t o = 0; o < g->outer; o++) {                                                      \
      const T *base = in + o * g->in_os;                                                          \
      O *ob = out + o * g->out_os;                                                                \
      if (g->inner == 1) {                                                                        \
        A a = NAME##_row(base, g->red, g->in_rs);                                                 \
        *ob = FIN(a);                                                                             \
        continue;                                                                                 \
      }                                                                                           \
      for (int64_t j0 = 0; j0 < g->inner; j0 += CH) {                                             \
        const int64_t nj = g->inner - j0 < CH ? g->inner - j0 : CH, is = g->in_is;                \
        A acc[CH], blk[CH];                                                                       \
        for (int64_t j = 0; j < nj; j++) acc[j] = INIT;                                           \
        for (int64_t r0 = 0; r0 < g->red; r0 += PW) {                                             \
          const int64_t r1 = g->red - r0 < PW ? g->red : r0 + PW;                                 \
          for (int64_t j = 0; j < nj; j++) blk[j] = INIT;                                         \
          int64_t r = r0;                                                                         \
          if (is == 1 && (nj < 32 || sizeof(A) > sizeof(T)))                                      \
            for (; r + 2 <= r1; r += 2) {                                                         \
              const T *p0 = base + r * g->in_rs + j0, *p1 = p0 + g->in_rs;                        \
              for (int64_t j = 0; j < nj; j++) blk[j] = STEP(STEP(blk[j], p0[j]), p1[j]);         \
            }                                                                                     \
          for (; r < r1; r++) {                                                                   \
            const T *row = base + r * g->in_rs + j0 * is;                                         \
            for (int64_t j = 0; j < nj; j++) blk[j] = STEP(blk[j], row[j * is]);                  \
          }                                                                                       \
          for (int64_t j = 0; j < nj; j++) acc[j] = STEP(acc[j], blk[j]);                         \
        }                                                                                         \
        for (int64_t j = 0; j < nj; j++) {                                                        \
          A a = acc[j];                                                                           \
          ob[(j0 + j) * g->out_is] = FIN(a);                                                      \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
  }

#define AS_IS(a) (a)
#define STEP_SUM(a, x) ((a) + (x))
#define STEP_PROD(a, x) ((a) * (x))
#define STEP_ALL(a, x) ((uint8_t)((a) & ((x) != 0)))
#define STEP_ANY(a, x) ((uint8_t)((a) | ((x) != 0)))
#define FIN_MEAN(a) ((a) / cnt)

#define GEN_SUMS(E, T, S, LO, HI, SA, SO, ISNAN)                                                  \
  DEFINE_REDUCE(sum_##S, T, SA, SO, (SA)0, STEP_SUM, (SO)AS_IS)                                   \
  DEFINE_REDUCE(prod_##S, T, SA, SO, (SA)1, STEP_PROD, (SO)AS_IS)                                 \
  DEFINE_REDUCE(all_##S, T, uint8_t, uint8_t, 1, STEP_ALL, AS_IS)                                 \
  DEFINE_REDUCE(any_##S, T, uint8_t, uint8_t, 0, STEP_ANY, AS_IS)
/* NaN propagates: a NaN x is taken (a >= x fails), and a NaN accumulator is kept. Written
 * this way round (not x > a || isnan(x)), GCC turns it into vector compares and blends. */
#define GEN_STEPS(E, T, S, LO, HI, SA, SO, ISNAN)                                                 \
  static inline T max_step_##S(T a, T x) { return ((a >= x) | ISNAN(a)) ? a : x; }                \
  static inline T min_step_##S(T a, T x) { return ((a <= x) | ISNAN(a)) ? a : x; }
#define GEN_MINMAX(E, T, S, LO, HI, SA, SO, ISNAN)                                                \
  DEFINE_REDUCE(amax_##S, T, T, T, (T)LO, max_step_##S, AS_IS)                                    \
  DEFINE_REDUCE(amin_##S, T, T, T, (T)HI, min_step_##S, AS_IS)
NATIVE_DTYPES(GEN_SUMS)
NATIVE_DTYPES(GEN_STEPS)
NATIVE_INT_DTYPES(GEN_MINMAX)

/* Float rows of max/min: GCC leaves that two-compare select scalar in straight-line code (the
 * loop vectoriser does handle it in the column loops), so it is spelled out with vector
 * extensions, four 16-byte vectors per step. */
#define DEFINE_FMINMAX_ROW(NAME, T, IT, INIT, CMP, STEP)                                          \
  typedef T NAME##_v __attribute__((vector_size(16)));                                            \
  typedef IT NAME##_m __attribute__((vector_size(16)));                                           \
  static T NAME##_row(const T *x, int64_t n, int64_t s) {                                         \
    enum { W = 16 / sizeof(T) };                                                                  \
    T r = INIT;                                                                                   \
    int64_t i = 0;                                                                                \
    if (s == 1 && n >= 4 * W) {                                                                   \
      NAME##_v acc[4];                                                                            \
      memcpy(acc, x, sizeof acc);                                                                 \
      for (i = 4 * W; i + 4 * W <= n; i += 4 * W) UNROLLED(for (int k = 0; k < 4; k++) {          \
          NAME##_v v;                                                                             \
          memcpy(&v, x + i + k * W, sizeof v);                                                    \
          NAME##_m keep = (acc[k] CMP v) | (acc[k] != acc[k]);                                    \
          acc[k] = (NAME##_v)(((NAME##_m)acc[k] & keep) | ((NAME##_m)v & ~keep));                 \
        })                                                                                        \
      for (int k = 0; k < 4; k++)                                                                 \
        for (int l = 0; l < W; l++) r = STEP(r, acc[k][l]);                                       \
    }                                                                                             \
    for (; i < n; i++) r = STEP(r, x[i * s]);                                                     \
    return r;                                                                                     \
  }
DEFINE_FMINMAX_ROW(amax_f32, float, int32_t, -INFINITY, >=, max_step_f32)
DEFINE_FMINMAX_ROW(amin_f32, float, int32_t, INFINITY, <=, min_step_f32)
DEFINE_FMINMAX_ROW(amax_f64, double, int64_t, -INFINITY, >=, max_step_f64)
DEFINE_FMINMAX_ROW(amin_f64, double, int64_t, INFINITY, <=, min_step_f64)
DEFINE_OUTER(amax_f32, float, float, float, -INFINITY, max_step_f32, AS_IS)
DEFINE_OUTER(amin_f32, float, float, float, INFINITY, min_step_f32, AS_IS)
DEFINE_OUTER(amax_f64, double, double, double, -INFINITY, max_step_f64, AS_IS)
DEFINE_OUTER(amin_f64, double, double, double, INFINITY, min_step_f64, AS_IS)
DEFINE_REDUCE(mean_f32, float, double, float, 0.0, STEP_SUM, (float)FIN_MEAN)
DEFINE_REDUCE(mean_f64, double, double, double, 0.0, STEP_SUM, FIN_MEAN)

/* var/std in two passes (mean, then squared deviations), in float64 and pairwise along rows:
 * stable where the one-pass sum-of-squares formula cancels catastrophically. */
static inline double sq(double d) { return d * d; }
#define DEFINE_VAR(NAME, T, SUMROW, SQRT)                                                         \
  static double NAME##_ssq(const T *x, int64_t n, int64_t s, double mean) {                       \
    if (n > PW) {                                                                                 \
      int64_t h = n / 2;                                                                          \
      return NAME##_ssq(x, h, s, mean) + NAME##_ssq(x + h * s, n - h, s, mean);                   \
    }                                                                                             \
    double acc[8] = {0};                                                                          \
    int64_t i = 0;                                                                                \
    if (s == 1)                                                                                   \
      for (; i + 8 <= n; i += 8)                                                                  \
        UNROLLED(for (int k = 0; k < 8; k++) acc[k] += sq((double)x[i + k] - mean);)              \
    for (; i < n; i++) acc[0] += sq((double)x[i * s] - mean);                                     \
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));     \
  }                                                                                               \
  static void NAME(const geom *g, const void *in_, void *out_, int64_t correction) {              \
    const T *in = in_;                                                                            \
    T *out = out_;                                                                                \
    const double n = (double)g->red, c = (double)correction;                                      \
    const double div = n - c > 0 ? n - c : 0; /* N - correction <= 0: inf or NaN */               \
    for (int64_t o = 0; o < g->outer; o++) {                                                      \
      const T *base = in + o * g->in_os;                                                          \
      T *ob = out + o * g->out_os;                                                                \
      if (g->inner == 1) {                                                                        \
        double mean = SUMROW(base, g->red, g->in_rs) / n;                                         \
        double v = g->red ? NAME##_ssq(base, g->red, g->in_rs, mean) / div : NAN;                 \
        *ob = (T)SQRT(v);                                                                         \
        continue;                                                                                 \
      }                                                                                           \
      for (int64_t j0 = 0; j0 < g->inner; j0 += CH) {                                             \
        const int64_t nj = g->inner - j0 < CH ? g->inner - j0 : CH, is = g->in_is;                \
        double mean[CH], ss[CH];                                                                  \
        for (int64_t j = 0; j < nj; j++) mean[j] = 0, ss[j] = 0;                                  \
        for (int64_t r = 0; r < g->red; r++) {                                                    \
          const T *row = base + r * g->in_rs + j0 * is;                                           \
          if (is == 1)                                                                            \
            for (int64_t j = 0; j < nj; j++) mean[j] += (double)row[j];                           \
          else                                                                                    \
            for (int64_t j = 0; j < nj; j++) mean[j] += (double)row[j * is];                      \
        }                                                                                         \
        for (int64_t j = 0; j < nj; j++) mean[j] /= n;                                            \
        for (int64_t r = 0; r < g->red; r++) {                                                    \
          const T *row = base + r * g->in_rs + j0 * is;                                           \
          if (is == 1)                                                                            \
            for (int64_t j = 0; j < nj; j++) ss[j] += sq((double)row[j] - mean[j]);               \
          else                                                                                    \
            for (int64_t j = 0; j < nj; j++) ss[j] += sq((double)row[j * is] - mean[j]);          \
        }                                                                                         \
        for (int64_t j = 0; j < nj; j++)                                                          \
          ob[(j0 + j) * g->out_is] = (T)SQRT(g->red ? ss[j] / div : NAN);                         \
      }                                                                                           \
    }                                                                                             \
  }
DEFINE_VAR(var_f32, float, sum_f32_row, AS_IS)
DEFINE_VAR(var_f64, double, sum_f64_row, AS_IS)
DEFINE_VAR(std_f32, float, sum_f32_row, sqrt)
DEFINE_VAR(std_f64, double, sum_f64_row, sqrt)

typedef enum rop { OP_SUM, OP_PROD, OP_MEAN, OP_VAR, OP_STD, OP_AMAX, OP_AMIN, OP_ALL, OP_ANY, NUM_OPS } rop;

#define TABLE_ROW(op)                                                                             \
  {                                                                                               \
    NATIVE_DTYPES(ENTRY_##op)                                                                     \
  }
#define ENTRY_sum(E, T, S, ...) [E] = sum_##S,
#define ENTRY_prod(E, T, S, ...) [E] = prod_##S,
#define ENTRY_amax(E, T, S, ...) [E] = amax_##S,
#define ENTRY_amin(E, T, S, ...) [E] = amin_##S,
#define ENTRY_all(E, T, S, ...) [E] = all_##S,
#define ENTRY_any(E, T, S, ...) [E] = any_##S,
/* Missing entries (float16/bfloat16 everywhere, integers for mean/var/std) are NULL. */
static const kern_fn kernels[NUM_OPS][MT_NUM_DTYPES] = {
    [OP_SUM] = TABLE_ROW(sum),
    [OP_PROD] = TABLE_ROW(prod),
    [OP_MEAN] = {[MT_FLOAT32] = mean_f32, [MT_FLOAT64] = mean_f64},
    [OP_VAR] = {[MT_FLOAT32] = var_f32, [MT_FLOAT64] = var_f64},
    [OP_STD] = {[MT_FLOAT32] = std_f32, [MT_FLOAT64] = std_f64},
    [OP_AMAX] = TABLE_ROW(amax),
    [OP_AMIN] = TABLE_ROW(amin),
    [OP_ALL] = TABLE_ROW(all),
    [OP_ANY] = TABLE_ROW(any),
};

/* ---- shared argument handling ---------------------------------------------------------- */

/* The dims to reduce as a bit mask over t's dims; ndims == 0 means all of them. */
static mt_status parse_dims(const mt_tensor *t, int ndims, const int64_t *dims, uint32_t *mask) {
  if (ndims < 0 || (ndims > 0 && !dims)) return mt_fail(MT_EARG, "expected a list of dims, got %d of them", ndims);
  if (ndims == 0) {
    *mask = (1u << t->ndim) - 1;
    return MT_OK;
  }
  uint32_t m = 0;
  for (int i = 0; i < ndims; i++) {
    int d;
    mt_status st = mt_wrap_dim(dims[i], t->ndim, &d);
    if (st) return st;
    if (m >> d & 1) return mt_fail(MT_EARG, "dim %lld appears more than once", MT_SHOW(d));
    m |= 1u << d;
  }
  *mask = m & ((1u << t->ndim) - 1); /* a 0-dim tensor's dim 0 is no real dim */
  return MT_OK;
}

/* Shape of the result: reduced dims dropped, or kept as 1. */
static int reduced_shape(const mt_tensor *t, uint32_t mask, bool keepdim, int64_t *sizes) {
  int n = 0;
  for (int d = 0; d < t->ndim; d++)
    if (!(mask >> d & 1)) sizes[n++] = t->sizes[d];
    else if (keepdim) sizes[n++] = 1;
  return n;
}

/* max and min have no identity: every reduced dim must have elements. */
static mt_status check_nonempty(const mt_tensor *t, uint32_t mask, bool all_dims, const char *what) {
  if (all_dims && mt_numel(t) == 0)
    return mt_fail(MT_ESHAPE, "cannot take the %s of an empty tensor; give a dim of non-zero size", what);
  for (int d = 0; d < t->ndim; d++)
    if ((mask >> d & 1) && t->sizes[d] == 0)
      return mt_fail(MT_ESHAPE, "cannot take the %s over dim %lld: it has size 0", what, MT_SHOW(d));
  return MT_OK;
}

static bool is_half(mt_dtype dt) { return dt == MT_FLOAT16 || dt == MT_BFLOAT16; }

/* If *res's dtype is not dt, replaces it by a converted copy (float32 results of half inputs). */
static mt_status convert_result(mt_tensor **res, mt_dtype dt) {
  if ((*res)->dtype == dt) return MT_OK;
  mt_tensor *c;
  mt_status st = mt_to_dtype(&c, *res, dt);
  mt_tensor_release(*res);
  *res = st ? NULL : c;
  return st;
}

/* ---- value reductions ------------------------------------------------------------------ */

typedef struct kern_ctx {
  kern_fn fn;
  mt_tensor *res;
  int64_t correction;
} kern_ctx;

static void run_kernel(const geom *g, const mt_tensor *x, void *vctx) {
  kern_ctx *c = vctx;
  c->fn(g, mt_data(x), mt_data(c->res), c->correction);
}

static mt_status reduce(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim, rop op,
                        int64_t correction) {
  uint32_t mask;
  mt_status st = parse_dims(t, ndims, dims, &mask);
  if (st) return st;
  const mt_dtype dt = t->dtype;
  const bool fl = mt_dtype_is_float(dt);
  if ((op == OP_MEAN || op == OP_VAR || op == OP_STD) && !fl)
    return mt_fail(MT_EDTYPE, "expected a floating-point tensor, got %s", mt_dtype_name(dt));
  if (op == OP_AMAX || op == OP_AMIN) {
    if ((st = check_nonempty(t, mask, ndims == 0, op == OP_AMAX ? "max" : "min"))) return st;
  }
  mt_dtype rdt = dt; /* PyTorch's result dtypes; all/any keep uint8 as it does */
  if (op == OP_SUM || op == OP_PROD) rdt = fl ? dt : MT_INT64;
  if (op == OP_ALL || op == OP_ANY) rdt = dt == MT_UINT8 ? MT_UINT8 : MT_BOOL;

  mt_tensor *x = NULL, *res = NULL;
  if ((st = mt_to_dtype(&x, t, is_half(dt) ? MT_FLOAT32 : dt))) return st;
  int64_t sizes[MT_MAX_DIMS];
  int n = reduced_shape(t, mask, keepdim, sizes);
  if (!(st = mt_empty(&res, is_half(rdt) ? MT_FLOAT32 : rdt, n, sizes))) {
    kern_ctx c = {kernels[op][x->dtype], res, correction};
    st = with_plan(x, mask, mt_numel(res), run_kernel, &c);
  }
  mt_tensor_release(x);
  if (!st) st = convert_result(&res, rdt);
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

/* ---- backward ---------------------------------------------------------------------------
 * Formulas as PyTorch 1.13's derivatives.yaml, written with the core's own ops (grad mode is
 * off while they run). A gradient is first given the input's rank (`unreduce`: reduced dims
 * back as size 1), then broadcasts against the input. */

/* Intermediates of a formula: one release frees them all, and after the first failure every
 * later step is a no-op returning NULL, so formulas read as plain chains of calls. */
#define SCRATCH_MAX 32
typedef struct scratch {
  mt_status st;
  int n;
  mt_tensor *held[SCRATCH_MAX];
} scratch;

/* Takes the result of a call that just wrote *t and returned st. */
static mt_tensor *hold(scratch *s, mt_status st, mt_tensor **t) {
  if (st) return s->st = st, NULL;
  if (s->n == SCRATCH_MAX) {
    mt_tensor_release(*t);
    return s->st = mt_fail(MT_ENOMEM, "a backward formula needs more than %d temporaries", SCRATCH_MAX), NULL;
  }
  return s->held[s->n++] = *t;
}
static void scratch_free(scratch *s) {
  for (int i = 0; i < s->n; i++) mt_tensor_release(s->held[i]);
}
/* Hands r (held by s) to *out with its own reference, frees the rest; returns s's status. */
static mt_status scratch_result(scratch *s, mt_tensor *r, mt_tensor **out) {
  if (!s->st) mt_tensor_retain(r), *out = r;
  scratch_free(s);
  return s->st;
}
static mt_tensor *bin(scratch *s, mt_binop op, const mt_tensor *x, const mt_tensor *y) {
  mt_tensor *r = NULL;
  return s->st ? NULL : hold(s, mt_binary(&r, op, x, y), &r);
}
static mt_tensor *num(scratch *s, double v) {
  mt_tensor *r = NULL;
  return s->st ? NULL : hold(s, mt_wrap_number(&r, mt_scalar_float(v)), &r);
}
static mt_tensor *where(scratch *s, const mt_tensor *c, const mt_tensor *x, const mt_tensor *y) {
  mt_tensor *r = NULL;
  return s->st ? NULL : hold(s, mt_where(&r, c, x, y), &r);
}
/* A reduction over the dims in `mask`, keeping them (as size 1). */
static mt_tensor *red(scratch *s, rop op, const mt_tensor *x, uint32_t mask) {
  int64_t dims[MT_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < x->ndim; d++)
    if (mask >> d & 1) dims[n++] = d;
  mt_tensor *r = NULL;
  if (s->st) return NULL;
  if (n == 0) return hold(s, mt_alias(&r, x), &r); /* 0-dim: nothing to reduce */
  return hold(s, reduce(&r, x, n, dims, true, op, 0), &r);
}
/* g, shaped like the result, as a view of rank ndim with the reduced dims back as size 1. */
static mt_tensor *unreduce(scratch *s, const mt_tensor *g, int ndim, uint32_t mask, bool keepdim) {
  mt_tensor *r = NULL;
  if (s->st) return NULL;
  if (keepdim || mask == 0) return hold(s, mt_alias(&r, g), &r);
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  for (int d = 0, j = 0; d < ndim; d++)
    if (mask >> d & 1) sz[d] = 1, sd[d] = 1;
    else sz[d] = g->sizes[j], sd[d] = g->strides[j], j++;
  return hold(s, mt_make_view(&r, g, g->offset, ndim, sz, sd), &r);
}

typedef struct reduce_node {
  mt_node base;
  rop op;
  uint32_t mask;
  bool keepdim;
  int64_t correction;
  mt_saved x, out;
} reduce_node;

static void reduce_release(mt_node *n) {
  reduce_node *r = (reduce_node *)n;
  mt_saved_release(&r->x);
  mt_saved_release(&r->out);
}

/* var' = 2 (x - mean) / (N - correction), times the incoming gradient gk. */
static mt_tensor *var_grad(scratch *s, const mt_tensor *gk, const mt_tensor *x, uint32_t mask, int64_t n,
                           int64_t correction) {
  mt_tensor *dev = bin(s, MT_SUB, x, red(s, OP_MEAN, x, mask));
  return bin(s, MT_MUL, bin(s, MT_MUL, gk, dev), num(s, 2.0 / (double)(n - correction)));
}

/* prod' is the product of the other elements: out / x while no element is zero. With zeros
 * (PyTorch's prod_backward): the one zero of a slice gets the product of the others, every
 * other element 0; a slice with two or more zeros gives 0 throughout. */
static mt_tensor *prod_grad(scratch *s, const mt_tensor *gk, const mt_tensor *x, const mt_tensor *outk, uint32_t mask) {
  mt_tensor *zero = num(s, 0), *one = num(s, 1), *is_zero = bin(s, MT_EQ, x, zero), *any = NULL;
  mt_scalar has_zero = {0};
  if (!s->st && hold(s, mt_any(&any, is_zero, 0, NULL, false), &any)) s->st = mt_item(any, &has_zero);
  if (s->st) return NULL;
  if (!has_zero.i) return bin(s, MT_DIV, bin(s, MT_MUL, gk, outk), x);
  mt_tensor *x1 = where(s, is_zero, one, x);   /* zeros out of the way */
  mt_tensor *others = red(s, OP_PROD, x1, mask); /* product of the non-zeros */
  mt_tensor *count = red(s, OP_SUM, is_zero, mask);
  mt_tensor *at_zero = where(s, bin(s, MT_EQ, count, one), others, zero);
  mt_tensor *elsewhere = bin(s, MT_DIV, where(s, bin(s, MT_EQ, count, zero), others, zero), x1);
  return bin(s, MT_MUL, gk, where(s, is_zero, at_zero, elsewhere));
}

static mt_status reduce_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  reduce_node *rn = (reduce_node *)n;
  const mt_edge *e = &n->next[0];
  if (!gout[0] || !mt_edge_live(e)) return MT_OK;
  mt_tensor *x = NULL, *out = NULL;
  mt_status st;
  if (rn->x.t && (st = mt_saved_get(&rn->x, n, &x))) return st;
  if (rn->out.t && (st = mt_saved_get(&rn->out, n, &out))) return st;
  int64_t count = 1; /* elements per slice */
  for (int d = 0; d < e->ndim; d++)
    if (rn->mask >> d & 1) count *= e->sizes[d];

  scratch s = {0};
  mt_tensor *gk = unreduce(&s, gout[0], e->ndim, rn->mask, rn->keepdim), *r = NULL;
  mt_tensor *outk = out ? unreduce(&s, out, e->ndim, rn->mask, rn->keepdim) : NULL;
  switch (rn->op) {
  case OP_SUM:
    if (!s.st) r = hold(&s, mt_expand(&r, gk, e->ndim, e->sizes), &r);
    break;
  case OP_MEAN: {
    mt_tensor *scaled = bin(&s, MT_DIV, gk, num(&s, (double)count));
    if (!s.st) r = hold(&s, mt_expand(&r, scaled, e->ndim, e->sizes), &r);
    break;
  }
  case OP_PROD:
    r = prod_grad(&s, gk, x, outk, rn->mask);
    break;
  case OP_VAR:
    r = var_grad(&s, gk, x, rn->mask, count, rn->correction);
    break;
  case OP_STD: { /* std' = var' / (2 std), and 0 where std is 0 */
    mt_tensor *gv = bin(&s, MT_DIV, gk, bin(&s, MT_MUL, outk, num(&s, 2)));
    gv = where(&s, bin(&s, MT_EQ, outk, num(&s, 0)), num(&s, 0), gv);
    r = var_grad(&s, gv, x, rn->mask, count, rn->correction);
    break;
  }
  case OP_AMAX:
  case OP_AMIN: { /* split evenly among the elements equal to the result */
    mt_tensor *hit = bin(&s, MT_EQ, x, outk);
    r = bin(&s, MT_MUL, bin(&s, MT_DIV, gk, red(&s, OP_SUM, hit, rn->mask)), hit);
    break;
  }
  default:
    s.st = mt_fail(MT_ESTATE, "%s has no gradient", n->name);
  }
  return scratch_result(&s, r, &gin[0]);
}

static const char *const reduce_names[NUM_OPS][2] = {
    /* [op][dims given] */
    [OP_SUM] = {"SumBackward0", "SumBackward1"},   [OP_PROD] = {"ProdBackward0", "ProdBackward1"},
    [OP_MEAN] = {"MeanBackward0", "MeanBackward1"}, [OP_VAR] = {"VarBackward0", "VarBackward0"},
    [OP_STD] = {"StdBackward0", "StdBackward0"},   [OP_AMAX] = {"AmaxBackward0", "AmaxBackward0"},
    [OP_AMIN] = {"AminBackward0", "AminBackward0"},
};

/* reduce(), recording a node when t requires grad. The forward then runs with grad mode off,
 * so that its internal conversions and copies record nothing. */
static mt_status reduce_rec(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim, rop op,
                            int64_t correction) {
  if (!reduce_names[op][0] || !mt_grad_needed(1, &t)) return reduce(out, t, ndims, dims, keepdim, op, correction);
  mt_tensor *res;
  mt_set_grad_enabled(false);
  mt_status st = reduce(&res, t, ndims, dims, keepdim, op, correction);
  mt_set_grad_enabled(true);
  if (st) return st;
  reduce_node *n = (reduce_node *)mt_node_new(sizeof *n, reduce_names[op][ndims > 0], reduce_backward, reduce_release,
                                               1, &t, 1);
  if (!n) st = MT_ENOMEM;
  else {
    parse_dims(t, ndims, dims, &n->mask); /* checked by the forward */
    n->op = op, n->keepdim = keepdim, n->correction = correction;
    if (op != OP_SUM && op != OP_MEAN) st = mt_save_tensor(&n->x, t);
    if (!st && (op == OP_PROD || op == OP_STD || op == OP_AMAX || op == OP_AMIN)) st = mt_save_tensor(&n->out, res);
    if (!st) mt_node_set_output(&n->base, res, 0);
    mt_node_release(&n->base);
  }
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

/* While tracing, a reduction that succeeded records itself; passes st through. */
static mt_status traced_reduce(mt_status st, const char *op, const mt_tensor *t, mt_tensor **out, int ndims,
                               const int64_t *dims, bool keepdim) {
  if (st == MT_OK && mt_tracing()) mt_trace_record(op, 1, &t, 1, out, "dims=In keepdim=b", ndims, dims, (int)keepdim);
  return st;
}
static mt_status traced_corrected(mt_status st, const char *op, const mt_tensor *t, mt_tensor **out, int ndims,
                                  const int64_t *dims, int64_t correction, bool keepdim) {
  if (st == MT_OK && mt_tracing())
    mt_trace_record(op, 1, &t, 1, out, "dims=In correction=i keepdim=b", ndims, dims, correction, (int)keepdim);
  return st;
}

MT_API mt_status mt_sum(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim) {
  return traced_reduce(reduce_rec(out, t, ndims, dims, keepdim, OP_SUM, 0), "sum", t, out, ndims, dims, keepdim);
}
MT_API mt_status mt_prod(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim) {
  return traced_reduce(reduce_rec(out, t, ndims, dims, keepdim, OP_PROD, 0), "prod", t, out, ndims, dims, keepdim);
}
MT_API mt_status mt_mean(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim) {
  return traced_reduce(reduce_rec(out, t, ndims, dims, keepdim, OP_MEAN, 0), "mean", t, out, ndims, dims, keepdim);
}
MT_API mt_status mt_var(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, int64_t correction,
                        bool keepdim) {
  return traced_corrected(reduce_rec(out, t, ndims, dims, keepdim, OP_VAR, correction), "var", t, out, ndims, dims,
                          correction, keepdim);
}
MT_API mt_status mt_std(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, int64_t correction,
                        bool keepdim) {
  return traced_corrected(reduce_rec(out, t, ndims, dims, keepdim, OP_STD, correction), "std", t, out, ndims, dims,
                          correction, keepdim);
}
MT_API mt_status mt_amax(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim) {
  return traced_reduce(reduce_rec(out, t, ndims, dims, keepdim, OP_AMAX, 0), "amax", t, out, ndims, dims, keepdim);
}
MT_API mt_status mt_amin(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim) {
  return traced_reduce(reduce_rec(out, t, ndims, dims, keepdim, OP_AMIN, 0), "amin", t, out, ndims, dims, keepdim);
}
MT_API mt_status mt_all(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim) {
  return traced_reduce(reduce(out, t, ndims, dims, keepdim, OP_ALL, 0), "all", t, out, ndims, dims, keepdim);
}
MT_API mt_status mt_any(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim) {
  return traced_reduce(reduce(out, t, ndims, dims, keepdim, OP_ANY, 0), "any", t, out, ndims, dims, keepdim);
}

/* ---- value-and-index reductions -------------------------------------------------------- */

typedef void (*arg_fn)(const geom *g, const void *in, void *vals, int64_t *idx);

/* Keeps the first best element: a later one must be strictly better, and a NaN beats every
 * number (so the first NaN wins and ends the scan). Needs g->red >= 1; vals may be NULL. */
#define DEFINE_ARG(NAME, T, BETTER, ISNAN)                                                        \
  static void NAME(const geom *g, const void *in_, void *vals_, int64_t *idx) {                   \
    const T *in = in_;                                                                            \
    T *vals = vals_;                                                                              \
    for (int64_t o = 0; o < g->outer; o++) {                                                      \
      const T *base = in + o * g->in_os;                                                          \
      const int64_t ob = o * g->out_os;                                                           \
      if (g->inner == 1) {                                                                        \
        T best = base[0];                                                                         \
        int64_t bi = 0;                                                                           \
        for (int64_t r = 1; r < g->red; r++) {                                                    \
          T x = base[r * g->in_rs];                                                               \
          if (BETTER(x, best, ISNAN)) {                                                           \
            best = x, bi = r;                                                                     \
            if (ISNAN(x)) break;                                                                  \
          }                                                                                       \
        }                                                                                         \
        if (vals) vals[ob] = best;                                                                \
        idx[ob] = bi;                                                                             \
        continue;                                                                                 \
      }                                                                                           \
      for (int64_t j0 = 0; j0 < g->inner; j0 += CH) {                                             \
        const int64_t nj = g->inner - j0 < CH ? g->inner - j0 : CH, is = g->in_is;                \
        T best[CH];                                                                               \
        int64_t bi[CH];                                                                           \
        for (int64_t j = 0; j < nj; j++) best[j] = base[(j0 + j) * is], bi[j] = 0;                \
        for (int64_t r = 1; r < g->red; r++) {                                                    \
          const T *row = base + r * g->in_rs + j0 * is;                                           \
          for (int64_t j = 0; j < nj; j++) {                                                      \
            T x = row[j * is];                                                                    \
            if (BETTER(x, best[j], ISNAN)) best[j] = x, bi[j] = r;                                \
          }                                                                                       \
        }                                                                                         \
        for (int64_t j = 0; j < nj; j++) {                                                        \
          if (vals) vals[ob + (j0 + j) * g->out_is] = best[j];                                    \
          idx[ob + (j0 + j) * g->out_is] = bi[j];                                                 \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
  }
#define BETTER_MAX(x, b, ISNAN) ((x) > (b) || (ISNAN(x) && !ISNAN(b)))
#define BETTER_MIN(x, b, ISNAN) ((x) < (b) || (ISNAN(x) && !ISNAN(b)))
#define GEN_ARG(E, T, S, LO, HI, SA, SO, ISNAN)                                                   \
  DEFINE_ARG(argmax_##S, T, BETTER_MAX, ISNAN)                                                    \
  DEFINE_ARG(argmin_##S, T, BETTER_MIN, ISNAN)
NATIVE_DTYPES(GEN_ARG)
#define ENTRY_argmax(E, T, S, ...) [E] = argmax_##S,
#define ENTRY_argmin(E, T, S, ...) [E] = argmin_##S,
static const arg_fn arg_kernels[2][MT_NUM_DTYPES] = {TABLE_ROW(argmin), TABLE_ROW(argmax)};

typedef struct arg_ctx {
  arg_fn fn;
  mt_tensor *vals, *idx;
} arg_ctx;

static void run_arg(const geom *g, const mt_tensor *x, void *vctx) {
  arg_ctx *c = vctx;
  c->fn(g, mt_data(x), c->vals ? mt_data(c->vals) : NULL, mt_data(c->idx));
}

/* values may be NULL (argmax/argmin). all_dims gives the flat row-major index. */
static mt_status arg_reduce(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, bool all_dims, int64_t dim,
                            bool keepdim, bool is_max, const char *what) {
  uint32_t mask;
  mt_status st = parse_dims(t, all_dims ? 0 : 1, &dim, &mask);
  if (st || (st = check_nonempty(t, mask, all_dims, what))) return st;
  /* The flat index needs row-major order: a layout the plan might reorder gets copied. */
  mt_tensor *x = NULL, *vals = NULL, *idx = NULL;
  if ((st = mt_to_dtype(&x, t, is_half(t->dtype) ? MT_FLOAT32 : t->dtype))) return st;
  if (all_dims && !mt_is_contiguous(x)) {
    mt_tensor *c;
    st = mt_contiguous(&c, x);
    mt_tensor_release(x);
    if (st) return st;
    x = c;
  }
  int64_t sizes[MT_MAX_DIMS];
  int n = reduced_shape(t, mask, keepdim, sizes);
  if (!(st = mt_empty(&idx, MT_INT64, n, sizes)) && (!values || !(st = mt_empty(&vals, x->dtype, n, sizes)))) {
    arg_ctx c = {arg_kernels[is_max][x->dtype], vals, idx};
    st = with_plan(x, mask, mt_numel(idx), run_arg, &c);
  }
  mt_tensor_release(x);
  if (!st && vals) st = convert_result(&vals, t->dtype);
  if (st) {
    mt_tensor_release(vals);
    mt_tensor_release(idx);
    return st;
  }
  if (values) *values = vals;
  *indices = idx;
  return MT_OK;
}

/* max/min along a dim: the gradient goes to the selected index (ties: the one reported). */
typedef struct select_node {
  mt_node base;
  int dim;
  bool keepdim;
  mt_saved idx;
} select_node;

static void select_release(mt_node *n) { mt_saved_release(&((select_node *)n)->idx); }

static mt_status select_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  select_node *sn = (select_node *)n;
  const mt_edge *e = &n->next[0];
  mt_tensor *idx, *g = gout[0];
  mt_status st;
  if (!g || !mt_edge_live(e)) return MT_OK;
  if ((st = mt_saved_get(&sn->idx, n, &idx))) return st;
  if (e->ndim == 0) return mt_tensor_retain(g), gin[0] = g, MT_OK;
  uint32_t mask = 1u << sn->dim;
  scratch s = {0};
  mt_tensor *zeros = NULL, *r = NULL;
  hold(&s, mt_zeros(&zeros, g->dtype, e->ndim, e->sizes), &zeros);
  mt_tensor *gk = unreduce(&s, g, e->ndim, mask, sn->keepdim), *ik = unreduce(&s, idx, e->ndim, mask, sn->keepdim);
  if (!s.st) hold(&s, mt_scatter(&r, zeros, sn->dim, ik, gk), &r);
  return scratch_result(&s, r, &gin[0]);
}

static mt_status select_rec(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t dim, bool keepdim,
                            bool is_max) {
  const char *what = is_max ? "max" : "min";
  if (!values || !mt_grad_needed(1, &t)) return arg_reduce(values, indices, t, false, dim, keepdim, is_max, what);
  mt_tensor *vals, *idx;
  mt_set_grad_enabled(false);
  mt_status st = arg_reduce(&vals, &idx, t, false, dim, keepdim, is_max, what);
  mt_set_grad_enabled(true);
  if (st) return st;
  select_node *n = (select_node *)mt_node_new(sizeof *n, is_max ? "MaxBackward0" : "MinBackward0", select_backward,
                                               select_release, 1, &t, 1);
  if (!n) st = MT_ENOMEM;
  else {
    mt_wrap_dim(dim, t->ndim, &n->dim); /* checked by the forward */
    n->keepdim = keepdim;
    if (!(st = mt_save_tensor(&n->idx, idx))) mt_node_set_output(&n->base, vals, 0);
    mt_node_release(&n->base);
  }
  if (st) {
    mt_tensor_release(vals);
    mt_tensor_release(idx);
    return st;
  }
  *values = vals;
  *indices = idx;
  return MT_OK;
}

static mt_status traced_select(mt_status st, const char *op, const mt_tensor *t, mt_tensor **values,
                               mt_tensor **indices, int64_t dim, bool keepdim) {
  if (st == MT_OK && mt_tracing() && values && indices) {
    mt_tensor *outs[2] = {*values, *indices};
    mt_trace_record(op, 1, &t, 2, outs, "dim=i keepdim=b", dim, (int)keepdim);
  }
  return st;
}
static mt_status traced_arg(mt_status st, const char *op, const mt_tensor *t, mt_tensor **out, bool all_dims,
                            int64_t dim, bool keepdim) {
  if (st == MT_OK && mt_tracing())
    mt_trace_record(op, 1, &t, 1, out, "all_dims=b dim=i keepdim=b", (int)all_dims, dim, (int)keepdim);
  return st;
}

MT_API mt_status mt_max_dim(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t dim, bool keepdim) {
  return traced_select(select_rec(values, indices, t, dim, keepdim, true), "max_dim", t, values, indices, dim, keepdim);
}
MT_API mt_status mt_min_dim(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t dim, bool keepdim) {
  return traced_select(select_rec(values, indices, t, dim, keepdim, false), "min_dim", t, values, indices, dim,
                       keepdim);
}
MT_API mt_status mt_argmax(mt_tensor **out, const mt_tensor *t, bool all_dims, int64_t dim, bool keepdim) {
  return traced_arg(arg_reduce(NULL, out, t, all_dims, dim, keepdim, true, "argmax"), "argmax", t, out, all_dims, dim,
                    keepdim);
}
MT_API mt_status mt_argmin(mt_tensor **out, const mt_tensor *t, bool all_dims, int64_t dim, bool keepdim) {
  return traced_arg(arg_reduce(NULL, out, t, all_dims, dim, keepdim, false, "argmin"), "argmin", t, out, all_dims,
                    dim, keepdim);
}
