/*
 * nn_pool.c — max_pool2d (with indices), avg_pool2d and adaptive_avg_pool2d over inputs
 * [N, C, H, W] or [C, H, W], each with its backward.
 *
 * Every op walks the input as N*C independent H x W planes (a contiguous copy is made once
 * if the input is laid out otherwise) and follows PyTorch 1.13's CPU kernels exactly:
 *  - output sizes: floor((H + 2p - d(k-1) - 1) / s) + 1, or the ceiling with ceil_mode, where
 *    a last window that would start in the right padding is dropped;
 *  - max: padding acts as -inf (a window scans only its in-image positions), the first
 *    maximum wins, a NaN wins over everything and the last NaN is kept; the index is the flat
 *    position in the input plane, and the backward routes each gradient to it;
 *  - avg: a window is clipped to the padded image, count_include_pad divides by that size,
 *    otherwise by the number of in-image elements;
 *  - adaptive avg: output cell i covers [floor(i*H/Ho), ceil((i+1)*H/Ho)).
 * Sums accumulate in double. Kernels are generated per dtype (float32, float64).
 * MaxPool2d(2) on float32 without indices asked for (the usual training case) has its own
 * kernels: the node saves one byte per output (which of the 4 window positions won) instead
 * of int64 indices, and the backward writes gx window by window with no memset or scatter;
 * AVX2 variants are picked at run time (see codes_fwd).
 */
#include "mt_internal.h"

#include <math.h>

/* POOL_MAX2X2: a float32 is_2x2 max pool whose node keeps window codes (see codes_fwd). */
typedef enum pool_kind { POOL_MAX, POOL_AVG, POOL_ADAPTIVE, POOL_MAX2X2 } pool_kind;

typedef struct pool_geom {
  mt_dtype dtype;
  int64_t planes, H, W, Ho, Wo;
  int64_t kH, kW, sH, sW, pH, pW, dH, dW; /* unused by the adaptive pool */
  bool count_include_pad;
} pool_geom;

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The first position at or after `start` (stepping by `step`) that is not negative. */
static inline int64_t first_inside(int64_t start, int64_t step) {
  return start >= 0 ? start : start + (-start + step - 1) / step * step;
}

/* The adaptive window of output cell a out of `out` over `in` positions (PyTorch's integer
 * forms of floor(a * in / out) and ceil((a + 1) * in / out)). */
static inline int64_t adaptive_start(int64_t a, int64_t out, int64_t in) { return (a / out) * in + ((a % out) * in) / out; }
static inline int64_t adaptive_end(int64_t a, int64_t out, int64_t in) { return 1 + ((a + 1) * in - 1) / out; }

/* The avg window of output (oh, ow) clipped to the image, and the divisor for it. False when
 * nothing of it lies in the image. */
static inline bool avg_window(const pool_geom *g, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1, int64_t *w0,
                              int64_t *w1, double *div) {
  int64_t a0 = oh * g->sH - g->pH, b0 = ow * g->sW - g->pW;
  int64_t a1 = min64(a0 + g->kH, g->H + g->pH), b1 = min64(b0 + g->kW, g->W + g->pW);
  int64_t padded = (a1 - a0) * (b1 - b0);
  a0 = max64(a0, 0), b0 = max64(b0, 0), a1 = min64(a1, g->H), b1 = min64(b1, g->W);
  if (a0 >= a1 || b0 >= b1) return false;
  *h0 = a0, *h1 = a1, *w0 = b0, *w1 = b1;
  *div = (double)(g->count_include_pad ? padded : (a1 - a0) * (b1 - b0));
  return true;
}

/* ---- kernels, per dtype ------------------------------------------------------------------- */

/* 2x2 windows, stride 2, no padding or dilation, every window inside the image (the common
 * MaxPool2d(2)): the same scan order and tie/NaN rules as the general loop (row 0 then row 1,
 * left to right; a later value wins if greater or NaN), with the window's offsets unrolled.
 * `lo` is where the plain loop starts in each output row (the float32 version does whole rows
 * of 4 or more windows four at a time in SSE2: the compare-and-selects are branches in scalar
 * code, and random data mispredicts them). */
#define DEF_MAX2X2(T, P, VECTOR_PART)                                                            \
  static void max2x2_##P(const T *x, T *restrict y, int64_t *restrict ind, int64_t p0, int64_t p1, \
                         int64_t H, int64_t W, int64_t Ho, int64_t Wo) {                         \
    for (int64_t p = p0; p < p1; p++) {                                                          \
      const T *xp = x + p * H * W;                                                               \
      for (int64_t oh = 0; oh < Ho; oh++) {                                                      \
        const T *r0 = xp + 2 * oh * W, *r1 = r0 + W;                                             \
        const int64_t base = 2 * oh * W;                                                         \
        int64_t lo = 0;                                                                          \
        VECTOR_PART                                                                              \
        for (int64_t ow = lo; ow < Wo; ow++) {                                                   \
          const int64_t c = 2 * ow;                                                              \
          T m = r0[c];                                                                           \
          int64_t best = base + c;                                                               \
          const T v1 = r0[c + 1], v2 = r1[c], v3 = r1[c + 1];                                    \
          if (v1 > m || isnan(v1)) m = v1, best = base + c + 1;                                  \
          if (v2 > m || isnan(v2)) m = v2, best = base + W + c;                                  \
          if (v3 > m || isnan(v3)) m = v3, best = base + W + c + 1;                              \
          y[ow] = m;                                                                             \
          ind[ow] = best;                                                                        \
        }                                                                                        \
        y += Wo, ind += Wo;                                                                      \
      }                                                                                          \
    }                                                                                            \
  }

