/*
 * nn_conv.c — conv2d and conv1d (a conv1d is a conv2d over a height of 1: [N, C, L] has the
 * memory of [N, C, 1, L], and its weight that of [C_out, C_in / g, 1, k]).
 *
 * im2col + gemm, over chunks of the batch: im2col unrolls the input patches of nb batch
 * elements side by side into one column matrix [C_in/g * kH * kW, nb * H_out * W_out], and
 * one gemm per group multiplies the group's weight rows into it; the product is then moved
 * into the [N, C_out, H_out, W_out] output with the bias added. Chunking keeps the scratch
 * bounded while giving BLAS products large enough to use its threads well (one small gemm
 * per batch element spends much of its time waking and parking threads).
 * Backward, per chunk and group, with G gathered the same way into [C_out/g, nb * L]:
 * grad_weight += G col^T (the columns are unrolled again rather than kept: they are
 * kH * kW times the input's size), grad_input = col2im(W_g^T G), and grad_bias sums G over
 * batch and positions. Kernels are generated per dtype (float32, float64).
 */
#include "mt_internal.h"

#include <cblas.h>
#include <limits.h>
#include <stdlib.h>

#define COL_BUDGET ((int64_t)1 << 19) /* elements of a chunk's scratch: 2 MB in float32 */

typedef struct conv_geom {
  mt_dtype dtype;
  int64_t N, C, H, W;  /* the input as [N, C, H, W] */
  int64_t Cout, kH, kW;
  int64_t sh, sw, ph, pw, dh, dw, groups;
  int64_t Ho, Wo;
  int64_t Cg, Coutg;   /* channels per group, in and out */
  int64_t K, L;        /* rows of the column matrix (Cg * kH * kW); positions per element (Ho * Wo) */
  int64_t nb;          /* batch elements per chunk */
} conv_geom;

/* The output columns [lo, hi) whose input column ow * sw + x0 lies in [0, W). */
static void valid_cols(const conv_geom *g, int64_t x0, int64_t *lo, int64_t *hi) {
  int64_t l = x0 >= 0 ? 0 : (-x0 + g->sw - 1) / g->sw;
  int64_t h = g->W - x0 <= 0 ? 0 : (g->W - x0 + g->sw - 1) / g->sw;
  l = l < g->Wo ? l : g->Wo;
  h = h < g->Wo ? h : g->Wo;
  *lo = l, *hi = h > l ? h : l;
}

/* ---- kernels, per dtype ------------------------------------------------------------------- */

/* im2col: col[(c*kH + kh)*kW + kw][oh*Wo + ow] = img[c][oh*sh - ph + kh*dh][ow*sw - pw + kw*dw],
 * zero outside the image; rows of col are ld apart. col2im adds the same positions back
 * (img += ...). The valid range of ow is worked out once per kernel column, so the inner
 * loops are plain copies and adds. */
