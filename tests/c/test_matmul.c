/* test_matmul.c — matmul, mm and bmm: every torch.matmul shape case, every dtype, operands
 * contiguous, transposed, gapped (a layout BLAS cannot read) and broadcast by expand, checked
 * against a naive triple loop on random data; constants from PyTorch 1.13; no copies of
 * transposed or broadcast operands; every error path. */
#include "mt_test.h"

#include <stdlib.h>

#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static double unit(void) { /* LCG, [0, 1) */
  rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(rng >> 11) * 0x1p-53;
}

static double at(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  if (mt_get_flat(t, i, &s)) abort();
  return mt_scalar_to_f64(s);
}

static int64_t prod(int n, const int64_t *s) {
  int64_t p = 1;
  for (int i = 0; i < n; i++) p *= s[i];
  return p;
}

enum layout { CONTIG, TRANSPOSED, GAPPED, EXPANDED, NLAYOUTS };
static const char *layout_name[] = {"contiguous", "transposed", "gapped", "expanded"};

/* Random values fit for dt: floats in [-1, 1), signed ints in [-3, 3], uint8 in [0, 5]. */
static void fill_random(mt_tensor *t) {
  const mt_dtype_traits *tr = mt_dtype_info(t->dtype);
  for (int64_t i = 0; i < mt_numel(t); i++) {
    mt_scalar v = tr->is_float ? mt_scalar_float(2 * unit() - 1)
                  : tr->is_signed ? mt_scalar_int((int64_t)(unit() * 7) - 3)
                                  : mt_scalar_int((int64_t)(unit() * 6));
    if (mt_set_flat(t, i, v)) abort();
  }
}

/* A random operand of the given shape in the given layout:
 *  TRANSPOSED  the last two dims stored swapped (strides (1, rows): BLAS reads it as Trans)
 *  GAPPED      every other element of a larger buffer (unit stride nowhere)
 *  EXPANDED    the leading dim broadcast from size 1 (stride 0), for 3-D and up */
static mt_tensor *operand(mt_dtype dt, int nd, const int64_t *sizes, enum layout l) {
  mt_tensor *t, *base;
  int64_t s[MT_MAX_DIMS];
  memcpy(s, sizes, sizeof(int64_t) * (size_t)nd);
  if (l == TRANSPOSED && nd >= 2) {
    s[nd - 2] = sizes[nd - 1], s[nd - 1] = sizes[nd - 2];
    if (mt_empty(&base, dt, nd, s) || mt_transpose(&t, base, nd - 2, nd - 1)) abort();
    mt_tensor_release(base);
    fill_random(t);
  } else if (l == GAPPED) {
    int64_t st[MT_MAX_DIMS], n = 2;
    for (int d = nd - 1; d >= 0; d--) st[d] = n, n *= sizes[d] > 1 ? sizes[d] : 1;
    mt_storage *stg;
    if (mt_storage_new(&stg, (size_t)n * mt_dtype_info(dt)->size + 16)) abort();
    if (mt_from_storage(&t, stg, dt, 1, nd, sizes, st)) abort();
    mt_storage_release(stg);
    fill_random(t);
  } else if (l == EXPANDED && nd >= 3) {
    s[0] = 1;
    if (mt_empty(&base, dt, nd, s)) abort();
    fill_random(base);
    if (mt_expand(&t, base, nd, sizes)) abort();
    mt_tensor_release(base);
  } else {
    if (mt_empty(&t, dt, nd, sizes)) abort();
    fill_random(t);
  }
  return t;
}

/* torch.matmul by definition, in double: returns the result's ndim, fills sizes and *vals
 * (malloc'd). */
