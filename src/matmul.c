/*
 * matmul.c — matmul, mm and bmm.
 *
 * Every case is reduced to one problem: `batches` products of an M x K matrix A and a K x N
 * matrix B into a contiguous M x N block of the result, where a 1-D left operand is a 1 x K
 * row and a 1-D right operand a K x 1 column. Operands keep their own strides: BLAS reads a
 * matrix with unit column stride as is (NoTrans) and one with unit row stride as a transpose
 * (Trans), so transposed views cost no copy; only other layouts are copied, once per call,
 * never per batch. Broadcast batch dims are just stride 0 in the batch walk.
 *
 * float32/float64 go to OpenBLAS (gemm, gemv when one side is a vector, dot when both are);
 * float16/bfloat16 compute in float32; integers use a plain i-k-j loop that wraps on
 * overflow as PyTorch's does.
 *
 * All three are differentiable through one backward (dA = G B^T, dB = A^T G).
 */
#include "mt_internal.h"

#include <cblas.h>
#include <limits.h>

#define BLAS_MAX ((int64_t)INT_MAX) /* BLAS takes int sizes, strides and leading dims */

typedef struct operand {
  const mt_tensor *t;
  int64_t rows, cols, rs, cs;  /* the per-batch matrix: sizes and element strides */
  int64_t bst[MT_MAX_DIMS];    /* element strides over the problem's batch dims (0: broadcast) */
} operand;

typedef struct problem {
  int nb;                      /* batch dims */
  int64_t bsizes[MT_MAX_DIMS];
  int64_t batches;
  int64_t M, N, K;
  operand a, b;
} problem;

/* Sets up the problem for a (ndim >= 1) times b (ndim >= 1); shapes already checked. */
static void describe(problem *p, const mt_tensor *a, const mt_tensor *b) {
  int an = a->ndim >= 2 ? a->ndim - 2 : 0, bn = b->ndim >= 2 ? b->ndim - 2 : 0; /* batch dims */
  p->nb = an > bn ? an : bn;
  p->batches = 1;
  for (int i = 0; i < p->nb; i++) {
    int ia = i - (p->nb - an), ib = i - (p->nb - bn);
    int64_t sa = ia >= 0 ? a->sizes[ia] : 1, sb = ib >= 0 ? b->sizes[ib] : 1;
    p->bsizes[i] = sa == 1 ? sb : sa; /* 1 broadcasts, even to 0 */
    p->a.bst[i] = sa == 1 ? 0 : a->strides[ia];
    p->b.bst[i] = sb == 1 ? 0 : b->strides[ib];
    p->batches *= p->bsizes[i];
  }
  operand *oa = &p->a, *ob = &p->b;
  oa->t = a;
  ob->t = b;
  if (a->ndim == 1) { /* a row */
    oa->rows = 1, oa->cols = a->sizes[0], oa->rs = 0, oa->cs = a->strides[0];
  } else {
    oa->rows = a->sizes[a->ndim - 2], oa->cols = a->sizes[a->ndim - 1];
    oa->rs = a->strides[a->ndim - 2], oa->cs = a->strides[a->ndim - 1];
  }
  if (b->ndim == 1) { /* a column */
    ob->rows = b->sizes[0], ob->cols = 1, ob->rs = b->strides[0], ob->cs = 0;
  } else {
    ob->rows = b->sizes[b->ndim - 2], ob->cols = b->sizes[b->ndim - 1];
    ob->rs = b->strides[b->ndim - 2], ob->cs = b->strides[b->ndim - 1];
  }
  p->M = oa->rows, p->K = oa->cols, p->N = ob->cols;
}

/* ---- BLAS path --------------------------------------------------------------------------- */

/* How BLAS reads an r x c matrix with element strides rs, cs (row-major calls): as is with
 * ld = rs (unit column stride), or as the transpose of a c x r matrix with ld = cs. A stride
 * along a size-1 dim is never used, so it does not count. */
