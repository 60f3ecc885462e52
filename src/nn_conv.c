/*
 * nn_conv.c — conv2d and conv1d (a conv1d is a conv2d over a height of 1: [N, C, L] has the
 * memory of [N, C, 1, L], and its weight that of [C_out, C_in / g, 1, k]).
 *
 * im2col + gemm per batch element, over tiles of output rows: im2col unrolls the input
 * patches of a tile into a column matrix [C_in/g * kH * kW, tile positions] and one gemm per
 * group multiplies the group's weight rows into it, writing straight into the output
 * [C_out, H_out * W_out] of that element (ld = H_out * W_out) on top of the bias, so there is
 * no product buffer and no second pass. Tiles keep the column matrix within a budget (L2-sized
 * for the usual layers, where a tile is the whole element). A 1x1 kernel with stride 1 and no
 * padding needs no im2col at all: the input is its own column matrix.
 * Backward, per element and tile, G_n = grad_output[n] is already [C_out, positions]:
 * grad_weight += G_n col^T (the columns are unrolled again rather than kept: they are
 * kH * kW times the input's size), grad_input = col2im(W_g^T G_n), grad_bias = the row sums
 * of G_n, all without copies or transposes.
 *
 * Threads: the (element, tile) items of the forward and the batch chunks of the backward run on
 * the library's pool (mt_parallel_for), each chunk calling a single-threaded gemm: our chunks
 * parallelise im2col and col2im as well, and small per-element gemms do not pay OpenBLAS's
 * thread wake-ups. grad_weight and grad_bias get one partial per batch chunk, summed in chunk
 * order; the chunks depend on the shapes only, so results are the same for any thread count.
 * Scratch (columns, partials) lives in a per-thread buffer kept between calls: a fresh one of
 * this size each step costs page faults. Kernels are generated per dtype (float32, float64).
 *
 * The fast path (float32, groups 1, stride 1, W_out == W, on a CPU with AVX2 + FMA: the usual
 * 3x3 "same" layers) skips im2col, BLAS and col2im altogether: see "the fast path" below, and
 * conv_planes.c for its kernels. Its chunks are the same as the gemm path's, so it too gives
 * the same bits for any thread count.
 */
/* im2col / col2im / bias loops have run-time trip counts: let GCC vectorise them at -O2 too */
#pragma GCC optimize("vect-cost-model=dynamic")
#include "mt_internal.h"
#include "conv_planes.h"

#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define TILE_BUDGET ((int64_t)1 << 18)  /* elements of a tile's column matrix: 1 MB in float32 */
#define MAX_BATCH_CHUNKS 8              /* backward partials of grad_weight / grad_bias */
#define MIN_ITEMS 4                     /* forward items (element, tile) of a small batch, when worth it */
#define CHUNK_FLOPS 400000.0            /* a pool chunk's least work (~10 us): smaller ones run inline */
#define KEEP_SCRATCH ((size_t)16 << 20) /* a thread keeps its scratch between calls up to this size */


typedef struct conv_geom {
  mt_dtype dtype;
  int64_t N, C, H, W;  /* the input as [N, C, H, W] */
  int64_t Cout, kH, kW;
  int64_t sh, sw, ph, pw, dh, dw, groups;
  int64_t Ho, Wo;
  int64_t Cg, Coutg;   /* channels per group, in and out */
  int64_t K, L;        /* rows of the column matrix (Cg * kH * kW); positions per element (Ho * Wo) */
  int64_t th;          /* output rows per tile (the budget's; the forward may cut finer) */
  bool direct;         /* 1x1 kernel, stride 1, no padding: the input is the column matrix */
  bool flat;           /* stride 1 and W_out == W ("same" padding): see im2col_flat */
} conv_geom;

/* ---- scratch ------------------------------------------------------------------------------- */

typedef struct scratch_buf {
  size_t cap;
  void *p;
} scratch_buf;

static pthread_key_t scratch_key;
static bool scratch_key_ok;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *v) {
  scratch_buf *b = v;
  free(b->p);
  free(b);
}
static void scratch_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0; }

/* At least `bytes` of scratch for the calling thread (64-byte aligned), or NULL when memory
 * runs out. The buffer stays the thread's until its next scratch_get; *owned says the caller
 * must free it (too large to keep, or no thread key). */
static void *scratch_get(size_t bytes, bool *owned) {
  bytes = (bytes + 63) & ~(size_t)63;
  if (!bytes) bytes = 64;
  pthread_once(&scratch_once, scratch_init);
  *owned = !scratch_key_ok || bytes > KEEP_SCRATCH;
  if (*owned) return aligned_alloc(64, bytes);
  scratch_buf *b = pthread_getspecific(scratch_key);
  if (!b) {
    if (!(b = calloc(1, sizeof *b))) return NULL;
    if (pthread_setspecific(scratch_key, b)) {
      free(b);
      return *owned = true, aligned_alloc(64, bytes);
    }
  }
  if (b->cap < bytes) {
    free(b->p);
    b->cap = 0;
    if (!(b->p = aligned_alloc(64, bytes))) return NULL;
    b->cap = bytes;
  }
  return b->p;
}

/* ---- kernels, per dtype ------------------------------------------------------------------- */

/* The output columns [lo, hi) whose input column ow * sw + x0 lies in [0, W). */
static void valid_cols(const conv_geom *g, int64_t x0, int64_t *lo, int64_t *hi) {
  int64_t l = x0 >= 0 ? 0 : (-x0 + g->sw - 1) / g->sw;
  int64_t h = g->W - x0 <= 0 ? 0 : (g->W - x0 + g->sw - 1) / g->sw;
  l = l < g->Wo ? l : g->Wo;
  h = h < g->Wo ? h : g->Wo;
  *lo = l, *hi = h > l ? h : l;
}

/* For im2col_flat / col2im_flat: the output rows [a, b) of the tile [oh0, oh1) whose input row
 * is inside the image for kernel row kh, and the valid output columns [lo, hi) for kernel
 * column kw; b == a when nothing is valid. */
static void flat_span(const conv_geom *g, int64_t kh, int64_t kw, int64_t oh0, int64_t oh1, int64_t *a, int64_t *b,
                      int64_t *lo, int64_t *hi) {
  const int64_t ih0 = kh * g->dh - g->ph; /* the input row of output row 0 */
  int64_t x = -ih0 < oh0 ? oh0 : -ih0 > oh1 ? oh1 : -ih0, y = g->H - ih0;
  *a = x;
  *b = y < x ? x : y > oh1 ? oh1 : y;
  valid_cols(g, kw * g->dw - g->pw, lo, hi);
  if (*lo >= *hi) *b = *a;
}

