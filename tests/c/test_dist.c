/* test_dist.c — torch.distributed's C side. Run plainly (CTest test_dist) it checks the autograd
 * hooks the reducer uses and that every dist function refuses outside mpirun; run as 2 ranks
 * (CTest test_dist_mpirun) it checks all_reduce for every op and dtype, broadcast, barrier and
 * the DDP reducer against one process on the whole batch. */
#include <stdlib.h>
#include <time.h>

#include "mt_test.h"

static double val(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  OK(mt_get_flat(t, i, &s));
  return mt_scalar_to_f64(s);
}

static mt_tensor *from_fn(mt_dtype dt, int ndim, const int64_t *sizes, double (*f)(int64_t, int), int arg) {
  mt_tensor *t = NULL;
  OK(mt_empty(&t, dt, ndim, sizes));
  for (int64_t i = 0; i < mt_numel(t); i++) OK(mt_set_flat(t, i, mt_scalar_float(f(i, arg))));
  return t;
}

/* ---- hooks (no MPI) ------------------------------------------------------------------------ */

typedef struct hook_log {
  int calls;
  double grad_at_call; /* grad[0] when the hook ran */
  bool had_grad;
} hook_log;

static void log_hook(void *ud, mt_tensor *leaf) {
  hook_log *h = ud;
  h->calls++;
  h->had_grad = leaf->grad != NULL;
  h->grad_at_call = leaf->grad ? val(leaf->grad, 0) : 0;
}

static int end_calls;
static mt_status end_seen;
static mt_status end_hook(void *ud, mt_status st) {
  (void)ud;
  end_calls++;
  end_seen = st;
  return st;
}
static mt_status failing_end_hook(void *ud, mt_status st) {
  (void)ud;
  int dim;
  return st ? st : mt_wrap_dim(77, 1, &dim); /* any failure with a message */
}

static double lin(int64_t i, int k) { return 0.25 * (double)(i + 1) + k; }

static void test_hooks(void) {
  int64_t n3[1] = {3};
  mt_tensor *w = from_fn(MT_FLOAT64, 1, n3, lin, 0), *unused = from_fn(MT_FLOAT64, 1, n3, lin, 1);
  OK(mt_requires_grad_(w, true));
  OK(mt_requires_grad_(unused, true));
  hook_log hw = {0}, hu = {0}, hw2 = {0};
  OK(mt_add_post_accumulate_hook(w, log_hook, &hw));
  OK(mt_add_post_accumulate_hook(w, log_hook, &hw2));
  OK(mt_add_post_accumulate_hook(unused, log_hook, &hu));
  OK(mt_add_backward_end_hook(end_hook, NULL));
  mt_tensor *plain;
  OK(mt_zeros(&plain, MT_FLOAT64, 1, n3));
  FAILS(mt_add_post_accumulate_hook(plain, log_hook, &hw), MT_ESTATE, "leaf tensors that require grad");

  /* w used at 4 places, like an RNN's weight at every step: y = sum(((w*w)*w + w)); the hook
   * runs once, after the last contribution: dy/dw0 = 3 w0^2 + 1 */
  mt_tensor *a, *b, *c, *y;
  OK(mt_binary(&a, MT_MUL, w, w));
  OK(mt_binary(&b, MT_MUL, a, w));
  OK(mt_binary(&c, MT_ADD, b, w));
  OK(mt_sum(&y, c, 0, NULL, false));
  OK(mt_backward(y, NULL, false));
  double w0 = val(w, 0);
  CHECK(hw.calls == 1 && hw2.calls == 1 && hu.calls == 0);
  CHECK(hw.had_grad);
  CHECK_NEAR(hw.grad_at_call, 3 * w0 * w0 + 1, 1e-12);
  CHECK(end_calls == 1 && end_seen == MT_OK);

  /* a root that is the leaf itself */
  mt_tensor *one;
  int64_t n1[1] = {1};
  OK(mt_full(&one, MT_FLOAT64, 1, n1, mt_scalar_float(1)));
  mt_tensor *lw = from_fn(MT_FLOAT64, 1, n1, lin, 0);
  hook_log hl = {0};
  OK(mt_requires_grad_(lw, true));
  OK(mt_add_post_accumulate_hook(lw, log_hook, &hl));
  OK(mt_backward(lw, one, false));
  CHECK(hl.calls == 1 && end_calls == 2);
  CHECK(mt_remove_post_accumulate_hook(lw, log_hook, &hl));
  CHECK(!mt_remove_post_accumulate_hook(lw, log_hook, &hl));

  /* a second hook removed: only the first runs; an end hook's failure becomes backward's */
  CHECK(mt_remove_post_accumulate_hook(w, log_hook, &hw2));
  OK(mt_add_backward_end_hook(failing_end_hook, NULL));
  mt_tensor *y2;
  OK(mt_sum(&y2, w, 0, NULL, false));
  FAILS(mt_backward(y2, NULL, false), MT_EINDEX, "dim 77 is out of range");
  CHECK(hw.calls == 2 && hw2.calls == 1 && end_calls == 3);
  CHECK(mt_remove_backward_end_hook(failing_end_hook, NULL));
  CHECK(mt_remove_backward_end_hook(end_hook, NULL));
  CHECK(!mt_remove_backward_end_hook(end_hook, NULL));
  CHECK(mt_remove_post_accumulate_hook(w, log_hook, &hw));
  CHECK(mt_remove_post_accumulate_hook(unused, log_hook, &hu));
  mt_tensor *y3;
  OK(mt_sum(&y3, w, 0, NULL, false));
  OK(mt_backward(y3, NULL, false));
  CHECK(hw.calls == 2 && end_calls == 3);

  mt_tensor *all[] = {w, unused, plain, a, b, c, y, one, lw, y2, y3};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_tensor_release(all[i]);
}