static bool blas_matrix(int64_t r, int64_t c, int64_t rs, int64_t cs, CBLAS_TRANSPOSE *tr, int64_t *ld) {
  int64_t need = c > 1 ? c : 1;
  if (c == 1 || cs == 1) {
    int64_t l = r == 1 ? need : rs;
    if (l >= need && l <= BLAS_MAX) return *tr = CblasNoTrans, *ld = l, true;
  }
  need = r > 1 ? r : 1;
  if (r == 1 || rs == 1) {
    int64_t l = c == 1 ? need : cs;
    if (l >= need && l <= BLAS_MAX) return *tr = CblasTrans, *ld = l, true;
  }
  return false;
}

/* When B is the same for every batch and A's batch dims and rows lie evenly in memory, all
 * batches are one taller product ([..., M, K] @ [K, N] as [batches*M, K] @ [K, N]): one BLAS
 * call instead of many small ones. The result's layout is the same either way. */
static void fold_batches(problem *p) {
  if (p->nb == 0 || p->batches <= 1) return;
  for (int i = 0; i < p->nb; i++)
    if (p->b.bst[i] != 0) return;
  int64_t size = 1, stride = 0; /* the folded dim so far, inner to outer */
  bool any = false;
  for (int i = p->nb; i >= 0; i--) {
    int64_t sz = i == p->nb ? p->M : p->bsizes[i], st = i == p->nb ? p->a.rs : p->a.bst[i];
    if (sz == 1) continue;
    if (!any) stride = st, any = true;
    else if (st != stride * size) return;
    size *= sz;
  }
  CBLAS_TRANSPOSE tr;
  int64_t ld;
  /* not when the taller A would need a copy (an expanded A, stride 0): the batch walk needs none */
  if (size > BLAS_MAX || !blas_matrix(size, p->K, stride, p->a.cs, &tr, &ld)) return;
  p->M = p->a.rows = size;
  p->a.rs = stride;
  p->nb = 0;
  p->batches = 1;
}

static bool blas_vector(int64_t n, int64_t stride, int64_t *inc) {
  *inc = n == 1 ? 1 : stride;
  return *inc >= 1 && *inc <= BLAS_MAX;
}

/* The BLAS call for one batch, with everything decided up front. */
typedef enum { K_DOT, K_GEMV_A, K_GEMV_B, K_GEMM } blas_kind;
typedef struct blas_plan {
  blas_kind kind;
  CBLAS_TRANSPOSE ta, tb;
  int64_t lda, ldb, inca, incb;
} blas_plan;

/* Whether each operand can go to BLAS as it is; fills the plan when both can. */
static bool plan_blas(const problem *p, blas_plan *pl, bool *a_ok, bool *b_ok) {
  const operand *a = &p->a, *b = &p->b;
  bool a_vec = p->M == 1, b_vec = p->N == 1;
  *a_ok = a_vec ? blas_vector(p->K, a->cs, &pl->inca) : blas_matrix(p->M, p->K, a->rs, a->cs, &pl->ta, &pl->lda);
  *b_ok = b_vec ? blas_vector(p->K, b->rs, &pl->incb) : blas_matrix(p->K, p->N, b->rs, b->cs, &pl->tb, &pl->ldb);
  pl->kind = a_vec && b_vec ? K_DOT : b_vec ? K_GEMV_A : a_vec ? K_GEMV_B : K_GEMM;
  return *a_ok && *b_ok;
}

/* One batch's product; `ctx` is the BLAS plan (unused by the integer kernels). */
typedef void (*batch_fn)(const problem *p, const void *ctx, const char *A, const char *B, char *C);

