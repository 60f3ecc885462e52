/* test_random.c — the seeded generator: values PyTorch 1.13 produced for the same seeds (its
 * CPU generator, AVX2 kernels), state save/restore mid-stream, layouts, dtypes, errors. */
#include "mt_test.h"

#include <stdlib.h>

static mt_tensor *new_tensor(mt_dtype dt, int ndim, const int64_t *sizes) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) abort();
  return t;
}
static mt_tensor *vec(mt_dtype dt, int64_t n) { return new_tensor(dt, 1, &n); }

static double at(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  if (mt_get_flat(t, i, &s)) abort();
  return mt_scalar_to_f64(s);
}

/* FNV-1a over the bytes of a contiguous tensor or a state: one constant checks many values. */
static uint64_t fnv(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}
static uint64_t tensor_fnv(const mt_tensor *t) { return fnv(mt_data(t), (size_t)mt_numel(t) * mt_dtype_info(t->dtype)->size); }
static uint64_t state_fnv(mt_generator *g) {
  uint8_t buf[5056];
  mt_generator_get_state(g, buf);
  return fnv(buf, sizeof buf);
}

static bool same_bits(const mt_tensor *a, const mt_tensor *b) {
  mt_tensor *ca, *cb;
  if (mt_contiguous(&ca, a) || mt_contiguous(&cb, b)) abort();
  bool same = a->dtype == b->dtype && mt_numel(a) == mt_numel(b) &&
              memcmp(mt_data(ca), mt_data(cb), (size_t)mt_numel(a) * mt_dtype_info(a->dtype)->size) == 0;
  mt_tensor_release(ca);
  mt_tensor_release(cb);
  return same;
}

/* ---- PyTorch's numbers ------------------------------------------------------------------- */

static void test_default_generator(void) {
  /* Runs first: the process-wide generator starts from PyTorch's default seed. */
  CHECK(mt_initial_seed(NULL) == 67280421310721ull);
  CHECK(mt_default_generator() == mt_default_generator());
  mt_tensor *t = vec(MT_FLOAT32, 2);
  OK(mt_uniform_(t, 0, 1, NULL));
  CHECK(((float *)mt_data(t))[0] == 0x1.11b5d8p-2f && ((float *)mt_data(t))[1] == 0x1.bebc08p-1f);
  mt_manual_seed(NULL, 0);
  CHECK(mt_initial_seed(mt_default_generator()) == 0);
  mt_generator_free(mt_default_generator()); /* a no-op, not a crash */
  mt_generator_free(NULL);
  mt_tensor_release(t);
}

static void check_f32(const mt_tensor *t, const int64_t *idx, const float *want, int n) {
  for (int i = 0; i < n; i++) CHECK(((const float *)mt_data(t))[idx ? idx[i] : i] == want[i]);
}
static void check_f64(const mt_tensor *t, const int64_t *idx, const double *want, int n) {
  for (int i = 0; i < n; i++) CHECK(((const double *)mt_data(t))[idx ? idx[i] : i] == want[i]);
}