/* ---- outside mpirun ------------------------------------------------------------------------- */

static void test_refusals(void) {
  int r;
  int64_t n3[1] = {3};
  mt_tensor *t, *p;
  OK(mt_zeros(&t, MT_FLOAT32, 1, n3));
  OK(mt_zeros(&p, MT_FLOAT32, 1, n3));
  OK(mt_requires_grad_(p, true));
  const char *why = mt_dist_available() ? "not initialized; call init_process_group first" : "no MPI support";
  CHECK(!mt_dist_is_initialized());
  FAILS(mt_dist_rank(&r), MT_ESTATE, why);
  FAILS(mt_dist_world_size(&r), MT_ESTATE, why);
  FAILS(mt_dist_all_reduce(t, MT_REDUCE_SUM), MT_ESTATE, why);
  FAILS(mt_dist_broadcast(t, 0), MT_ESTATE, why);
  FAILS(mt_dist_barrier(), MT_ESTATE, why);
  mt_ddp *d = NULL;
  FAILS(mt_ddp_new(&p, 1, 0, &d), MT_ESTATE, why);
  FAILS(mt_dist_init(), MT_ESTATE, mt_dist_available() ? "not started by mpirun" : "no MPI support");
  CHECK(!mt_dist_is_initialized());
  OK(mt_dist_finalize()); /* nothing to finalize */
  mt_tensor_release(t);
  mt_tensor_release(p);
}

/* ---- collectives (2 ranks) --------------------------------------------------------------- */

static int rank, world;

static double rank_val(int64_t i, int r) { return (double)((i % 5) + 3 * r + 1); }