#define DEF_COLS(T, P)                                                                           \
  static void im2col_##P(const conv_geom *g, const T *img, T *col, int64_t ld) {                 \
    for (int64_t c = 0; c < g->Cg; c++)                                                          \
      for (int64_t kh = 0; kh < g->kH; kh++)                                                     \
        for (int64_t kw = 0; kw < g->kW; kw++) {                                                 \
          const int64_t x0 = kw * g->dw - g->pw, sw = g->sw;                                     \
          int64_t lo, hi;                                                                        \
          valid_cols(g, x0, &lo, &hi);                                                           \
          T *dst = col + ((c * g->kH + kh) * g->kW + kw) * ld;                                   \
          for (int64_t oh = 0; oh < g->Ho; oh++, dst += g->Wo) {                                 \
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
  static void col2im_##P(const conv_geom *g, const T *col, int64_t ld, T *img) {                 \
    for (int64_t c = 0; c < g->Cg; c++)                                                          \
      for (int64_t kh = 0; kh < g->kH; kh++)                                                     \
        for (int64_t kw = 0; kw < g->kW; kw++) {                                                 \
          const int64_t x0 = kw * g->dw - g->pw, sw = g->sw;                                     \
          int64_t lo, hi;                                                                        \
          valid_cols(g, x0, &lo, &hi);                                                           \
          const T *src = col + ((c * g->kH + kh) * g->kW + kw) * ld;                             \
          for (int64_t oh = 0; oh < g->Ho; oh++, src += g->Wo) {                                 \
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
  }

/* forward: y ([N, Cout, L], uninitialised) = W x + bias. Scratch: col (K * nb * L elements)
 * and prod (Coutg * nb * L). */
#define DEF_CONV(T, P)                                                                           \
  DEF_COLS(T, P)                                                                                 \
  static void forward_##P(const conv_geom *g, const T *x, const T *w, const T *bias, T *y, T *col, T *prod) { \
    const int64_t HW = g->H * g->W, K = g->K, L = g->L;                                          \
    for (int64_t n0 = 0; n0 < g->N; n0 += g->nb) {                                               \
      const int64_t nb = g->N - n0 < g->nb ? g->N - n0 : g->nb, ld = nb * L;                     \
      for (int64_t grp = 0; grp < g->groups; grp++) {                                            \
        if (K > 0) {                                                                             \
          for (int64_t i = 0; i < nb; i++)                                                       \
            im2col_##P(g, x + ((n0 + i) * g->C + grp * g->Cg) * HW, col + i * L, ld);            \
          cblas_##P##gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->Coutg, (int)ld, (int)K, 1, \
                          w + grp * g->Coutg * K, (int)K, col, (int)ld, 0, prod, (int)ld);       \
        }                                                                                        \
        for (int64_t i = 0; i < nb; i++)                                                         \
          for (int64_t co = 0; co < g->Coutg; co++) {                                            \
            T *restrict dst = y + ((n0 + i) * g->Cout + grp * g->Coutg + co) * L;                \
            const T *restrict src = prod + co * ld + i * L;                                      \
            const T b = bias ? bias[grp * g->Coutg + co] : 0;                                    \
            if (K > 0)                                                                           \
              for (int64_t l = 0; l < L; l++) dst[l] = src[l] + b;                               \
            else /* no input channels: a sum of nothing */                                       \
              for (int64_t l = 0; l < L; l++) dst[l] = b;                                        \
          }                                                                                      \
      }                                                                                          \
    }                                                                                            \
  }                                                                                              \
  /* backward: gx (zeroed, or NULL), gw (zeroed, or NULL), gb (or NULL) from gy [N, Cout, L].   \
   * Scratch as the forward's; prod holds the gathered gradient. */                             \
  static void backward_##P(const conv_geom *g, const T *x, const T *w, const T *gy, T *gx, T *gw, T *gb, \
                           T *col, T *prod) {                                                    \
    const int64_t HW = g->H * g->W, K = g->K, L = g->L;                                          \
    if (gb)                                                                                      \
      for (int64_t co = 0; co < g->Cout; co++) {                                                 \
        double acc = 0;                                                                          \
        for (int64_t n = 0; n < g->N; n++) {                                                     \
          const T *r = gy + (n * g->Cout + co) * L;                                              \
          for (int64_t l = 0; l < L; l++) acc += (double)r[l];                                   \
        }                                                                                        \
        gb[co] = (T)acc;                                                                         \
      }                                                                                          \
    if ((!gx && !gw) || K == 0) return;                                                          \
    for (int64_t n0 = 0; n0 < g->N; n0 += g->nb) {                                               \
      const int64_t nb = g->N - n0 < g->nb ? g->N - n0 : g->nb, ld = nb * L;                     \
      for (int64_t grp = 0; grp < g->groups; grp++) {                                            \
        for (int64_t i = 0; i < nb; i++) /* G of the chunk as [Coutg, nb * L] */                 \
          for (int64_t co = 0; co < g->Coutg; co++)                                              \
            memcpy(prod + co * ld + i * L, gy + ((n0 + i) * g->Cout + grp * g->Coutg + co) * L,   \
                   (size_t)L * sizeof(T));                                                       \
        if (gw) { /* gw_g [Coutg, K] += G [Coutg, nb L] col^T [nb L, K] */                       \
          for (int64_t i = 0; i < nb; i++)                                                       \
            im2col_##P(g, x + ((n0 + i) * g->C + grp * g->Cg) * HW, col + i * L, ld);            \
          cblas_##P##gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->Coutg, (int)K, (int)ld, 1, prod, \
                          (int)ld, col, (int)ld, 1, gw + grp * g->Coutg * K, (int)K);            \
        }                                                                                        \
        if (gx) { /* col [K, nb L] = W_g^T [K, Coutg] G [Coutg, nb L], folded back per element */ \
          cblas_##P##gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)ld, (int)g->Coutg, 1, \
                          w + grp * g->Coutg * K, (int)K, prod, (int)ld, 0, col, (int)ld);       \
          for (int64_t i = 0; i < nb; i++)                                                       \
            col2im_##P(g, col + i * L, ld, gx + ((n0 + i) * g->C + grp * g->Cg) * HW);           \
        }                                                                                        \
      }                                                                                          \
    }                                                                                            \
  }

