/*
 * parallel.c — the library's one thread pool and its threading policy (contract in
 * mt_internal.h, "parallel loops").
 *
 * Policy: one thread count for the whole library and one pool that uses it. The default is
 * the number of CPUs this process may run on (sched_getaffinity), MOONTORCH_NUM_THREADS
 * overrides it at load time and mt_set_num_threads at any time. OpenBLAS is set to one thread
 * when the library loads and stays so: matrix products are split on the pool (gemm.c), so no
 * OpenBLAS thread ever polls for work while the pool computes. Between loops the
 * pool's workers sleep on a condition variable, after a short spin (SPIN_NS): a training step
 * of the demo's CNN runs 20 loops a few microseconds apart, and a worker woken from sleep
 * joined each 17 us late on average (futex on the 2-core VM), while the caller ran the loop
 * alone. The caller spins as briefly for the workers' last chunks. The spin yields the core
 * often, so that it takes little from whatever else runs on the machine.
 *
 * Determinism: a loop's chunks depend only on (n, grain), never on the thread count or on
 * which thread runs which chunk, so per-chunk partial results combined in chunk order give the
 * same bits with 1 thread or 8, run after run.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "mt_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* OpenBLAS's own thread control (every Debian build of libopenblas exports it). */
extern void openblas_set_num_threads(int num_threads);

typedef struct job {
  mt_parallel_fn fn;
  void *ctx;
  int64_t n, chunk_len;
  int nchunks;
  int nworkers;         /* pool workers allowed to join (thread count - 1) */
  atomic_int next;      /* next chunk to hand out */
} job;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t work;  /* workers wait here for a new generation */
  pthread_cond_t done;  /* the caller waits here for active == 0 */
  atomic_uint_fast64_t gen; /* bumped for each job handed to the workers (under lock) */
  job *job;             /* the current job, NULL between jobs */
  atomic_int active;    /* workers that hold a pointer to `job` (changed under lock) */
  int nstarted;         /* workers created so far (they live until exit) */
  pthread_t threads[MT_PARALLEL_MAX_THREADS];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static atomic_int num_threads = 1;
static atomic_flag busy = ATOMIC_FLAG_INIT; /* a loop is on the pool: others run inline */
static _Thread_local int worker_id = -1;      /* >= 1 on pool workers, -1 elsewhere */

/* How long a worker (for a new job) or the caller (for the workers' last chunks) spins before
 * sleeping: a few loop gaps of a training step, little next to a scheduler tick. */
#define SPIN_NS 50000

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins until done(arg) or SPIN_NS have passed; returns done(arg). The clock is read every 64
 * pauses, and every 16 the core is offered to another thread (a host's, another process's):
 * a thread that needs this core must not wait out the spin (batch-1 inference was slower with
 * a yield every 1024 pauses, when OpenBLAS still had threads of its own). */
static bool spin_until(bool (*done)(const void *), const void *arg) {
  const int64_t end = now_ns() + SPIN_NS;
  for (unsigned i = 1;; i++) {
    if (done(arg)) return true;
    cpu_relax();
    if (i % 16 == 0) sched_yield();
    if (i % 64 == 0 && now_ns() > end) return done(arg);
  }
}

static bool no_active_workers(const void *arg) {
  (void)arg;
  return atomic_load_explicit(&pool.active, memory_order_acquire) == 0;
}

static bool new_generation(const void *seen) {
  return atomic_load_explicit(&pool.gen, memory_order_acquire) != *(const uint64_t *)seen;
}

static int clamp_threads(long n) {
  if (n < 1) return 1;
  return n > MT_PARALLEL_MAX_THREADS ? MT_PARALLEL_MAX_THREADS : (int)n;
}

/* At load time, before any kernel or OpenBLAS call: the default count, or the environment's.
 * OpenBLAS (a dependency) is initialised before this constructor runs. */
__attribute__((constructor)) static void parallel_init(void) {
  long n = 1;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  const char *env = getenv("MOONTORCH_NUM_THREADS");
  if (env && *env) {
    char *end;
    errno = 0;
    long v = strtol(env, &end, 10);
    if (errno == 0 && *end == '\0' && v >= 1) n = v; /* a bad value keeps the default */
  }
  atomic_store(&num_threads, clamp_threads(n));
  openblas_set_num_threads(1); /* for good: see the policy above */
}

mt_status mt_set_num_threads(int n) {
  if (n < 1) return mt_fail(MT_EARG, "set_num_threads: the thread count must be at least 1, got %d", n);
  if (n > MT_PARALLEL_MAX_THREADS)
    return mt_fail(MT_EARG, "set_num_threads: at most %d threads, got %d", MT_PARALLEL_MAX_THREADS, n);
  atomic_store(&num_threads, n);
  return MT_OK;
}