static void test_all_reduce(void) {
  static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16, MT_INT64,
                                 MT_INT32,   MT_INT16,   MT_INT8,    MT_UINT8};
  static const mt_reduce_op ops[] = {MT_REDUCE_SUM, MT_REDUCE_AVG, MT_REDUCE_MAX, MT_REDUCE_MIN};
  int64_t sz[2] = {3, 4};
  for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++)
    for (size_t oi = 0; oi < 4; oi++) {
      mt_dtype dt = dts[di];
      mt_reduce_op op = ops[oi];
      mt_tensor *t = from_fn(dt, 2, sz, rank_val, rank);
      if (op == MT_REDUCE_AVG && !mt_dtype_info(dt)->is_float) {
        FAILS(mt_dist_all_reduce(t, op), MT_EDTYPE, "floating point");
        mt_tensor_release(t);
        continue;
      }
      /* every other call goes through a transposed (non-contiguous) view */
      mt_tensor *target = t;
      if ((di + oi) % 2) OK(mt_t(&target, t));
      OK(mt_dist_all_reduce(target, op));
      if (target != t) mt_tensor_release(target);
      int bad = 0;
      for (int64_t i = 0; i < 12; i++) {
        double sum = 0, mx = -1e300, mn = 1e300;
        for (int r = 0; r < world; r++) {
          double v = rank_val(i, r);
          sum += v, mx = v > mx ? v : mx, mn = v < mn ? v : mn;
        }
        double want = op == MT_REDUCE_SUM ? sum : op == MT_REDUCE_AVG ? sum / world : op == MT_REDUCE_MAX ? mx : mn;
        if (val(t, i) != want) bad++;
      }
      CHECK(bad == 0);
      if (bad) fprintf(stderr, "  all_reduce %s op %d: %d wrong\n", mt_dtype_info(dt)->name, (int)op, bad);
      mt_tensor_release(t);
    }
  mt_tensor *b;
  OK(mt_zeros(&b, MT_BOOL, 1, sz));
  FAILS(mt_dist_all_reduce(b, MT_REDUCE_SUM), MT_EDTYPE, "bool");
  mt_tensor_release(b);

  /* large enough for Open MPI's pipelined algorithms */
  int64_t big = 1 << 20;
  mt_tensor *f;
  OK(mt_full(&f, MT_FLOAT32, 1, &big, mt_scalar_float(rank + 1)));
  OK(mt_dist_all_reduce(f, MT_REDUCE_SUM));
  CHECK(val(f, 0) == world * (world + 1) / 2 && val(f, big - 1) == world * (world + 1) / 2);
  mt_tensor_release(f);
}

static void test_broadcast_barrier(void) {
  int64_t sz[2] = {4, 5};
  for (int src = 0; src < world; src++) {
    mt_tensor *t = from_fn(MT_INT32, 2, sz, rank_val, rank), *v;
    OK(mt_t(&v, t));
    OK(mt_dist_broadcast(v, src));
    int bad = 0;
    for (int64_t i = 0; i < 20; i++) bad += val(t, i) != rank_val(i, src);
    CHECK(bad == 0);
    mt_tensor_release(v);
    mt_tensor_release(t);
  }
  mt_tensor *t = from_fn(MT_FLOAT64, 2, sz, rank_val, rank);
  FAILS(mt_dist_broadcast(t, world), MT_EINDEX, "out of range");
  FAILS(mt_dist_broadcast(t, -1), MT_EINDEX, "out of range");
  mt_tensor_release(t);
  OK(mt_dist_barrier());
  OK(mt_dist_init()); /* idempotent */
}

/* ---- the reducer --------------------------------------------------------------------------- */

enum { N = 5, D = 4, P = 4 }; /* rows per rank, features, parameters (the last unused) */

static double xval(int64_t i, int r) { return sin(1.0 + 0.7 * (double)i + 1.9 * r); } /* row-major, rank r's rows */
static double pval(int64_t i, int k) { return 0.3 * cos(0.5 * (double)i + k); }

/* W [D, D], b [D], V [2, D], U [3] (unused). */
static void make_params(mt_tensor **ps) {
  int64_t sw[2] = {D, D}, sb[1] = {D}, sv[2] = {2, D}, su[1] = {3};
  ps[0] = from_fn(MT_FLOAT64, 2, sw, pval, 0);
  ps[1] = from_fn(MT_FLOAT64, 1, sb, pval, 1);
  ps[2] = from_fn(MT_FLOAT64, 2, sv, pval, 2);
  ps[3] = from_fn(MT_FLOAT64, 1, su, pval, 3);
  for (int i = 0; i < P; i++) OK(mt_requires_grad_(ps[i], true));
}