DEF_CONV(float, s)
DEF_CONV(double, d)

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

/* Scratch for one chunk: the column matrix, then the [Coutg, nb * L] product / gradient. */
static mt_status scratch_alloc(const conv_geom *g, void **col, void **prod) {
  const size_t es = mt_dtype_size(g->dtype), ncol = (size_t)(g->K * g->nb * g->L), nprod = (size_t)(g->Coutg * g->nb * g->L);
  char *p = malloc((ncol + nprod) * es + 1);
  if (!p)
    return mt_fail(MT_ENOMEM, "out of memory for a %lld x %lld column matrix", (long long)g->K,
                   (long long)(g->nb * g->L));
  *col = p, *prod = p + ncol * es;
  return MT_OK;
}

static mt_status conv_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  conv_node *cn = (conv_node *)n;
  const conv_geom *g = &cn->g;
  if (!gout[0]) return MT_OK;
  const mt_edge *ex = &n->next[0], *ew = &n->next[1];
  const bool need_x = mt_edge_live(ex), need_w = mt_edge_live(ew), need_b = mt_edge_live(&n->next[2]);
  mt_tensor *x = NULL, *w = NULL, *gy = NULL, *gx = NULL, *gw = NULL, *gb = NULL;
  void *col = NULL, *prod = NULL;
  mt_status st;
  if (need_w && (st = mt_saved_get(&cn->input, n, &x))) return st;
  if (need_x && (st = mt_saved_get(&cn->weight, n, &w))) return st;
  if ((st = mt_contiguous(&gy, gout[0]))) return st;
  if ((need_x && (st = mt_zeros(&gx, g->dtype, ex->ndim, ex->sizes))) ||
      (need_w && (st = mt_zeros(&gw, g->dtype, ew->ndim, ew->sizes))) ||
      (need_b && (st = mt_empty(&gb, g->dtype, 1, &g->Cout))) ||
      ((need_x || need_w) && (st = scratch_alloc(g, &col, &prod))))
    goto done;
  const void *xd = x ? mt_data(x) : NULL, *wd = w ? mt_data(w) : NULL;
  void *gxd = gx ? mt_data(gx) : NULL, *gwd = gw ? mt_data(gw) : NULL, *gbd = gb ? mt_data(gb) : NULL;
  if (g->dtype == MT_FLOAT32) backward_s(g, xd, wd, mt_data(gy), gxd, gwd, gbd, col, prod);
  else backward_d(g, xd, wd, mt_data(gy), gxd, gwd, gbd, col, prod);
done:
  free(col);
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
  void *col = NULL, *prod = NULL;
  mt_status st;
  mt_trace *const tr = mt_active_trace;
  mt_set_grad_enabled(false); /* the contiguous copies record nothing, neither for autograd */
  mt_active_trace = NULL;     /* nor for a trace (the public functions record the conv itself) */
  if ((st = mt_contiguous(&x, input)) || (st = mt_contiguous(&w, weight)) || (bias && (st = mt_contiguous(&b, bias))) ||
      (st = mt_empty(&y, g->dtype, out_ndim, out_sizes)))
    goto done;
  if (g->N > 0 && g->Cout > 0) {
    if ((st = scratch_alloc(g, &col, &prod))) goto done;
    const void *bd = b ? mt_data(b) : NULL;
    if (g->dtype == MT_FLOAT32) forward_s(g, mt_data(x), mt_data(w), bd, mt_data(y), col, prod);
    else forward_d(g, mt_data(x), mt_data(w), bd, mt_data(y), col, prod);
  }
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
  free(col);
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
  /* batch elements per chunk: the whole batch when its columns fit the budget; a chunk's
   * product length nb * L stays within BLAS's int */
  int64_t per = (g->K + g->Coutg) * g->L > 0 ? (g->K + g->Coutg) * g->L : 1, nb = COL_BUDGET / per;
  if (nb > INT_MAX / g->L) nb = INT_MAX / g->L;
  g->nb = nb < 1 ? 1 : nb > g->N ? (g->N > 0 ? g->N : 1) : nb;
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