static void test_matches_pytorch(void) {
  mt_generator *g;
  OK(mt_generator_new(&g, 0));
  CHECK(mt_initial_seed(g) == 0);

  /* torch.manual_seed(0); torch.rand(4); torch.rand(3, dtype=torch.float64) */
  mt_tensor *a = vec(MT_FLOAT32, 4), *b = vec(MT_FLOAT64, 3);
  OK(mt_uniform_(a, 0, 1, g));
  OK(mt_uniform_(b, 0, 1, g));
  check_f32(a, NULL, (const float[]){0x1.fc2ab0p-2f, 0x1.89545ep-1f, 0x1.6a6750p-4f, 0x1.0e6600p-3f}, 4);
  check_f64(b, NULL, (const double[]){0x1.d6687b744a5f6p-2, 0x1.d76c3d8e57d67p-1, 0x1.4a4099fa1ded3p-1}, 3);
  mt_tensor_release(a);
  mt_tensor_release(b);

  /* torch.manual_seed(42); torch.randn(3) (float64 Box–Muller, cached pair); torch.randn(20)
   * (blocks of 16 with avx_mathfun's log/sincos, the ragged tail redrawn) */
  mt_manual_seed(g, 42);
  a = vec(MT_FLOAT32, 3);
  b = vec(MT_FLOAT32, 20);
  OK(mt_normal_(a, 0, 1, g));
  OK(mt_normal_(b, 0, 1, g));
  check_f32(a, NULL, (const float[]){0x1.58c55cp-2f, 0x1.07cd3ap-3f, 0x1.e02dcep-3f}, 3);
  check_f32(b, (const int64_t[]){0, 7, 15, 19}, (const float[]){0x1.c9ac90p+0f, -0x1.bc041ep-3f, 0x1.52d70ap-2f, -0x1.33c8e4p-1f}, 4);
  mt_tensor_release(a);
  mt_tensor_release(b);

  /* torch.manual_seed(42); torch.randn(17, dtype=torch.float64); .normal_(10, 0.5) on 3 */
  mt_manual_seed(g, 42);
  a = vec(MT_FLOAT64, 17);
  b = vec(MT_FLOAT64, 3);
  OK(mt_normal_(a, 0, 1, g));
  OK(mt_normal_(b, 10, 0.5, g));
  check_f64(a, (const int64_t[]){0, 8, 16}, (const double[]){0x1.32bee22ccb503p-2, 0x1.3adc896b5cc6ap-5, 0x1.fecba7d412db7p-3}, 3);
  check_f64(b, NULL, (const double[]){0x1.36e6c7bbed44fp+3, 0x1.5420cbde57409p+3, 0x1.26939a3961e68p+3}, 3);
  mt_tensor_release(a);
  mt_tensor_release(b);

  /* torch.manual_seed(7); uniform_(-2, 3); randint(-5, 5, (8,)); randint(0, 2**40, (2,));
   * randperm(10); torch.empty(10).bernoulli_(0.3) */
  mt_manual_seed(g, 7);
  a = vec(MT_FLOAT32, 5);
  OK(mt_uniform_(a, -2, 3, g));
  check_f32(a, NULL, (const float[]){0x1.5966d6p-1f, -0x1.01882cp+0f, 0x1.4bca7cp+0f, 0x1.48d1cep+0f, -0x1.ac2162p-1f}, 5);
  mt_tensor_release(a);
  static const int64_t want_int[] = {2, 2, 4, 3, -4, 3, -4, 3}, want_wide[] = {382561546606, 181541563098},
                       want_perm[] = {2, 4, 8, 5, 0, 3, 9, 1, 7, 6}, want_bern[] = {1, 1, 0, 1, 0, 1, 0, 0, 0, 0};
  a = vec(MT_INT64, 8);
  OK(mt_randint_(a, -5, 5, g));
  for (int i = 0; i < 8; i++) CHECK(((int64_t *)mt_data(a))[i] == want_int[i]);
  mt_tensor_release(a);
  a = vec(MT_INT64, 2); /* a range >= 2^32 takes 64 bits per draw */
  OK(mt_randint_(a, 0, INT64_C(1) << 40, g));
  for (int i = 0; i < 2; i++) CHECK(((int64_t *)mt_data(a))[i] == want_wide[i]);
  mt_tensor_release(a);
  OK(mt_randperm(&a, 10, MT_INT64, g));
  CHECK(a->ndim == 1 && a->sizes[0] == 10 && a->dtype == MT_INT64);
  for (int i = 0; i < 10; i++) CHECK(((int64_t *)mt_data(a))[i] == want_perm[i]);
  mt_tensor_release(a);
  a = vec(MT_FLOAT32, 10);
  OK(mt_bernoulli_(a, 0.3, g));
  for (int i = 0; i < 10; i++) CHECK(((float *)mt_data(a))[i] == (float)want_bern[i]);
  mt_tensor_release(a);

  /* 16-bit dtypes: torch.manual_seed(7); torch.randn(16, dtype=torch.float16);
   * torch.empty(4, dtype=torch.bfloat16).uniform_(-1, 1) */
  mt_manual_seed(g, 7);
  a = vec(MT_FLOAT16, 16);
  b = vec(MT_BFLOAT16, 4);
  OK(mt_normal_(a, 0, 1, g));
  OK(mt_uniform_(b, -1, 1, g));
  static const uint16_t want_h[] = {0xb280, 0xbc8a, 0xb445, 0xaacb}, want_bf[] = {0x3f34, 0x3d80, 0x3e9c, 0x3f4c};
  for (int i = 0; i < 4; i++) CHECK(((uint16_t *)mt_data(a))[i] == want_h[i]);
  for (int i = 0; i < 4; i++) CHECK(((uint16_t *)mt_data(b))[i] == want_bf[i]);
  mt_tensor_release(a);
  mt_tensor_release(b);

  /* Whole tensors, by hash of their bytes: torch.manual_seed(123) then, in this order,
   * randn(1000), randn(1000, float64), rand(1000), randn(7), randint(-1000, 1000, (1000,),
   * int32), randperm(1000), randn(100, float16), randn(100, bfloat16); then get_rng_state(). */
  mt_manual_seed(g, 123);
  static const struct { int kind; mt_dtype dt; int64_t n; uint64_t hash; } runs[] = {
      {0, MT_FLOAT32, 1000, 0xebf2a614086e1e89ull}, {0, MT_FLOAT64, 1000, 0x061f7aaa325d69cdull},
      {1, MT_FLOAT32, 1000, 0x55a9ffc9a35b66feull}, {0, MT_FLOAT32, 7, 0x03ebdd10c958ee4full},
      {2, MT_INT32, 1000, 0x313b97bb7ab4d711ull},   {3, MT_INT64, 1000, 0x99a0c4539a3653bbull},
      {0, MT_FLOAT16, 100, 0x1a31716c22339bc4ull},  {0, MT_BFLOAT16, 100, 0xcf8f1743ea55e12full},
  };
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    mt_tensor *t = NULL;
    if (runs[i].kind == 3) {
      OK(mt_randperm(&t, runs[i].n, runs[i].dt, g));
    } else {
      t = vec(runs[i].dt, runs[i].n);
      if (runs[i].kind == 0) OK(mt_normal_(t, 0, 1, g));
      if (runs[i].kind == 1) OK(mt_uniform_(t, 0, 1, g));
      if (runs[i].kind == 2) OK(mt_randint_(t, -1000, 1000, g));
    }
    if (t) CHECK(tensor_fnv(t) == runs[i].hash);
    mt_tensor_release(t);
  }
  CHECK(state_fnv(g) == 0x32c9b61b30618b0eull); /* the bytes of torch.get_rng_state() */

  /* Rounding differences between polynomial evaluation orders show up about once in 6000
   * values: torch.manual_seed(2024); torch.randn(200000); torch.empty(200000).uniform_(-3, .5) */
  mt_manual_seed(g, 2024);
  a = vec(MT_FLOAT32, 200000);
  OK(mt_normal_(a, 0, 1, g));
  CHECK(tensor_fnv(a) == 0x3ef4c6ca03ce0db0ull);
  OK(mt_uniform_(a, -3, 0.5, g));
  CHECK(tensor_fnv(a) == 0x872ddd1e8b1e9a25ull);
  mt_tensor_release(a);

  /* torch.manual_seed(5); torch.randn(1, dtype=torch.float64): the cached normal is saved */
  mt_manual_seed(g, 5);
  a = vec(MT_FLOAT64, 1);
  OK(mt_normal_(a, 0, 1, g));
  uint8_t st[5056];
  mt_generator_get_state(g, st);
  CHECK(fnv(st, sizeof st) == 0xeadad412a6b255e9ull);
  CHECK(st[5040] == 1);
  mt_tensor_release(a);
  mt_generator_free(g);
}