/* loss = mean((tanh(tanh(x W^T + b) W^T + b) V^T)^2): W and b used twice. */
static void forward_backward(mt_tensor *const *ps, mt_tensor *x) {
  mt_tensor *wt, *vt, *h = x, *tmp, *out, *sq, *loss;
  OK(mt_t(&wt, ps[0]));
  OK(mt_t(&vt, ps[2]));
  mt_tensor_retain(h);
  for (int step = 0; step < 2; step++) {
    OK(mt_matmul(&tmp, h, wt));
    mt_tensor_release(h);
    OK(mt_binary(&h, MT_ADD, tmp, ps[1]));
    mt_tensor_release(tmp);
    tmp = h;
    OK(mt_unary(&h, MT_TANH, tmp));
    mt_tensor_release(tmp);
  }
  OK(mt_matmul(&out, h, vt));
  OK(mt_binary(&sq, MT_MUL, out, out));
  OK(mt_mean(&loss, sq, 0, NULL, false));
  OK(mt_backward(loss, NULL, false));
  mt_tensor *all[] = {wt, vt, h, out, sq, loss};
  for (int i = 0; i < 6; i++) mt_tensor_release(all[i]);
}

static mt_tensor *rows_of(int r0, int nranks) {
  int64_t sz[2] = {(int64_t)N * nranks, D};
  mt_tensor *x;
  OK(mt_empty(&x, MT_FLOAT64, 2, sz));
  for (int r = 0; r < nranks; r++)
    for (int64_t i = 0; i < N * D; i++) OK(mt_set_flat(x, r * N * D + i, mt_scalar_float(xval(i, r0 + r))));
  return x;
}

static double max_grad_diff(mt_tensor *const *a, mt_tensor *const *b) {
  double worst = 0;
  for (int k = 0; k < P; k++)
    for (int64_t i = 0; i < mt_numel(a[k]); i++) {
      double ga = a[k]->grad ? val(a[k]->grad, i) : 0, gb = b[k]->grad ? val(b[k]->grad, i) : 0;
      double dd = fabs(ga - gb);
      worst = dd > worst ? dd : worst;
    }
  return worst;
}

static void release_all(mt_tensor **ps) {
  for (int k = 0; k < P; k++) mt_tensor_release(ps[k]);
}

static void test_reducer(size_t cap, size_t want_buckets) {
  /* the reference: one process on every rank's rows */
  mt_tensor *ref[P], *ps[P], *local[P];
  make_params(ref);
  mt_tensor *xall = rows_of(0, world), *xmine = rows_of(rank, 1);
  forward_backward(ref, xall);
  CHECK(ref[3]->grad == NULL);

  make_params(ps);
  mt_ddp *d = NULL;
  OK(mt_ddp_new(ps, P, cap, &d));
  if (!d) return;
  CHECK(mt_ddp_num_buckets(d) == want_buckets);
  forward_backward(ps, xmine);
  /* every parameter has a grad (the unused one zeros), equal to the whole batch's */
  for (int k = 0; k < P; k++) CHECK(ps[k]->grad != NULL);
  double diff = max_grad_diff(ps, ref);
  CHECK(diff <= 1e-12);
  if (diff > 1e-12) fprintf(stderr, "  cap %zu: gradients differ by %g\n", cap, diff);
  double secs;
  uint64_t bytes, buckets;
  mt_ddp_stats(d, &secs, &bytes, &buckets);
  CHECK(buckets == want_buckets && bytes == 8 * (D * D + D + 2 * D + 3) && secs >= 0);

  /* a second synchronised backward accumulates, as without DDP: 2x the whole batch's */
  forward_backward(ps, xmine);
  forward_backward(ref, xall);
  CHECK(max_grad_diff(ps, ref) <= 1e-12);

  /* no_sync: the gradients stay local (this rank's rows only) */
  make_params(local);
  forward_backward(local, xmine);
  for (int k = 0; k < P; k++) OK(mt_set_grad(ps[k], NULL));
  mt_ddp_set_enabled(d, false);
  forward_backward(ps, xmine);
  CHECK(max_grad_diff(ps, local) <= 0);
  CHECK(ps[3]->grad == NULL);
  mt_ddp_set_enabled(d, true);
  mt_ddp_stats(d, NULL, NULL, &buckets);
  CHECK(buckets == 2 * want_buckets);
  mt_ddp_free(d);

  /* freed: backward is plain again */
  for (int k = 0; k < P; k++) OK(mt_set_grad(ps[k], NULL));
  forward_backward(ps, xmine);
  CHECK(max_grad_diff(ps, local) <= 0);
  release_all(ref);
  release_all(ps);
  release_all(local);
  mt_tensor_release(xall);
  mt_tensor_release(xmine);
}