#define DEF_BLAS(T, P)                                                                          \
  static void blas_##P(const problem *p, const void *ctx, const char *Ab, const char *Bb, char *Cb) { \
    const blas_plan *pl = ctx;                                                                  \
    const T *A = (const T *)Ab, *B = (const T *)Bb;                                             \
    T *C = (T *)Cb;                                                                             \
    int M = (int)p->M, N = (int)p->N, K = (int)p->K;                                           \
    switch (pl->kind) {                                                                         \
    case K_DOT:                                                                                 \
      C[0] = cblas_##P##dot(K, A, (int)pl->inca, B, (int)pl->incb);                            \
      break;                                                                                    \
    case K_GEMV_A: /* C[M] = A x; a Trans A is stored as K x M */                              \
      if (pl->ta == CblasNoTrans)                                                               \
        cblas_##P##gemv(CblasRowMajor, CblasNoTrans, M, K, 1, A, (int)pl->lda, B, (int)pl->incb, 0, C, 1); \
      else                                                                                      \
        cblas_##P##gemv(CblasRowMajor, CblasTrans, K, M, 1, A, (int)pl->lda, B, (int)pl->incb, 0, C, 1); \
      break;                                                                                    \
    case K_GEMV_B: /* C[N] = B^T x; B is stored K x N, or N x K when Trans */                  \
      if (pl->tb == CblasNoTrans)                                                               \
        cblas_##P##gemv(CblasRowMajor, CblasTrans, K, N, 1, B, (int)pl->ldb, A, (int)pl->inca, 0, C, 1); \
      else                                                                                      \
        cblas_##P##gemv(CblasRowMajor, CblasNoTrans, N, K, 1, B, (int)pl->ldb, A, (int)pl->inca, 0, C, 1); \
      break;                                                                                    \
    case K_GEMM:                                                                                \
      mt_gemm(sizeof(T) == sizeof(double), pl->ta == CblasTrans, pl->tb == CblasTrans, M, N, K, 1, A, (int)pl->lda, B, \
              (int)pl->ldb, 0, C, N);                                                           \
      break;                                                                                    \
    }                                                                                           \
  }
DEF_BLAS(float, s)
DEF_BLAS(double, d)

/* ---- integer path ------------------------------------------------------------------------ */

/* C (zeroed, contiguous M x N) += A B. U is an unsigned type at least as wide as T: wrapping
 * there and truncating to T gives exactly T's wrapping arithmetic, without signed overflow. */
#define INT_DTYPES(X)                                                                           \
  X(MT_INT64, int64_t, uint64_t, i64)                                                           \
  X(MT_INT32, int32_t, uint32_t, i32)                                                           \
  X(MT_INT16, int16_t, uint32_t, i16)                                                           \
  X(MT_INT8, int8_t, uint32_t, i8)                                                              \
  X(MT_UINT8, uint8_t, uint32_t, u8)

#define DEF_INT_MM(E, T, U, sfx)                                                                \
  static void imm_##sfx(const problem *p, const void *ctx, const char *Ab, const char *Bb, char *Cb) { \
    (void)ctx;                                                                                  \
    const T *A = (const T *)Ab, *B = (const T *)Bb;                                             \
    T *C = (T *)Cb;                                                                             \
    int64_t ars = p->a.rs, acs = p->a.cs, brs = p->b.rs, bcs = p->b.cs, N = p->N;              \
    for (int64_t i = 0; i < p->M; i++) {                                                        \
      T *restrict c = C + i * N;                                                                \
      for (int64_t k = 0; k < p->K; k++) {                                                      \
        U aik = (U)A[i * ars + k * acs];                                                        \
        const T *brow = B + k * brs;                                                            \
        if (bcs == 1 || N == 1) /* unit stride: vectorisable */                                 \
          for (int64_t j = 0; j < N; j++) c[j] = (T)((U)c[j] + aik * (U)brow[j]);               \
        else                                                                                    \
          for (int64_t j = 0; j < N; j++) c[j] = (T)((U)c[j] + aik * (U)brow[j * bcs]);         \
      }                                                                                         \
    }                                                                                           \
  }
INT_DTYPES(DEF_INT_MM)

