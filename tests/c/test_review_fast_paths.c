/* test_review_fast_paths.c — an independent review of the fast paths landed together (block
 * cache, MaxPool2d(2) window codes, fused dropout, conv2d planes, gradient reuse, spinning
 * pool), with inputs their own tests do not pick:
 *  - conv2d/conv1d's AVX2 planes against the im2col + gemm path and float64 over random "same"
 *    shapes (even kernels, dilation, row padding above and below the kernel's, widths 1..21);
 *  - MaxPool2d(2)'s window codes against the indices path, bit for bit, over random shapes and
 *    layouts (3-D and 4-D, strided inputs, every H and W parity), on 1 and 2 threads;
 *  - dropout's own node is wired as the composite's MulBackward0 (input, mask: two edges);
 *  - the pool: several host threads running loops (and nested loops) at once, and many short
 *    loops back to back, every index visited exactly once;
 *  - the block cache: blocks up to 32 MB freed and taken again in every order come back zeroed
 *    when asked, and the live-byte count returns to where it was. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "gradcheck.h"
#include "mt_internal.h"

extern int mt_conv_generic_only; /* src/conv_planes.c */
extern int mt_pool_baseline_only; /* src/nn_pool.c */

static uint64_t rs = 0x1234567;
static int64_t rnd(int64_t lo, int64_t hi) { /* inclusive */
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return lo + (int64_t)(rs % (uint64_t)(hi - lo + 1));
}

static bool bits_equal(const mt_tensor *a, const mt_tensor *b) {
  if (!a || !b || mt_numel(a) != mt_numel(b) || a->dtype != b->dtype) return false;
  mt_tensor *ca = NULL, *cb = NULL;
  bool same = !mt_contiguous(&ca, a) && !mt_contiguous(&cb, b) &&
              !memcmp(mt_data(ca), mt_data(cb), (size_t)mt_numel(a) * mt_dtype_size(a->dtype));
  mt_tensor_release(ca), mt_tensor_release(cb);
  return same;
}

/* ---- conv ------------------------------------------------------------------------------------ */

typedef struct conv_out {
  mt_tensor *y, *gx, *gw, *gb;
} conv_out;

static void conv_out_release(conv_out *r) {
  mt_tensor_release(r->y), mt_tensor_release(r->gx), mt_tensor_release(r->gw), mt_tensor_release(r->gb);
}

/* A conv (1-d when oned) of the float64 data x64, w64, b64, g64 in dtype dt, with its grads. */
static conv_out conv_run_case(bool oned, mt_tensor *x64, mt_tensor *w64, mt_tensor *b64, mt_tensor *g64, mt_dtype dt,
                              const int64_t pad[2], const int64_t dil[2], bool generic) {
  conv_out r = {0};
  mt_tensor *x = NULL, *w = NULL, *b = NULL, *g = NULL;
  OK(mt_to_dtype(&x, x64, dt));
  OK(mt_to_dtype(&w, w64, dt));
  OK(mt_to_dtype(&b, b64, dt));
  OK(mt_to_dtype(&g, g64, dt));
  if (!x || !w || !b || !g) goto done;
  OK(mt_requires_grad_(x, true));
  OK(mt_requires_grad_(w, true));
  OK(mt_requires_grad_(b, true));
  mt_conv_generic_only = generic;
  if (oned) OK(mt_conv1d(&r.y, x, w, b, 1, pad[1], dil[1], 1));
  else OK(mt_conv2d(&r.y, x, w, b, (const int64_t[]){1, 1}, pad, dil, 1));
  if (r.y) OK(mt_backward(r.y, g, false));
  mt_conv_generic_only = 0;
  if ((r.gx = x->grad)) mt_tensor_retain(r.gx);
  if ((r.gw = w->grad)) mt_tensor_retain(r.gw);
  if ((r.gb = b->grad)) mt_tensor_retain(r.gb);
done:
  mt_tensor_release(x), mt_tensor_release(w), mt_tensor_release(b), mt_tensor_release(g);
  return r;
}

static bool close_to(const mt_tensor *a, const mt_tensor *want, double tol) {
  if (!a || !want || mt_numel(a) != mt_numel(want)) return false;
  double scale = 1;
  for (int64_t i = 0; i < mt_numel(want); i++) scale = fmax(scale, 1 + fabs(val(want, i)));
  for (int64_t i = 0; i < mt_numel(a); i++)
    if (!(fabs(val(a, i) - val(want, i)) <= tol * scale)) return false;
  return true;
}