/* im2col / col2im when stride is 1 and W_out == W: a row of col for (c, kh, kw), over output
 * rows [a, b) where the input row is inside the image, is the image shifted by a constant
 * offset, so it moves as one contiguous run instead of one short run per output row. The run
 * also covers each row's out-of-image columns ([0, lo) and [hi, W), at most the padding's
 * width), which hold a neighbouring row's pixels there: im2col zeroes them afterwards, col2im
 * zeroes them in col (scratch, not read again) before adding. The run starts and ends on valid
 * pixels, so it never leaves the image. */
#define DEF_FLAT(T, P)                                                                           \
  static void im2col_flat_##P(const conv_geom *g, const T *img, T *col, int64_t oh0, int64_t oh1) { \
    const int64_t W = g->W, ld = (oh1 - oh0) * W;                                                \
    for (int64_t kh = 0; kh < g->kH; kh++)                                                       \
      for (int64_t kw = 0; kw < g->kW; kw++) {                                                   \
        int64_t a, b, lo, hi;                                                                    \
        flat_span(g, kh, kw, oh0, oh1, &a, &b, &lo, &hi);                                        \
        const int64_t x0 = kw * g->dw - g->pw, first = (a + kh * g->dh - g->ph) * W + lo + x0;   \
        const size_t run = a == b ? 0 : (size_t)((b - 1 - a) * W + hi - lo);                     \
        for (int64_t c = 0; c < g->Cg; c++) {                                                    \
          T *dst = col + ((c * g->kH + kh) * g->kW + kw) * ld;                                   \
          if (a > oh0) memset(dst, 0, (size_t)((a - oh0) * W) * sizeof(T));                      \
          if (b < oh1) memset(dst + (b - oh0) * W, 0, (size_t)((oh1 - b) * W) * sizeof(T));      \
          if (!run) continue;                                                                    \
          T *d = dst + (a - oh0) * W;                                                            \
          memcpy(d + lo, img + c * g->H * W + first, run * sizeof(T));                           \
          for (int64_t oh = a; oh < b; oh++, d += W) {                                           \
            for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0;                                       \
            for (int64_t ow = hi; ow < W; ow++) d[ow] = 0;                                       \
          }                                                                                      \
        }                                                                                        \
      }                                                                                          \
  }                                                                                              \
  static void col2im_flat_##P(const conv_geom *g, T *col, T *img, int64_t oh0, int64_t oh1) {    \
    const int64_t W = g->W, ld = (oh1 - oh0) * W;                                                \
    for (int64_t kh = 0; kh < g->kH; kh++)                                                       \
      for (int64_t kw = 0; kw < g->kW; kw++) {                                                   \
        int64_t a, b, lo, hi;                                                                    \
        flat_span(g, kh, kw, oh0, oh1, &a, &b, &lo, &hi);                                        \
        if (a == b) continue;                                                                    \
        const int64_t x0 = kw * g->dw - g->pw, first = (a + kh * g->dh - g->ph) * W + lo + x0;   \
        const int64_t n = (b - 1 - a) * W + hi - lo;                                             \
        for (int64_t c = 0; c < g->Cg; c++) {                                                    \
          T *s = col + ((c * g->kH + kh) * g->kW + kw) * ld + (a - oh0) * W;                     \
          for (int64_t oh = a; oh < b; oh++) {                                                   \
            T *r = s + (oh - a) * W;                                                             \
            for (int64_t ow = 0; ow < lo; ow++) r[ow] = 0;                                       \
            for (int64_t ow = hi; ow < W; ow++) r[ow] = 0;                                       \
          }                                                                                      \
          T *restrict d = img + c * g->H * W + first;                                            \
          const T *restrict sr = s + lo;                                                         \
          for (int64_t i = 0; i < n; i++) d[i] += sr[i];                                         \
        }                                                                                        \
      }                                                                                          \
  }

/* im2col over output rows [oh0, oh1): col[(c*kH + kh)*kW + kw][(oh - oh0)*Wo + ow] =
 * img[c][oh*sh - ph + kh*dh][ow*sw - pw + kw*dw], zero outside the image; rows of col are
 * (oh1 - oh0) * Wo long. col2im adds the same positions back (img += ...). The valid range
 * of ow is worked out once per kernel column, so the inner loops are plain copies and adds. */