static int reference(const mt_tensor *a, const mt_tensor *b, int64_t *sizes, double **valsp) {
  int an = a->ndim, bn = b->ndim;
  int64_t M = an > 1 ? a->sizes[an - 2] : 1, K = a->sizes[an - 1], N = bn > 1 ? b->sizes[bn - 1] : 1;
  int abd = an > 2 ? an - 2 : 0, bbd = bn > 2 ? bn - 2 : 0, nb = abd > bbd ? abd : bbd;
  int64_t bs[MT_MAX_DIMS];
  for (int i = 0; i < nb; i++) {
    int ia = i - (nb - abd), ib = i - (nb - bbd);
    int64_t x = ia >= 0 ? a->sizes[ia] : 1, y = ib >= 0 ? b->sizes[ib] : 1;
    bs[i] = x == 1 ? y : x;
  }
  int nd = 0;
  for (int i = 0; i < nb; i++) sizes[nd++] = bs[i];
  if (an > 1) sizes[nd++] = M;
  if (bn > 1) sizes[nd++] = N;
  int64_t batches = prod(nb, bs), pos[MT_MAX_DIMS];
  double *vals = *valsp = malloc(sizeof(double) * (size_t)(batches * M * N + 1));
  for (int64_t bi = 0; bi < batches; bi++) {
    int64_t r = bi, aoff = 0, boff = 0, astr = M * K, bstr = K * N;
    for (int i = nb - 1; i >= 0; i--) pos[i] = r % bs[i], r /= bs[i];
    for (int i = nb - 1; i >= 0; i--) { /* batch offsets in a's and b's own logical order */
      int ia = i - (nb - abd), ib = i - (nb - bbd);
      if (ia >= 0) aoff += (a->sizes[ia] == 1 ? 0 : pos[i]) * astr, astr *= a->sizes[ia];
      if (ib >= 0) boff += (b->sizes[ib] == 1 ? 0 : pos[i]) * bstr, bstr *= b->sizes[ib];
    }
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double acc = 0;
        for (int64_t k = 0; k < K; k++) acc += at(a, aoff + m * K + k) * at(b, boff + k * N + n);
        vals[(bi * M + m) * N + n] = acc;
      }
  }
  return nd;
}

static double tolerance(mt_dtype dt, double ref, int64_t K) {
  switch (dt) {
  case MT_FLOAT64: return 1e-12 * (double)(K + 1);
  case MT_FLOAT32: return 1e-5 * (double)(K + 1);
  case MT_FLOAT16: return 1e-3 * fabs(ref) + 1e-5 * (double)(K + 1); /* one rounding to half */
  case MT_BFLOAT16: return 8e-3 * fabs(ref) + 1e-5 * (double)(K + 1);
  default: return 0; /* integers are exact */
  }
}

/* Runs a @ b and compares result, shape, dtype and layout with the reference. */
static void check_matmul(const char *what, const mt_tensor *a, const mt_tensor *b) {
  int64_t sizes[MT_MAX_DIMS];
  double *want;
  int nd = reference(a, b, sizes, &want);
  mt_tensor *r = NULL;
  mt_status st = mt_matmul(&r, a, b);
  bool ok = st == MT_OK && r->dtype == a->dtype && r->ndim == nd && mt_is_contiguous(r);
  for (int d = 0; ok && d < nd; d++) ok = r->sizes[d] == sizes[d];
  if (!ok) {
    fprintf(stderr, "%s: status %s (%s), shape or dtype wrong\n", what, mt_status_name(st), mt_last_error());
  } else {
    int64_t K = a->sizes[a->ndim - 1];
    for (int64_t i = 0; i < prod(nd, sizes); i++) {
      double got = at(r, i);
      if (!(fabs(got - want[i]) <= tolerance(a->dtype, want[i], K))) {
        fprintf(stderr, "%s: element %lld is %.9g, expected %.9g\n", what, (long long)i, got, want[i]);
        ok = false;
        break;
      }
    }
  }
  CHECK(ok);
  mt_tensor_release(r);
  free(want);
}

/* ---- every shape case x dtype x layout ---------------------------------------------------- */

typedef struct shape_case {
  int an, bn;
  int64_t as[4], bs[4];
} shape_case;