static batch_fn int_kernel(mt_dtype dt) {
  switch (dt) {
#define CASE_INT(E, T, U, sfx) case E: return imm_##sfx;
    INT_DTYPES(CASE_INT)
#undef CASE_INT
  default: return NULL;
  }
}

/* ---- the driver -------------------------------------------------------------------------- */

/* Runs fn on every batch: A and B at their batch offsets (broadcast dims step by 0), C at
 * the next M x N block of the contiguous result. */
static void for_each_batch(const problem *p, const char *A0, const char *B0, char *C0, int64_t es, batch_fn fn,
                           const void *ctx) {
  int64_t pos[MT_MAX_DIMS] = {0}, ao = 0, bo = 0, block = p->M * p->N * es;
  for (int64_t i = 0; i < p->batches; i++) {
    fn(p, ctx, A0 + ao * es, B0 + bo * es, C0 + i * block);
    for (int k = p->nb - 1; k >= 0; k--) {
      ao += p->a.bst[k];
      bo += p->b.bst[k];
      if (++pos[k] < p->bsizes[k]) break;
      ao -= p->a.bst[k] * p->bsizes[k];
      bo -= p->b.bst[k] * p->bsizes[k];
      pos[k] = 0;
    }
  }
}

/* The result's shape: broadcast batch dims, then M unless a is 1-D, then N unless b is. */
static int result_shape(const problem *p, const mt_tensor *a, const mt_tensor *b, int64_t *sizes) {
  int n = 0;
  for (int i = 0; i < p->nb; i++) sizes[n++] = p->bsizes[i];
  if (a->ndim > 1) sizes[n++] = a->sizes[a->ndim - 2];
  if (b->ndim > 1) sizes[n++] = b->sizes[b->ndim - 1];
  return n;
}

/* Computes a @ b for float32/float64 (BLAS) or integers; shapes and dtypes already checked. */
static mt_status compute(mt_tensor **out, const mt_tensor *a, const mt_tensor *b) {
  problem p;
  describe(&p, a, b);
  int64_t sizes[MT_MAX_DIMS];
  int ndim = result_shape(&p, a, b, sizes);
  mt_dtype dt = a->dtype;
  mt_tensor *r = NULL, *ca = NULL, *cb = NULL;
  mt_status st;
  /* gemm (beta = 0) writes every element of its result; the other kernels add onto zeros */
  if ((st = mt_empty(&r, dt, ndim, sizes)) != MT_OK) return st;
  int64_t es = (int64_t)mt_dtype_size(dt);
  const size_t nbytes = (size_t)mt_numel(r) * (size_t)es;
  if (mt_numel(r) == 0 || p.K == 0) { /* k = 0: a sum of nothing, zeros */
    memset(mt_data(r), 0, nbytes);
    goto done;
  }
  fold_batches(&p);

  if (dt != MT_FLOAT32 && dt != MT_FLOAT64) {
    memset(mt_data(r), 0, nbytes);
    for_each_batch(&p, mt_data(a), mt_data(b), mt_data(r), es, int_kernel(dt), NULL);
    goto done;
  }
  if (p.M > BLAS_MAX || p.N > BLAS_MAX || p.K > BLAS_MAX) {
    st = mt_fail(MT_EARG, "matrix dims %lldx%lld and %lldx%lld are too large for BLAS (at most %d)", (long long)p.M,
                 (long long)p.K, (long long)p.K, (long long)p.N, INT_MAX);
    goto done;
  }
  blas_plan pl;
  bool a_ok, b_ok;
  if (!plan_blas(&p, &pl, &a_ok, &b_ok)) {
    /* a layout BLAS cannot read: copy that operand, once and whole (broadcast dims stay unexpanded) */
    if (!a_ok && (st = mt_contiguous(&ca, a)) != MT_OK) goto done;
    if (!b_ok && (st = mt_contiguous(&cb, b)) != MT_OK) goto done;
    describe(&p, ca ? ca : a, cb ? cb : b);
    fold_batches(&p);
    if (!plan_blas(&p, &pl, &a_ok, &b_ok)) {
      st = mt_fail(MT_EARG, "a leading dimension of the operands is too large for BLAS (at most %d)", INT_MAX);
      goto done;
    }
  }
  if (pl.kind != K_GEMM) memset(mt_data(r), 0, nbytes);
  for_each_batch(&p, mt_data(p.a.t), mt_data(p.b.t), mt_data(r), es, dt == MT_FLOAT32 ? blas_s : blas_d, &pl);
done:
  mt_tensor_release(ca);
  mt_tensor_release(cb);
  if (st != MT_OK) {
    mt_tensor_release(r);
    return st;
  }
  *out = r;
  return MT_OK;
}