#define DEF_COLS(T, P)                                                                           \
  static void im2col_##P(const conv_geom *g, const T *img, T *col, int64_t oh0, int64_t oh1) {   \
    if (g->flat) return im2col_flat_##P(g, img, col, oh0, oh1);                                  \
    const int64_t ld = (oh1 - oh0) * g->Wo;                                                      \
    for (int64_t c = 0; c < g->Cg; c++)                                                          \
      for (int64_t kh = 0; kh < g->kH; kh++)                                                     \
        for (int64_t kw = 0; kw < g->kW; kw++) {                                                 \
          const int64_t x0 = kw * g->dw - g->pw, sw = g->sw;                                     \
          int64_t lo, hi;                                                                        \
          valid_cols(g, x0, &lo, &hi);                                                           \
          T *dst = col + ((c * g->kH + kh) * g->kW + kw) * ld;                                   \
          for (int64_t oh = oh0; oh < oh1; oh++, dst += g->Wo) {                                 \
            const int64_t ih = oh * g->sh - g->ph + kh * g->dh;                                  \
            if (ih < 0 || ih >= g->H) {                                                          \
              for (int64_t ow = 0; ow < g->Wo; ow++) dst[ow] = 0;                                \
              continue;                                                                          \
            }                                                                                    \
            const T *row = img + (c * g->H + ih) * g->W;                                         \
            for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0;                                     \
            if (sw == 1) {                                                                       \
              const T *restrict s = row + lo + x0;                                               \
              T *restrict d = dst + lo;                                                          \
              for (int64_t i = 0; i < hi - lo; i++) d[i] = s[i];                                 \
            } else {                                                                             \
              for (int64_t ow = lo; ow < hi; ow++) dst[ow] = row[ow * sw + x0];                  \
            }                                                                                    \
            for (int64_t ow = hi; ow < g->Wo; ow++) dst[ow] = 0;                                 \
          }                                                                                      \
        }                                                                                        \
  }                                                                                              \
  static void col2im_##P(const conv_geom *g, T *col, T *img, int64_t oh0, int64_t oh1) {         \
    if (g->flat) return col2im_flat_##P(g, col, img, oh0, oh1);                                  \
    const int64_t ld = (oh1 - oh0) * g->Wo;                                                      \
    for (int64_t c = 0; c < g->Cg; c++)                                                          \
      for (int64_t kh = 0; kh < g->kH; kh++)                                                     \
        for (int64_t kw = 0; kw < g->kW; kw++) {                                                 \
          const int64_t x0 = kw * g->dw - g->pw, sw = g->sw;                                     \
          int64_t lo, hi;                                                                        \
          valid_cols(g, x0, &lo, &hi);                                                           \
          const T *src = col + ((c * g->kH + kh) * g->kW + kw) * ld;                             \
          for (int64_t oh = oh0; oh < oh1; oh++, src += g->Wo) {                                 \
            const int64_t ih = oh * g->sh - g->ph + kh * g->dh;                                  \
            if (ih < 0 || ih >= g->H) continue;                                                  \
            T *row = img + (c * g->H + ih) * g->W;                                               \
            if (sw == 1) {                                                                       \
              T *restrict r = row + lo + x0;                                                     \
              const T *restrict s = src + lo;                                                    \
              for (int64_t i = 0; i < hi - lo; i++) r[i] += s[i];                                \
            } else {                                                                             \
              for (int64_t ow = lo; ow < hi; ow++) row[ow * sw + x0] += src[ow];                 \
            }                                                                                    \
          }                                                                                      \
        }                                                                                        \
  }                                                                                              \
  /* The sum of r[0..n) in double, in 8 interleaved lanes (vectorisable; a fixed order). */     \
  static double row_sum_##P(const T *restrict r, int64_t n) {                                    \
    double a[8] = {0};                                                                           \
    int64_t i = 0;                                                                               \
    for (; i + 8 <= n; i += 8)                                                                   \
      for (int j = 0; j < 8; j++) a[j] += (double)r[i + j];                                      \
    double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));                \
    for (; i < n; i++) s += (double)r[i];                                                        \
    return s;                                                                                    \
  }

/* The work of a forward or backward loop: geometry, tensors, and each worker's column matrix. */
typedef struct conv_job {
  const conv_geom *g;
  const void *x, *w, *bias, *gy;
  void *y, *gx, *gw, *gw_part; /* gw_part: (chunks - 1) partials of grad_weight after chunk 0's gw */
  double *gb_part;             /* one [Cout] partial of grad_bias per chunk, or NULL */
  char *cols;                  /* per-worker column matrices, col_bytes apart */
  size_t col_bytes;
  int ncols;                   /* workers with a column matrix in `cols` */
  int64_t th, ntiles;          /* output rows per tile, tiles per element */
  atomic_int failed;           /* a chunk could not get scratch */
  /* the fast path: per-worker planes instead of column matrices (col_bytes set by the caller) */
  bool fast;
  mt_plane_geom px, pg;           /* planes of x, of grad_output */
  const int64_t *off, *offT;   /* their row offsets */
  const float *wp;             /* packed weight of the loop's mt_planes_fwd */
} conv_job;

/* The worker's column matrix (the last resort, a worker beyond those counted when the scratch
 * was sized: its own allocation, *owned set). */
static void *job_col(conv_job *j, int worker, bool *owned) {
  *owned = false;
  if (j->g->direct) return NULL;
  if (worker >= 0 && worker < j->ncols) return j->cols + (size_t)worker * j->col_bytes;
  void *p = aligned_alloc(64, j->col_bytes);
  if (!p) atomic_store(&j->failed, 1);
  return *owned = p != NULL, p;
}