static const shape_case cases[] = {
    {1, 1, {5}, {5}},                          /* dot */
    {2, 1, {4, 5}, {5}},                       /* matrix-vector */
    {1, 2, {5}, {5, 3}},                       /* vector-matrix */
    {2, 2, {4, 5}, {5, 3}},                    /* mm */
    {2, 2, {1, 5}, {5, 1}},                    /* 1x1 */
    {2, 2, {4, 1}, {1, 3}},                    /* outer product, k = 1 */
    {3, 2, {2, 4, 5}, {5, 3}},                 /* batch folded into rows */
    {3, 2, {3, 1, 5}, {5, 2}},                 /* rows of 1 folded */
    {4, 3, {2, 1, 3, 4}, {5, 4, 6}},           /* broadcast batch dims -> [2, 5, 3, 6] */
    {4, 4, {3, 1, 2, 3}, {1, 4, 3, 2}},        /* broadcast both ways */
    {3, 3, {2, 3, 4}, {2, 4, 3}},              /* bmm */
    {1, 3, {5}, {2, 5, 3}},                    /* vector times batch */
    {3, 1, {2, 3, 5}, {5}},                    /* batch times vector */
    {2, 3, {3, 4}, {1, 4, 2}},                 /* a batch of one */
    {2, 2, {4, 0}, {0, 3}},                    /* k = 0: zeros */
    {1, 1, {0}, {0}},                          /* empty dot: 0 */
    {2, 2, {0, 5}, {5, 3}},                    /* m = 0 */
    {3, 2, {0, 2, 3}, {3, 4}},                 /* no batches */
    {3, 3, {2, 3, 0}, {1, 0, 2}},              /* k = 0, broadcast */
    {3, 3, {0, 2, 3}, {1, 3, 4}},              /* a batch of 1 broadcasts to 0 */
    {3, 3, {1, 2, 3}, {0, 3, 4}},
};

static const mt_dtype dtypes[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16, MT_INT64,
                                  MT_INT32,   MT_INT16,   MT_INT8,    MT_UINT8};

static void test_cases(void) {
  for (int c = 0; c < LEN(cases); c++)
    for (int di = 0; di < LEN(dtypes); di++)
      for (int la = 0; la < NLAYOUTS; la++)
        for (int lb = 0; lb < NLAYOUTS; lb++) {
          const shape_case *sc = &cases[c];
          mt_tensor *a = operand(dtypes[di], sc->an, sc->as, (enum layout)la);
          mt_tensor *b = operand(dtypes[di], sc->bn, sc->bs, (enum layout)lb);
          char what[128];
          snprintf(what, sizeof what, "case %d %s, a %s, b %s", c, mt_dtype_info(dtypes[di])->name, layout_name[la],
                   layout_name[lb]);
          check_matmul(what, a, b);
          mt_tensor_release(a);
          mt_tensor_release(b);
        }
}

/* Sizes large enough for OpenBLAS's blocked kernels and threads. */
static void test_large(void) {
  static const shape_case big[] = {
      {2, 2, {33, 70}, {70, 65}},
      /* split on the pool (src/gemm.c): by columns, by rows, and an uneven last block */
      {2, 2, {64, 300}, {300, 200}},
      {2, 2, {250, 100}, {100, 40}},
      {3, 2, {2, 97, 120}, {120, 83}},
      {3, 3, {3, 17, 40}, {3, 40, 9}},
      {3, 2, {4, 30, 50}, {50, 20}},
      {2, 1, {100, 257}, {257}},
  };
  static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_INT64};
  for (int c = 0; c < LEN(big); c++)
    for (int di = 0; di < LEN(dts); di++)
      for (int l = 0; l < NLAYOUTS; l++) {
        mt_tensor *a = operand(dts[di], big[c].an, big[c].as, (enum layout)l);
        mt_tensor *b = operand(dts[di], big[c].bn, big[c].bs, (enum layout)((l + 1) % NLAYOUTS));
        char what[96];
        snprintf(what, sizeof what, "large case %d %s, a %s", c, mt_dtype_info(dts[di])->name, layout_name[l]);
        check_matmul(what, a, b);
        mt_tensor_release(a);
        mt_tensor_release(b);
      }
}

/* Transposed and broadcast operands go to BLAS as they are: the only storage allocated is
 * the result's. A gapped operand is copied when BLAS reads it as a matrix; as a vector its
 * stride of 2 is fine. */