/* Buckets go to the communication thread during backward: an end hook registered before the
 * reducer's (so it runs first) sees them reduced without the reducer's end hook. */
static mt_ddp *watched;
static uint64_t reduced_before_end;
static mt_status watch_end(void *ud, mt_status st) {
  (void)ud;
  for (int i = 0; i < 10000 && reduced_before_end < 3; i++) { /* up to 10 s */
    mt_ddp_stats(watched, NULL, NULL, &reduced_before_end);
    if (reduced_before_end < 3) nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  return st;
}

static void test_overlap(void) {
  mt_tensor *ps[P];
  make_params(ps);
  mt_tensor *x = rows_of(rank, 1);
  OK(mt_add_backward_end_hook(watch_end, NULL));
  OK(mt_ddp_new(ps, 3, 1, &watched)); /* W, b, V (all used): 3 buckets */
  if (watched) {
    forward_backward(ps, x);
    CHECK(reduced_before_end == 3);
    mt_ddp_free(watched);
  }
  CHECK(mt_remove_backward_end_hook(watch_end, NULL));
  mt_tensor_release(x);
  release_all(ps);
}

static void test_reducer_errors(void) {
  mt_tensor *ps[P];
  make_params(ps);
  mt_ddp *d = NULL;
  FAILS(mt_ddp_new(ps, 0, 0, &d), MT_EARG, "no parameter that requires");
  mt_tensor *twice[2] = {ps[0], ps[0]};
  FAILS(mt_ddp_new(twice, 2, 0, &d), MT_EARG, "same tensor as parameter");
  mt_tensor *nograd;
  int64_t n3[1] = {3};
  OK(mt_zeros(&nograd, MT_FLOAT64, 1, n3));
  FAILS(mt_ddp_new(&nograd, 1, 0, &d), MT_EARG, "leaf tensor that requires grad");
  CHECK(d == NULL);
  /* per dtype buckets: a float32 parameter beside float64 ones */
  mt_tensor *f32;
  OK(mt_zeros(&f32, MT_FLOAT32, 1, n3));
  OK(mt_requires_grad_(f32, true));
  mt_tensor *mixed[3] = {ps[0], f32, ps[1]};
  OK(mt_ddp_new(mixed, 3, 0, &d));
  CHECK(d && mt_ddp_num_buckets(d) == 2);
  mt_ddp_free(d);
  mt_tensor_release(nograd);
  mt_tensor_release(f32);
  release_all(ps);
}

int main(void) {
  test_hooks();
  bool launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
  if (!launched || !mt_dist_available()) {
    test_refusals();
    return mt_test_finish("test_dist (outside mpirun)");
  }
  OK(mt_dist_init());
  OK(mt_dist_rank(&rank));
  OK(mt_dist_world_size(&world));
  CHECK(mt_dist_is_initialized() && world >= 2 && rank >= 0 && rank < world);
  test_all_reduce();
  test_broadcast_barrier();
  test_reducer(1, P);       /* one bucket per parameter */
  test_reducer(1 << 20, 1); /* all in one */
  test_reducer(0, 1);       /* the default cap */
  test_overlap();
  test_reducer_errors();
  OK(mt_dist_finalize());
  CHECK(!mt_dist_is_initialized());
  FAILS(mt_dist_init(), MT_ESTATE, "already destroyed");
  char name[64];
  snprintf(name, sizeof name, "test_dist (rank %d of %d)", rank, world);
  return mt_test_finish(name);
}