/* forward over items [b, e) of (element, tile): y ([N, Cout, L], uninitialised) = W x + bias. */
#define DEF_CONV(T, P)                                                                           \
  DEF_FLAT(T, P)                                                                                 \
  DEF_COLS(T, P)                                                                                 \
  static void forward_##P(void *ctx, int64_t b, int64_t e, int chunk, int worker) {              \
    (void)chunk;                                                                                 \
    conv_job *j = ctx;                                                                           \
    const conv_geom *g = j->g;                                                                   \
    const T *x = j->x, *w = j->w, *bias = j->bias;                                               \
    T *y = j->y;                                                                                 \
    const int64_t HW = g->H * g->W, K = g->K, L = g->L;                                          \
    bool owned;                                                                                  \
    T *col = job_col(j, worker, &owned);                                                         \
    if (!g->direct && !col) return;                                                              \
    for (int64_t it = b; it < e; it++) {                                                         \
      const int64_t n = it / j->ntiles, oh0 = it % j->ntiles * j->th;                            \
      const int64_t oh1 = oh0 + j->th < g->Ho ? oh0 + j->th : g->Ho, tl = (oh1 - oh0) * g->Wo;   \
      for (int64_t grp = 0; grp < g->groups; grp++) {                                            \
        const T *xg = x + (n * g->C + grp * g->Cg) * HW;                                         \
        T *yg = y + (n * g->Cout + grp * g->Coutg) * L + oh0 * g->Wo;                            \
        for (int64_t co = 0; co < g->Coutg; co++) { /* the bias, which gemm adds onto */         \
          const T bv = bias ? bias[grp * g->Coutg + co] : 0;                                     \
          T *restrict r = yg + co * L;                                                           \
          for (int64_t l = 0; l < tl; l++) r[l] = bv;                                            \
        }                                                                                        \
        if (K == 0) continue; /* no input channels: a sum of nothing */                          \
        if (!g->direct) im2col_##P(g, xg, col, oh0, oh1);                                        \
        cblas_##P##gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->Coutg, (int)tl, (int)K, 1, \
                        w + grp * g->Coutg * K, (int)K, g->direct ? xg + oh0 * g->Wo : col,     \
                        (int)(g->direct ? L : tl), 1, yg, (int)L);                               \
      }                                                                                          \
    }                                                                                            \
    if (owned) free(col);                                                                        \
  }                                                                                              \
  /* backward over the batch elements [b, e) of chunk `chunk`: gx (or NULL) gets its elements   \
   * (zeroed here, where they are about to be used); grad_weight (zeroed) and grad_bias         \
   * accumulate into the chunk's partials. */                                                    \
  static void backward_##P(void *ctx, int64_t b, int64_t e, int chunk, int worker) {             \
    conv_job *j = ctx;                                                                           \
    const conv_geom *g = j->g;                                                                   \
    const T *x = j->x, *w = j->w, *gy = j->gy;                                                   \
    T *gx = j->gx;                                                                               \
    const int64_t HW = g->H * g->W, K = g->K, L = g->L;                                          \
    T *gw = !j->gw ? NULL : chunk == 0 ? (T *)j->gw : (T *)j->gw_part + (chunk - 1) * g->Cout * K; \
    double *gb = j->gb_part ? j->gb_part + chunk * g->Cout : NULL;                               \
    bool owned = false;                                                                          \
    T *col = NULL;                                                                               \
    if ((gw || gx) && K > 0 && !(col = job_col(j, worker, &owned)) && !g->direct) return;        \
    for (int64_t n = b; n < e; n++) {                                                            \
      const T *gyn = gy + n * g->Cout * L;                                                       \
      if (gx) memset(gx + n * g->C * HW, 0, (size_t)(g->C * HW) * sizeof(T));                    \
      if (gb)                                                                                    \
        for (int64_t co = 0; co < g->Cout; co++) gb[co] += row_sum_##P(gyn + co * L, L);         \
      if ((!gx && !gw) || K == 0) continue;                                                      \
      for (int64_t oh0 = 0; oh0 < g->Ho; oh0 += j->th) {                                         \
        const int64_t oh1 = oh0 + j->th < g->Ho ? oh0 + j->th : g->Ho, tl = (oh1 - oh0) * g->Wo; \
        for (int64_t grp = 0; grp < g->groups; grp++) {                                          \
          const T *xg = x ? x + (n * g->C + grp * g->Cg) * HW : NULL;                            \
          const T *G = gyn + grp * g->Coutg * L + oh0 * g->Wo; /* [Coutg, tl], ld L */          \
          const T *wg = w ? w + grp * g->Coutg * K : NULL;                                       \
          if (gw) { /* gw_g [Coutg, K] += G [Coutg, tl] col^T [tl, K] */                         \
            const T *cm = g->direct ? xg + oh0 * g->Wo : col;                                    \
            if (!g->direct) im2col_##P(g, xg, col, oh0, oh1);                                    \
            cblas_##P##gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->Coutg, (int)K, (int)tl, 1, G, \
                            (int)L, cm, (int)(g->direct ? L : tl), 1, gw + grp * g->Coutg * K, (int)K); \
          }                                                                                      \
          if (gx) { /* col [K, tl] = W_g^T [K, Coutg] G [Coutg, tl], folded back */             \
            T *gxg = gx + (n * g->C + grp * g->Cg) * HW;                                         \
            if (g->direct)                                                                       \
              cblas_##P##gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)tl, (int)g->Coutg, 1, wg, \
                              (int)K, G, (int)L, 0, gxg + oh0 * g->Wo, (int)L);                  \
            else {                                                                               \
              cblas_##P##gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)tl, (int)g->Coutg, 1, wg, \
                              (int)K, G, (int)L, 0, col, (int)tl);                               \
              col2im_##P(g, col, gxg, oh0, oh1);                                                 \
            }                                                                                    \
          }                                                                                      \
        }                                                                                        \
      }                                                                                          \
    }                                                                                            \
    if (owned) free(col);                                                                        \
  }

DEF_CONV(float, s)
DEF_CONV(double, d)

/* Work of one element, in flops, for sizing pool chunks. */
static double element_flops(const conv_geom *g) { return 2.0 * (double)g->Cout * (double)g->K * (double)g->L + 1.0; }

/* ---- the fast path: float32, stride 1, output rows as wide as the input rows --------------
 * The epoch-sized convolutions spend as much time in im2col, OpenBLAS's packing, its beta
 * pass and col2im as in its kernel. With stride 1 and W_out == W, a column-matrix row for
 * (c, kh, kw) is the image shifted by kh rows in a copy of channel c shifted by kw columns
 * (zero-padded): those kW "planes" per channel, kW times the input rather than kH * kW times,
 * replace the column matrix, and register-tiled AVX2 + FMA kernels read them in place:
 *   forward      y[co][p]  = sum_k Wp[k][co] * planes[off[k] + p]            (mt_planes_fwd)
 *   grad_input   the same kernel on planes of grad_output with the flipped, transposed
 *                weight: a stride-1 conv whose output is W wide again, written straight
 *                into grad_input (no zeroing, no col2im)
 *   grad_weight  gw[co][k] = sum_p G[co][p] * planes[off[k] + p]             (mt_planes_gw)
 * Each output is one chain of FMAs in k (or p) order, so a result depends on the shapes
 * only, never on the thread count. Other dtypes and shapes take the im2col + gemm path. */

#define FAST_PLANES ((int64_t)1 << 20) /* floats of a worker's planes (4 MB): larger ones take gemm */


/* The planes of the forward (of x) and of grad_input's conv (of grad_output, padded so that
 * the flipped kernel gives rows [0, H)). */
static mt_plane_geom fwd_planes(const conv_geom *g) {
  return mt_plane_geom_make(g->C, g->H, g->W, g->Ho, g->kH, g->kW, g->dh, g->dw, g->ph, g->pw);
}
static mt_plane_geom gx_planes(const conv_geom *g) {
  return mt_plane_geom_make(g->Cout, g->Ho, g->W, g->H, g->kH, g->kW, g->dh, g->dw, (g->kH - 1) * g->dh - g->ph,
                            (g->kW - 1) * g->dw - g->pw);
}

/* Whether the fast path takes this conv (for the backward: with these gradients); sets
 * *floats to a worker's scratch in floats. A whole image per item (the forward's tiles must
 * be whole images) and planes within FAST_PLANES. */
static bool fast_ok(const conv_geom *g, bool fwd, bool need_gx, bool need_gw, int64_t *floats) {
  if (!g->flat || g->dtype != MT_FLOAT32 || g->groups != 1 || g->K == 0 || g->L == 0 || g->H == 0 || !mt_planes_cpu())
    return false;
  const mt_plane_geom px = fwd_planes(g), pg = gx_planes(g);
  if (px.R * g->W > FAST_PLANES || pg.R * g->W > FAST_PLANES || g->C > FAST_PLANES || g->Cout > FAST_PLANES ||
      g->kW > FAST_PLANES)
    return false; /* keeps the products below far from overflow */
  int64_t n = 0;
  if (fwd) n = mt_plane_floats(&px);
  if (need_gw) n += mt_plane_floats(&px) + g->Cout * g->K * 8; /* and the 8-lane sums */
  if (need_gx) n += mt_plane_floats(&pg);
  *floats = n;
  return n <= FAST_PLANES;
}