#if defined(__SSE2__)
#include <emmintrin.h>
/* Four windows at once: even/odd columns of both rows split out by shuffles; `t` marks the
 * lanes where the candidate wins (greater, or NaN: cmpunord(v, v)); off is the winner's
 * offset in the window (0, 1, W, W + 1), widened to int64 for the index. */
static inline __m128 sel_ps(__m128 t, __m128 a, __m128 b) { return _mm_or_ps(_mm_and_ps(t, a), _mm_andnot_ps(t, b)); }
static inline __m128i sel_i32(__m128 t, __m128i a, __m128i b) {
  __m128i m = _mm_castps_si128(t);
  return _mm_or_si128(_mm_and_si128(m, a), _mm_andnot_si128(m, b));
}
#define MAX2X2_SSE                                                                               \
  {                                                                                              \
    const __m128i o1 = _mm_set1_epi32(1), oW = _mm_set1_epi32((int32_t)W),                      \
                  oW1 = _mm_set1_epi32((int32_t)W + 1), zero = _mm_setzero_si128();              \
    /* a row's last windows: one step ending at the row's end redoes a few (same values) */   \
    const bool vec = Wo >= 4 && W < INT32_MAX;                                                   \
    for (int64_t q = 0; vec && q < Wo; q += 4) {                                                 \
      const int64_t at = q + 4 <= Wo ? q : Wo - 4, c = 2 * at;                                   \
      const __m128 a0 = _mm_loadu_ps(r0 + c), a1 = _mm_loadu_ps(r0 + c + 4);                    \
      const __m128 b0 = _mm_loadu_ps(r1 + c), b1 = _mm_loadu_ps(r1 + c + 4);                    \
      const __m128 e0 = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));                        \
      const __m128 d0 = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));                        \
      const __m128 e1 = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));                        \
      const __m128 d1 = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));                        \
      __m128 m = e0, t;                                                                          \
      __m128i off = zero;                                                                        \
      t = _mm_or_ps(_mm_cmpgt_ps(d0, m), _mm_cmpunord_ps(d0, d0));                              \
      m = sel_ps(t, d0, m), off = sel_i32(t, o1, off);                                           \
      t = _mm_or_ps(_mm_cmpgt_ps(e1, m), _mm_cmpunord_ps(e1, e1));                              \
      m = sel_ps(t, e1, m), off = sel_i32(t, oW, off);                                           \
      t = _mm_or_ps(_mm_cmpgt_ps(d1, m), _mm_cmpunord_ps(d1, d1));                              \
      m = sel_ps(t, d1, m), off = sel_i32(t, oW1, off);                                          \
      _mm_storeu_ps(y + at, m);                                                                  \
      const __m128i pos = _mm_set_epi64x(base + c + 2, base + c);                                \
      const __m128i two = _mm_set1_epi64x(4);                                                    \
      _mm_storeu_si128((__m128i *)(ind + at), _mm_add_epi64(pos, _mm_unpacklo_epi32(off, zero))); \
      _mm_storeu_si128((__m128i *)(ind + at + 2), _mm_add_epi64(_mm_add_epi64(pos, two), _mm_unpackhi_epi32(off, zero))); \
    }                                                                                            \
    if (vec) lo = Wo;                                                                            \
  }
#else
#define MAX2X2_SSE
#endif
DEF_MAX2X2(float, s, MAX2X2_SSE)
DEF_MAX2X2(double, d, )

/* ---- 2x2 max with window codes (float32, no indices asked for) ------------------------------ */

/* The common MaxPool2d(2) in training: the caller does not want indices, so the node keeps one
 * byte per output instead of an int64 flat index - the winner's place in its window (0: top
 * left, 1: top right, 2: bottom left, 3: bottom right) - and the backward writes each 2x2
 * window of gx whole (the gradient at the winner, 0 elsewhere) in one streaming pass, with no
 * memset and no scatter. Same scan order and tie/NaN rules as max2x2_s. Without a node (no
 * grad) `code` is NULL and only y is written. Rows are done 8 (AVX2) or 4 (SSE2) windows at a
 * time; a row's last few windows are redone by one vector step ending at the row's end
 * (idempotent: the same values are rewritten), so no scalar tail runs for Wo >= 4. */

/* One window in scalar code (rows shorter than a vector step). */
static inline void win_fwd(const float *r0, const float *r1, float *y, uint8_t *code) {
  float m = r0[0], v;
  uint8_t k = 0;
  if ((v = r0[1]) > m || isnan(v)) m = v, k = 1;
  if ((v = r1[0]) > m || isnan(v)) m = v, k = 2;
  if ((v = r1[1]) > m || isnan(v)) m = v, k = 3;
  *y = m;
  if (code) *code = k;
}

/* gy + 0 turns -0 into +0, as the reference's zero-fill-then-add does. */
static inline void win_bwd(float g, uint8_t k, float *g0, float *g1) {
  g += 0.0f;
  g0[0] = k == 0 ? g : 0.0f, g0[1] = k == 1 ? g : 0.0f;
  g1[0] = k == 2 ? g : 0.0f, g1[1] = k == 3 ? g : 0.0f;
}