/* Checks dtypes, then computes (float16/bfloat16 through float32). */
static mt_status run(mt_tensor **out, const mt_tensor *a, const mt_tensor *b) {
  if (a->dtype != b->dtype)
    return mt_fail(MT_EDTYPE, "expected both operands to have the same dtype, got %s and %s", mt_dtype_name(a->dtype),
                   mt_dtype_name(b->dtype));
  if (a->dtype == MT_BOOL) return mt_fail(MT_EDTYPE, "matrix products are not supported for bool");
  if (a->dtype != MT_FLOAT16 && a->dtype != MT_BFLOAT16) return compute(out, a, b);

  mt_tensor *a32 = NULL, *b32 = NULL, *r32 = NULL;
  mt_status st = mt_to_dtype(&a32, a, MT_FLOAT32);
  if (st == MT_OK) st = mt_to_dtype(&b32, b, MT_FLOAT32);
  if (st == MT_OK) st = compute(&r32, a32, b32);
  if (st == MT_OK) st = mt_to_dtype(out, r32, a->dtype);
  mt_tensor_release(a32);
  mt_tensor_release(b32);
  mt_tensor_release(r32);
  return st;
}

/* ---- backward ----------------------------------------------------------------------------
 * With a 1-D left operand as a row [1, K], a 1-D right one as a column [K, 1] and the
 * gradient G shaped [..., M, N] to match, every case is one formula: dA = G B^T, dB = A^T G.
 * These come back in the broadcast batch shape; the engine sums them down to each operand. */

/* Intermediates of the formula: freed together; after a failure every step returns NULL. */
typedef struct scratch {
  mt_status st;
  int n;
  mt_tensor *held[16];
} scratch;

static mt_tensor *hold(scratch *s, mt_status st, mt_tensor **t) { /* *t was just written, with st */
  if (st) return s->st = st, NULL;
  if (s->n == 16) return mt_tensor_release(*t), s->st = mt_fail(MT_ENOMEM, "too many temporaries"), NULL;
  return s->held[s->n++] = *t;
}
static mt_tensor *unsq(scratch *s, const mt_tensor *x, int64_t d) {
  mt_tensor *r = NULL;
  return s->st ? NULL : hold(s, mt_unsqueeze(&r, x, d), &r);
}
static mt_tensor *sq(scratch *s, const mt_tensor *x, int64_t d) {
  mt_tensor *r = NULL;
  return s->st ? NULL : hold(s, mt_squeeze(&r, x, d), &r);
}
static mt_tensor *tr(scratch *s, const mt_tensor *x) {
  mt_tensor *r = NULL;
  return s->st ? NULL : hold(s, mt_transpose(&r, x, -1, -2), &r);
}
static mt_tensor *mul(scratch *s, const mt_tensor *x, const mt_tensor *y) {
  mt_tensor *r = NULL;
  return s->st ? NULL : hold(s, mt_matmul(&r, x, y), &r);
}
static mt_tensor *rows_of(scratch *s, const mt_tensor *x) { /* [..., C] as [rows, C] */
  int64_t sz[2] = {1, x->sizes[x->ndim - 1]};
  for (int d = 0; d < x->ndim - 1; d++) sz[0] *= x->sizes[d];
  mt_tensor *r = NULL;
  return s->st ? NULL : hold(s, mt_reshape(&r, x, 2, sz), &r);
}