/* forward over the images [b, e): y = conv(x, w) + bias, from the planes of each image. */
static void forward_fast(void *ctx, int64_t b, int64_t e, int chunk, int worker) {
  (void)chunk;
  conv_job *j = ctx;
  const conv_geom *g = j->g;
  bool owned;
  float *pl = job_col(j, worker, &owned);
  if (!pl) return;
  const int64_t xn = g->C * g->H * g->W;
  for (int64_t n = b; n < e; n++) { /* mt_prefetch the next image of the batch: a chunk may be one */
    const mt_prefetch pf = {{(const char *)((const float *)j->x + (n + 1) * xn)}, {n + 1 < g->N ? xn * 4 : 0}};
    mt_planes_build(&j->px, (const float *)j->x + n * xn, pl);
    mt_planes_fwd(pl, j->off, j->wp, g->Cout, g->K, g->L, (float *)j->y + n * g->Cout * g->L, j->bias, &pf);
  }
  if (owned) free(pl);
}

/* backward over the batch elements [b, e) of chunk `chunk`, as backward_s: grad_input written
 * per element, grad_weight into the chunk's partial (from lane sums over the chunk). */
static void backward_fast(void *ctx, int64_t b, int64_t e, int chunk, int worker) {
  conv_job *j = ctx;
  const conv_geom *g = j->g;
  const float *x = j->x, *gy = j->gy;
  float *gx = j->gx;
  const int64_t HW = g->H * g->W, K = g->K, L = g->L;
  float *gw = !j->gw ? NULL : chunk == 0 ? (float *)j->gw : (float *)j->gw_part + (chunk - 1) * g->Cout * K;
  double *gb = j->gb_part ? j->gb_part + chunk * g->Cout : NULL;
  bool owned = false;
  float *buf = NULL;
  if ((gw || gx) && !(buf = job_col(j, worker, &owned))) return;
  float *plx = buf, *acc = gw ? plx + mt_plane_floats(&j->px) : NULL, *plg = gw ? acc + g->Cout * K * 8 : buf;
  if (gw) memset(acc, 0, (size_t)(g->Cout * K * 8) * sizeof(float));
  for (int64_t n = b; n < e; n++) {
    const float *gyn = gy + n * g->Cout * L;
    /* the next element's x while grad_weight runs, its grad_output during grad_input's conv */
    const int64_t more = n + 1 < g->N, xb = gw ? more * g->C * HW * 4 : 0, gyb = more * g->Cout * L * 4;
    const mt_prefetch pw = {{gw ? (const char *)(x + (n + 1) * g->C * HW) : NULL, (const char *)(gyn + g->Cout * L)},
                         {xb, gx ? 0 : gyb}};
    const mt_prefetch pg = {{(const char *)(gyn + g->Cout * L)}, {gyb}};
    if (gb)
      for (int64_t co = 0; co < g->Cout; co++) gb[co] += row_sum_s(gyn + co * L, L);
    if (gw) {
      mt_planes_build(&j->px, x + n * g->C * HW, plx);
      mt_planes_gw(gyn, g->Cout, K, L, plx, j->off, acc, &pw);
    }
    if (gx) {
      mt_planes_build(&j->pg, gyn, plg);
      mt_planes_fwd(plg, j->offT, j->wp, g->C, g->Cout * g->kH * g->kW, HW, gx + n * g->C * HW, NULL, &pg);
    }
  }
  if (gw) mt_planes_gw_reduce(acc, g->Cout * K, gw);
  if (owned) free(buf);
}

/* The fast path's shared, read-only tables for a loop: packed weights (forward: wp[k][co] =
 * w[co][k]; grad_input: the flipped kernel, wp[(co, kh, kw)][c] = w[co][c][kH-1-kh][kW-1-kw])
 * and plane offsets. One allocation, returned for the caller to free. */
static void *fast_tables(conv_job *j, bool fwd, bool need_gx, bool need_gw) {
  const conv_geom *g = j->g;
  const float *w = j->w;
  const int64_t K = g->K, Kt = g->Cout * g->kH * g->kW;
  j->px = fwd_planes(g), j->pg = gx_planes(g);
  int64_t *t = malloc((size_t)(K + Kt + g->Cout * K) * 8);
  if (!t) return NULL;
  int64_t *off = t, *offT = t + K;
  float *wp = (float *)(t + K + Kt);
  if (fwd || need_gw) mt_plane_offsets(&j->px, off);
  if (need_gx) mt_plane_offsets(&j->pg, offT);
  if (fwd)
    for (int64_t co = 0; co < g->Cout; co++)
      for (int64_t k = 0; k < K; k++) wp[k * g->Cout + co] = w[co * K + k];
  else if (need_gx)
    for (int64_t co = 0; co < g->Cout; co++)
      for (int64_t c = 0; c < g->C; c++)
        for (int64_t kh = 0; kh < g->kH; kh++)
          for (int64_t kw = 0; kw < g->kW; kw++)
            wp[((co * g->kH + kh) * g->kW + kw) * g->C + c] =
                w[((co * g->C + c) * g->kH + (g->kH - 1 - kh)) * g->kW + (g->kW - 1 - kw)];
  j->off = off, j->offT = offT, j->wp = wp;
  return t;
}

/* Scratch for a loop: a column matrix per worker, then `extra` bytes (64-aligned start). */
static mt_status job_scratch(conv_job *j, size_t extra, char **extra_p, void **to_free) {
  const conv_geom *g = j->g;
  const size_t es = mt_dtype_size(g->dtype);
  if (!j->fast) j->col_bytes = g->direct ? 0 : ((size_t)(g->K * j->th * g->Wo) * es + 63) & ~(size_t)63;
  j->ncols = g->direct ? 0 : mt_get_num_threads();
  const size_t cols = j->col_bytes * (size_t)j->ncols;
  bool owned;
  char *p = scratch_get(cols + extra, &owned);
  if (!p)
    return mt_fail(MT_ENOMEM, "out of memory for the convolution's scratch (%zu bytes)", cols + extra);
  j->cols = p;
  if (extra_p) *extra_p = p + cols;
  *to_free = owned ? p : NULL;
  return MT_OK;
}

