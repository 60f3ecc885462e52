/* test_index.c — index_select, gather, scatter, scatter_add, index_add_, cat and stack:
 * constants from PyTorch 1.13, random cases against a naive reference over every dtype and
 * layout (contiguous, permuted, gapped), and every error path. */
#include "mt_test.h"

#include <stdlib.h>

#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static int64_t rnd(int64_t n) { /* an LCG's high bits, in [0, n) */
  rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
  return n > 0 ? (int64_t)((rng >> 33) % (uint64_t)n) : 0;
}

static double at(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  if (mt_get_flat(t, i, &s)) abort();
  return mt_scalar_to_f64(s);
}

/* Row-major flat index <-> multi-index. */
static void unflat(int nd, const int64_t *sizes, int64_t i, int64_t *pos) {
  for (int d = nd - 1; d >= 0; d--) pos[d] = i % sizes[d], i /= sizes[d];
}
static int64_t flat(int nd, const int64_t *sizes, const int64_t *pos) {
  int64_t i = 0;
  for (int d = 0; d < nd; d++) i = i * sizes[d] + pos[d];
  return i;
}

/* A contiguous tensor holding vals (row-major), or 0, 1, 2, ... when vals is NULL. */
static mt_tensor *make(mt_dtype dt, int ndim, const int64_t *sizes, const double *vals) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) abort();
  for (int64_t i = 0; i < mt_numel(t); i++)
    if (mt_set_flat(t, i, mt_scalar_float(vals ? vals[i] : (double)i))) abort();
  return t;
}

static mt_tensor *make_index(mt_dtype dt, int ndim, const int64_t *sizes, const int64_t *vals) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) abort();
  for (int64_t i = 0; i < mt_numel(t); i++)
    if (mt_set_flat(t, i, mt_scalar_int(vals[i]))) abort();
  return t;
}

enum layout { CONTIG, PERMUTED, GAPPED, NLAYOUTS };
static const char *layout_name[] = {"contiguous", "permuted", "gapped"};

/* Same values as t in another memory layout: dims stored in reverse order, or every other
 * element of a buffer twice as large. Consumes t. */
static mt_tensor *relayout(mt_tensor *t, enum layout l) {
  if (l == CONTIG) return t;
  int nd = t->ndim;
  mt_tensor *r;
  if (l == PERMUTED) {
    int64_t rs[MT_MAX_DIMS], perm[MT_MAX_DIMS];
    for (int d = 0; d < nd; d++) rs[d] = t->sizes[nd - 1 - d], perm[d] = nd - 1 - d;
    mt_tensor *base;
    if (mt_empty(&base, t->dtype, nd, rs) || mt_permute(&r, base, nd, perm)) abort();
    mt_tensor_release(base);
  } else {
    int64_t st[MT_MAX_DIMS], n = 2;
    for (int d = nd - 1; d >= 0; d--) st[d] = n, n *= t->sizes[d] > 1 ? t->sizes[d] : 1;
    mt_storage *s;
    if (mt_storage_new(&s, (size_t)n * mt_dtype_info(t->dtype)->size + 8)) abort();
    if (mt_from_storage(&r, s, t->dtype, 0, nd, t->sizes, st)) abort();
    mt_storage_release(s);
  }
  if (mt_copy_(r, t)) abort();
  mt_tensor_release(t);
  return r;
}

/* Compares t with the expected dtype, shape and values; reports the first mismatch. */
static void expect(const char *what, const mt_tensor *t, mt_dtype dt, int ndim, const int64_t *sizes,
                   const double *vals) {
  bool ok = t->dtype == dt && t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) ok = t->sizes[d] == sizes[d];
  if (!ok) {
    fprintf(stderr, "%s: got dtype %s, %d dims\n", what, mt_dtype_info(t->dtype)->name, t->ndim);
    CHECK(ok);
    return;
  }
  for (int64_t i = 0; i < mt_numel(t); i++) {
    if (at(t, i) != vals[i]) {
      fprintf(stderr, "%s: element %lld is %g, expected %g\n", what, (long long)i, at(t, i), vals[i]);
      ok = false;
      break;
    }
  }
  CHECK(ok);
}

static const mt_dtype all_dtypes[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16, MT_INT64,
                                      MT_INT32,   MT_INT16,   MT_INT8,    MT_UINT8,    MT_BOOL};

/* Values 0..(m-1) that every dtype holds exactly (bool: 0/1). */
static mt_tensor *random_tensor(mt_dtype dt, int nd, const int64_t *sizes, int m, enum layout l) {
  int64_t n = 1;
  for (int d = 0; d < nd; d++) n *= sizes[d];
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) v[i] = (double)rnd(dt == MT_BOOL ? 2 : m);
  mt_tensor *t = relayout(make(dt, nd, sizes, v), l);
  free(v);
  return t;
}

/* ---- index_select ------------------------------------------------------------------------ */

