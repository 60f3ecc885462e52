/*
 * conv_planes.c — the shifted planes of nn_conv.c's fast path and their kernels (declared in
 * conv_planes.h; the method is described in nn_conv.c, "the fast path"). The kernels are
 * register-tiled AVX2 + FMA, compiled for those targets alone and called only when
 * mt_planes_cpu() says the CPU has them.
 */
#include "conv_planes.h"

#include <string.h>

/* Set by tests/c/test_conv_fast.c to compare against the im2col + gemm path on the same CPU
 * (not in a header: nothing else has a reason to touch it). */
int mt_conv_generic_only;

#define PLANE_SLACK 16 /* floats after the planes: a tile's last vector reads past */

/* The planes of an input [Cin, Hin, W] whose conv output (kernel kH x kW, dilation dh, dw) is
 * [Hout, W]; ph may be negative (grad_input's planes when the padding exceeds the kernel). */
mt_plane_geom mt_plane_geom_make(int64_t Cin, int64_t Hin, int64_t W, int64_t Hout, int64_t kH, int64_t kW, int64_t dh,
                                 int64_t dw, int64_t ph, int64_t pw) {
  return (mt_plane_geom){.Cin = Cin, .Hin = Hin, .W = W, .Hout = Hout, .R = Hout + (kH - 1) * dh, .kH = kH, .kW = kW,
                         .dh = dh, .dw = dw, .ph = ph, .pw = pw};
}

/* Floats of the planes and their slack, a multiple of 16 (so what follows stays aligned). */
int64_t mt_plane_floats(const mt_plane_geom *q) {
  return (q->Cin * q->kW * q->R * q->W + PLANE_SLACK + 15) & ~(int64_t)15;
}

/* off[(c * kH + kh) * kW + kw]: where column-matrix row k starts in the planes. */
void mt_plane_offsets(const mt_plane_geom *q, int64_t *off) {
  for (int64_t c = 0; c < q->Cin; c++)
    for (int64_t kh = 0; kh < q->kH; kh++)
      for (int64_t kw = 0; kw < q->kW; kw++)
        off[(c * q->kH + kh) * q->kW + kw] = (c * q->kW + kw) * q->R * q->W + kh * q->dh * q->W;
}