/* y = conv(x, w) + bias over the whole batch. */
static mt_status conv_forward(const conv_geom *g, const void *x, const void *w, const void *bias, void *y) {
  conv_job j = {.g = g, .x = x, .w = w, .bias = bias, .y = y, .th = g->th};
  /* a small batch: finer tiles, so that threads have items to share (fixed by the shapes, not
   * by the thread count: the tiling changes gemm's edge cases, hence the last bits) */
  if (g->N < MIN_ITEMS && g->K > 0) {
    int64_t want = (MIN_ITEMS + g->N - 1) / g->N, worth = (int64_t)(element_flops(g) / CHUNK_FLOPS);
    want = want < worth ? want : worth;
    if (want > 1 && (g->Ho + want - 1) / want < j.th) j.th = (g->Ho + want - 1) / want;
  }
  j.ntiles = (g->Ho + j.th - 1) / j.th;
  int64_t fast_floats;
  void *tables = NULL;
  if (j.ntiles == 1 && fast_ok(g, true, false, false, &fast_floats)) {
    if (!(tables = fast_tables(&j, true, false, false)))
      return mt_fail(MT_ENOMEM, "out of memory for a convolution's column matrix");
    j.fast = true, j.col_bytes = ((size_t)fast_floats * sizeof(float) + 63) & ~(size_t)63;
  }
  void *to_free;
  mt_status st = job_scratch(&j, 0, NULL, &to_free);
  if (st) return free(tables), st;
  const int64_t items = g->N * j.ntiles;
  const double item_flops = element_flops(g) / (double)j.ntiles;
  const int64_t grain = item_flops >= CHUNK_FLOPS ? 1 : (int64_t)(CHUNK_FLOPS / item_flops) + 1;
  mt_parallel_for(items, grain, j.fast ? forward_fast : g->dtype == MT_FLOAT32 ? forward_s : forward_d, &j);
  free(to_free);
  free(tables);
  return atomic_load(&j.failed) ? mt_fail(MT_ENOMEM, "out of memory for a convolution's column matrix") : MT_OK;
}

/* gx (or NULL), gw (zeroed, or NULL), gb (or NULL) from gy. */
static mt_status conv_backward_run(const conv_geom *g, const void *x, const void *w, const void *gy, void *gx, void *gw,
                                   void *gb) {
  const size_t es = mt_dtype_size(g->dtype);
  conv_job j = {.g = g, .x = x, .w = w, .gy = gy, .gx = gx, .gw = gw, .th = g->th};
  j.ntiles = (g->Ho + j.th - 1) / j.th;
  /* batch chunks: at most MAX_BATCH_CHUNKS, each worth a pool chunk; fixed by the shapes */
  int64_t grain = (int64_t)(CHUNK_FLOPS / (2 * element_flops(g))) + 1;
  if (grain * MAX_BATCH_CHUNKS < g->N) grain = (g->N + MAX_BATCH_CHUNKS - 1) / MAX_BATCH_CHUNKS;
  const int chunks = mt_parallel_chunks(g->N, grain);
  const size_t gw_bytes = gw ? (size_t)(chunks - 1) * (size_t)(g->Cout * g->K) * es : 0;
  const size_t gb_off = (gw_bytes + 63) & ~(size_t)63, gb_bytes = gb ? (size_t)chunks * (size_t)g->Cout * sizeof(double) : 0;
  int64_t fast_floats;
  void *tables = NULL;
  if ((gx || gw) && fast_ok(g, false, gx != NULL, gw != NULL, &fast_floats)) {
    if (!(tables = fast_tables(&j, false, gx != NULL, gw != NULL)))
      return mt_fail(MT_ENOMEM, "out of memory for a convolution's column matrix");
    j.fast = true, j.col_bytes = ((size_t)fast_floats * sizeof(float) + 63) & ~(size_t)63;
  }
  char *extra;
  void *to_free;
  mt_status st = job_scratch(&j, gb_off + gb_bytes, &extra, &to_free);
  if (st) return free(tables), st;
  if (gw_bytes) {
    j.gw_part = extra;
    if (!j.fast) memset(extra, 0, gw_bytes); /* the fast path writes each chunk's partial whole */
  }
  if (gb_bytes) memset(extra + gb_off, 0, gb_bytes), j.gb_part = (double *)(extra + gb_off);
  mt_parallel_for(g->N, grain, j.fast ? backward_fast : g->dtype == MT_FLOAT32 ? backward_s : backward_d, &j);
  free(tables);
  if (!atomic_load(&j.failed)) {
    /* the partials, in chunk order */
    const int64_t nw = g->Cout * g->K;
    for (int c = 1; gw && c < chunks; c++) {
      if (g->dtype == MT_FLOAT32) {
        float *restrict d = gw;
        const float *restrict s = (const float *)j.gw_part + (c - 1) * nw;
        for (int64_t i = 0; i < nw; i++) d[i] += s[i];
      } else {
        double *restrict d = gw;
        const double *restrict s = (const double *)j.gw_part + (c - 1) * nw;
        for (int64_t i = 0; i < nw; i++) d[i] += s[i];
      }
    }
    for (int64_t co = 0; gb && co < g->Cout; co++) {
      double acc = 0;
      for (int c = 0; c < chunks; c++) acc += j.gb_part[c * g->Cout + co];
      if (g->dtype == MT_FLOAT32) ((float *)gb)[co] = (float)acc;
      else ((double *)gb)[co] = acc;
    }
  }
  free(to_free);
  return atomic_load(&j.failed) ? mt_fail(MT_ENOMEM, "out of memory for a convolution's column matrix") : MT_OK;
}

/* ---- backward node ------------------------------------------------------------------------ */

typedef struct conv_node {
  mt_node base;
  conv_geom g;
  mt_saved input, weight; /* contiguous */
} conv_node;

static void conv_release(mt_node *n) {
  mt_saved_release(&((conv_node *)n)->input);
  mt_saved_release(&((conv_node *)n)->weight);
}