/* ---- determinism and state --------------------------------------------------------------- */

/* Draws a mix of everything into one float64 tensor of 69 values. */
static mt_tensor *draw_mix(mt_generator *g) {
  mt_tensor *out = vec(MT_FLOAT64, 69), *a = vec(MT_FLOAT32, 5), *b = vec(MT_FLOAT64, 20), *u = vec(MT_FLOAT32, 5),
            *c = vec(MT_INT64, 9), *p;
  OK(mt_normal_(a, 1, 2, g)); /* odd: leaves a cached normal behind */
  OK(mt_normal_(b, 0, 1, g));
  OK(mt_uniform_(u, -1, 1, g));
  OK(mt_randint_(c, -3, 1000, g));
  OK(mt_randperm(&p, 30, MT_INT32, g));
  double *o = mt_data(out);
  int k = 0;
  for (int i = 0; i < 5; i++) o[k++] = at(a, i);
  for (int i = 0; i < 20; i++) o[k++] = at(b, i);
  for (int i = 0; i < 5; i++) o[k++] = at(u, i);
  for (int i = 0; i < 9; i++) o[k++] = at(c, i);
  for (int i = 0; i < 30; i++) o[k++] = at(p, i);
  mt_tensor_release(a);
  mt_tensor_release(b);
  mt_tensor_release(u);
  mt_tensor_release(c);
  mt_tensor_release(p);
  return out;
}