#if defined(__SSE2__)
/* Windows ow..ow+3 of a row pair. */
static inline void fwd4(const float *r0, const float *r1, float *y, uint8_t *code, int64_t ow) {
  const int64_t c = 2 * ow;
  const __m128 a0 = _mm_loadu_ps(r0 + c), a1 = _mm_loadu_ps(r0 + c + 4);
  const __m128 b0 = _mm_loadu_ps(r1 + c), b1 = _mm_loadu_ps(r1 + c + 4);
  const __m128 e0 = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)), d0 = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
  const __m128 e1 = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), d1 = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
  __m128 m = e0, t;
  __m128i k = _mm_setzero_si128();
  t = _mm_or_ps(_mm_cmpgt_ps(d0, m), _mm_cmpunord_ps(d0, d0));
  m = sel_ps(t, d0, m), k = sel_i32(t, _mm_set1_epi32(1), k);
  t = _mm_or_ps(_mm_cmpgt_ps(e1, m), _mm_cmpunord_ps(e1, e1));
  m = sel_ps(t, e1, m), k = sel_i32(t, _mm_set1_epi32(2), k);
  t = _mm_or_ps(_mm_cmpgt_ps(d1, m), _mm_cmpunord_ps(d1, d1));
  m = sel_ps(t, d1, m), k = sel_i32(t, _mm_set1_epi32(3), k);
  _mm_storeu_ps(y + ow, m);
  if (code) {
    k = _mm_packus_epi16(_mm_packs_epi32(k, k), k);
    const int32_t b = _mm_cvtsi128_si32(k);
    memcpy(code + ow, &b, 4);
  }
}

static inline void bwd4(const float *gy, const uint8_t *code, float *g0, float *g1, int64_t ow) {
  const __m128 g = _mm_add_ps(_mm_loadu_ps(gy + ow), _mm_setzero_ps());
  int32_t b;
  memcpy(&b, code + ow, 4);
  const __m128i z = _mm_setzero_si128();
  const __m128i k = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(b), z), z);
  const __m128 w0 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(k, z)), g);
  const __m128 w1 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(k, _mm_set1_epi32(1))), g);
  const __m128 w2 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(k, _mm_set1_epi32(2))), g);
  const __m128 w3 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(k, _mm_set1_epi32(3))), g);
  _mm_storeu_ps(g0 + 2 * ow, _mm_unpacklo_ps(w0, w1)), _mm_storeu_ps(g0 + 2 * ow + 4, _mm_unpackhi_ps(w0, w1));
  _mm_storeu_ps(g1 + 2 * ow, _mm_unpacklo_ps(w2, w3)), _mm_storeu_ps(g1 + 2 * ow + 4, _mm_unpackhi_ps(w2, w3));
}
#define ROW4(step, ...)                                                                          \
  if (Wo >= 4) {                                                                                 \
    for (; ow + 4 <= Wo; ow += 4) step(__VA_ARGS__, ow);                                         \
    if (ow < Wo) step(__VA_ARGS__, Wo - 4), ow = Wo;                                             \
  }
#else
#define ROW4(step, ...)
#endif

/* The kernels, compiled twice: plain (SSE2 steps) and for AVX2 CPUs (ATTR: the target, ROW8:
 * 8-window steps first). */
#define CODES_BODIES(SFX, ATTR, ROW8)                                                            \
  ATTR static void codes_fwd_##SFX(const float *x, float *y, uint8_t *code, int64_t p0, int64_t p1, int64_t H, \
                              int64_t W, int64_t Ho, int64_t Wo) {                               \
    y += p0 * Ho * Wo;                                                                           \
    if (code) code += p0 * Ho * Wo;                                                              \
    for (int64_t p = p0; p < p1; p++)                                                            \
      for (int64_t oh = 0; oh < Ho; oh++, y += Wo, code = code ? code + Wo : NULL) {             \
        const float *r0 = x + (p * H + 2 * oh) * W, *r1 = r0 + W;                                \
        int64_t ow = 0;                                                                          \
        ROW8(fwd8, r0, r1, y, code)                                                              \
        ROW4(fwd4, r0, r1, y, code)                                                              \
        for (; ow < Wo; ow++) win_fwd(r0 + 2 * ow, r1 + 2 * ow, y + ow, code ? code + ow : NULL); \
      }                                                                                          \
  }                                                                                              \
  ATTR static void codes_bwd_##SFX(const float *gy, const uint8_t *code, float *gx, int64_t p0, int64_t p1, int64_t H, \
                              int64_t W, int64_t Ho, int64_t Wo) {                               \
    gy += p0 * Ho * Wo, code += p0 * Ho * Wo;                                                    \
    for (int64_t p = p0; p < p1; p++) {                                                          \
      float *gp = gx + p * H * W;                                                                \
      for (int64_t oh = 0; oh < Ho; oh++, gy += Wo, code += Wo) {                                \
        float *g0 = gp + 2 * oh * W, *g1 = g0 + W;                                               \
        int64_t ow = 0;                                                                          \
        ROW8(bwd8, gy, code, g0, g1)                                                             \
        ROW4(bwd4, gy, code, g0, g1)                                                             \
        for (; ow < Wo; ow++) win_bwd(gy[ow], code[ow], g0 + 2 * ow, g1 + 2 * ow);                 \
        for (int64_t c = 2 * Wo; c < W; c++) g0[c] = g1[c] = 0; /* a column no window covers */ \
      }                                                                                          \
      if (2 * Ho < H) memset(gp + 2 * Ho * W, 0, (size_t)((H - 2 * Ho) * W) * sizeof(float)); \
    }                                                                                            \
  }

#define ROW_NONE(step, ...)
CODES_BODIES(base, , ROW_NONE)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_VARIANT 1
#include <immintrin.h>
#define AVX2_TARGET __attribute__((target("avx2")))
/* Windows ow..ow+7. The even/odd split works within 128-bit lanes, so the vectors hold windows
 * 0,1,4,5,2,3,6,7; one cross-lane permute of the results puts them back in order. */