static mt_status conv_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  conv_node *cn = (conv_node *)n;
  const conv_geom *g = &cn->g;
  if (!gout[0]) return MT_OK;
  const mt_edge *ex = &n->next[0], *ew = &n->next[1];
  const bool need_x = mt_edge_live(ex), need_w = mt_edge_live(ew), need_b = mt_edge_live(&n->next[2]);
  mt_tensor *x = NULL, *w = NULL, *gy = NULL, *gx = NULL, *gw = NULL, *gb = NULL;
  mt_status st;
  if (need_w && (st = mt_saved_get(&cn->input, n, &x))) return st;
  if (need_x && (st = mt_saved_get(&cn->weight, n, &w))) return st;
  if ((st = mt_contiguous(&gy, gout[0]))) return st;
  if ((need_x && (st = mt_empty(&gx, g->dtype, ex->ndim, ex->sizes))) || /* the loop zeroes it */
      (need_w && (st = mt_zeros(&gw, g->dtype, ew->ndim, ew->sizes))) ||
      (need_b && (st = mt_empty(&gb, g->dtype, 1, &g->Cout))))
    goto done;
  if (g->N > 0 && g->Cout > 0)
    st = conv_backward_run(g, x ? mt_data(x) : NULL, w ? mt_data(w) : NULL, mt_data(gy), gx ? mt_data(gx) : NULL,
                           gw ? mt_data(gw) : NULL, gb ? mt_data(gb) : NULL);
  else { /* no outputs: sums of nothing */
    if (gb) memset(mt_data(gb), 0, (size_t)g->Cout * mt_dtype_size(g->dtype));
    if (gx) memset(mt_data(gx), 0, (size_t)mt_numel(gx) * mt_dtype_size(g->dtype));
  }
done:
  mt_tensor_release(gy);
  if (st) {
    mt_tensor_release(gx), mt_tensor_release(gw), mt_tensor_release(gb);
    return st;
  }
  gin[0] = gx, gin[1] = gw, gin[2] = gb;
  return MT_OK;
}

/* ---- the shared driver -------------------------------------------------------------------- */

/* Runs the conv described by g (shapes checked) and records its node. */
static mt_status conv_run(mt_tensor **out, const conv_geom *g, const mt_tensor *input, const mt_tensor *weight,
                          const mt_tensor *bias, int out_ndim, const int64_t *out_sizes, const char *name) {
  if (g->Coutg > INT_MAX || g->K > INT_MAX || g->L > INT_MAX || g->K * g->L > INT64_MAX / 16 ||
      g->Coutg * g->L > INT64_MAX / 16)
    return mt_fail(MT_EARG, "the convolution's matrices (%lld x %lld by %lld x %lld) are too large for BLAS",
                   (long long)g->Coutg, (long long)g->K, (long long)g->K, (long long)g->L);
  const mt_tensor *ins[3] = {input, weight, bias};
  const bool record = mt_grad_needed(3, ins), was = mt_is_grad_enabled();
  mt_tensor *x = NULL, *w = NULL, *b = NULL, *y = NULL;
  mt_status st;
  mt_trace *const tr = mt_active_trace;
  mt_set_grad_enabled(false); /* the contiguous copies record nothing, neither for autograd */
  mt_active_trace = NULL;     /* nor for a trace (the public functions record the conv itself) */
  if ((st = mt_contiguous(&x, input)) || (st = mt_contiguous(&w, weight)) || (bias && (st = mt_contiguous(&b, bias))) ||
      (st = mt_empty(&y, g->dtype, out_ndim, out_sizes)))
    goto done;
  if (g->N > 0 && g->Cout > 0 && (st = conv_forward(g, mt_data(x), mt_data(w), b ? mt_data(b) : NULL, mt_data(y))))
    goto done;
  if (record) {
    conv_node *n = (conv_node *)mt_node_new(sizeof *n, name, conv_backward, conv_release, 3, ins, 1);
    if (!n) st = MT_ENOMEM;
    else {
      n->g = *g;
      if (weight->requires_grad) st = mt_save_tensor(&n->input, x); /* dW needs x, dx needs W */
      if (!st && input->requires_grad) st = mt_save_tensor(&n->weight, w);
      if (!st) mt_node_set_output(&n->base, y, 0);
      mt_node_release(&n->base);
    }
  }
done:
  mt_active_trace = tr;
  mt_set_grad_enabled(was);
  mt_tensor_release(x), mt_tensor_release(w), mt_tensor_release(b);
  if (st) {
    mt_tensor_release(y);
    return st;
  }
  *out = y;
  return MT_OK;
}

/* Checks the arguments of a conv over `nsp` spatial dims (1 or 2) and fills g; the spatial
 * parameters come as [height, width], a 1-d conv having height 1. */