static void test_no_copies(void) {
  static const struct { shape_case s; bool a_matrix, b_matrix; } sc[] = {
      {{2, 2, {6, 5}, {5, 7}}, true, true},       {{3, 3, {4, 6, 5}, {4, 5, 7}}, true, true},
      {{2, 1, {6, 5}, {5}}, true, false},         {{1, 2, {5}, {5, 7}}, false, true},
      {{3, 2, {4, 6, 5}, {5, 7}}, true, true},    {{3, 3, {4, 6, 5}, {4, 5, 1}}, true, false},
      {{3, 3, {4, 1, 5}, {4, 5, 1}}, false, false},
      {{2, 2, {4, 1}, {1, 3}}, false, false}, /* one column / one row: any stride will do */
  };
  for (int c = 0; c < LEN(sc); c++)
    for (int la = 0; la < NLAYOUTS; la++)
      for (int lb = 0; lb < NLAYOUTS; lb++) {
        mt_dtype dt = (la + lb) % 2 ? MT_FLOAT64 : MT_FLOAT32;
        mt_tensor *a = operand(dt, sc[c].s.an, sc[c].s.as, (enum layout)la);
        mt_tensor *b = operand(dt, sc[c].s.bn, sc[c].s.bs, (enum layout)lb);
        uint64_t before = mt_storage_bytes_allocated();
        mt_tensor *r;
        OK(mt_matmul(&r, a, b));
        uint64_t used = mt_storage_bytes_allocated() - before;
        uint64_t out = ((uint64_t)mt_numel(r) * mt_dtype_info(dt)->size + 63) / 64 * 64;
        bool copies = (la == GAPPED && sc[c].a_matrix) || (lb == GAPPED && sc[c].b_matrix);
        if (copies ? used <= out : used != out)
          fprintf(stderr, "no-copy case %d a %s b %s: %llu bytes allocated, result %llu\n", c, layout_name[la],
                  layout_name[lb], (unsigned long long)used, (unsigned long long)out);
        CHECK(copies ? used > out : used == out);
        mt_tensor_release(r);
        mt_tensor_release(a);
        mt_tensor_release(b);
      }
}

/* ---- constants from PyTorch, mm, bmm ------------------------------------------------------ */

static mt_tensor *make(mt_dtype dt, int nd, const int64_t *sizes, const double *v) {
  mt_tensor *t;
  if (mt_empty(&t, dt, nd, sizes)) abort();
  for (int64_t i = 0; i < mt_numel(t); i++)
    if (mt_set_flat(t, i, mt_scalar_float(v[i]))) abort();
  return t;
}