AVX2_TARGET static inline void fwd8(const float *r0, const float *r1, float *y, uint8_t *code, int64_t ow) {
  const int64_t c = 2 * ow;
  const __m256 a0 = _mm256_loadu_ps(r0 + c), a1 = _mm256_loadu_ps(r0 + c + 8);
  const __m256 b0 = _mm256_loadu_ps(r1 + c), b1 = _mm256_loadu_ps(r1 + c + 8);
  const __m256 e0 = _mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 d0 = _mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
  const __m256 e1 = _mm256_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 d1 = _mm256_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
  __m256 m = e0, k = _mm256_setzero_ps(), t; /* k: the code as int32 bits in float lanes */
  t = _mm256_or_ps(_mm256_cmp_ps(d0, m, _CMP_GT_OQ), _mm256_cmp_ps(d0, d0, _CMP_UNORD_Q));
  m = _mm256_blendv_ps(m, d0, t), k = _mm256_blendv_ps(k, _mm256_castsi256_ps(_mm256_set1_epi32(1)), t);
  t = _mm256_or_ps(_mm256_cmp_ps(e1, m, _CMP_GT_OQ), _mm256_cmp_ps(e1, e1, _CMP_UNORD_Q));
  m = _mm256_blendv_ps(m, e1, t), k = _mm256_blendv_ps(k, _mm256_castsi256_ps(_mm256_set1_epi32(2)), t);
  t = _mm256_or_ps(_mm256_cmp_ps(d1, m, _CMP_GT_OQ), _mm256_cmp_ps(d1, d1, _CMP_UNORD_Q));
  m = _mm256_blendv_ps(m, d1, t), k = _mm256_blendv_ps(k, _mm256_castsi256_ps(_mm256_set1_epi32(3)), t);
  _mm256_storeu_ps(y + ow, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), _MM_SHUFFLE(3, 1, 2, 0))));
  if (code) {
    const __m256i ki = _mm256_permute4x64_epi64(_mm256_castps_si256(k), _MM_SHUFFLE(3, 1, 2, 0));
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(ki), _mm256_extracti128_si256(ki, 1));
    _mm_storel_epi64((__m128i *)(code + ow), _mm_packus_epi16(w, w));
  }
}

/* unpacklo/hi interleave within lanes: windows 0,1,4,5 and 2,3,6,7; the two 128-bit halves
 * are then recombined into consecutive columns. */
AVX2_TARGET static inline void bwd8(const float *gy, const uint8_t *code, float *g0, float *g1, int64_t ow) {
  const __m256 g = _mm256_add_ps(_mm256_loadu_ps(gy + ow), _mm256_setzero_ps());
  const __m256i k = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(code + ow)));
  const __m256 w0 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_setzero_si256())), g);
  const __m256 w1 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_set1_epi32(1))), g);
  const __m256 w2 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_set1_epi32(2))), g);
  const __m256 w3 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_set1_epi32(3))), g);
  const __m256 lo0 = _mm256_unpacklo_ps(w0, w1), hi0 = _mm256_unpackhi_ps(w0, w1);
  const __m256 lo1 = _mm256_unpacklo_ps(w2, w3), hi1 = _mm256_unpackhi_ps(w2, w3);
  _mm256_storeu_ps(g0 + 2 * ow, _mm256_permute2f128_ps(lo0, hi0, 0x20));
  _mm256_storeu_ps(g0 + 2 * ow + 8, _mm256_permute2f128_ps(lo0, hi0, 0x31));
  _mm256_storeu_ps(g1 + 2 * ow, _mm256_permute2f128_ps(lo1, hi1, 0x20));
  _mm256_storeu_ps(g1 + 2 * ow + 8, _mm256_permute2f128_ps(lo1, hi1, 0x31));
}
#define ROW8(step, ...)                                                                          \
  if (Wo >= 8) {                                                                                 \
    for (; ow + 8 <= Wo; ow += 8) step(__VA_ARGS__, ow);                                         \
    if (ow < Wo) step(__VA_ARGS__, Wo - 8), ow = Wo;                                             \
  }
CODES_BODIES(avx2, AVX2_TARGET, ROW8)
#else
#define HAVE_AVX2_VARIANT 0
#endif

/* Set by tests/c/test_pool_fast.c to run the baseline kernels on an AVX2 CPU too. */
int mt_pool_baseline_only;

