/* test_parallel.c — the thread pool (src/parallel.c): chunking that depends on (n, grain)
 * only, every index visited exactly once, nested and concurrent loops running inline, the
 * thread count's bounds, and reductions bit-identical across thread counts. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "mt_internal.h"
#include "mt_test.h"

typedef struct visit {
  atomic_int *hits;
  atomic_int chunks;
  int64_t lo[MT_PARALLEL_MAX_CHUNKS], hi[MT_PARALLEL_MAX_CHUNKS];
  int bad_worker;
} visit;

static void visit_fn(void *p, int64_t b, int64_t e, int chunk, int worker) {
  visit *v = p;
  for (int64_t i = b; i < e; i++) atomic_fetch_add(&v->hits[i], 1);
  v->lo[chunk] = b;
  v->hi[chunk] = e;
  if (worker < 0 || worker >= mt_get_num_threads()) v->bad_worker = 1;
  atomic_fetch_add(&v->chunks, 1);
}

/* Every index once, chunks contiguous and in order, sizes within one of each other. Returns
 * success instead of CHECKing, as it also runs on several threads (CHECK's counters are not
 * thread-safe). */
static bool covers(int64_t n, int64_t grain) {
  visit *v = calloc(1, sizeof *v);
  v->hits = calloc((size_t)(n > 0 ? n : 1), sizeof *v->hits);
  mt_parallel_for(n, grain, visit_fn, v);
  int k = mt_parallel_chunks(n, grain);
  bool ok = atomic_load(&v->chunks) == k && !v->bad_worker;
  for (int64_t i = 0; i < n; i++) ok &= atomic_load(&v->hits[i]) == 1;
  for (int c = 0; c < k; c++) {
    ok &= v->lo[c] == (c ? v->hi[c - 1] : 0);
    ok &= v->hi[c] - v->lo[c] >= n / k && v->hi[c] - v->lo[c] <= n / k + 1;
  }
  if (k) ok &= v->hi[k - 1] == n;
  free(v->hits);
  free(v);
  return ok;
}

/* A float sum with one partial per chunk, combined in chunk order. */
typedef struct sum_ctx {
  const float *x;
  float part[MT_PARALLEL_MAX_CHUNKS];
} sum_ctx;

static void sum_fn(void *p, int64_t b, int64_t e, int chunk, int worker) {
  (void)worker;
  sum_ctx *s = p;
  float acc = 0;
  for (int64_t i = b; i < e; i++) acc += s->x[i];
  s->part[chunk] = acc;
}

static float chunked_sum(const float *x, int64_t n, int64_t grain) {
  sum_ctx s = {.x = x};
  mt_parallel_for(n, grain, sum_fn, &s);
  float total = 0;
  for (int c = 0; c < mt_parallel_chunks(n, grain); c++) total += s.part[c];
  return total;
}

/* A loop inside a chunk runs inline and still covers its range. */
static void nested_fn(void *p, int64_t b, int64_t e, int chunk, int worker) {
  (void)chunk, (void)worker;
  atomic_int *hits = p;
  for (int64_t i = b; i < e; i++) {
    visit *v = calloc(1, sizeof *v);
    v->hits = calloc(100, sizeof *v->hits);
    mt_parallel_for(100, 10, visit_fn, v);
    int once = 1;
    for (int j = 0; j < 100; j++) once &= atomic_load(&v->hits[j]) == 1;
    if (once && atomic_load(&v->chunks) == 10) atomic_fetch_add(&hits[i], 1);
    free(v->hits);
    free(v);
  }
}

static void *concurrent_main(void *arg) {
  bool *ok = arg;
  for (int r = 0; r < 200; r++) *ok &= covers(10007, 97);
  return NULL;
}

int main(void) {
  CHECK(mt_get_num_threads() >= 1);
  CHECK(mt_parallel_chunks(0, 10) == 0);
  CHECK(mt_parallel_chunks(-5, 10) == 0);
  CHECK(mt_parallel_chunks(10, 0) == 10);
  CHECK(mt_parallel_chunks(10, 3) == 4);
  CHECK(mt_parallel_chunks(1 << 30, 1) == MT_PARALLEL_MAX_CHUNKS);

  FAILS(mt_set_num_threads(0), MT_EARG, "at least 1");
  FAILS(mt_set_num_threads(MT_PARALLEL_MAX_THREADS + 1), MT_EARG, "at most");

  int64_t n = 1000003;
  float *x = malloc((size_t)n * sizeof *x);
  for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 7919) % 1000) / 997.0f - 0.4f;
  float ref = 0;
  for (int threads = 1; threads <= 4; threads++) {
    OK(mt_set_num_threads(threads));
    CHECK(mt_get_num_threads() == threads);
    CHECK(covers(0, 1));
    CHECK(covers(1, 1));
    CHECK(covers(7, 100));
    CHECK(covers(1000, 1));
    CHECK(covers(100003, 4096));
    CHECK(covers(n, 1));
    float s = chunked_sum(x, n, 8192);
    if (threads == 1) ref = s;
    CHECK(memcmp(&s, &ref, sizeof s) == 0); /* the same bits for every thread count */
    for (int r = 0; r < 50; r++) {
      float again = chunked_sum(x, n, 8192);
      CHECK(memcmp(&again, &ref, sizeof again) == 0);
    }
    atomic_int hits[16] = {0};
    mt_parallel_for(16, 1, nested_fn, hits);
    int all = 1;
    for (int i = 0; i < 16; i++) all &= atomic_load(&hits[i]) == 1;
    CHECK(all);
  }
  /* Loops from several host threads at once: one gets the pool, the others run inline. */
  OK(mt_set_num_threads(2));
  pthread_t th[3];
  bool ok[3] = {true, true, true}, mine = true;
  for (int i = 0; i < 3; i++) CHECK(pthread_create(&th[i], NULL, concurrent_main, &ok[i]) == 0);
  for (int r = 0; r < 200; r++) mine &= covers(5003, 50);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  CHECK(mine && ok[0] && ok[1] && ok[2]);
  free(x);
  return mt_test_finish("test_parallel");
}