typedef struct matmul_node {
  mt_node base;
  mt_saved a, b;
} matmul_node;

static void matmul_release(mt_node *n) {
  mt_saved_release(&((matmul_node *)n)->a);
  mt_saved_release(&((matmul_node *)n)->b);
}

static mt_status matmul_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  matmul_node *mn = (matmul_node *)n;
  const bool need_a = mt_edge_live(&n->next[0]), need_b = mt_edge_live(&n->next[1]);
  const int na = n->next[0].ndim, nb = n->next[1].ndim;
  mt_tensor *a = NULL, *b = NULL, *ga = NULL, *gb = NULL;
  mt_status st;
  if (!gout[0]) return MT_OK;
  if (need_b && (st = mt_saved_get(&mn->a, n, &a))) return st;
  if (need_a && (st = mt_saved_get(&mn->b, n, &b))) return st;
  scratch s = {0};
  mt_tensor *G = gout[0];
  if (nb == 1) G = unsq(&s, G, G->ndim);
  if (na == 1) G = unsq(&s, G, G->ndim - 1);
  if (need_a) {
    ga = mul(&s, G, tr(&s, nb == 1 ? unsq(&s, b, 1) : b));
    if (na == 1) ga = sq(&s, ga, -2);
  }
  if (need_b) {
    mt_tensor *A = na == 1 ? unsq(&s, a, 0) : a;
    if (na >= 3 && nb <= 2) /* every batch of a against the one b: a single tall product */
      gb = mul(&s, tr(&s, rows_of(&s, A)), rows_of(&s, G));
    else
      gb = mul(&s, tr(&s, A), G);
    if (nb == 1) gb = sq(&s, gb, -1);
  }
  if (!s.st) {
    if (ga) mt_tensor_retain(gin[0] = ga);
    if (gb) mt_tensor_retain(gin[1] = gb);
  }
  for (int i = 0; i < s.n; i++) mt_tensor_release(s.held[i]);
  return s.st;
}

/* run(), recording a node named `name` when an operand requires grad. The forward then runs
 * with grad mode off, so that its internal copies and conversions record nothing. */
static mt_status run_rec(mt_tensor **out, const mt_tensor *a, const mt_tensor *b, const char *name) {
  const mt_tensor *ins[2] = {a, b};
  if (!mt_grad_needed(2, ins)) return run(out, a, b);
  mt_tensor *r;
  mt_set_grad_enabled(false);
  mt_status st = run(&r, a, b);
  mt_set_grad_enabled(true);
  if (st) return st;
  matmul_node *n = (matmul_node *)mt_node_new(sizeof *n, name, matmul_backward, matmul_release, 2, ins, 1);
  if (!n) st = MT_ENOMEM;
  else {
    if (b->requires_grad) st = mt_save_tensor(&n->a, a); /* dB needs A, dA needs B */
    if (!st && a->requires_grad) st = mt_save_tensor(&n->b, b);
    if (!st) mt_node_set_output(&n->base, r, 0);
    mt_node_release(&n->base);
  }
  if (st) {
    mt_tensor_release(r);
    return st;
  }
  *out = r;
  return MT_OK;
}

/* ---- public entry points ----------------------------------------------------------------- */

/* While tracing, a product that succeeded records itself as `op`; passes st through. */
static mt_status traced(mt_status st, const char *op, const mt_tensor *a, const mt_tensor *b, mt_tensor **out) {
  if (st == MT_OK && mt_tracing()) {
    const mt_tensor *ins[2] = {a, b};
    mt_trace_record(op, 2, ins, 1, out, "");
  }
  return st;
}