static bool use_avx2(void) {
#if HAVE_AVX2_VARIANT
  if (mt_pool_baseline_only) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

/* MaxPool2d(2)'s shape: the windows tile the image from the top left without overlap. */
static bool is_2x2(const pool_geom *g) {
  return g->kH == 2 && g->kW == 2 && g->sH == 2 && g->sW == 2 && g->pH == 0 && g->pW == 0 && g->dH == 1 &&
         g->dW == 1 && 2 * g->Ho <= g->H && 2 * g->Wo <= g->W;
}

#define DEF_POOL(T, P)                                                                           \
  static void max_fwd_##P(const pool_geom *g, const T *x, T *y, int64_t *ind, int64_t p0, int64_t p1) { \
    /* locals: the int64 index stores could otherwise alias g's fields and force reloads */     \
    const int64_t H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo, sH = g->sH, sW = g->sW;          \
    const int64_t pH = g->pH, pW = g->pW, dH = g->dH, dW = g->dW, kH = g->kH, kW = g->kW;      \
    y += p0 * Ho * Wo, ind += p0 * Ho * Wo;                                                      \
    if (kH == 2 && kW == 2 && sH == 2 && sW == 2 && pH == 0 && pW == 0 && dH == 1 && dW == 1 &&  \
        2 * Ho <= H && 2 * Wo <= W) {                                                            \
      max2x2_##P(x, y, ind, p0, p1, H, W, Ho, Wo);                                               \
      return;                                                                                    \
    }                                                                                            \
    for (int64_t p = p0; p < p1; p++) {                                                          \
      const T *xp = x + p * H * W;                                                               \
      for (int64_t oh = 0; oh < Ho; oh++) {                                                      \
        const int64_t hs = oh * sH - pH, h1 = min64(hs + (kH - 1) * dH + 1, H);                  \
        const int64_t h0 = first_inside(hs, dH);                                                 \
        for (int64_t ow = 0; ow < Wo; ow++) {                                                    \
          const int64_t ws = ow * sW - pW, w1 = min64(ws + (kW - 1) * dW + 1, W);                \
          const int64_t w0 = first_inside(ws, dW);                                               \
          int64_t best = h0 * W + w0;                                                            \
          T m = (T)-INFINITY;                                                                    \
          for (int64_t ih = h0; ih < h1; ih += dH)                                               \
            for (int64_t iw = w0; iw < w1; iw += dW) {                                           \
              const T v = xp[ih * W + iw];                                                       \
              if (v > m || isnan(v)) m = v, best = ih * W + iw;                                  \
            }                                                                                    \
          *y++ = m;                                                                              \
          *ind++ = best;                                                                         \
        }                                                                                        \
      }                                                                                          \
    }                                                                                            \
  }                                                                                              \
  /* gx's planes p0..p1 are zeroed here (in the chunk that owns them) and then scattered into */ \
  static void max_bwd_##P(const pool_geom *g, const T *gy, const int64_t *ind, T *gx, int64_t p0, int64_t p1) { \
    const int64_t HW = g->H * g->W, L = g->Ho * g->Wo;                                          \
    gx += p0 * HW, gy += p0 * L, ind += p0 * L;                                                  \
    for (int64_t p = p0; p < p1; p++, gx += HW) {                                                \
      memset(gx, 0, (size_t)HW * sizeof(T)); /* plane by plane: the scatter finds it in cache */ \
      for (int64_t l = 0; l < L; l++, gy++, ind++)                                               \
        if (*ind >= 0 && *ind < HW) gx[*ind] += *gy; /* a window wholly in padding points nowhere */ \
    }                                                                                            \
  }                                                                                              \
  static void avg_fwd_##P(const pool_geom *g, const T *x, T *y, int64_t p0, int64_t p1) {        \
    y += p0 * g->Ho * g->Wo;                                                                     \
    for (int64_t p = p0; p < p1; p++) {                                                          \
      const T *xp = x + p * g->H * g->W;                                                         \
      for (int64_t oh = 0; oh < g->Ho; oh++)                                                     \
        for (int64_t ow = 0; ow < g->Wo; ow++) {                                                 \
          int64_t h0, h1, w0, w1;                                                                \
          double div, s = 0;                                                                     \
          if (!avg_window(g, oh, ow, &h0, &h1, &w0, &w1, &div)) {                                \
            *y++ = 0;                                                                            \
            continue;                                                                            \
          }                                                                                      \
          for (int64_t ih = h0; ih < h1; ih++)                                                   \
            for (int64_t iw = w0; iw < w1; iw++) s += (double)xp[ih * g->W + iw];                \
          *y++ = (T)(s / div);                                                                   \
        }                                                                                        \
    }                                                                                            \
  }                                                                                              \
  static void avg_bwd_##P(const pool_geom *g, const T *gy, T *gx, int64_t p0, int64_t p1) {      \
    gy += p0 * g->Ho * g->Wo;                                                                    \
    memset(gx + p0 * g->H * g->W, 0, (size_t)((p1 - p0) * g->H * g->W) * sizeof(T));             \
    for (int64_t p = p0; p < p1; p++) {                                                          \
      T *gp = gx + p * g->H * g->W;                                                              \
      for (int64_t oh = 0; oh < g->Ho; oh++)                                                     \
        for (int64_t ow = 0; ow < g->Wo; ow++, gy++) {                                           \
          int64_t h0, h1, w0, w1;                                                                \
          double div;                                                                            \
          if (!avg_window(g, oh, ow, &h0, &h1, &w0, &w1, &div)) continue;                        \
          const T d = (T)(*gy / div);                                                            \
          for (int64_t ih = h0; ih < h1; ih++)                                                   \
            for (int64_t iw = w0; iw < w1; iw++) gp[ih * g->W + iw] += d;                        \
        }                                                                                        \
    }                                                                                            \
  }                                                                                              \
  static void adaptive_fwd_##P(const pool_geom *g, const T *x, T *y, int64_t p0, int64_t p1) {   \
    y += p0 * g->Ho * g->Wo;                                                                     \
    for (int64_t p = p0; p < p1; p++) {                                                          \
      const T *xp = x + p * g->H * g->W;                                                         \
      for (int64_t oh = 0; oh < g->Ho; oh++) {                                                   \
        int64_t h0 = adaptive_start(oh, g->Ho, g->H), h1 = adaptive_end(oh, g->Ho, g->H);        \
        for (int64_t ow = 0; ow < g->Wo; ow++) {                                                 \
          int64_t w0 = adaptive_start(ow, g->Wo, g->W), w1 = adaptive_end(ow, g->Wo, g->W);      \
          double s = 0;                                                                          \
          for (int64_t ih = h0; ih < h1; ih++)                                                   \
            for (int64_t iw = w0; iw < w1; iw++) s += (double)xp[ih * g->W + iw];                \
          *y++ = (T)(s / (double)((h1 - h0) * (w1 - w0)));                                       \
        }                                                                                        \
      }                                                                                          \
    }                                                                                            \
  }                                                                                              \
  static void adaptive_bwd_##P(const pool_geom *g, const T *gy, T *gx, int64_t p0, int64_t p1) { \
    gy += p0 * g->Ho * g->Wo;                                                                    \
    memset(gx + p0 * g->H * g->W, 0, (size_t)((p1 - p0) * g->H * g->W) * sizeof(T));             \
    for (int64_t p = p0; p < p1; p++) {                                                          \
      T *gp = gx + p * g->H * g->W;                                                              \
      for (int64_t oh = 0; oh < g->Ho; oh++) {                                                   \
        int64_t h0 = adaptive_start(oh, g->Ho, g->H), h1 = adaptive_end(oh, g->Ho, g->H);        \
        for (int64_t ow = 0; ow < g->Wo; ow++, gy++) {                                           \
          int64_t w0 = adaptive_start(ow, g->Wo, g->W), w1 = adaptive_end(ow, g->Wo, g->W);      \
          const T d = (T)(*gy / (double)((h1 - h0) * (w1 - w0)));                                \
          for (int64_t ih = h0; ih < h1; ih++)                                                   \
            for (int64_t iw = w0; iw < w1; iw++) gp[ih * g->W + iw] += d;                        \
        }                                                                                        \
      }                                                                                          \
    }                                                                                            \
  }