static void test_conv_random(void) {
  int fast_cases = 0, differ = 0;
  for (int it = 0; it < 160; it++) {
    const bool oned = it % 4 == 3;
    const int64_t N = rnd(1, 5), C = rnd(1, 5), Cout = rnd(1, 9);
    const int64_t H = oned ? 1 : rnd(1, 9), W = rnd(1, 21);
    const int64_t kH = oned ? 1 : rnd(1, 4), dh = oned ? 1 : rnd(1, 2);
    int64_t kW = rnd(1, 5), dw = rnd(1, 2);
    if (kW == 1 && kH == 1) kW = 3; /* 1x1 without padding is the direct path */
    if (dw * (kW - 1) % 2) dw = 2;  /* "same" width: 2 pw = dw (kW - 1) */
    const int64_t pw = dw * (kW - 1) / 2, ph = oned ? 0 : rnd(0, (kH - 1) * dh + 2);
    if (H + 2 * ph < dh * (kH - 1) + 1) continue; /* the kernel does not fit */
    const int64_t xs[4] = {N, C, H, W}, ws[4] = {Cout, C, kH, kW}, bs[1] = {Cout};
    const int64_t xs1[3] = {N, C, W}, ws1[3] = {Cout, C, kW};
    const int64_t Ho = H + 2 * ph - dh * (kH - 1), gs[4] = {N, Cout, Ho, W}, gs1[3] = {N, Cout, W};
    mt_tensor *x64 = oned ? gc_tensor(3, xs1, -1, 1, it) : gc_tensor(4, xs, -1, 1, it);
    mt_tensor *w64 = oned ? gc_tensor(3, ws1, -1, 1, it + 1000) : gc_tensor(4, ws, -1, 1, it + 1000);
    mt_tensor *b64 = gc_tensor(1, bs, -1, 1, it + 2000);
    mt_tensor *g64 = oned ? gc_tensor(3, gs1, -1, 1, it + 3000) : gc_tensor(4, gs, -1, 1, it + 3000);
    const int64_t pad[2] = {ph, pw}, dil[2] = {dh, dw};
    conv_out fast = conv_run_case(oned, x64, w64, b64, g64, MT_FLOAT32, pad, dil, false);
    conv_out gemm = conv_run_case(oned, x64, w64, b64, g64, MT_FLOAT32, pad, dil, true);
    conv_out ref = conv_run_case(oned, x64, w64, b64, g64, MT_FLOAT64, pad, dil, false);
    const double tol = 4e-6 * sqrt((double)(C * kH * kW + Cout * kH * kW + N * Ho * W)); /* terms per sum */
    const bool ok = close_to(fast.y, ref.y, tol) && close_to(fast.gx, ref.gx, tol) && close_to(fast.gw, ref.gw, tol) &&
                    close_to(fast.gb, ref.gb, tol) && close_to(gemm.y, ref.y, tol) && close_to(gemm.gx, ref.gx, tol);
    CHECK(ok);
    if (!ok)
      fprintf(stderr, "conv %s N%lld C%lld H%lld W%lld Cout%lld k%lldx%lld pad %lld,%lld dil %lld,%lld\n",
              oned ? "1d" : "2d", (long long)N, (long long)C, (long long)H, (long long)W, (long long)Cout,
              (long long)kH, (long long)kW, (long long)ph, (long long)pw, (long long)dh, (long long)dw);
    fast_cases++;
    differ += !bits_equal(fast.y, gemm.y) || !bits_equal(fast.gw, gemm.gw);
    conv_out_release(&fast), conv_out_release(&gemm), conv_out_release(&ref);
    mt_tensor_release(x64), mt_tensor_release(w64), mt_tensor_release(b64), mt_tensor_release(g64);
  }
  CHECK(fast_cases > 100);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  /* other sums than gemm's: some last bits differ, which shows the fast path ran */
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) CHECK(differ > 0);
#endif
}

/* ---- max_pool2d(2) ----------------------------------------------------------------------------- */

