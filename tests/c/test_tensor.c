/* test_tensor.c — the core's foundation: dtypes, storages, creation, views, copies. */
#include "mt_test.h"

#include <stdlib.h>

static mt_tensor *arange_f32(int ndim, const int64_t *sizes) {
  mt_tensor *a, *v;
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= sizes[d];
  if (mt_arange(&a, MT_FLOAT32, 0, (double)n, 1) || mt_view(&v, a, ndim, sizes)) abort();
  mt_tensor_release(a);
  return v;
}

static double at(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  if (mt_get_flat(t, i, &s)) abort();
  return mt_scalar_to_f64(s);
}

static void test_half_conversions(void) {
  static const struct { float in; uint16_t f16, bf16; } rows[] = {
      {1.0f, 0x3c00, 0x3f80},          {1.0f + 0x1p-11f, 0x3c00, 0x3f80}, /* tie: to even */
      {1.0f + 0x1p-10f, 0x3c01, 0x3f80}, {65504.0f, 0x7bff, 0x4780},
      {65520.0f, 0x7c00, 0x4780},      {0x1p-24f, 0x0001, 0x3380},       /* smallest subnormal */
      {0x1p-25f, 0x0000, 0x3300},      {-2.5f, 0xc100, 0xc020},
      {1.00390625f, 0x3c04, 0x3f80},   {1.01171875f, 0x3c0c, 0x3f82},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    CHECK(mt_f32_to_f16(rows[i].in) == rows[i].f16);
    CHECK(mt_f32_to_bf16(rows[i].in) == rows[i].bf16);
  }
  CHECK(mt_f16_to_f32(0x3c01) == 1.0f + 0x1p-10f);
  CHECK(mt_f16_to_f32(0x0001) == 0x1p-24f);
  CHECK(isnan(mt_f16_to_f32(mt_f32_to_f16(NAN))));
  CHECK(isnan(mt_bf16_to_f32(mt_f32_to_bf16(NAN))));
  /* every half survives a round trip through float */
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    float f = mt_f16_to_f32((uint16_t)h);
    if (!isnan(f) && mt_f32_to_f16(f) != h) bad++;
  }
  CHECK(bad == 0);
}

static void test_promotion(void) {
  static const struct { mt_dtype a, b, want; } rows[] = {
      {MT_INT64, MT_FLOAT32, MT_FLOAT32}, {MT_UINT8, MT_INT8, MT_INT16},     {MT_BOOL, MT_INT8, MT_INT8},
      {MT_FLOAT16, MT_BFLOAT16, MT_FLOAT32}, {MT_INT32, MT_INT64, MT_INT64}, {MT_FLOAT64, MT_FLOAT16, MT_FLOAT64},
      {MT_UINT8, MT_INT32, MT_INT32},     {MT_BOOL, MT_BOOL, MT_BOOL},       {MT_FLOAT16, MT_INT64, MT_FLOAT16},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    CHECK(mt_promote_types(rows[i].a, rows[i].b) == rows[i].want);
    CHECK(mt_promote_types(rows[i].b, rows[i].a) == rows[i].want);
  }
  mt_dtype dt;
  CHECK(mt_dtype_from_name("double", &dt) && dt == MT_FLOAT64);
  CHECK(mt_dtype_from_name("bfloat16", &dt) && dt == MT_BFLOAT16);
  CHECK(!mt_dtype_from_name("float128", &dt));
}

static void test_creation(void) {
  mt_tensor *t;
  int64_t sizes[2] = {2, 3};
  OK(mt_full(&t, MT_INT32, 2, sizes, mt_scalar_int(7)));
  CHECK(mt_numel(t) == 6 && t->strides[0] == 3 && t->strides[1] == 1 && mt_is_contiguous(t));
  CHECK(at(t, 5) == 7);
  mt_tensor_release(t);

  int64_t neg[1] = {-1};
  FAILS(mt_zeros(&t, MT_FLOAT32, 1, neg), MT_EARG, "negative");
  int64_t huge[2] = {INT64_MAX / 2, 4};
  FAILS(mt_zeros(&t, MT_FLOAT32, 2, huge), MT_ENOMEM, "overflow");

  OK(mt_arange(&t, MT_INT64, 1, 10, 3)); /* 1 4 7 */
  CHECK(mt_numel(t) == 3 && at(t, 2) == 7);
  mt_tensor_release(t);
  OK(mt_arange(&t, MT_FLOAT32, 0, 1, 0.25));
  CHECK(mt_numel(t) == 4 && at(t, 3) == 0.75);
  mt_tensor_release(t);
  FAILS(mt_arange(&t, MT_FLOAT32, 0, 1, 0), MT_EARG, "step");
  FAILS(mt_arange(&t, MT_FLOAT32, 5, 1, 1), MT_EARG, "sign");

  OK(mt_linspace(&t, MT_FLOAT64, 0, 1, 5));
  CHECK(at(t, 1) == 0.25 && at(t, 4) == 1.0);
  mt_tensor_release(t);

  OK(mt_eye(&t, MT_FLOAT32, 2, 3));
  CHECK(at(t, 0) == 1 && at(t, 1) == 0 && at(t, 4) == 1 && at(t, 5) == 0);
  mt_tensor_release(t);

  /* An empty tensor may have huge dims (its contiguous strides saturate): filling, copying and
   * adding walk nothing and must not overflow on the way (UBSan, `make test-sanitize`). */
  int64_t empty_huge[3] = {0, (int64_t)1 << 62, 4};
  mt_tensor *c, *sum;
  OK(mt_full(&t, MT_FLOAT32, 3, empty_huge, mt_scalar_float(1)));
  CHECK(mt_numel(t) == 0 && t->sizes[1] == (int64_t)1 << 62);
  OK(mt_clone(&c, t));
  OK(mt_copy_(c, t));
  OK(mt_binary(&sum, MT_ADD, t, c));
  CHECK(mt_numel(sum) == 0 && sum->ndim == 3);
  mt_tensor_release(sum);
  mt_tensor_release(c);
  mt_tensor_release(t);

  OK(mt_wrap_number(&t, mt_scalar_float(2.5)));
  CHECK(t->wrapped_number && t->dtype == MT_FLOAT64 && t->ndim == 0 && at(t, 0) == 2.5);
  mt_scalar s;
  OK(mt_item(t, &s));
  CHECK(s.kind == MT_SCALAR_FLOAT && s.f == 2.5);
  mt_tensor_release(t);
}