static void test_state_round_trip(void) {
  mt_generator *g, *h;
  OK(mt_generator_new(&g, 2024));
  OK(mt_generator_new(&h, 99));
  CHECK(mt_generator_state_size() == 5056);

  /* Same seed, same numbers. */
  mt_manual_seed(h, 2024);
  mt_tensor *x = draw_mix(g), *y = draw_mix(h);
  CHECK(same_bits(x, y));
  mt_tensor_release(x);
  mt_tensor_release(y);

  /* Mid-stream, with a cached Box–Muller value pending: save, draw, restore, draw again. */
  mt_tensor *one = vec(MT_FLOAT64, 2); /* uses the pending value, leaves a new one */
  OK(mt_normal_(one, 0, 1, g));
  uint8_t *st = malloc(mt_generator_state_size());
  mt_generator_get_state(g, st);
  CHECK(st[5040] == 1); /* a cached normal is part of the state */
  mt_tensor *first = draw_mix(g);
  OK(mt_generator_set_state(g, st, mt_generator_state_size()));
  mt_tensor *again = draw_mix(g);
  CHECK(same_bits(first, again));
  /* Another generator given the state continues the same way, seed included. */
  OK(mt_generator_set_state(h, st, mt_generator_state_size()));
  CHECK(mt_initial_seed(h) == 2024);
  mt_tensor *other = draw_mix(h);
  CHECK(same_bits(first, other));
  /* The cached value is what comes first after restoring: draw_mix began with normal(1, 2). */
  OK(mt_generator_set_state(h, st, mt_generator_state_size()));
  mt_tensor *n1 = vec(MT_FLOAT64, 1);
  OK(mt_normal_(n1, 0, 1, h));
  CHECK((float)(at(n1, 0) * 2 + 1) == (float)at(first, 0));
  uint8_t st2[5056];
  mt_generator_get_state(h, st2);
  CHECK(st2[5040] == 0); /* the pair is used up */
  /* Reseeding clears the cache. */
  mt_manual_seed(h, 2024);
  mt_generator_get_state(h, st2);
  CHECK(st2[5040] == 0 && st2[8] == 1 && st2[16] == 0); /* left 1, next 0: a fresh engine */

  /* Invalid states: nothing changes, MT_EARG with the reason. */
  uint64_t before = state_fnv(h);
  uint8_t bad[5056];
  FAILS(mt_generator_set_state(h, st, 5055), MT_EARG, "5056 bytes, got 5055");
  FAILS(mt_generator_set_state(h, NULL, 5056), MT_EARG, "5056 bytes");
  memcpy(bad, st, sizeof bad);
  bad[8] = 0, bad[9] = bad[10] = bad[11] = 0; /* left = 0 */
  FAILS(mt_generator_set_state(h, bad, sizeof bad), MT_EARG, "impossible");
  memcpy(bad, st, sizeof bad);
  bad[16] = 0x70, bad[17] = 0x02; /* next = 624 + 256 */
  FAILS(mt_generator_set_state(h, bad, sizeof bad), MT_EARG, "impossible");
  memcpy(bad, st, sizeof bad);
  bad[24 + 8 * 5 + 4] = 1; /* a state word above 32 bits */
  FAILS(mt_generator_set_state(h, bad, sizeof bad), MT_EARG, "word 5 does not fit");
  memcpy(bad, st, sizeof bad);
  memset(bad + 24, 0, 8 * 624);
  FAILS(mt_generator_set_state(h, bad, sizeof bad), MT_EARG, "all zeros");
  memcpy(bad, st, sizeof bad);
  bad[5040] = 2;
  FAILS(mt_generator_set_state(h, bad, sizeof bad), MT_EARG, "flag");
  memcpy(bad, st, sizeof bad);
  memset(bad + 5024, 0xff, 8); /* cached normal = NaN */
  FAILS(mt_generator_set_state(h, bad, sizeof bad), MT_EARG, "not finite");
  CHECK(state_fnv(h) == before);

  free(st);
  mt_tensor_release(one);
  mt_tensor_release(first);
  mt_tensor_release(again);
  mt_tensor_release(other);
  mt_tensor_release(n1);
  mt_generator_free(g);
  mt_generator_free(h);
}