static void test_constants(void) {
  int64_t s22[] = {2, 2};
  mt_tensor *a = make(MT_FLOAT32, 2, s22, (double[]){1, 2, 3, 4});
  mt_tensor *b = make(MT_FLOAT32, 2, s22, (double[]){5, 6, 7, 8});
  mt_tensor *r, *at_, *bt;
  OK(mt_mm(&r, a, b)); /* [[19, 22], [43, 50]] */
  CHECK(r->ndim == 2 && at(r, 0) == 19 && at(r, 1) == 22 && at(r, 2) == 43 && at(r, 3) == 50);
  mt_tensor_release(r);
  OK(mt_transpose(&at_, a, 0, 1));
  OK(mt_transpose(&bt, b, 0, 1));
  OK(mt_mm(&r, at_, bt)); /* a.t() @ b.t() = [[23, 31], [34, 46]] */
  CHECK(at(r, 0) == 23 && at(r, 1) == 31 && at(r, 2) == 34 && at(r, 3) == 46);
  mt_tensor_release(r);

  /* integers wrap like PyTorch's: (100 * ones(2,3, int8)) @ ones(3,2, int8) = 44 */
  static const mt_dtype wrap[] = {MT_INT8, MT_UINT8};
  for (int i = 0; i < 2; i++) {
    mt_tensor *x, *y;
    OK(mt_full(&x, wrap[i], 2, (int64_t[]){2, 3}, mt_scalar_int(100)));
    OK(mt_full(&y, wrap[i], 2, (int64_t[]){3, 2}, mt_scalar_int(1)));
    OK(mt_matmul(&r, x, y));
    CHECK(r->dtype == wrap[i] && at(r, 0) == 44 && at(r, 3) == 44);
    mt_tensor_release(r);
    mt_tensor_release(x);
    mt_tensor_release(y);
  }
  mt_tensor *big = make(MT_INT64, 1, (int64_t[]){2}, (double[]){4611686018427387904.0, 4611686018427387904.0});
  mt_tensor *two = make(MT_INT64, 1, (int64_t[]){2}, (double[]){2, 2});
  OK(mt_matmul(&r, big, two)); /* 2^62 * 2 * 2 wraps to 0 */
  CHECK(r->ndim == 0 && at(r, 0) == 0);
  mt_tensor_release(r);

  /* bmm on [2, 3, 4] x [2, 4, 5] of ones: every entry is 4 */
  mt_tensor *x, *y;
  OK(mt_full(&x, MT_FLOAT64, 3, (int64_t[]){2, 3, 4}, mt_scalar_float(1)));
  OK(mt_full(&y, MT_FLOAT64, 3, (int64_t[]){2, 4, 5}, mt_scalar_float(1)));
  OK(mt_bmm(&r, x, y));
  CHECK(r->ndim == 3 && r->sizes[0] == 2 && r->sizes[1] == 3 && r->sizes[2] == 5 && at(r, 29) == 4);
  mt_tensor_release(r);

  /* NaN propagates; k = 0 gives exact zeros (not NaN) */
  mt_tensor *n1 = make(MT_FLOAT32, 2, (int64_t[]){1, 2}, (double[]){NAN, 1});
  OK(mt_mm(&r, n1, a));
  CHECK(isnan(at(r, 0)) && isnan(at(r, 1)));
  mt_tensor_release(r);

  mt_tensor *all[] = {a, b, at_, bt, big, two, x, y, n1};
  for (int i = 0; i < LEN(all); i++) mt_tensor_release(all[i]);
}