static void test_views(void) {
  int64_t sz[3] = {2, 3, 4};
  mt_tensor *a = arange_f32(3, sz), *v, *w;
  int before = mt_storage_refcount(a->storage);

  OK(mt_transpose(&v, a, 0, 2)); /* [4, 3, 2] */
  CHECK(v->storage == a->storage && v->sizes[0] == 4 && !mt_is_contiguous(v));
  CHECK(at(v, 1) == 12); /* v[0][0][1] = a[1][0][0] */
  CHECK(mt_storage_refcount(a->storage) == before + 1);
  int64_t flat[1] = {24};
  FAILS(mt_view(&w, v, 1, flat), MT_ESHAPE, "reshape");
  OK(mt_reshape(&w, v, 1, flat)); /* copies */
  CHECK(w->storage != a->storage && at(w, 1) == 12);
  mt_tensor_release(w);
  mt_tensor_release(v);

  int64_t inf[2] = {-1, 4};
  OK(mt_view(&v, a, 2, inf));
  CHECK(v->sizes[0] == 6 && v->storage == a->storage);
  mt_tensor_release(v);
  int64_t two_inf[2] = {-1, -1};
  FAILS(mt_view(&v, a, 2, two_inf), MT_EARG, "one dimension");
  int64_t bad[2] = {5, 5};
  FAILS(mt_view(&v, a, 2, bad), MT_ESHAPE, "[5, 5]");

  /* a view of a narrowed (non-contiguous) tensor that keeps rows intact */
  OK(mt_narrow(&v, a, 2, 1, 2)); /* [2, 3, 2] */
  int64_t m[2] = {6, 2};
  OK(mt_view(&w, v, 2, m));
  CHECK(at(w, 0) == 1 && at(w, 1) == 2 && at(w, 2) == 5);
  mt_tensor_release(w);
  mt_tensor_release(v);
  FAILS(mt_narrow(&v, a, 1, 2, 2), MT_EINDEX, "exceeds");

  OK(mt_select(&v, a, 1, -1)); /* a[:, 2, :] */
  CHECK(v->ndim == 2 && at(v, 0) == 8 && at(v, 4) == 20);
  mt_tensor_release(v);
  FAILS(mt_select(&v, a, 0, 2), MT_EINDEX, "out of range");
  FAILS(mt_select(&v, a, 3, 0), MT_EINDEX, "dim 3");

  OK(mt_unsqueeze(&v, a, -1));
  CHECK(v->ndim == 4 && v->sizes[3] == 1);
  OK(mt_squeeze_all(&w, v));
  CHECK(w->ndim == 3);
  mt_tensor_release(w);
  mt_tensor_release(v);

  int64_t perm[3] = {2, 0, 1};
  OK(mt_permute(&v, a, 3, perm));
  CHECK(v->sizes[0] == 4 && v->sizes[1] == 2 && at(v, 1) == 4);
  mt_tensor_release(v);
  int64_t dup[3] = {0, 0, 1};
  FAILS(mt_permute(&v, a, 3, dup), MT_EARG, "more than once");

  OK(mt_flatten(&v, a, 1, -1));
  CHECK(v->ndim == 2 && v->sizes[1] == 12 && v->storage == a->storage);
  mt_tensor_release(v);

  int64_t row_sz[2] = {1, 4}, ex[3] = {5, 3, -1};
  mt_tensor *row = arange_f32(2, row_sz);
  OK(mt_expand(&v, row, 3, ex));
  CHECK(v->sizes[0] == 5 && v->sizes[1] == 3 && v->strides[1] == 0 && at(v, 13) == 1);
  mt_tensor_release(v);
  int64_t ex_bad[2] = {2, 3};
  FAILS(mt_expand(&v, row, 2, ex_bad), MT_ESHAPE, "must match");
  mt_tensor_release(row);

  mt_tensor_release(a);
}