MT_API mt_status mt_mm(mt_tensor **out, const mt_tensor *a, const mt_tensor *b) {
  if (a->ndim != 2) return mt_fail(MT_ESHAPE, "mat1 must be a matrix, got a %d-D tensor", a->ndim);
  if (b->ndim != 2) return mt_fail(MT_ESHAPE, "mat2 must be a matrix, got a %d-D tensor", b->ndim);
  if (a->sizes[1] != b->sizes[0])
    return mt_fail(MT_ESHAPE, "mat1 and mat2 shapes cannot be multiplied (%lldx%lld and %lldx%lld)",
                   (long long)a->sizes[0], (long long)a->sizes[1], (long long)b->sizes[0], (long long)b->sizes[1]);
  return traced(run_rec(out, a, b, "MmBackward0"), "mm", a, b, out);
}

MT_API mt_status mt_bmm(mt_tensor **out, const mt_tensor *a, const mt_tensor *b) {
  char sa[MT_SHAPE_STRLEN], sb[MT_SHAPE_STRLEN];
  if (a->ndim != 3) return mt_fail(MT_ESHAPE, "batch1 must be a 3-D tensor, got a %d-D tensor", a->ndim);
  if (b->ndim != 3) return mt_fail(MT_ESHAPE, "batch2 must be a 3-D tensor, got a %d-D tensor", b->ndim);
  if (a->sizes[0] != b->sizes[0] || a->sizes[2] != b->sizes[1])
    return mt_fail(MT_ESHAPE, "batch1 and batch2 shapes cannot be multiplied (%s and %s)",
                   mt_shape_str(sa, sizeof sa, 3, a->sizes), mt_shape_str(sb, sizeof sb, 3, b->sizes));
  return traced(run_rec(out, a, b, "BmmBackward0"), "bmm", a, b, out);
}

MT_API mt_status mt_matmul(mt_tensor **out, const mt_tensor *a, const mt_tensor *b) {
  char sa[MT_SHAPE_STRLEN], sb[MT_SHAPE_STRLEN];
  if (a->ndim == 0 || b->ndim == 0)
    return mt_fail(MT_ESHAPE, "both arguments need at least 1 dim, got %d-D and %d-D", a->ndim, b->ndim);
  if (a->ndim == 2 && b->ndim == 2) return traced(mt_mm(out, a, b), "matmul", a, b, out);
  int64_t ka = a->sizes[a->ndim - 1], kb = b->sizes[b->ndim > 1 ? b->ndim - 2 : 0];
  if (ka != kb)
    return mt_fail(MT_ESHAPE, "shapes %s and %s cannot be multiplied (%lld != %lld)",
                   mt_shape_str(sa, sizeof sa, a->ndim, a->sizes), mt_shape_str(sb, sizeof sb, b->ndim, b->sizes),
                   (long long)ka, (long long)kb);
  /* batch dims (all but the last two) broadcast, aligned from the right */
  int an = a->ndim > 2 ? a->ndim - 2 : 0, bn = b->ndim > 2 ? b->ndim - 2 : 0;
  for (int i = 1; i <= an && i <= bn; i++) {
    int64_t x = a->sizes[an - i], y = b->sizes[bn - i];
    if (x != y && x != 1 && y != 1)
      return mt_fail(MT_ESHAPE, "shapes %s and %s cannot be multiplied: batch dims do not broadcast (%lld and %lld)",
                     mt_shape_str(sa, sizeof sa, a->ndim, a->sizes), mt_shape_str(sb, sizeof sb, b->ndim, b->sizes),
                     (long long)x, (long long)y);
  }
  /* the grad_fn PyTorch 1.13's composite matmul ends with in each case */
  const char *name = "UnsafeViewBackward0";
  if (a->ndim == 1) name = b->ndim == 1 ? "DotBackward0" : b->ndim == 2 ? "SqueezeBackward3" : name;
  else if (a->ndim == 2) name = b->ndim == 1 ? "MvBackward0" : "CloneBackward0";
  return traced(run_rec(out, a, b, name), "matmul", a, b, out);
}