DEF_POOL(float, s)
DEF_POOL(double, d)

/* ---- running a kernel over planes, in parallel --------------------------------------------- */

typedef struct pool_call {
  const pool_geom *g;
  pool_kind kind;
  bool backward;
  const void *src; /* forward: x; backward: gy */
  void *dst;       /* forward: y; backward: gx */
  int64_t *ind;    /* max only */
  uint8_t *code;   /* max2x2 only; NULL in a forward without a node */
  bool avx2;
} pool_call;

static void pool_chunk(void *ctx, int64_t p0, int64_t p1, int chunk, int worker) {
  (void)chunk, (void)worker;
  const pool_call *c = ctx;
  const pool_geom *g = c->g;
  const bool f32 = g->dtype == MT_FLOAT32;
  if (c->kind == POOL_MAX2X2) {
    void (*fwd)(const float *, float *, uint8_t *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t) = codes_fwd_base;
    void (*bwd)(const float *, const uint8_t *, float *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t) = codes_bwd_base;
#if HAVE_AVX2_VARIANT
    if (c->avx2) fwd = codes_fwd_avx2, bwd = codes_bwd_avx2;
#endif
    if (!c->backward) fwd(c->src, c->dst, c->code, p0, p1, g->H, g->W, g->Ho, g->Wo);
    else bwd(c->src, c->code, c->dst, p0, p1, g->H, g->W, g->Ho, g->Wo);
    return;
  }
  if (!c->backward) {
    switch (c->kind) {
    case POOL_MAX:
      if (f32) max_fwd_s(g, c->src, c->dst, c->ind, p0, p1);
      else max_fwd_d(g, c->src, c->dst, c->ind, p0, p1);
      break;
    case POOL_AVG:
      if (f32) avg_fwd_s(g, c->src, c->dst, p0, p1);
      else avg_fwd_d(g, c->src, c->dst, p0, p1);
      break;
    case POOL_ADAPTIVE:
      if (f32) adaptive_fwd_s(g, c->src, c->dst, p0, p1);
      else adaptive_fwd_d(g, c->src, c->dst, p0, p1);
      break;
    case POOL_MAX2X2: break;
    }
    return;
  }
  switch (c->kind) {
  case POOL_MAX:
    if (f32) max_bwd_s(g, c->src, c->ind, c->dst, p0, p1);
    else max_bwd_d(g, c->src, c->ind, c->dst, p0, p1);
    break;
  case POOL_AVG:
    if (f32) avg_bwd_s(g, c->src, c->dst, p0, p1);
    else avg_bwd_d(g, c->src, c->dst, p0, p1);
    break;
  case POOL_ADAPTIVE:
    if (f32) adaptive_bwd_s(g, c->src, c->dst, p0, p1);
    else adaptive_bwd_d(g, c->src, c->dst, p0, p1);
    break;
  case POOL_MAX2X2: break;
  }
}

/* Planes are independent (each output and gradient plane is written by one chunk), so the
 * split changes nothing in the results. A chunk is about 32K input elements. */
static void pool_parallel(const pool_call *c) {
  const int64_t per_plane = c->g->H * c->g->W + c->g->Ho * c->g->Wo;
  const int64_t grain = per_plane >= 32768 ? 1 : 32768 / per_plane;
  mt_parallel_for(c->g->planes, grain, pool_chunk, (void *)c);
}

/* ---- backward node ------------------------------------------------------------------------ */

typedef struct pool_node {
  mt_node base;
  pool_kind kind;
  pool_geom g;
  mt_saved indices; /* max: int64 flat indices; max2x2: uint8 window codes */
} pool_node;

static void pool_release(mt_node *n) { mt_saved_release(&((pool_node *)n)->indices); }