/* ---- layouts ------------------------------------------------------------------------------ */

/* A [rows, cols] view whose memory is transposed ([cols, rows] underneath). */
static mt_tensor *transposed(mt_dtype dt, int64_t rows, int64_t cols) {
  mt_tensor *base = new_tensor(dt, 2, (const int64_t[]){cols, rows}), *t;
  if (mt_transpose(&t, base, 0, 1)) abort();
  mt_tensor_release(base);
  return t;
}

static void test_layouts(void) {
  mt_generator *g;
  OK(mt_generator_new(&g, 11));
  /* Values go in logical order whatever the layout: a transposed fill equals a contiguous one. */
  static const struct { int kind; mt_dtype dt; int64_t rows, cols; } rows[] = {
      {0, MT_FLOAT32, 3, 5}, {0, MT_FLOAT64, 4, 9}, {1, MT_FLOAT32, 3, 4}, {1, MT_FLOAT16, 2, 7},
      {2, MT_INT32, 6, 6},   {2, MT_UINT8, 5, 3},   {3, MT_BOOL, 4, 4},    {3, MT_FLOAT64, 3, 3},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    mt_tensor *c = new_tensor(rows[i].dt, 2, (const int64_t[]){rows[i].rows, rows[i].cols});
    mt_tensor *t = transposed(rows[i].dt, rows[i].rows, rows[i].cols);
    CHECK(!mt_is_contiguous(t));
    for (int pass = 0; pass < 2; pass++) {
      mt_tensor *x = pass ? t : c;
      mt_manual_seed(g, 100 + i);
      switch (rows[i].kind) {
      case 0: OK(mt_uniform_(x, -1, 4, g)); break;
      case 1: OK(mt_normal_(x, 0.5, 2, g)); break; /* < 16 elements: the scalar path both times */
      case 2: OK(mt_randint_(x, 0, 200, g)); break;
      default: OK(mt_bernoulli_(x, 0.4, g)); break;
      }
    }
    CHECK(same_bits(c, t));
    mt_tensor_release(c);
    mt_tensor_release(t);
  }

  /* A non-contiguous tensor of >= 16 elements takes the scalar normal path (as PyTorch does),
   * so its values continue one scalar stream: equal to two contiguous fills of 10. */
  mt_tensor *t = transposed(MT_FLOAT64, 4, 5), *p = vec(MT_FLOAT64, 10), *q = vec(MT_FLOAT64, 10);
  mt_manual_seed(g, 3);
  OK(mt_normal_(t, 0, 1, g));
  mt_manual_seed(g, 3);
  OK(mt_normal_(p, 0, 1, g));
  OK(mt_normal_(q, 0, 1, g));
  int bad = 0;
  for (int i = 0; i < 10; i++) bad += at(t, i) != at(p, i) || at(t, 10 + i) != at(q, i);
  CHECK(bad == 0);
  mt_tensor_release(t);
  mt_tensor_release(p);
  mt_tensor_release(q);

  /* A narrowed view: only its elements change. */
  mt_tensor *base, *mid;
  OK(mt_full(&base, MT_FLOAT32, 1, (const int64_t[]){10}, mt_scalar_float(-7)));
  OK(mt_narrow(&mid, base, 0, 3, 4));
  OK(mt_uniform_(mid, 0, 1, g));
  for (int i = 0; i < 10; i++) {
    double v = at(base, i);
    CHECK(i >= 3 && i < 7 ? (v >= 0 && v < 1) : v == -7);
  }
  mt_tensor_release(mid);
  mt_tensor_release(base);

  /* Empty and 0-dim tensors. */
  mt_tensor *e = new_tensor(MT_FLOAT32, 2, (const int64_t[]){0, 3}), *z;
  uint64_t before = state_fnv(g);
  OK(mt_normal_(e, 0, 1, g));
  OK(mt_uniform_(e, 0, 1, g));
  OK(mt_randint_(e, 0, 3, g));
  OK(mt_bernoulli_(e, 0.5, g));
  CHECK(state_fnv(g) == before); /* nothing drawn */
  OK(mt_randperm(&z, 0, MT_INT64, g));
  CHECK(z->ndim == 1 && z->sizes[0] == 0);
  mt_tensor_release(z);
  OK(mt_scalar_tensor(&z, MT_FLOAT64, mt_scalar_float(0)));
  OK(mt_uniform_(z, 5, 6, g));
  CHECK(at(z, 0) >= 5 && at(z, 0) < 6);
  mt_tensor_release(z);
  mt_tensor_release(e);

  /* An expanded tensor has several elements in one place: refused. */
  mt_tensor *one = vec(MT_FLOAT32, 1), *wide;
  OK(mt_expand(&wide, one, 1, (const int64_t[]){4}));
  FAILS(mt_uniform_(wide, 0, 1, g), MT_EARG, "single memory location");
  mt_tensor_release(wide);
  mt_tensor_release(one);
  mt_generator_free(g);
}