static mt_status conv_setup(conv_geom *g, const char *fn, int nsp, const mt_tensor *input, const mt_tensor *weight,
                            const mt_tensor *bias, const int64_t st[2], const int64_t pad[2], const int64_t dil[2],
                            int64_t groups) {
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  const char *sp = nsp == 2 ? "kH, kW" : "kW";
  if (input->dtype != MT_FLOAT32 && input->dtype != MT_FLOAT64)
    return mt_fail(MT_EDTYPE, "%s supports float32 and float64 inputs, got %s", fn, mt_dtype_name(input->dtype));
  if (weight->dtype != input->dtype || (bias && bias->dtype != input->dtype))
    return mt_fail(MT_EDTYPE, "%s must have the input's dtype %s, got %s", weight->dtype != input->dtype ? "weight" : "bias",
                   mt_dtype_name(input->dtype), mt_dtype_name(weight->dtype != input->dtype ? weight->dtype : bias->dtype));
  for (int i = 2 - nsp; i < 2; i++) {
    if (st[i] <= 0) return mt_fail(MT_EARG, "stride must be positive, got %lld", (long long)st[i]);
    if (pad[i] < 0) return mt_fail(MT_EARG, "padding must not be negative, got %lld", (long long)pad[i]);
    if (dil[i] <= 0) return mt_fail(MT_EARG, "dilation must be positive, got %lld", (long long)dil[i]);
    if (pad[i] > INT_MAX || dil[i] > INT_MAX) /* keeps the size arithmetic below far from overflow */
      return mt_fail(MT_EARG, "padding %lld or dilation %lld is too large", (long long)pad[i], (long long)dil[i]);
  }
  if (groups <= 0) return mt_fail(MT_EARG, "groups must be positive, got %lld", (long long)groups);
  if (weight->ndim != nsp + 2)
    return mt_fail(MT_ESHAPE, "weight must be a %d-D [out_channels, in_channels / groups, %s] tensor, got shape %s",
                   nsp + 2, sp, mt_shape_str(a, sizeof a, weight->ndim, weight->sizes));
  if (input->ndim != nsp + 1 && input->ndim != nsp + 2)
    return mt_fail(MT_ESHAPE, "expected %d-D (unbatched) or %d-D (batched) input to %s, got input of shape %s", nsp + 1,
                   nsp + 2, fn, mt_shape_str(a, sizeof a, input->ndim, input->sizes));
  const bool batched = input->ndim == nsp + 2;
  const int64_t *is = input->sizes + (batched ? 1 : 0), *ws = weight->sizes; /* is: C, [H,] W */
  for (int d = 2; d < weight->ndim; d++)
    if (ws[d] == 0) return mt_fail(MT_ESHAPE, "weight of shape %s has an empty kernel", mt_shape_str(a, sizeof a, weight->ndim, ws));
  if (ws[0] % groups)
    return mt_fail(MT_ESHAPE, "given groups=%lld, expected weight to be divisible by %lld at dim %lld, but got weight "
                              "of shape %s",
                   (long long)groups, (long long)groups, MT_SHOW(0), mt_shape_str(a, sizeof a, weight->ndim, ws));
  int64_t channels;
  if (mt_mul_overflow(ws[1], groups, &channels)) return mt_fail(MT_EARG, "groups=%lld is too large", (long long)groups);
  if (is[0] != channels)
    return mt_fail(MT_ESHAPE, "given groups=%lld, weight of shape %s, expected input of shape %s to have %lld channels, "
                              "but got %lld channels",
                   (long long)groups, mt_shape_str(a, sizeof a, weight->ndim, ws),
                   mt_shape_str(b, sizeof b, input->ndim, input->sizes), (long long)channels, (long long)is[0]);
  if (bias && (bias->ndim != 1 || bias->sizes[0] != ws[0]))
    return mt_fail(MT_ESHAPE, "given weight of shape %s, expected bias to be 1-D with %lld elements, but got bias of "
                              "shape %s",
                   mt_shape_str(a, sizeof a, weight->ndim, ws), (long long)ws[0],
                   mt_shape_str(b, sizeof b, bias->ndim, bias->sizes));
  *g = (conv_geom){
      .dtype = input->dtype, .N = batched ? input->sizes[0] : 1, .C = is[0],
      .H = nsp == 2 ? is[1] : 1, .W = is[nsp], .Cout = ws[0],
      .kH = nsp == 2 ? ws[2] : 1, .kW = ws[nsp + 1],
      .sh = st[0], .sw = st[1], .ph = pad[0], .pw = pad[1], .dh = dil[0], .dw = dil[1], .groups = groups,
  };
  /* the padded input must hold the dilated kernel (overflow-safe: sizes are far below 2^62) */
  int64_t ekh = g->dh * (g->kH - 1) + 1, ekw = g->dw * (g->kW - 1) + 1;
  int64_t ph = g->H + 2 * g->ph, pw = g->W + 2 * g->pw;
  if (ph < ekh || pw < ekw) {
    if (nsp == 2)
      return mt_fail(MT_ESHAPE, "padded input of size (%lld x %lld) per channel is smaller than the kernel (%lld x %lld "
                                "with dilation)",
                     (long long)ph, (long long)pw, (long long)ekh, (long long)ekw);
    return mt_fail(MT_ESHAPE, "padded input of size (%lld) per channel is smaller than the kernel (%lld with dilation)",
                   (long long)pw, (long long)ekw);
  }
  g->Ho = (ph - ekh) / g->sh + 1;
  g->Wo = (pw - ekw) / g->sw + 1;
  g->Cg = ws[1];
  g->Coutg = g->Cout / groups;
  g->K = g->Cg * g->kH * g->kW;
  g->L = g->Ho * g->Wo;
  g->direct = g->kH == 1 && g->kW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
  g->flat = !g->direct && g->sh == 1 && g->sw == 1 && g->Wo == g->W;
  /* output rows per tile: the whole element when its columns fit the budget */
  const int64_t row_cols = g->K * g->Wo > 0 ? g->K * g->Wo : 1;
  g->th = TILE_BUDGET / row_cols;
  g->th = g->th < 1 ? 1 : g->th > g->Ho ? (g->Ho > 0 ? g->Ho : 1) : g->th;
  return MT_OK;
}

MT_API mt_status mt_conv2d(mt_tensor **out, const mt_tensor *input, const mt_tensor *weight, const mt_tensor *bias,
                           const int64_t stride[2], const int64_t padding[2], const int64_t dilation[2], int64_t groups) {
  conv_geom g;
  mt_status st = conv_setup(&g, "conv2d", 2, input, weight, bias, stride, padding, dilation, groups);
  if (st) return st;
  const bool batched = input->ndim == 4;
  int64_t sizes[4] = {g.N, g.Cout, g.Ho, g.Wo};
  /* unbatched: PyTorch runs it as a batch of one and squeezes, hence its node name */
  if ((st = conv_run(out, &g, input, weight, bias, batched ? 4 : 3, batched ? sizes : sizes + 1,
                     batched ? "ConvolutionBackward0" : "SqueezeBackward1")))
    return st;
  if (mt_tracing()) {
    const mt_tensor *ins[3] = {input, weight, bias};
    mt_trace_record("conv2d", 3, ins, 1, out, "stride=I2 padding=I2 dilation=I2 groups=i", stride, padding, dilation,
                    groups);
  }
  return MT_OK;
}

MT_API mt_status mt_conv1d(mt_tensor **out, const mt_tensor *input, const mt_tensor *weight, const mt_tensor *bias,
                           int64_t stride, int64_t padding, int64_t dilation, int64_t groups) {
  conv_geom g;
  const int64_t s[2] = {1, stride}, p[2] = {0, padding}, d[2] = {1, dilation};
  mt_status st = conv_setup(&g, "conv1d", 1, input, weight, bias, s, p, d, groups);
  if (st) return st;
  const bool batched = input->ndim == 3;
  int64_t sizes[3] = {g.N, g.Cout, g.Wo};
  if ((st = conv_run(out, &g, input, weight, bias, batched ? 3 : 2, batched ? sizes : sizes + 1,
                     batched ? "ConvolutionBackward0" : "SqueezeBackward1")))
    return st;
  if (mt_tracing()) {
    const mt_tensor *ins[3] = {input, weight, bias};
    mt_trace_record("conv1d", 3, ins, 1, out, "stride=i padding=i dilation=i groups=i", stride, padding, dilation,
                    groups);
  }
  return MT_OK;
}