static void test_index_select_constants(void) {
  int64_t s34[] = {3, 4}, s3[] = {3}, s2[] = {2};
  mt_tensor *x = make(MT_FLOAT32, 2, s34, NULL), *r;
  mt_tensor *i0 = make_index(MT_INT64, 1, s3, (int64_t[]){2, 0, 2});
  OK(mt_index_select(&r, x, 0, i0));
  expect("index_select dim 0", r, MT_FLOAT32, 2, (int64_t[]){3, 4},
         (double[]){8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
  CHECK(mt_is_contiguous(r));
  mt_tensor_release(r);
  mt_tensor *i1 = make_index(MT_INT32, 1, s2, (int64_t[]){3, 1});
  OK(mt_index_select(&r, x, -1, i1));
  expect("index_select dim -1, int32 index", r, MT_FLOAT32, 2, (int64_t[]){3, 2}, (double[]){3, 1, 7, 5, 11, 9});
  mt_tensor_release(r);

  /* a 0-dim index keeps the dim, with size 1 (as PyTorch) */
  mt_tensor *i00 = make_index(MT_INT64, 0, NULL, (int64_t[]){1});
  OK(mt_index_select(&r, x, 0, i00));
  expect("index_select 0-dim index", r, MT_FLOAT32, 2, (int64_t[]){1, 4}, (double[]){4, 5, 6, 7});
  mt_tensor_release(r);

  /* empty index: an empty dim */
  mt_tensor *ie = make_index(MT_INT64, 1, (int64_t[]){0}, NULL);
  OK(mt_index_select(&r, x, 0, ie));
  CHECK(r->ndim == 2 && r->sizes[0] == 0 && r->sizes[1] == 4);
  mt_tensor_release(r);

  /* a 0-dim tensor takes index 0, once */
  mt_tensor *sc = make(MT_FLOAT64, 0, NULL, (double[]){5});
  mt_tensor *i10 = make_index(MT_INT64, 1, (int64_t[]){1}, (int64_t[]){0});
  OK(mt_index_select(&r, sc, 0, i10));
  expect("index_select 0-dim tensor", r, MT_FLOAT64, 0, NULL, (double[]){5});
  mt_tensor_release(r);

  /* errors */
  mt_tensor *fi = make(MT_FLOAT32, 1, s2, (double[]){0, 1});
  FAILS(mt_index_select(&r, x, 0, fi), MT_EDTYPE, "int64 or int32 tensor, got float32");
  mt_tensor *hi = make_index(MT_INT16, 1, s2, (int64_t[]){0, 1});
  FAILS(mt_index_select(&r, x, 0, hi), MT_EDTYPE, "got int16");
  mt_tensor *i2d = make_index(MT_INT64, 2, (int64_t[]){1, 1}, (int64_t[]){0});
  FAILS(mt_index_select(&r, x, 0, i2d), MT_ESHAPE, "0-D or 1-D, got shape [1, 1]");
  mt_tensor *big = make_index(MT_INT64, 1, s3, (int64_t[]){0, 7, 1});
  FAILS(mt_index_select(&r, x, 1, big), MT_EINDEX, "index 7 is out of range for dim 1 of size 4");
  mt_tensor *neg = make_index(MT_INT32, 1, s2, (int64_t[]){0, -1});
  FAILS(mt_index_select(&r, x, 0, neg), MT_EINDEX, "index -1 is out of range for dim 0 of size 3");
  FAILS(mt_index_select(&r, x, 2, i0), MT_EINDEX, "dim 2 is out of range");
  FAILS(mt_index_select(&r, sc, 0, i0), MT_ESHAPE, "exactly one index, got 3");
  mt_tensor *one = make_index(MT_INT64, 1, (int64_t[]){1}, (int64_t[]){1});
  FAILS(mt_index_select(&r, sc, 0, one), MT_EINDEX, "index 1 is out of range for dim 0 of size 1");
  int64_t s03[] = {0, 3};
  mt_tensor *emp;
  OK(mt_zeros(&emp, MT_FLOAT32, 2, s03));
  FAILS(mt_index_select(&r, emp, 0, i10), MT_EINDEX, "index 0 is out of range for dim 0 of size 0");

  mt_tensor *all[] = {x, i0, i1, i00, ie, sc, i10, fi, hi, i2d, big, neg, one, emp};
  for (int i = 0; i < LEN(all); i++) mt_tensor_release(all[i]);
}

/* Every dtype, dim and layout, int64/int32/strided indices, against a naive reference. */
static void test_index_select_random(void) {
  int64_t sizes[] = {3, 4, 5};
  for (int di = 0; di < LEN(all_dtypes); di++) {
    for (int l = 0; l < NLAYOUTS; l++) {
      mt_tensor *t = random_tensor(all_dtypes[di], 3, sizes, 50, (enum layout)l);
      for (int dim = 0; dim < 3; dim++) {
        int64_t n = 7, iv[7], pos[3];
        for (int k = 0; k < n; k++) iv[k] = rnd(sizes[dim]);
        mt_tensor *idx = make_index(l == 1 ? MT_INT32 : MT_INT64, 1, &n, iv);
        idx = relayout(idx, (enum layout)l); /* a gapped index is a strided int64 tensor */
        mt_tensor *r;
        OK(mt_index_select(&r, t, dim, idx));
        int64_t rs[3] = {3, 4, 5};
        rs[dim] = n;
        double want[7 * 20];
        for (int64_t i = 0; i < rs[0] * rs[1] * rs[2]; i++) {
          unflat(3, rs, i, pos);
          pos[dim] = iv[pos[dim]];
          want[i] = at(t, flat(3, sizes, pos));
        }
        char what[96];
        snprintf(what, sizeof what, "index_select %s dim %d %s", mt_dtype_info(all_dtypes[di])->name, dim,
                 layout_name[l]);
        expect(what, r, all_dtypes[di], 3, rs, want);
        mt_tensor_release(r);
        mt_tensor_release(idx);
      }
      mt_tensor_release(t);
    }
  }
}

/* ---- gather ------------------------------------------------------------------------------ */

static void test_gather(void) {
  int64_t s23[] = {2, 3}, s22[] = {2, 2};
  mt_tensor *x = make(MT_FLOAT32, 2, s23, NULL), *r;
  /* torch.gather(arange(6.).view(2,3), 1, [[2,0],[1,1]]) = [[2,0],[4,4]] */
  mt_tensor *i1 = make_index(MT_INT64, 2, s22, (int64_t[]){2, 0, 1, 1});
  OK(mt_gather(&r, x, 1, i1));
  expect("gather dim 1", r, MT_FLOAT32, 2, s22, (double[]){2, 0, 4, 4});
  mt_tensor_release(r);
  /* torch.gather(x, 0, [[1,0,1]]) = [[3,1,5]]: the index may be smaller than x outside dim */
  mt_tensor *i0 = make_index(MT_INT32, 2, (int64_t[]){1, 3}, (int64_t[]){1, 0, 1});
  OK(mt_gather(&r, x, 0, i0));
  expect("gather dim 0", r, MT_FLOAT32, 2, (int64_t[]){1, 3}, (double[]){3, 1, 5});
  mt_tensor_release(r);
  /* and larger along dim: torch.gather(x, 1, [[1,0,1,0]]) = [[1,0,1,0]] */
  mt_tensor *i4 = make_index(MT_INT64, 2, (int64_t[]){1, 4}, (int64_t[]){1, 0, 1, 0});
  OK(mt_gather(&r, x, -1, i4));
  expect("gather longer along dim", r, MT_FLOAT32, 2, (int64_t[]){1, 4}, (double[]){1, 0, 1, 0});
  mt_tensor_release(r);
  /* 0-dim cases: torch.gather(tensor([5.,6.]), 0, tensor(1)) = 6. (0-dim) */
  mt_tensor *v = make(MT_FLOAT64, 1, (int64_t[]){2}, (double[]){5, 6});
  mt_tensor *i00 = make_index(MT_INT64, 0, NULL, (int64_t[]){1});
  OK(mt_gather(&r, v, 0, i00));
  expect("gather 0-dim index", r, MT_FLOAT64, 0, NULL, (double[]){6});
  mt_tensor_release(r);
  /* empty index: no shape rules apply, the result is empty with the index's shape */
  mt_tensor *ie = make_index(MT_INT64, 3, (int64_t[]){0, 5, 3}, NULL);
  OK(mt_gather(&r, x, 0, ie));
  CHECK(r->ndim == 3 && mt_numel(r) == 0 && r->sizes[1] == 5);
  mt_tensor_release(r);

  /* errors */
  mt_tensor *i1d = make_index(MT_INT64, 1, (int64_t[]){2}, (int64_t[]){1, 0});
  FAILS(mt_gather(&r, x, 0, i1d), MT_ESHAPE, "index shape [2] and tensor shape [2, 3] must have the same number of dims");
  FAILS(mt_gather(&r, x, 0, i4), MT_ESHAPE, "index shape [1, 4] must not exceed tensor shape [2, 3] except in dim 0");
  mt_tensor *i3 = make_index(MT_INT64, 2, (int64_t[]){1, 1}, (int64_t[]){3});
  FAILS(mt_gather(&r, x, 1, i3), MT_EINDEX, "index 3 is out of range for dim 1 of size 3");
  mt_tensor *im = make_index(MT_INT64, 2, (int64_t[]){1, 1}, (int64_t[]){-1});
  FAILS(mt_gather(&r, x, 0, im), MT_EINDEX, "index -1 is out of range for dim 0 of size 2");
  FAILS(mt_gather(&r, x, 2, i1), MT_EINDEX, "dim 2 is out of range");
  mt_tensor *fi = make(MT_FLOAT64, 2, (int64_t[]){1, 1}, (double[]){0});
  FAILS(mt_gather(&r, x, 0, fi), MT_EDTYPE, "got float64");

  mt_tensor *all[] = {x, i1, i0, i4, v, i00, ie, i1d, i3, im, fi};
  for (int i = 0; i < LEN(all); i++) mt_tensor_release(all[i]);
}

static void test_gather_random(void) {
  int64_t sizes[] = {4, 3, 5};
  for (int di = 0; di < LEN(all_dtypes); di++) {
    for (int l = 0; l < NLAYOUTS; l++) {
      mt_tensor *t = random_tensor(all_dtypes[di], 3, sizes, 60, (enum layout)l);
      for (int dim = 0; dim < 3; dim++) {
        int64_t is[3], pos[3], iv[6 * 5 * 5];
        for (int d = 0; d < 3; d++) is[d] = d == dim ? 6 : 1 + rnd(sizes[d]);
        int64_t n = is[0] * is[1] * is[2];
        for (int64_t k = 0; k < n; k++) iv[k] = rnd(sizes[dim]);
        mt_tensor *idx = relayout(make_index(MT_INT64, 3, is, iv), (enum layout)((l + 1) % NLAYOUTS));
        mt_tensor *r;
        OK(mt_gather(&r, t, dim, idx));
        double want[6 * 5 * 5];
        for (int64_t i = 0; i < n; i++) {
          unflat(3, is, i, pos);
          pos[dim] = iv[i];
          want[i] = at(t, flat(3, sizes, pos));
        }
        char what[96];
        snprintf(what, sizeof what, "gather %s dim %d %s", mt_dtype_info(all_dtypes[di])->name, dim, layout_name[l]);
        expect(what, r, all_dtypes[di], 3, is, want);
        mt_tensor_release(r);
        mt_tensor_release(idx);
      }
      mt_tensor_release(t);
    }
  }
}

/* Expanded inputs (stride 0) next to a strided index: the walk must not merge dims that the
 * index steps through differently. */
static void test_expanded_sources(void) {
  mt_tensor *col = make(MT_FLOAT32, 2, (int64_t[]){3, 1}, (double[]){10, 20, 30}), *t, *r;
  OK(mt_expand(&t, col, 2, (int64_t[]){3, 4})); /* t[i][j] = col[i] */
  int64_t iv[20];
  for (int k = 0; k < 20; k++) iv[k] = rnd(3);
  mt_tensor *idx = relayout(make_index(MT_INT64, 2, (int64_t[]){5, 4}, iv), PERMUTED);
  OK(mt_gather(&r, t, 0, idx));
  double want[20];
  for (int k = 0; k < 20; k++) want[k] = 10.0 * (double)(iv[k] + 1);
  expect("gather from expanded", r, MT_FLOAT32, 2, (int64_t[]){5, 4}, want);
  mt_tensor_release(r);

  mt_tensor *i3 = make_index(MT_INT64, 1, (int64_t[]){3}, (int64_t[]){2, 2, 0});
  OK(mt_index_select(&r, t, 0, i3));
  expect("index_select from expanded", r, MT_FLOAT32, 2, (int64_t[]){3, 4},
         (double[]){30, 30, 30, 30, 30, 30, 30, 30, 10, 10, 10, 10});
  mt_tensor_release(r);
  mt_tensor *all[] = {col, t, idx, i3};
  for (int i = 0; i < LEN(all); i++) mt_tensor_release(all[i]);
}

/* ---- scatter / scatter_add --------------------------------------------------------------- */

static void test_scatter(void) {
  int64_t s34[] = {3, 4}, s12[] = {1, 2}, s13[] = {1, 3};
  mt_tensor *z, *r;
  OK(mt_zeros(&z, MT_FLOAT32, 2, s34));
  /* torch.zeros(3,4).scatter(0, [[1,2]], [[1.,2.,3.]]) */
  mt_tensor *idx = make_index(MT_INT64, 2, s12, (int64_t[]){1, 2});
  mt_tensor *src = make(MT_FLOAT32, 2, s13, (double[]){1, 2, 3});
  OK(mt_scatter(&r, z, 0, idx, src));
  expect("scatter", r, MT_FLOAT32, 2, s34, (double[]){0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0});
  mt_tensor_release(r);
  CHECK(at(z, 4) == 0); /* out of place */

  /* scatter_add accumulates repeated indices: [[1,1],[1,1]] with [[1,2],[3,4]] */
  mt_tensor *rep = make_index(MT_INT32, 2, (int64_t[]){2, 2}, (int64_t[]){1, 1, 1, 1});
  mt_tensor *s22 = make(MT_FLOAT32, 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4});
  OK(mt_scatter_add(&r, z, 0, rep, s22));
  expect("scatter_add", r, MT_FLOAT32, 2, s34, (double[]){0, 0, 0, 0, 4, 6, 0, 0, 0, 0, 0, 0});
  mt_tensor_release(r);

  /* per-dtype accumulation: int8 wraps (100 + 100 = -56), bool ors, float16 rounds */
  static const struct { mt_dtype dt; double v, want; } acc[] = {
      {MT_INT8, 100, -56}, {MT_UINT8, 200, 144}, {MT_BOOL, 1, 1}, {MT_FLOAT16, 1, 2},
      {MT_BFLOAT16, 1, 2}, {MT_INT16, 30000, -5536}, {MT_INT64, 3, 6}, {MT_FLOAT64, 0.5, 1},
  };
  mt_tensor *i00 = make_index(MT_INT64, 1, (int64_t[]){2}, (int64_t[]){0, 0});
  for (int k = 0; k < LEN(acc); k++) {
    mt_tensor *t3, *s2;
    OK(mt_zeros(&t3, acc[k].dt, 1, (int64_t[]){3}));
    s2 = make(acc[k].dt, 1, (int64_t[]){2}, (double[]){acc[k].v, acc[k].v});
    OK(mt_scatter_add(&r, t3, 0, i00, s2));
    expect(mt_dtype_info(acc[k].dt)->name, r, acc[k].dt, 1, (int64_t[]){3}, (double[]){acc[k].want, 0, 0});
    mt_tensor_release(r);
    mt_tensor_release(t3);
    mt_tensor_release(s2);
  }

  /* src of another dtype is converted to t's */
  mt_tensor *s64 = make(MT_FLOAT64, 2, s12, (double[]){1.5, 2.5});
  OK(mt_scatter(&r, z, 1, idx, s64));
  expect("scatter converts src", r, MT_FLOAT32, 2, s34, (double[]){0, 1.5, 2.5, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  mt_tensor_release(r);

  /* 0-dim: torch.tensor([5.]).scatter(0, tensor(0), tensor(7.)) = [7.] */
  mt_tensor *one = make(MT_FLOAT32, 1, (int64_t[]){1}, (double[]){5});
  mt_tensor *i0 = make_index(MT_INT64, 0, NULL, (int64_t[]){0});
  mt_tensor *seven = make(MT_FLOAT32, 0, NULL, (double[]){7});
  OK(mt_scatter(&r, one, 0, i0, seven));
  expect("scatter 0-dim index", r, MT_FLOAT32, 1, (int64_t[]){1}, (double[]){7});
  mt_tensor_release(r);

  /* empty index: a copy of t, whatever the shapes */
  mt_tensor *ie = make_index(MT_INT64, 2, (int64_t[]){0, 9}, NULL);
  OK(mt_scatter(&r, z, 0, ie, seven));
  CHECK(r->ndim == 2 && r->sizes[0] == 3 && r != z);
  mt_tensor_release(r);

  /* errors */
  mt_tensor *s1 = make(MT_FLOAT32, 2, (int64_t[]){1, 1}, (double[]){1});
  FAILS(mt_scatter(&r, z, 0, idx, s1), MT_ESHAPE, "index shape [1, 2] must not exceed src shape [1, 1]");
  mt_tensor *s3d = make(MT_FLOAT32, 3, (int64_t[]){2, 2, 2}, NULL);
  FAILS(mt_scatter(&r, z, 0, idx, s3d), MT_ESHAPE, "index shape [1, 2] and src shape [2, 2, 2] must have the same number of dims");
  mt_tensor *wide = make_index(MT_INT64, 2, (int64_t[]){1, 5}, (int64_t[]){1, 2, 0, 0, 1});
  mt_tensor *s35 = make(MT_FLOAT32, 2, (int64_t[]){3, 5}, NULL);
  FAILS(mt_scatter_add(&r, z, 0, wide, s35), MT_ESHAPE, "index shape [1, 5] must not exceed tensor shape [3, 4] except in dim 0");
  mt_tensor *oob = make_index(MT_INT64, 2, s12, (int64_t[]){0, 3});
  FAILS(mt_scatter(&r, z, 0, oob, src), MT_EINDEX, "index 3 is out of range for dim 0 of size 3");
  mt_tensor *fi = make(MT_FLOAT32, 2, s12, (double[]){0, 1});
  FAILS(mt_scatter_add(&r, z, 0, fi, src), MT_EDTYPE, "got float32");
  FAILS(mt_scatter(&r, z, -3, idx, src), MT_EINDEX, "dim -3 is out of range");

  mt_tensor *all[] = {z, idx, src, rep, s22, i00, s64, one, i0, seven, ie, s1, s3d, wide, s35, oob, fi};
  for (int i = 0; i < LEN(all); i++) mt_tensor_release(all[i]);
}

/* Random scatter (distinct indices along dim, so the result does not depend on order) and
 * scatter_add (repeats) over dtypes and layouts of t, index and src. */
static void test_scatter_random(void) {
  int64_t sizes[] = {4, 5, 3};
  for (int di = 0; di < LEN(all_dtypes); di++) {
    mt_dtype dt = all_dtypes[di];
    for (int l = 0; l < NLAYOUTS; l++) {
      mt_tensor *t = random_tensor(dt, 3, sizes, 4, (enum layout)l);
      for (int dim = 0; dim < 3; dim++) {
        for (int accumulate = 0; accumulate < 2; accumulate++) {
          int64_t is[3], ss[3], pos[3], iv[4 * 5 * 3];
          for (int d = 0; d < 3; d++) {
            is[d] = d == dim ? 1 + rnd(sizes[d]) : 1 + rnd(sizes[d]);
            ss[d] = is[d] + rnd(2);
          }
          int64_t n = is[0] * is[1] * is[2];
          for (int64_t i = 0; i < n; i++) {
            unflat(3, is, i, pos);
            /* distinct along dim: a rotation of 0..size-1 per line */
            int64_t line = pos[(dim + 1) % 3] * 7 + pos[(dim + 2) % 3] * 3;
            iv[i] = accumulate ? rnd(sizes[dim]) : (pos[dim] + line) % sizes[dim];
          }
          mt_tensor *idx = relayout(make_index(MT_INT64, 3, is, iv), (enum layout)((l + 2) % NLAYOUTS));
          mt_tensor *src = random_tensor(dt, 3, ss, 4, (enum layout)((l + 1) % NLAYOUTS));
          double want[4 * 5 * 3];
          for (int64_t i = 0; i < 60; i++) want[i] = at(t, i);
          for (int64_t i = 0; i < n; i++) {
            unflat(3, is, i, pos);
            double v = at(src, flat(3, ss, pos));
            pos[dim] = iv[i];
            int64_t j = flat(3, sizes, pos);
            want[j] = accumulate ? want[j] + v : v;
            if (dt == MT_BOOL) want[j] = want[j] != 0;
          }
          mt_tensor *r;
          OK((accumulate ? mt_scatter_add : mt_scatter)(&r, t, dim, idx, src));
          char what[96];
          snprintf(what, sizeof what, "%s %s dim %d %s", accumulate ? "scatter_add" : "scatter",
                   mt_dtype_info(dt)->name, dim, layout_name[l]);
          expect(what, r, dt, 3, sizes, want);
          CHECK(mt_is_contiguous(r));
          mt_tensor_release(r);
          mt_tensor_release(idx);
          mt_tensor_release(src);
        }
      }
      mt_tensor_release(t);
    }
  }
}

/* ---- index_add_ -------------------------------------------------------------------------- */

static void test_index_add(void) {
  int64_t s34[] = {3, 4};
  mt_tensor *t, *ones;
  OK(mt_zeros(&t, MT_FLOAT32, 2, s34));
  OK(mt_full(&ones, MT_FLOAT32, 2, s34, mt_scalar_float(1)));
  /* torch.zeros(3,4).index_add_(0, [0,0,2], ones(3,4)) */
  mt_tensor *i3 = make_index(MT_INT64, 1, (int64_t[]){3}, (int64_t[]){0, 0, 2});
  OK(mt_index_add_(t, 0, i3, ones));
  expect("index_add_ dim 0", t, MT_FLOAT32, 2, s34, (double[]){2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1});
  /* dim 1 with int32 indices and a float64 source (converted): [3,0] with ones(3,2) * 0.5 */
  mt_tensor *i2 = make_index(MT_INT32, 1, (int64_t[]){2}, (int64_t[]){3, 0});
  mt_tensor *half;
  OK(mt_full(&half, MT_FLOAT64, 2, (int64_t[]){3, 2}, mt_scalar_float(0.5)));
  OK(mt_index_add_(t, 1, i2, half));
  expect("index_add_ dim 1", t, MT_FLOAT32, 2, s34, (double[]){2.5, 2, 2, 2.5, 0.5, 0, 0, 0.5, 1.5, 1, 1, 1.5});

  /* a failing index writes nothing: 0 is valid, 5 is not */
  mt_tensor *bad = make_index(MT_INT64, 1, (int64_t[]){2}, (int64_t[]){0, 5});
  mt_tensor *o24;
  OK(mt_full(&o24, MT_FLOAT32, 2, (int64_t[]){2, 4}, mt_scalar_float(1)));
  FAILS(mt_index_add_(t, 0, bad, o24), MT_EINDEX, "index 5 is out of range for dim 0 of size 3");
  CHECK(at(t, 0) == 2.5);

  /* src sharing t's memory is read as it was before the call */
  mt_tensor *sq = make(MT_FLOAT64, 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4});
  mt_tensor *swap = make_index(MT_INT64, 1, (int64_t[]){2}, (int64_t[]){1, 0});
  OK(mt_index_add_(sq, 0, swap, sq));
  expect("index_add_ aliased src", sq, MT_FLOAT64, 2, (int64_t[]){2, 2}, (double[]){4, 6, 4, 6});

  /* an index sharing t's memory too: t = [1, 0] used as its own index, += [5, 7] */
  mt_tensor *self = make(MT_INT64, 1, (int64_t[]){2}, (double[]){1, 0});
  mt_tensor *s57 = make(MT_INT64, 1, (int64_t[]){2}, (double[]){5, 7});
  OK(mt_index_add_(self, 0, self, s57));
  expect("index_add_ aliased index", self, MT_INT64, 1, (int64_t[]){2}, (double[]){8, 5});
  mt_tensor_release(self);
  mt_tensor_release(s57);

  /* non-contiguous t, every dtype, repeated indices, against a reference */
  int64_t sizes[] = {4, 3, 5};
  for (int di = 0; di < LEN(all_dtypes); di++) {
    mt_dtype dt = all_dtypes[di];
    for (int dim = 0; dim < 3; dim++) {
      mt_tensor *u = random_tensor(dt, 3, sizes, 4, (enum layout)(1 + dim % 2));
      int64_t n = 6, iv[6], ss[3] = {4, 3, 5}, pos[3];
      ss[dim] = n;
      for (int k = 0; k < n; k++) iv[k] = rnd(sizes[dim]);
      mt_tensor *idx = make_index(MT_INT64, 1, &n, iv);
      mt_tensor *src = random_tensor(dt, 3, ss, 4, (enum layout)(dim % 3));
      double want[60];
      for (int i = 0; i < 60; i++) want[i] = at(u, i);
      for (int64_t i = 0; i < ss[0] * ss[1] * ss[2]; i++) {
        unflat(3, ss, i, pos);
        double v = at(src, i);
        pos[dim] = iv[pos[dim]];
        int64_t j = flat(3, sizes, pos);
        want[j] += v;
        if (dt == MT_BOOL) want[j] = want[j] != 0;
      }
      OK(mt_index_add_(u, dim, idx, src));
      char what[64];
      snprintf(what, sizeof what, "index_add_ %s dim %d", mt_dtype_info(dt)->name, dim);
      expect(what, u, dt, 3, sizes, want);
      mt_tensor_release(u);
      mt_tensor_release(idx);
      mt_tensor_release(src);
    }
  }

  /* 0-dim: torch.tensor(5.).index_add_(0, tensor(0), tensor(2.)) = 7. */
  mt_tensor *five = make(MT_FLOAT32, 0, NULL, (double[]){5}), *two = make(MT_FLOAT32, 0, NULL, (double[]){2});
  mt_tensor *i0 = make_index(MT_INT64, 0, NULL, (int64_t[]){0});
  OK(mt_index_add_(five, 0, i0, two));
  expect("index_add_ 0-dim", five, MT_FLOAT32, 0, NULL, (double[]){7});
  /* no indices: nothing to do */
  mt_tensor *ie = make_index(MT_INT64, 1, (int64_t[]){0}, NULL), *s04;
  OK(mt_zeros(&s04, MT_FLOAT32, 2, (int64_t[]){0, 4}));
  OK(mt_index_add_(t, 0, ie, s04));

  /* errors */
  FAILS(mt_index_add_(t, 0, i3, o24), MT_ESHAPE, "source shape [2, 4] does not fit tensor shape [3, 4] with 3 indices along dim 0");
  mt_tensor *o23;
  OK(mt_zeros(&o23, MT_FLOAT32, 2, (int64_t[]){2, 3}));
  FAILS(mt_index_add_(t, 0, i2, o23), MT_ESHAPE, "source shape [2, 3]");
  mt_tensor *i2d = make_index(MT_INT64, 2, (int64_t[]){1, 2}, (int64_t[]){0, 0});
  FAILS(mt_index_add_(t, 0, i2d, o24), MT_ESHAPE, "0-D or 1-D, got shape [1, 2]");
  mt_tensor *fi = make(MT_FLOAT32, 1, (int64_t[]){2}, (double[]){0, 0});
  FAILS(mt_index_add_(t, 0, fi, o24), MT_EDTYPE, "got float32");
  FAILS(mt_index_add_(t, 2, i2, o24), MT_EINDEX, "dim 2 is out of range");
  mt_tensor *row, *ex;
  OK(mt_zeros(&row, MT_FLOAT32, 1, (int64_t[]){4}));
  OK(mt_expand(&ex, row, 2, (int64_t[]){2, 4}));
  mt_tensor *i1 = make_index(MT_INT64, 1, (int64_t[]){1}, (int64_t[]){0});
  mt_tensor *o14;
  OK(mt_full(&o14, MT_FLOAT32, 2, (int64_t[]){1, 4}, mt_scalar_float(1)));
  FAILS(mt_index_add_(ex, 0, i1, o14), MT_EARG, "expanded");
  CHECK(at(row, 0) == 0);

  mt_tensor *all[] = {t, ones, i3, i2, half, bad, o24, sq, swap, five, two, i0, ie, s04, o23, i2d, fi, row, ex, i1, o14};
  for (int i = 0; i < LEN(all); i++) mt_tensor_release(all[i]);
}

/* ---- cat / stack ------------------------------------------------------------------------- */

static void test_cat(void) {
  mt_tensor *a = make(MT_FLOAT32, 2, (int64_t[]){2, 3}, NULL);                     /* 0..5 */
  mt_tensor *b = make(MT_FLOAT32, 2, (int64_t[]){2, 1}, (double[]){10, 11});
  mt_tensor *c = make(MT_FLOAT32, 2, (int64_t[]){1, 3}, (double[]){20, 21, 22});
  mt_tensor *r;
  OK(mt_cat(&r, 2, (const mt_tensor *const[]){a, c}, 0));
  expect("cat dim 0", r, MT_FLOAT32, 2, (int64_t[]){3, 3}, (double[]){0, 1, 2, 3, 4, 5, 20, 21, 22});
  mt_tensor_release(r);
  OK(mt_cat(&r, 3, (const mt_tensor *const[]){b, a, b}, -1));
  expect("cat dim -1", r, MT_FLOAT32, 2, (int64_t[]){2, 5}, (double[]){10, 0, 1, 2, 10, 11, 3, 4, 5, 11});
  mt_tensor_release(r);

  /* non-contiguous inputs and dtype promotion: int32 + uint8 -> int32, bool + uint8 -> uint8,
   * int64 + float32 -> float32 */
  mt_tensor *at_, *i32 = make(MT_INT32, 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4});
  OK(mt_transpose(&at_, i32, 0, 1)); /* [[1,3],[2,4]] */
  mt_tensor *u8 = make(MT_UINT8, 2, (int64_t[]){2, 1}, (double[]){200, 201});
  OK(mt_cat(&r, 2, (const mt_tensor *const[]){at_, u8}, 1));
  expect("cat promotes, transposed input", r, MT_INT32, 2, (int64_t[]){2, 3}, (double[]){1, 3, 200, 2, 4, 201});
  mt_tensor_release(r);
  mt_tensor *bl = make(MT_BOOL, 2, (int64_t[]){1, 1}, (double[]){1});
  OK(mt_cat(&r, 2, (const mt_tensor *const[]){bl, u8}, 0));
  expect("cat bool uint8", r, MT_UINT8, 2, (int64_t[]){3, 1}, (double[]){1, 200, 201});
  mt_tensor_release(r);
  mt_tensor *l64 = make(MT_INT64, 2, (int64_t[]){1, 3}, (double[]){7, 8, 9});
  OK(mt_cat(&r, 2, (const mt_tensor *const[]){l64, a}, 0));
  expect("cat int64 float32", r, MT_FLOAT32, 2, (int64_t[]){3, 3}, (double[]){7, 8, 9, 0, 1, 2, 3, 4, 5});
  mt_tensor_release(r);

  /* legacy: 1-D [0] tensors are skipped (their dtype still promotes), [0, 3] is not */
  mt_tensor *e0, *e03;
  OK(mt_empty(&e0, MT_FLOAT64, 1, (int64_t[]){0}));
  OK(mt_empty(&e03, MT_FLOAT32, 2, (int64_t[]){0, 3}));
  OK(mt_cat(&r, 4, (const mt_tensor *const[]){e0, a, e03, c}, 0));
  expect("cat skips [0]", r, MT_FLOAT64, 2, (int64_t[]){3, 3}, (double[]){0, 1, 2, 3, 4, 5, 20, 21, 22});
  mt_tensor_release(r);
  OK(mt_cat(&r, 2, (const mt_tensor *const[]){e0, e0}, 1));
  CHECK(r->ndim == 1 && r->sizes[0] == 0 && r->dtype == MT_FLOAT64);
  mt_tensor_release(r);

  /* a 1-D gapped input and a single input */
  mt_tensor *g = relayout(make(MT_INT16, 1, (int64_t[]){3}, (double[]){4, 5, 6}), GAPPED);
  OK(mt_cat(&r, 2, (const mt_tensor *const[]){g, g}, 0));
  expect("cat gapped", r, MT_INT16, 1, (int64_t[]){6}, (double[]){4, 5, 6, 4, 5, 6});
  mt_tensor_release(r);
  OK(mt_cat(&r, 1, (const mt_tensor *const[]){a}, 1));
  CHECK(r != a && r->sizes[1] == 3 && at(r, 5) == 5);
  mt_tensor_release(r);

  /* errors */
  mt_tensor *s0 = make(MT_FLOAT32, 0, NULL, (double[]){1}), *a3, *a24;
  OK(mt_zeros(&a3, MT_FLOAT32, 3, (int64_t[]){2, 3, 1}));
  OK(mt_zeros(&a24, MT_FLOAT32, 2, (int64_t[]){2, 4}));
  FAILS(mt_cat(&r, 0, NULL, 0), MT_EARG, "non-empty list");
  FAILS(mt_cat(&r, 2, (const mt_tensor *const[]){a, s0}, 0), MT_ESHAPE, "zero-dimensional tensor (at position 1)");
  FAILS(mt_cat(&r, 2, (const mt_tensor *const[]){a, a3}, 0), MT_ESHAPE,
        "tensor 1 has shape [2, 3, 1] but tensor 0 has shape [2, 3]: the number of dims must match");
  FAILS(mt_cat(&r, 3, (const mt_tensor *const[]){e0, a, a24}, 0), MT_ESHAPE,
        "tensor 2 has shape [2, 4] but tensor 1 has shape [2, 3]: sizes must match except in dim 0");
  FAILS(mt_cat(&r, 2, (const mt_tensor *const[]){a, a}, 2), MT_EINDEX, "dim 2 is out of range");
  FAILS(mt_cat(&r, 2, (const mt_tensor *const[]){a, NULL}, 0), MT_EARG, "tensor 1 is missing");

  mt_tensor *all[] = {a, b, c, at_, i32, u8, bl, l64, e0, e03, g, s0, a3, a24};
  for (int i = 0; i < LEN(all); i++) mt_tensor_release(all[i]);
}

static void test_stack(void) {
  mt_tensor *a = make(MT_FLOAT32, 2, (int64_t[]){2, 3}, NULL);
  mt_tensor *b = make(MT_INT64, 2, (int64_t[]){2, 3}, (double[]){10, 11, 12, 13, 14, 15});
  mt_tensor *r;
  OK(mt_stack(&r, 2, (const mt_tensor *const[]){a, b}, 0));
  expect("stack dim 0", r, MT_FLOAT32, 3, (int64_t[]){2, 2, 3}, (double[]){0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15});
  mt_tensor_release(r);
  OK(mt_stack(&r, 2, (const mt_tensor *const[]){a, b}, 2));
  expect("stack dim 2", r, MT_FLOAT32, 3, (int64_t[]){2, 3, 2},
         (double[]){0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15});
  mt_tensor_release(r);
  OK(mt_stack(&r, 2, (const mt_tensor *const[]){a, b}, -2)); /* = dim 1 */
  expect("stack dim -2", r, MT_FLOAT32, 3, (int64_t[]){2, 2, 3}, (double[]){0, 1, 2, 10, 11, 12, 3, 4, 5, 13, 14, 15});
  mt_tensor_release(r);
  mt_tensor *x = make(MT_FLOAT64, 0, NULL, (double[]){1}), *y = make(MT_FLOAT64, 0, NULL, (double[]){2});
  OK(mt_stack(&r, 3, (const mt_tensor *const[]){x, y, x}, 0));
  expect("stack 0-dim", r, MT_FLOAT64, 1, (int64_t[]){3}, (double[]){1, 2, 1});
  mt_tensor_release(r);
  mt_tensor *e;
  OK(mt_empty(&e, MT_FLOAT32, 1, (int64_t[]){0}));
  OK(mt_stack(&r, 2, (const mt_tensor *const[]){e, e}, 0));
  CHECK(r->ndim == 2 && r->sizes[0] == 2 && r->sizes[1] == 0);
  mt_tensor_release(r);

  mt_tensor *c;
  OK(mt_zeros(&c, MT_FLOAT32, 2, (int64_t[]){3, 2}));
  FAILS(mt_stack(&r, 2, (const mt_tensor *const[]){a, c}, 0), MT_ESHAPE,
        "same shape, got [2, 3] at position 0 and [3, 2] at position 1");
  FAILS(mt_stack(&r, 2, (const mt_tensor *const[]){a, b}, 3), MT_EINDEX, "dim 3 is out of range");
  FAILS(mt_stack(&r, 2, (const mt_tensor *const[]){a, b}, -4), MT_EINDEX, "dim -4 is out of range");
  FAILS(mt_stack(&r, 0, NULL, 0), MT_EARG, "non-empty list");

  mt_tensor *all[] = {a, b, x, y, e, c};
  for (int i = 0; i < LEN(all); i++) mt_tensor_release(all[i]);
}

int main(void) {
  test_index_select_constants();
  test_index_select_random();
  test_gather();
  test_gather_random();
  test_expanded_sources();
  test_scatter();
  test_scatter_random();
  test_index_add();
  test_cat();
  test_stack();
  return mt_test_finish("test_index");
}