/* ---- dtypes and distributions ------------------------------------------------------------ */

static void test_dtypes(void) {
  mt_generator *g;
  OK(mt_generator_new(&g, 5));
  static const mt_dtype floats[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16};
  for (size_t i = 0; i < 4; i++) {
    /* 4096 uniforms in [-2, 6): in range, mean ~2; normals: mean ~3, std ~0.5. Both paths. */
    for (int64_t n = 15; n <= 4096; n += 4096 - 15) {
      mt_tensor *t = vec(floats[i], n);
      OK(mt_uniform_(t, -2, 6, g));
      double sum = 0, lo = 1e9, hi = -1e9;
      for (int64_t k = 0; k < n; k++) {
        double v = at(t, k);
        sum += v, lo = v < lo ? v : lo, hi = v > hi ? v : hi;
      }
      CHECK(lo >= -2 && hi <= 6 && (floats[i] == MT_BFLOAT16 || hi < 6)); /* bfloat16 rounds up to 6 */
      if (n > 100) CHECK_NEAR(sum / n, 2, 0.15);
      OK(mt_normal_(t, 3, 0.5, g));
      double s1 = 0, s2 = 0;
      for (int64_t k = 0; k < n; k++) s1 += at(t, k), s2 += at(t, k) * at(t, k);
      double mean = s1 / n, sd = sqrt(s2 / n - mean * mean);
      if (n > 100) {
        CHECK_NEAR(mean, 3, 0.05);
        CHECK_NEAR(sd, 0.5, 0.05);
      }
      mt_tensor_release(t);
    }
  }
  /* normal with std 0 gives the mean; uniform with lo == hi gives lo. */
  mt_tensor *t = vec(MT_FLOAT32, 20);
  OK(mt_normal_(t, 1.5, 0, g));
  CHECK(at(t, 0) == 1.5 && at(t, 19) == 1.5);
  OK(mt_uniform_(t, -4, -4, g));
  CHECK(at(t, 0) == -4 && at(t, 19) == -4);
  mt_tensor_release(t);

  /* randint and bernoulli for every dtype; randperm for all but bool. */
  static const struct { mt_dtype dt; int64_t lo, hi; } ints[] = {
      {MT_FLOAT32, -50, 50}, {MT_FLOAT64, 0, 3}, {MT_FLOAT16, -2048, 2049}, {MT_BFLOAT16, 250, 257},
      {MT_INT64, INT64_MIN, INT64_MAX}, {MT_INT32, -7, 8}, {MT_INT16, -32768, 32768}, {MT_INT8, -128, -120},
      {MT_UINT8, 0, 256}, {MT_BOOL, 0, 2},
  };
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    mt_dtype dt = ints[i].dt;
    t = vec(dt, 2000);
    OK(mt_randint_(t, ints[i].lo, ints[i].hi, g));
    int out_of_range = 0, hit_lo = 0, hit_top = 0;
    for (int k = 0; k < 2000; k++) {
      mt_scalar s;
      OK(mt_get_flat(t, k, &s));
      double v = mt_scalar_to_f64(s);
      out_of_range += v < (double)ints[i].lo || v > (double)ints[i].hi - 1 || v != floor(v);
      hit_lo += v == (double)ints[i].lo;
      hit_top += v == (double)(ints[i].hi - 1);
    }
    CHECK(out_of_range == 0);
    if ((double)ints[i].hi - (double)ints[i].lo < 100) CHECK(hit_lo > 0 && hit_top > 0); /* both ends reached */
    OK(mt_bernoulli_(t, 0.25, g));
    int ones = 0, others = 0;
    for (int k = 0; k < 2000; k++) ones += at(t, k) == 1, others += at(t, k) != 0 && at(t, k) != 1;
    CHECK(others == 0);
    CHECK(ones > 400 && ones < 600);
    OK(mt_bernoulli_(t, 1, g));
    CHECK(at(t, 0) == 1 && at(t, 1999) == 1);
    OK(mt_bernoulli_(t, 0, g));
    CHECK(at(t, 0) == 0 && at(t, 1999) == 0);
    mt_tensor_release(t);
    if (dt == MT_BOOL) continue;
    int64_t n = dt == MT_INT8 ? 128 : dt == MT_UINT8 ? 256 : dt == MT_BFLOAT16 ? 257 : 300;
    OK(mt_randperm(&t, n, dt, g));
    CHECK(t->dtype == dt && t->sizes[0] == n);
    char *seen = calloc((size_t)n, 1);
    int fixed = 0;
    for (int64_t k = 0; k < n; k++) {
      double v = at(t, k);
      if (v >= 0 && v < n && v == floor(v)) seen[(int64_t)v]++;
      fixed += v == (double)k;
    }
    int missing = 0;
    for (int64_t k = 0; k < n; k++) missing += seen[k] != 1;
    CHECK(missing == 0);
    CHECK(fixed < 10); /* shuffled, not the identity */
    free(seen);
    mt_tensor_release(t);
  }
  mt_generator_free(g);
}

