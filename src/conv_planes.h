/*
 * conv_planes.h — the shifted planes of nn_conv.c's fast path and their AVX2+FMA kernels
 * (conv_planes.c). Private to those two files.
 */
#ifndef MT_CONV_PLANES_H
#define MT_CONV_PLANES_H

#include <stdbool.h>
#include <stdint.h>

/* The planes of an input [Cin, Hin, W] for a stride-1 conv with
 * output [Hout, W]: plane (c, kw) is R = Hout + (kH - 1) * dh rows of W, row r holding input row
 * r - ph shifted by kw * dw - pw columns, zero outside the input. */
typedef struct mt_plane_geom {
  int64_t Cin, Hin, W, Hout, R, kH, kW, dh, dw, ph, pw;
} mt_plane_geom;

/* The next image's data, which the kernels prefetch into L2 a part at a time while they
 * work on this one: images come from L3 (a batch's activations exceed L2), and copying them
 * into planes would otherwise wait for each line. */
typedef struct mt_prefetch {
  const char *p[2];
  int64_t bytes[2];
} mt_prefetch;


mt_plane_geom mt_plane_geom_make(int64_t Cin, int64_t Hin, int64_t W, int64_t Hout, int64_t kH, int64_t kW, int64_t dh,
                                 int64_t dw, int64_t ph, int64_t pw);
/* Floats of the planes and their slack, a multiple of 16 (so what follows stays aligned). */
int64_t mt_plane_floats(const mt_plane_geom *q);
/* off[(c * kH + kh) * kW + kw]: where column-matrix row k starts in the planes. */
void mt_plane_offsets(const mt_plane_geom *q, int64_t *off);
/* Whether the CPU runs the kernels below (AVX2 and FMA; false when tests force the gemm path). */
bool mt_planes_cpu(void);
/* Writes the planes of image x into pl (mt_plane_floats(q) floats). */
void mt_planes_build(const mt_plane_geom *q, const float *x, float *pl);
/* y [M, L] = sum_k wp[k][m] * pl[off[k] + p] (+ bias[m]), over the K rows; prefetches pf. */
void mt_planes_fwd(const float *pl, const int64_t *off, const float *wp, int64_t M, int64_t K, int64_t L, float *y,
                   const float *bias, const mt_prefetch *pf);
/* acc [M * K, 8 lanes] += G [M, L] times the planes' rows; prefetches pf. */
void mt_planes_gw(const float *G, int64_t M, int64_t K, int64_t L, const float *pl, const int64_t *off, float *acc,
                  const mt_prefetch *pf);
/* gw[i] = the sum of acc's 8 lanes for element i, for n elements. */
void mt_planes_gw_reduce(const float *acc, int64_t n, float *gw);

#endif