static void test_copies(void) {
  int64_t sz[2] = {3, 4};
  mt_tensor *a = arange_f32(2, sz), *t, *c;
  OK(mt_transpose(&t, a, 0, 1));
  /* every dtype pair round-trips small integers through a transposed source */
  for (int d = 0; d < MT_NUM_DTYPES; d++) {
    OK(mt_to_dtype(&c, t, (mt_dtype)d));
    CHECK(c->dtype == (mt_dtype)d && (d == MT_FLOAT32 ? c == t : mt_is_contiguous(c)));
    double want = d == MT_BOOL ? 1 : 4; /* c[1][0] = a[0][1] = 1; c[0][1] = a[1][0] = 4 */
    CHECK(at(c, 1) == want);
    for (int e = 0; e < MT_NUM_DTYPES; e++) {
      mt_tensor *back;
      OK(mt_to_dtype(&back, c, (mt_dtype)e));
      CHECK(at(back, 1) == (e == MT_BOOL ? 1 : want));
      mt_tensor_release(back);
    }
    mt_tensor_release(c);
  }
  /* conversion edge cases: NaN and out-of-range floats are defined */
  mt_tensor *f, *i;
  int64_t three[1] = {3};
  OK(mt_empty(&f, MT_FLOAT64, 1, three));
  OK(mt_set_flat(f, 0, mt_scalar_float(NAN)));
  OK(mt_set_flat(f, 1, mt_scalar_float(1e30)));
  OK(mt_set_flat(f, 2, mt_scalar_float(-3.7)));
  OK(mt_to_dtype(&i, f, MT_INT64));
  CHECK(at(i, 0) == 0 && at(i, 1) == (double)INT64_MAX && at(i, 2) == -3);
  mt_tensor_release(i);
  OK(mt_to_dtype(&i, f, MT_BOOL));
  CHECK(at(i, 0) == 1 && at(i, 2) == 1);
  mt_tensor_release(i);
  mt_tensor_release(f);

  /* copy_ broadcasts and converts; overlapping copies read before they write */
  mt_tensor *row;
  OK(mt_select(&row, a, 0, 2)); /* 8 9 10 11 */
  mt_tensor *dst;
  OK(mt_zeros(&dst, MT_INT32, 2, sz));
  OK(mt_copy_(dst, row));
  CHECK(at(dst, 0) == 8 && at(dst, 11) == 11);
  int64_t bad[1] = {3};
  mt_tensor *wrong;
  OK(mt_zeros(&wrong, MT_FLOAT32, 1, bad));
  FAILS(mt_copy_(dst, wrong), MT_ESHAPE, "cannot be broadcast");
  mt_tensor_release(wrong);
  mt_tensor_release(dst);
  mt_tensor_release(row);

  mt_tensor *lo, *hi;
  OK(mt_narrow(&lo, a, 1, 0, 3));
  OK(mt_narrow(&hi, a, 1, 1, 3));
  OK(mt_copy_(lo, hi)); /* shift each row left by one, in place */
  CHECK(at(a, 0) == 1 && at(a, 1) == 2 && at(a, 2) == 3 && at(a, 3) == 3);
  mt_tensor_release(lo);
  mt_tensor_release(hi);

  OK(mt_fill_(t, mt_scalar_float(-1.5))); /* fill through a transposed view */
  CHECK(at(a, 7) == -1.5);
  mt_tensor_release(t);
  mt_tensor_release(a);
}

static int released;
static void on_release(void *ctx, void *data, size_t n) {
  (void)data, (void)n;
  released += *(int *)ctx;
}

static void test_storage(void) {
  static float buf[6] = {1, 2, 3, 4, 5, 6};
  int one = 1;
  mt_storage *s;
  OK(mt_storage_wrap(&s, buf, sizeof buf, on_release, &one));
  mt_tensor *t;
  int64_t sz[2] = {2, 3}, st[2] = {3, 1}, big[2] = {3, 3};
  OK(mt_from_storage(&t, s, MT_FLOAT32, 0, 2, sz, st));
  FAILS(mt_from_storage(&t, s, MT_FLOAT32, 1, 2, sz, st), MT_EINDEX, "storage holds");
  FAILS(mt_from_storage(&t, s, MT_FLOAT32, 0, 2, big, st), MT_EINDEX, "storage holds");
  mt_storage_release(s);
  CHECK(released == 0);
  CHECK(at(t, 4) == 5);
  mt_tensor_release(t);
  CHECK(released == 1);

  OK(mt_storage_new(&s, 100));
  CHECK(((uintptr_t)mt_storage_data(s) % 64) == 0);
  mt_storage_release(s);
}

int main(void) {
  test_half_conversions();
  test_promotion();
  test_creation();
  test_views();
  test_copies();
  test_storage();
  return mt_test_finish("test_tensor");
}