/* ---- argument checks --------------------------------------------------------------------- */

static void test_errors(void) {
  mt_generator *g;
  OK(mt_generator_new(&g, 1));
  uint64_t before = state_fnv(g);
  mt_tensor *f = vec(MT_FLOAT32, 4), *h = vec(MT_FLOAT16, 4), *i64 = vec(MT_INT64, 4), *i8 = vec(MT_INT8, 4),
            *u8 = vec(MT_UINT8, 4), *b = vec(MT_BOOL, 4), *bf = vec(MT_BFLOAT16, 4);
  FAILS(mt_uniform_(i64, 0, 1, g), MT_EDTYPE, "floating-point tensor, got int64");
  FAILS(mt_normal_(b, 0, 1, g), MT_EDTYPE, "floating-point tensor, got bool");
  FAILS(mt_uniform_(f, 2, 1, g), MT_EARG, "lower bound 2 is greater than upper bound 1");
  FAILS(mt_uniform_(f, NAN, 1, g), MT_EARG, "not within the finite float32 range");
  FAILS(mt_uniform_(f, 0, INFINITY, g), MT_EARG, "not within the finite");
  FAILS(mt_uniform_(f, 0, 1e39, g), MT_EARG, "not within the finite float32 range");
  FAILS(mt_uniform_(h, -60000, 60000, g), MT_EARG, "wider than the largest float16");
  FAILS(mt_normal_(f, 0, -1, g), MT_EARG, "standard deviation must be >= 0, got -1");
  FAILS(mt_normal_(f, 0, NAN, g), MT_EARG, "standard deviation");
  FAILS(mt_randint_(i64, 5, 5, g), MT_EARG, "low must be less than high, but got low=5 >= high=5");
  FAILS(mt_randint_(i64, 6, 5, g), MT_EARG, "low=6 >= high=5");
  FAILS(mt_randint_(i8, 0, 300, g), MT_EARG, "range [0, 300) does not fit int8");
  FAILS(mt_randint_(u8, -1, 5, g), MT_EARG, "does not fit uint8");
  FAILS(mt_randint_(b, 0, 3, g), MT_EARG, "does not fit bool");
  FAILS(mt_randint_(h, 0, 2050, g), MT_EARG, "does not fit float16");
  FAILS(mt_randint_(bf, -258, 0, g), MT_EARG, "does not fit bfloat16");
  FAILS(mt_bernoulli_(f, -0.1, g), MT_EARG, "probability must be in [0, 1], got -0.1");
  FAILS(mt_bernoulli_(f, 1.5, g), MT_EARG, "got 1.5");
  FAILS(mt_bernoulli_(f, NAN, g), MT_EARG, "probability");
  mt_tensor *r = NULL;
  FAILS(mt_randperm(&r, -1, MT_INT64, g), MT_EARG, "n must be non-negative, got -1");
  FAILS(mt_randperm(&r, 3, MT_BOOL, g), MT_EDTYPE, "got bool");
  FAILS(mt_randperm(&r, 129, MT_INT8, g), MT_EARG, "n=129 is too large for int8 (at most 128)");
  FAILS(mt_randperm(&r, 2050, MT_FLOAT16, g), MT_EARG, "too large for float16");
  CHECK(r == NULL);
  CHECK(state_fnv(g) == before); /* failures draw nothing */
  OK(mt_randint_(b, 0, 2, g));
  OK(mt_randperm(&r, 2049, MT_FLOAT16, g));
  mt_tensor_release(r);
  mt_tensor *list[] = {f, h, i64, i8, u8, b, bf};
  for (size_t k = 0; k < sizeof list / sizeof list[0]; k++) mt_tensor_release(list[k]);
  mt_generator_free(g);
}

int main(void) {
  test_default_generator();
  test_matches_pytorch();
  test_state_round_trip();
  test_layouts();
  test_dtypes();
  test_errors();
  return mt_test_finish("test_random");
}