static void test_pool_random(void) {
  static const int64_t K2[2] = {2, 2};
  const int before = mt_get_num_threads();
  for (int it = 0; it < 240; it++) {
    OK(mt_set_num_threads(1 + it % 2));
    mt_pool_baseline_only = it % 3 == 0;
    const bool three = it % 5 == 0, strided = it % 4 == 1;
    const int64_t N = rnd(1, 3), C = rnd(1, 4), H = rnd(2, 37), W = rnd(2, 41);
    const int64_t s4[4] = {N, C, H, W}, s4t[4] = {N, C, W, H}, s3[3] = {C, H, W};
    mt_tensor *base = three ? gc_tensor(3, s3, -2, 2, it) : gc_tensor(4, strided ? s4t : s4, -2, 2, it), *x = NULL;
    if (!base) continue;
    if (it % 7 == 0) { /* ties and signed zeros: round to halves */
      for (int64_t i = 0; i < mt_numel(base); i++)
        mt_set_flat(base, i, mt_scalar_float(round(val(base, i) * 2) / 2 * (i % 3 ? 1 : -0.0)));
    }
    mt_tensor *x32 = NULL;
    OK(mt_to_dtype(&x32, base, MT_FLOAT32));
    if (strided && !three) OK(mt_transpose(&x, x32, 2, 3));
    else x = x32, x32 = NULL;
    mt_tensor *xa = NULL, *xb = NULL, *ya = NULL, *yb = NULL, *ib = NULL, *g = NULL;
    OK(mt_clone(&xa, x));
    OK(mt_clone(&xb, x));
    if (xa && xb) {
      OK(mt_requires_grad_(xa, true));
      OK(mt_requires_grad_(xb, true));
      OK(mt_max_pool2d(&ya, NULL, xa, K2, NULL, NULL, NULL, false));
      OK(mt_max_pool2d(&yb, &ib, xb, K2, NULL, NULL, NULL, false));
      if (ya && yb) {
        CHECK(bits_equal(ya, yb));
        mt_tensor *g64 = gc_tensor(ya->ndim, ya->sizes, -1, 1, it + 77);
        OK(mt_to_dtype(&g, g64, MT_FLOAT32));
        mt_tensor_release(g64);
        OK(mt_backward(ya, g, false));
        OK(mt_backward(yb, g, false));
        const bool ok = xa->grad && xb->grad && bits_equal(xa->grad, xb->grad);
        CHECK(ok);
        if (!ok) fprintf(stderr, "pool %lldx%lldx%lldx%lld (%s)\n", (long long)N, (long long)C, (long long)H, (long long)W,
                         three ? "3-d" : strided ? "strided" : "dense");
      }
    }
    mt_tensor_release(xa), mt_tensor_release(xb), mt_tensor_release(ya), mt_tensor_release(yb);
    mt_tensor_release(ib), mt_tensor_release(g), mt_tensor_release(x), mt_tensor_release(x32), mt_tensor_release(base);
  }
  mt_pool_baseline_only = 0;
  OK(mt_set_num_threads(before));
}

/* ---- dropout's node ---------------------------------------------------------------------------- */

/* PyTorch's dropout is input * mask through MulBackward0: two edges, (input's, None). The one
 * pass keeps that shape, whichever path an input takes (contiguous float32/float64 or not). */
static void test_dropout_node(void) {
  const int64_t s[2] = {6, 5};
  mt_tensor *x64 = gc_tensor(2, s, -1, 1, 5), *x = NULL, *xt = NULL, *leaf = NULL;
  OK(mt_to_dtype(&x, x64, MT_FLOAT32));
  OK(mt_requires_grad_(x, true));
  OK(mt_unary(&leaf, MT_EXP, x)); /* a non-leaf input: its edge leads to ExpBackward0 */
  OK(mt_transpose(&xt, leaf, 0, 1));
  mt_tensor *ins[2] = {leaf, xt};
  for (int k = 0; k < 2; k++) {
    mt_tensor *y = NULL;
    OK(mt_dropout(&y, ins[k], 0.5, true, false, NULL));
    CHECK(y && y->grad_fn && !strcmp(mt_node_name(y->grad_fn), "MulBackward0"));
    if (y && y->grad_fn) {
      CHECK(mt_node_num_next(y->grad_fn) == 2);
      CHECK(mt_node_next(y->grad_fn, 0) && !strcmp(mt_node_name(mt_node_next(y->grad_fn, 0)),
                                                  k ? "TransposeBackward0" : "ExpBackward0"));
      CHECK(!mt_node_next(y->grad_fn, 1));
      /* and the gradient still reaches the input: mask * g */
      mt_tensor *ones = NULL;
      OK(mt_full(&ones, MT_FLOAT32, 2, y->sizes, mt_scalar_float(1.0)));
      OK(mt_set_grad(x, NULL));
      OK(mt_backward(y, ones, true)); /* exp's node serves both cases */
      CHECK(x->grad != NULL);
      mt_tensor_release(ones);
    }
    mt_tensor_release(y);
  }
  mt_tensor_release(x64), mt_tensor_release(x), mt_tensor_release(xt), mt_tensor_release(leaf);
}