int mt_get_num_threads(void) { return atomic_load(&num_threads); }

int mt_parallel_chunks(int64_t n, int64_t grain) {
  if (n <= 0) return 0;
  if (grain < 1) grain = 1;
  int64_t k = (n + grain - 1) / grain;
  return k > MT_PARALLEL_MAX_CHUNKS ? MT_PARALLEL_MAX_CHUNKS : (int)k;
}

/* Chunk c covers [c*n/k, (c+1)*n/k): sizes differ by at most one, fixed by n and k alone. */
static void run_chunk(const job *j, int c, int worker) {
  int64_t b = (int64_t)((__int128)j->n * c / j->nchunks);
  int64_t e = (int64_t)((__int128)j->n * (c + 1) / j->nchunks);
  j->fn(j->ctx, b, e, c, worker);
}

static void take_chunks(job *j, int worker) {
  int c;
  while ((c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->nchunks) run_chunk(j, c, worker);
}

static void *worker_main(void *arg) {
  worker_id = (int)(intptr_t)arg;
  uint64_t seen = 0;
  pthread_mutex_lock(&pool.lock);
  for (;;) {
    if (atomic_load(&pool.gen) == seen) { /* spin unlocked for the next job, then sleep */
      pthread_mutex_unlock(&pool.lock);
      spin_until(new_generation, &seen);
      pthread_mutex_lock(&pool.lock);
    }
    while (atomic_load(&pool.gen) == seen) pthread_cond_wait(&pool.work, &pool.lock);
    seen = atomic_load(&pool.gen);
    job *j = pool.job;
    if (!j || worker_id > j->nworkers) continue; /* woke after that job ended, or not asked */
    atomic_fetch_add(&pool.active, 1);
    pthread_mutex_unlock(&pool.lock);
    take_chunks(j, worker_id);
    pthread_mutex_lock(&pool.lock);
    if (atomic_fetch_sub(&pool.active, 1) == 1) pthread_cond_signal(&pool.done);
  }
  return NULL;
}

/* Keeps the code the workers run mapped for good. The Lua module is dlclose'd when its Lua
 * state closes, while the workers (which never exit) sleep inside it; a host that goes on
 * running would have them wake into unmapped code. RTLD_NODELETE on our own object prevents
 * that (for a program linking the static library, it pins the program: harmless). */
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)&worker_main, &info) && info.dli_fname) dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* Creates workers up to `want` (called with pool.lock held). Returns how many exist; a failed
 * pthread_create just leaves fewer helpers (the caller runs the rest of the chunks). */
static int ensure_workers(int want) {
  if (pool.nstarted == 0 && want > 0) pin_library();
  while (pool.nstarted < want) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Workers inherit a blocked signal mask so that signals go to the host's own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&pool.threads[pool.nstarted], &attr, worker_main, (void *)(intptr_t)(pool.nstarted + 1));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) break;
    pool.nstarted++;
  }
  return pool.nstarted;
}

void mt_parallel_for(int64_t n, int64_t grain, mt_parallel_fn fn, void *ctx) {
  job j = {.fn = fn, .ctx = ctx, .n = n, .nchunks = mt_parallel_chunks(n, grain)};
  if (j.nchunks == 0) return;
  int threads = atomic_load_explicit(&num_threads, memory_order_relaxed);
  /* Inline: one chunk, one thread, inside a pool worker (nested), or the pool is taken by
   * another loop (another host thread, or a nested call on the caller's thread). */
  if (j.nchunks == 1 || threads == 1 || worker_id >= 0 || atomic_flag_test_and_set(&busy)) {
    for (int c = 0; c < j.nchunks; c++) run_chunk(&j, c, 0);
    return;
  }
  int helpers = (threads < j.nchunks ? threads : j.nchunks) - 1;
  pthread_mutex_lock(&pool.lock);
  helpers = ensure_workers(helpers) < helpers ? pool.nstarted : helpers;
  j.nworkers = helpers;
  pool.job = &j;
  atomic_fetch_add(&pool.gen, 1);
  pthread_cond_broadcast(&pool.work); /* no system call when every worker is spinning */
  pthread_mutex_unlock(&pool.lock);

  worker_id = 0; /* nested loops in the caller's own chunks run inline */
  take_chunks(&j, 0);
  worker_id = -1;

  /* The workers that joined may still run their last chunks: spin, then sleep. One that has
   * not joined yet finds no chunk left, or (after pool.job = NULL) no job. */
  spin_until(no_active_workers, NULL);
  pthread_mutex_lock(&pool.lock);
  while (atomic_load(&pool.active) > 0) pthread_cond_wait(&pool.done, &pool.lock);
  pool.job = NULL; /* a worker that wakes late sees no job */
  pthread_mutex_unlock(&pool.lock);
  atomic_flag_clear(&busy);
}