static void test_errors(void) {
  mt_tensor *m23, *m45, *m32, *v3, *v4, *s, *d32, *b223, *b345, *b245, *t3, *b23, *bl32, *h32, *q234, *q334;
  OK(mt_zeros(&m23, MT_FLOAT32, 2, (int64_t[]){2, 3}));
  OK(mt_zeros(&m45, MT_FLOAT32, 2, (int64_t[]){4, 5}));
  OK(mt_zeros(&m32, MT_FLOAT32, 2, (int64_t[]){3, 2}));
  OK(mt_zeros(&v3, MT_FLOAT32, 1, (int64_t[]){3}));
  OK(mt_zeros(&v4, MT_FLOAT32, 1, (int64_t[]){4}));
  OK(mt_zeros(&s, MT_FLOAT32, 0, NULL));
  OK(mt_zeros(&d32, MT_FLOAT64, 2, (int64_t[]){3, 2}));
  OK(mt_zeros(&b223, MT_FLOAT32, 3, (int64_t[]){2, 2, 3}));
  OK(mt_zeros(&b345, MT_FLOAT32, 3, (int64_t[]){3, 4, 5}));
  OK(mt_zeros(&b245, MT_FLOAT32, 3, (int64_t[]){2, 4, 5}));
  OK(mt_zeros(&t3, MT_FLOAT32, 3, (int64_t[]){2, 3, 1}));
  OK(mt_zeros(&b23, MT_BOOL, 2, (int64_t[]){2, 3}));
  OK(mt_zeros(&bl32, MT_BOOL, 2, (int64_t[]){3, 2}));
  OK(mt_zeros(&h32, MT_INT32, 2, (int64_t[]){3, 2}));
  OK(mt_zeros(&q234, MT_FLOAT32, 3, (int64_t[]){2, 3, 4}));
  OK(mt_zeros(&q334, MT_FLOAT32, 3, (int64_t[]){3, 4, 2}));
  mt_tensor *r = NULL;

  FAILS(mt_mm(&r, m23, m45), MT_ESHAPE, "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)");
  FAILS(mt_mm(&r, t3, m45), MT_ESHAPE, "mat1 must be a matrix, got a 3-D tensor");
  FAILS(mt_mm(&r, m23, v3), MT_ESHAPE, "mat2 must be a matrix, got a 1-D tensor");
  FAILS(mt_mm(&r, m23, d32), MT_EDTYPE, "expected both operands to have the same dtype, got float32 and float64");
  FAILS(mt_mm(&r, m23, h32), MT_EDTYPE, "got float32 and int32");
  FAILS(mt_mm(&r, b23, bl32), MT_EDTYPE, "not supported for bool");
  FAILS(mt_bmm(&r, m23, m45), MT_ESHAPE, "batch1 must be a 3-D tensor, got a 2-D tensor");
  FAILS(mt_bmm(&r, b223, m45), MT_ESHAPE, "batch2 must be a 3-D tensor, got a 2-D tensor");
  FAILS(mt_bmm(&r, b223, b345), MT_ESHAPE, "batch1 and batch2 shapes cannot be multiplied ([2, 2, 3] and [3, 4, 5])");
  FAILS(mt_bmm(&r, b223, b245), MT_ESHAPE, "cannot be multiplied ([2, 2, 3] and [2, 4, 5])");
  FAILS(mt_matmul(&r, s, m23), MT_ESHAPE, "at least 1 dim, got 0-D and 2-D");
  FAILS(mt_matmul(&r, v3, s), MT_ESHAPE, "got 1-D and 0-D");
  FAILS(mt_matmul(&r, v3, v4), MT_ESHAPE, "shapes [3] and [4] cannot be multiplied (3 != 4)");
  FAILS(mt_matmul(&r, m23, v4), MT_ESHAPE, "shapes [2, 3] and [4] cannot be multiplied (3 != 4)");
  FAILS(mt_matmul(&r, v4, m32), MT_ESHAPE, "shapes [4] and [3, 2] cannot be multiplied (4 != 3)");
  FAILS(mt_matmul(&r, m23, m45), MT_ESHAPE, "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)");
  FAILS(mt_matmul(&r, q234, q334), MT_ESHAPE, "batch dims do not broadcast (2 and 3)");
  FAILS(mt_matmul(&r, q234, m23), MT_ESHAPE, "shapes [2, 3, 4] and [2, 3] cannot be multiplied (4 != 2)");
  FAILS(mt_matmul(&r, v3, d32), MT_EDTYPE, "got float32 and float64");
  CHECK(r == NULL); /* outputs untouched on failure */

  mt_tensor *all[] = {m23, m45, m32, v3, v4, s, d32, b223, b345, b245, t3, b23, bl32, h32, q234, q334};
  for (int i = 0; i < LEN(all); i++) mt_tensor_release(all[i]);
}

/* Products split on the pool give the same bits for any thread count (their blocks depend on
 * the shapes only), in every transpose layout. */
static void test_threads(void) {
  static const shape_case sc[] = {{2, 2, {64, 300}, {300, 200}}, {2, 2, {250, 100}, {100, 40}}};
  const int before = mt_get_num_threads();
  for (int c = 0; c < LEN(sc); c++)
    for (int d = 0; d < 2; d++)
      for (int l = 0; l < NLAYOUTS; l++) {
        const mt_dtype dt = d ? MT_FLOAT64 : MT_FLOAT32;
        mt_tensor *a = operand(dt, sc[c].an, sc[c].as, (enum layout)l);
        mt_tensor *b = operand(dt, sc[c].bn, sc[c].bs, (enum layout)((l + 1) % NLAYOUTS));
        mt_tensor *r[3] = {NULL, NULL, NULL};
        for (int t = 0; t < 3; t++) {
          OK(mt_set_num_threads(t + 1));
          OK(mt_matmul(&r[t], a, b));
        }
        bool same = true;
        for (int64_t i = 0; same && i < mt_numel(r[0]); i++) same = at(r[0], i) == at(r[1], i) && at(r[0], i) == at(r[2], i);
        CHECK(same);
        for (int t = 0; t < 3; t++) mt_tensor_release(r[t]);
        mt_tensor_release(a);
        mt_tensor_release(b);
      }
  OK(mt_set_num_threads(before));
}

int main(void) {
  test_cases();
  test_large();
  test_threads();
  test_no_copies();
  test_constants();
  test_errors();
  return mt_test_finish("test_matmul");
}