/* ---- the pool ---------------------------------------------------------------------------------- */

typedef struct hits {
  atomic_int *h;
  atomic_int nested_bad;
} hits;

static void inner_fn(void *p, int64_t b, int64_t e, int chunk, int worker) {
  (void)chunk, (void)worker;
  hits *v = p;
  for (int64_t i = b; i < e; i++) atomic_fetch_add(&v->h[i], 1);
}

typedef struct outer_ctx {
  hits *inner;
  int64_t per;
} outer_ctx;

static void outer_fn(void *p, int64_t b, int64_t e, int chunk, int worker) {
  (void)chunk, (void)worker;
  outer_ctx *o = p;
  for (int64_t i = b; i < e; i++) { /* a nested loop per index: runs inline */
    hits sub = {o->inner->h + i * o->per, 0};
    mt_parallel_for(o->per, 3, inner_fn, &sub);
  }
}

static void *host_thread(void *arg) {
  atomic_int *bad = arg;
  for (int round = 0; round < 300; round++) {
    const int64_t n = 1 + round % 97, per = 1 + round % 5;
    hits h = {calloc((size_t)(n * per), sizeof(atomic_int)), 0};
    outer_ctx o = {&h, per};
    mt_parallel_for(n, 1, outer_fn, &o);
    for (int64_t i = 0; i < n * per; i++)
      if (atomic_load(&h.h[i]) != 1) atomic_fetch_add(bad, 1);
    free(h.h);
  }
  return NULL;
}

static void test_pool_concurrent(void) {
  const int before = mt_get_num_threads();
  OK(mt_set_num_threads(3));
  atomic_int bad = 0;
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, host_thread, &bad);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  CHECK(atomic_load(&bad) == 0);
  /* many short loops back to back: the spinning workers' handshake, one job after another */
  atomic_int h2[8];
  int wrong = 0;
  for (int round = 0; round < 20000; round++) {
    for (int i = 0; i < 8; i++) atomic_init(&h2[i], 0);
    hits h = {h2, 0};
    mt_parallel_for(8, 1, inner_fn, &h);
    for (int i = 0; i < 8; i++) wrong += atomic_load(&h2[i]) != 1;
  }
  CHECK(wrong == 0);
  OK(mt_set_num_threads(before));
}

/* ---- the block cache --------------------------------------------------------------------------- */

static void test_block_cache(void) {
  const uint64_t live0 = mt_storage_bytes_live();
  /* sizes around the cache's bounds (32 KB .. 32 MB, and just over), dirtied, freed in an
   * order that evicts, then asked for zeroed */
  static const int64_t sizes[] = {(8 << 10) - 40, 8 << 10, 9 << 10, 1 << 18, 1 << 20, 3 << 19, (8 << 20) - 64,
                                  (8 << 20) - 64, (8 << 20) - 80, 8 << 20, 2 << 20, 2 << 20, 2 << 20, 2 << 20};
  const int n = (int)(sizeof sizes / sizeof *sizes); /* floats: 32 KB .. 32 MB, and just over */
  for (int round = 0; round < 3; round++) {
    mt_tensor *t[sizeof sizes / sizeof *sizes] = {0};
    for (int i = 0; i < n; i++) OK(mt_full(&t[i], MT_FLOAT32, 1, &sizes[i], mt_scalar_float(7.0)));
    for (int i = 0; i < n; i++) mt_tensor_release(t[(i * 5 + round) % n]); /* 5 and n coprime: each once */
    for (int i = n - 1; i >= 0; i--) {
      OK(mt_zeros(&t[i], MT_FLOAT32, 1, &sizes[i]));
      bool zero = t[i] != NULL;
      const float *d = t[i] ? mt_data(t[i]) : NULL;
      for (int64_t k = 0; zero && k < sizes[i]; k += 997) zero = d[k] == 0;
      if (zero) zero = d[sizes[i] - 1] == 0;
      CHECK(zero);
    }
    for (int i = 0; i < n; i++) mt_tensor_release(t[i]);
  }
  CHECK(mt_storage_bytes_live() == live0);
}

int main(void) {
  (void)gradcheck;
  test_conv_random();
  test_pool_random();
  test_dropout_node();
  test_pool_concurrent();
  test_block_cache();
  return mt_test_finish("test_review_fast_paths");
}