static mt_status pool_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  pool_node *pn = (pool_node *)n;
  const pool_geom *g = &pn->g;
  const mt_edge *e = &n->next[0];
  if (!gout[0] || !mt_edge_live(e)) return MT_OK;
  mt_tensor *ind = NULL, *gy = NULL, *gx = NULL;
  mt_status st;
  if ((pn->kind == POOL_MAX || pn->kind == POOL_MAX2X2) && (st = mt_saved_get(&pn->indices, n, &ind))) return st;
  if ((st = mt_contiguous(&gy, gout[0]))) return st;
  if ((st = mt_empty(&gx, g->dtype, e->ndim, e->sizes))) { /* each chunk writes all of its planes */
    mt_tensor_release(gy);
    return st;
  }
  /* the saved indices or codes: the forward's fresh contiguous tensor */
  pool_call c = {.g = g, .kind = pn->kind, .backward = true, .src = mt_data(gy), .dst = mt_data(gx), .avx2 = use_avx2()};
  if (pn->kind == POOL_MAX2X2) c.code = mt_data(ind);
  else if (ind) c.ind = mt_data(ind);
  pool_parallel(&c);
  mt_tensor_release(gy);
  gin[0] = gx;
  return MT_OK;
}

/* ---- the shared driver -------------------------------------------------------------------- */

/* Checks the input (float, [N, C, H, W] or [C, H, W] with non-empty C, H, W) and fills the
 * plane geometry of g. */
static mt_status pool_input(pool_geom *g, const char *fn, const mt_tensor *input) {
  char a[MT_SHAPE_STRLEN];
  if (input->dtype != MT_FLOAT32 && input->dtype != MT_FLOAT64)
    return mt_fail(MT_EDTYPE, "%s supports float32 and float64 inputs, got %s", fn, mt_dtype_name(input->dtype));
  const int nd = input->ndim;
  if ((nd != 3 && nd != 4) || input->sizes[nd - 3] == 0 || input->sizes[nd - 2] == 0 || input->sizes[nd - 1] == 0)
    return mt_fail(MT_ESHAPE, "expected a 3-D or 4-D (batched) input with non-empty channel and spatial dims, got "
                              "shape %s",
                   mt_shape_str(a, sizeof a, nd, input->sizes));
  g->dtype = input->dtype;
  g->planes = input->sizes[nd - 3] * (nd == 4 ? input->sizes[0] : 1);
  g->H = input->sizes[nd - 2];
  g->W = input->sizes[nd - 1];
  return MT_OK;
}

/* Runs one pooling op over input (checked; g complete) and records its node. indices: max only
 * (may be NULL). */
static mt_status pool_run(mt_tensor **out, mt_tensor **indices, pool_kind kind, const pool_geom *g,
                          const mt_tensor *input, const char *name) {
  int64_t sizes[4];
  const int nd = input->ndim;
  memcpy(sizes, input->sizes, sizeof sizes);
  sizes[nd - 2] = g->Ho, sizes[nd - 1] = g->Wo;
  const bool record = mt_grad_needed(1, &input), was = mt_is_grad_enabled();
  mt_tensor *x = NULL, *y = NULL, *ind = NULL, *code = NULL;
  mt_status st;
  mt_trace *const tr = mt_active_trace;
  /* no indices asked for: the float32 2x2 kernel, with window codes only for a node */
  if (kind == POOL_MAX && !indices && g->dtype == MT_FLOAT32 && is_2x2(g)) kind = POOL_MAX2X2;
  mt_set_grad_enabled(false); /* the contiguous copy records nothing, neither for autograd nor */
  mt_active_trace = NULL;     /* for a trace (the public functions record the pooling itself) */
  if ((st = mt_contiguous(&x, input)) || (st = mt_empty(&y, g->dtype, nd, sizes)) ||
      (kind == POOL_MAX && (st = mt_empty(&ind, MT_INT64, nd, sizes))) ||
      (kind == POOL_MAX2X2 && record && (st = mt_empty(&code, MT_UINT8, nd, sizes))))
    goto done;
  pool_call c = {.g = g, .kind = kind, .src = mt_data(x), .dst = mt_data(y), .ind = ind ? mt_data(ind) : NULL,
                 .code = code ? mt_data(code) : NULL, .avx2 = use_avx2()};
  pool_parallel(&c);
  if (record) {
    pool_node *n = (pool_node *)mt_node_new(sizeof *n, name, pool_backward, pool_release, 1, &input, 1);
    if (!n) st = MT_ENOMEM;
    else {
      n->kind = kind;
      n->g = *g;
      if (kind == POOL_MAX) st = mt_save_tensor(&n->indices, ind);
      else if (kind == POOL_MAX2X2) st = mt_save_tensor(&n->indices, code);
      if (!st) mt_node_set_output(&n->base, y, 0);
      mt_node_release(&n->base);
    }
  }
done:
  mt_active_trace = tr;
  mt_set_grad_enabled(was);
  mt_tensor_release(x), mt_tensor_release(code); /* the node holds its own reference */
  if (st) {
    mt_tensor_release(y), mt_tensor_release(ind);
    return st;
  }
  *out = y;
  if (indices) *indices = ind;
  else mt_tensor_release(ind);
  return MT_OK;
}

/* PyTorch's pooling_output_shape. */
static int64_t pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, bool ceil_mode) {
  int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t q = num >= 0 ? num / stride : -((-num + stride - 1) / stride); /* rounded down */
  int64_t o = q + 1;
  if (ceil_mode && (o - 1) * stride >= in + pad) o--; /* the last window must start inside the image or left pad */
  return o;
}

/* The parameters of max/avg pooling; stride NULL means the kernel size (PyTorch's default),
 * padding NULL 0 and dilation NULL 1. */