static void prefetch_part(const mt_prefetch *f, int64_t part, int64_t parts) {
  for (int r = 0; r < 2; r++) {
    const int64_t lines = (f->bytes[r] + 63) / 64, a = lines * part / parts, b = lines * (part + 1) / parts;
    for (int64_t i = a; i < b; i++) __builtin_prefetch(f->p[r] + i * 64, 0, 2);
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FAST_TARGET __attribute__((target("avx2,fma")))
#define FAST_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

bool mt_planes_cpu(void) {
  if (mt_conv_generic_only) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

FAST_INLINE __m256i lane_mask(int valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Writes the planes of image x. Row by row, 8 columns at a time: a masked load gives the
 * shifted pixels and the zeros around them in one step. A row's last vector may run past
 * the row (W not a multiple of 8): the next row, written next, overwrites that; the last
 * plane's overrun lands in the slack, zeroed last. */
FAST_TARGET void mt_planes_build(const mt_plane_geom *q, const float *x, float *pl) {
  const int64_t W = q->W, R = q->R;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  float *d = pl;
  for (int64_t c = 0; c < q->Cin; c++)
    for (int64_t kw = 0; kw < q->kW; kw++) {
      const int64_t x0 = kw * q->dw - q->pw; /* plane column j holds input column j + x0 */
      const int64_t lo = x0 < 0 ? -x0 : 0, hi = W - x0 < W ? W - x0 : W; /* its valid columns */
      const __m256i vlo = _mm256_set1_epi32((int)(lo < W ? lo : W) - 1);
      const __m256i vhi = _mm256_set1_epi32((int)(hi > 0 ? hi : 0));
      for (int64_t r = 0; r < R; r++, d += W) {
        const int64_t ir = r - q->ph;
        if (ir < 0 || ir >= q->Hin || lo >= hi) {
          for (int64_t j = 0; j < W; j += 8) _mm256_storeu_ps(d + j, _mm256_setzero_ps());
          continue;
        }
        const int64_t src = (c * q->Hin + ir) * W + x0; /* may lie before x: those lanes are masked */
        for (int64_t j = 0; j < W; j += 8) {
          const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32((int)j), lane);
          const __m256i m = _mm256_and_si256(_mm256_cmpgt_epi32(idx, vlo), _mm256_cmpgt_epi32(vhi, idx));
          _mm256_storeu_ps(d + j, _mm256_maskload_ps((const float *)((uintptr_t)x + (uintptr_t)((src + j) * 4)), m));
        }
      }
    }
  const int64_t used = q->Cin * q->kW * R * W;
  memset(pl + used, 0, (size_t)(mt_plane_floats(q) - used) * sizeof(float));
}

/* A tile of MR output rows by NV vectors of 8 positions: pl and y start at the tile's first
 * position, wp at its first row (wp is [K][M]); `last` lanes of the last vector are stored. */
FAST_INLINE void fwd_tile(const float *pl, const int64_t *off, const float *wp, int64_t M, int64_t K, float *y,
                          int64_t ldy, const float *bias, int last, const int MR, const int NV) {
  __m256 acc[4][3];
#pragma GCC unroll 4
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; k++) {
    const float *b = pl + off[k], *a = wp + k * M;
    __m256 bv[3];
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++) {
      const __m256 av = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
    }
  }
  const __m256i mask = lane_mask(last);
#pragma GCC unroll 4
  for (int i = 0; i < MR; i++) {
    const __m256 bb = bias ? _mm256_broadcast_ss(bias + i) : _mm256_setzero_ps();
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) {
      const __m256 r = bias ? _mm256_add_ps(acc[i][v], bb) : acc[i][v];
      if (v == NV - 1 && last < 8) _mm256_maskstore_ps(y + i * ldy + 8 * v, mask, r);
      else _mm256_storeu_ps(y + i * ldy + 8 * v, r);
    }
  }
}

#define FWD_CASE(MR, NV)                                                                         \
  case (MR) * 4 + (NV):                                                                          \
    fwd_tile(pl + p0, off, wp + co, M, K, y + co * L + p0, L, bias ? bias + co : NULL, last, MR, NV); \
    break;

/* y [M, L] (+ bias) = sum over k of Wp[k][.] times the planes' row k, for one image. Tiles of
 * 4 rows by 24 positions; position-major, so a tile's plane rows stay in L1 for all rows. */
FAST_TARGET void mt_planes_fwd(const float *pl, const int64_t *off, const float *wp, int64_t M, int64_t K, int64_t L,
                               float *y, const float *bias, const mt_prefetch *pf) {
  for (int64_t p0 = 0; p0 < L; p0 += 24) {
    prefetch_part(pf, p0 / 24, (L + 23) / 24);
    const int64_t rem = L - p0;
    const int nv = rem >= 24 ? 3 : (int)((rem + 7) / 8), last = rem >= 24 ? 8 : (int)(rem - 8 * (nv - 1));
    for (int64_t co = 0; co < M; co += 4) {
      switch ((M - co >= 4 ? 4 : (int)(M - co)) * 4 + nv) {
        FWD_CASE(1, 1) FWD_CASE(1, 2) FWD_CASE(1, 3)
        FWD_CASE(2, 1) FWD_CASE(2, 2) FWD_CASE(2, 3)
        FWD_CASE(3, 1) FWD_CASE(3, 2) FWD_CASE(3, 3)
        FWD_CASE(4, 1) FWD_CASE(4, 2) FWD_CASE(4, 3)
      }
    }
  }
}

/* acc[i][j] (8 lanes each, in memory: acc is [M][K][8]) += sum over p of G[i][p] * row k_j
 * of the planes, for MR rows of G (ld L) and KR rows k; tails masked to zero. */
