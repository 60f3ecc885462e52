/*
 * gemm.c — float32/float64 matrix products on the library's pool (contract in mt_internal.h,
 * "gemm").
 *
 * C = alpha op(A) op(B) + beta C is cut into blocks of C's rows or columns, each one
 * single-threaded OpenBLAS call, run as a pool loop. OpenBLAS itself stays single-threaded
 * (parallel.c): its idle threads poll with sched_yield for ~0.1 s after every threaded call,
 * so in a training loop they always took a share of the core the pool's worker needed, and a
 * step of `cnn_train_b64` took 11.5 or 17.5 ms depending on who won. Our blocks are fixed by the
 * shapes, so a product also gives the same bits for any thread count, which OpenBLAS's threaded
 * gemm did not (docs/determinism.md).
 *
 * The cut: each block repacks the operand it shares with the others, so the dimension cut is
 * the one whose shared operand is smaller (columns of C share A, rows share B). Blocks are
 * multiples of 16 rows or columns (OpenBLAS's micro-kernels work in 8- or 16-wide panels), at
 * most GEMM_BLOCKS, and none below GEMM_BLOCK_FLOPS, so small products stay one call.
 */
#include "mt_internal.h"

#include <cblas.h>

#define GEMM_BLOCKS 4
#define GEMM_BLOCK_FLOPS 1e6 /* ~10 us of one core: worth a pool chunk and a repack */
#define GEMM_ALIGN 16

typedef struct gemm_job {
  bool f64, by_rows;
  CBLAS_TRANSPOSE ta, tb;
  int M, N, K, lda, ldb, ldc;
  double alpha, beta;
  const char *A, *B;
  char *C;
  int64_t unit; /* rows or columns per block; the last block takes the rest */
  int blocks;
} gemm_job;

/* Blocks [b, e): rows or columns [b * unit, min(e * unit, M or N)) of C. */
static void gemm_chunk(void *ctx, int64_t b, int64_t e, int chunk, int worker) {
  (void)chunk, (void)worker;
  const gemm_job *j = ctx;
  const size_t es = j->f64 ? sizeof(double) : sizeof(float);
  const int64_t whole = j->by_rows ? j->M : j->N;
  const int64_t i0 = b * j->unit, i1 = e == j->blocks ? whole : e * j->unit;
  const int m = j->by_rows ? (int)(i1 - i0) : j->M, n = j->by_rows ? j->N : (int)(i1 - i0);
  const char *A = j->A, *B = j->B;
  char *C = j->C;
  if (j->by_rows) { /* rows i0.. of op(A) and of C */
    A += (size_t)(j->ta == CblasNoTrans ? i0 * j->lda : i0) * es;
    C += (size_t)(i0 * j->ldc) * es;
  } else { /* columns i0.. of op(B) and of C */
    B += (size_t)(j->tb == CblasNoTrans ? i0 : i0 * j->ldb) * es;
    C += (size_t)i0 * es;
  }
  if (j->f64)
    cblas_dgemm(CblasRowMajor, j->ta, j->tb, m, n, j->K, j->alpha, (const double *)A, j->lda, (const double *)B, j->ldb,
                j->beta, (double *)C, j->ldc);
  else
    cblas_sgemm(CblasRowMajor, j->ta, j->tb, m, n, j->K, (float)j->alpha, (const float *)A, j->lda, (const float *)B,
                j->ldb, (float)j->beta, (float *)C, j->ldc);
}

void mt_gemm(bool f64, bool trans_a, bool trans_b, int M, int N, int K, double alpha, const void *A, int lda,
             const void *B, int ldb, double beta, void *C, int ldc) {
  gemm_job j = {.f64 = f64, .ta = trans_a ? CblasTrans : CblasNoTrans, .tb = trans_b ? CblasTrans : CblasNoTrans,
                .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta,
                .A = A, .B = B, .C = C};
  /* cutting columns repacks A (M x K) per block, cutting rows repacks B (K x N) */
  j.by_rows = (int64_t)K * N < (int64_t)M * K;
  const int64_t whole = j.by_rows ? M : N;
  int64_t blocks = (int64_t)(2.0 * M * N * K / GEMM_BLOCK_FLOPS);
  if (blocks > GEMM_BLOCKS) blocks = GEMM_BLOCKS;
  if (blocks > whole / GEMM_ALIGN) blocks = whole / GEMM_ALIGN;
  if (blocks < 1) blocks = 1;
  j.unit = (whole / blocks + GEMM_ALIGN - 1) / GEMM_ALIGN * GEMM_ALIGN;
  if (j.unit < 1) j.unit = 1; /* whole == 0: one empty block */
  j.blocks = (int)((whole + j.unit - 1) / j.unit);
  if (j.blocks < 1) j.blocks = 1;
  mt_parallel_for(j.blocks, 1, gemm_chunk, &j);
}