static mt_status window_setup(pool_geom *g, const mt_tensor *input, const int64_t kernel[2], const int64_t *stride,
                              const int64_t *padding, const int64_t *dilation, bool ceil_mode) {
  char a[MT_SHAPE_STRLEN];
  const int64_t *s = stride ? stride : kernel, zero[2] = {0, 0}, one[2] = {1, 1};
  const int64_t *p = padding ? padding : zero, *d = dilation ? dilation : one;
  for (int i = 0; i < 2; i++) {
    if (kernel[i] <= 0 || kernel[i] > INT32_MAX)
      return mt_fail(MT_EARG, "kernel size must be positive, got (%lld, %lld)", (long long)kernel[0], (long long)kernel[1]);
    if (s[i] <= 0 || s[i] > INT32_MAX)
      return mt_fail(MT_EARG, "stride must be positive, got (%lld, %lld)", (long long)s[0], (long long)s[1]);
    if (d[i] <= 0 || d[i] > INT32_MAX)
      return mt_fail(MT_EARG, "dilation must be positive, got (%lld, %lld)", (long long)d[0], (long long)d[1]);
    if (p[i] < 0 || p[i] > kernel[i] / 2)
      return mt_fail(MT_EARG, "padding should be between 0 and half of the kernel size, but got padding (%lld, %lld) "
                              "and kernel size (%lld, %lld)",
                     (long long)p[0], (long long)p[1], (long long)kernel[0], (long long)kernel[1]);
  }
  g->kH = kernel[0], g->kW = kernel[1], g->sH = s[0], g->sW = s[1];
  g->pH = p[0], g->pW = p[1], g->dH = d[0], g->dW = d[1];
  g->Ho = pool_out_size(g->H, g->kH, g->pH, g->sH, g->dH, ceil_mode);
  g->Wo = pool_out_size(g->W, g->kW, g->pW, g->sW, g->dW, ceil_mode);
  if (g->Ho < 1 || g->Wo < 1)
    return mt_fail(MT_ESHAPE, "input of shape %s gives an output of size %lld x %lld, which is too small",
                   mt_shape_str(a, sizeof a, input->ndim, input->sizes), (long long)g->Ho, (long long)g->Wo);
  return MT_OK;
}

MT_API mt_status mt_max_pool2d(mt_tensor **out, mt_tensor **indices, const mt_tensor *input, const int64_t kernel[2],
                               const int64_t stride[2], const int64_t padding[2], const int64_t dilation[2],
                               bool ceil_mode) {
  pool_geom g = {0};
  mt_status st;
  if ((st = pool_input(&g, "max_pool2d", input)) || (st = window_setup(&g, input, kernel, stride, padding, dilation, ceil_mode)))
    return st;
  if ((st = pool_run(out, indices, POOL_MAX, &g, input, "MaxPool2DWithIndicesBackward0"))) return st;
  /* recorded with the defaults resolved, so that a node reads the same however it was called */
  if (mt_tracing()) {
    const int64_t s[2] = {g.sH, g.sW}, p[2] = {g.pH, g.pW}, d[2] = {g.dH, g.dW};
    mt_tensor *outs[2] = {*out, indices ? *indices : NULL};
    mt_trace_record(indices ? "max_pool2d_with_indices" : "max_pool2d", 1, &input, indices ? 2 : 1, outs,
                    "kernel=I2 stride=I2 padding=I2 dilation=I2 ceil_mode=b", kernel, s, p, d, (int)ceil_mode);
  }
  return MT_OK;
}

MT_API mt_status mt_avg_pool2d(mt_tensor **out, const mt_tensor *input, const int64_t kernel[2], const int64_t stride[2],
                               const int64_t padding[2], bool ceil_mode, bool count_include_pad) {
  pool_geom g = {0};
  mt_status st;
  if ((st = pool_input(&g, "avg_pool2d", input)) || (st = window_setup(&g, input, kernel, stride, padding, NULL, ceil_mode)))
    return st;
  g.count_include_pad = count_include_pad;
  if ((st = pool_run(out, NULL, POOL_AVG, &g, input, "AvgPool2DBackward0"))) return st;
  if (mt_tracing()) {
    const int64_t s[2] = {g.sH, g.sW}, p[2] = {g.pH, g.pW};
    mt_trace_record("avg_pool2d", 1, &input, 1, out, "kernel=I2 stride=I2 padding=I2 ceil_mode=b count_include_pad=b",
                    kernel, s, p, (int)ceil_mode, (int)count_include_pad);
  }
  return MT_OK;
}

MT_API mt_status mt_adaptive_avg_pool2d(mt_tensor **out, const mt_tensor *input, const int64_t output_size[2]) {
  pool_geom g = {0};
  mt_status st;
  if ((st = pool_input(&g, "adaptive_avg_pool2d", input))) return st;
  if (output_size[0] < 0 || output_size[1] < 0 || output_size[0] > INT32_MAX || output_size[1] > INT32_MAX)
    return mt_fail(MT_EARG, "output size must be between 0 and %d, got (%lld, %lld)", INT32_MAX,
                   (long long)output_size[0], (long long)output_size[1]);
  g.Ho = output_size[0], g.Wo = output_size[1];
  /* a 1 x 1 output is a mean over H and W in PyTorch, hence its node name */
  if ((st = pool_run(out, NULL, POOL_ADAPTIVE, &g, input,
                     g.Ho == 1 && g.Wo == 1 ? "MeanBackward1" : "AdaptiveAvgPool2DBackward0")))
    return st;
  if (mt_tracing()) mt_trace_record("adaptive_avg_pool2d", 1, &input, 1, out, "output_size=I2", output_size);
  return MT_OK;
}