FAST_INLINE void gw_tile(const float *G, int64_t L, const float *pl, const int64_t *off, float *acc, int64_t K,
                         const int MR, const int KR) {
  __m256 s[3][3];
#pragma GCC unroll 3
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
    for (int j = 0; j < KR; j++) s[i][j] = _mm256_loadu_ps(acc + (i * K + j) * 8);
  const float *b[3];
#pragma GCC unroll 3
  for (int j = 0; j < KR; j++) b[j] = pl + off[j];
  int64_t p = 0;
  for (; p + 8 <= L; p += 8) {
    __m256 gv[3];
#pragma GCC unroll 3
    for (int i = 0; i < MR; i++) gv[i] = _mm256_loadu_ps(G + i * L + p);
#pragma GCC unroll 3
    for (int j = 0; j < KR; j++) {
      const __m256 bv = _mm256_loadu_ps(b[j] + p);
#pragma GCC unroll 3
      for (int i = 0; i < MR; i++) s[i][j] = _mm256_fmadd_ps(gv[i], bv, s[i][j]);
    }
  }
  if (p < L) {
    const __m256i mask = lane_mask((int)(L - p));
    __m256 gv[3];
#pragma GCC unroll 3
    for (int i = 0; i < MR; i++) gv[i] = _mm256_maskload_ps(G + i * L + p, mask);
#pragma GCC unroll 3
    for (int j = 0; j < KR; j++) {
      const __m256 bv = _mm256_maskload_ps(b[j] + p, mask);
#pragma GCC unroll 3
      for (int i = 0; i < MR; i++) s[i][j] = _mm256_fmadd_ps(gv[i], bv, s[i][j]);
    }
  }
#pragma GCC unroll 3
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
    for (int j = 0; j < KR; j++) _mm256_storeu_ps(acc + (i * K + j) * 8, s[i][j]);
}

#define GW_CASE(MR, KR)                                                                          \
  case (MR) * 4 + (KR): gw_tile(G + co * L, L, pl, off + k, acc + (co * K + k) * 8, K, MR, KR); break;

/* acc [M][K][8] += the lane sums of G [M, L] times the planes' rows, for one image. */
FAST_TARGET void mt_planes_gw(const float *G, int64_t M, int64_t K, int64_t L, const float *pl, const int64_t *off,
                              float *acc, const mt_prefetch *pf) {
  for (int64_t k = 0; k < K; k += 3) { /* k outer: G (an image's gradient) stays in L1 */
    prefetch_part(pf, k / 3, (K + 2) / 3);
    for (int64_t co = 0; co < M; co += 3) {
      switch ((M - co >= 3 ? 3 : (int)(M - co)) * 4 + (K - k >= 3 ? 3 : (int)(K - k))) {
        GW_CASE(1, 1) GW_CASE(1, 2) GW_CASE(1, 3)
        GW_CASE(2, 1) GW_CASE(2, 2) GW_CASE(2, 3)
        GW_CASE(3, 1) GW_CASE(3, 2) GW_CASE(3, 3)
      }
    }
  }
}

/* gw[i] = the sum of acc's 8 lanes, in a fixed order. */
FAST_TARGET void mt_planes_gw_reduce(const float *acc, int64_t n, float *gw) {
  for (int64_t i = 0; i < n; i++) {
    const __m256 v = _mm256_loadu_ps(acc + 8 * i);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    gw[i] = _mm_cvtss_f32(s);
  }
}
#else /* never called: mt_planes_cpu() says no */
bool mt_planes_cpu(void) { return false; }
void mt_planes_fwd(const float *pl, const int64_t *off, const float *wp, int64_t M, int64_t K, int64_t L, float *y,
                   const float *bias, const mt_prefetch *pf) {
  (void)pl, (void)off, (void)wp, (void)M, (void)K, (void)L, (void)y, (void)bias, (void)pf, (void)prefetch_part;
}
void mt_planes_gw(const float *G, int64_t M, int64_t K, int64_t L, const float *pl, const int64_t *off, float *acc,
                  const mt_prefetch *pf) {
  (void)G, (void)M, (void)K, (void)L, (void)pl, (void)off, (void)acc, (void)pf;
}
void mt_planes_gw_reduce(const float *acc, int64_t n, float *gw) { (void)acc, (void)n, (void)gw; }
void mt_planes_build(const mt_plane_geom *q, const float *x, float *pl) { (void)q, (void)x, (void)pl; }
#endif
