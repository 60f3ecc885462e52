/*
 * dist_reducer.c — DistributedDataParallel's gradient reducer (PyTorch's Reducer, small).
 *
 * Parameters are grouped, in reverse registration order (roughly the order backward produces
 * their gradients) and per dtype, into buckets: the first of each dtype up to 1 MiB (PyTorch's
 * first-bucket size, so that communication starts early), the others up to bucket_cap_bytes.
 * A post-accumulate hook per parameter marks it ready; when all of a bucket's parameters are
 * ready and every earlier bucket has been launched, its gradients are copied into the bucket's
 * flat buffer and handed to one communication thread, which all-reduces it (average) while
 * backward goes on. Buckets are launched in index order on every rank, so the collectives
 * match whatever order the gradients arrive in. The backward-end hook launches what is left
 * (parameters that got no gradient in this backward contribute their current .grad, or
 * zeros), waits for the thread and writes every average back into .grad.
 *
 * After a synchronised backward every parameter's .grad is the mean over ranks of the local
 * .grad (absent counting as zeros). With MPI below MPI_THREAD_SERIALIZED the buckets are
 * reduced on the caller's thread at the end of backward instead (no overlap).
 */
#include "mt_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define DEFAULT_CAP ((size_t)25 << 20)
#define FIRST_CAP ((size_t)1 << 20)

typedef struct param {
  struct mt_ddp *owner;
  mt_tensor *t;    /* retained */
  mt_tensor *view; /* the parameter's slice of its bucket's buffer, shaped like it */
  size_t bucket;
  bool ready; /* in the current backward */
} param;

typedef struct bucket {
  mt_tensor *flat; /* 1-D contiguous; float32 for float16/bfloat16 parameters */
  size_t *members; /* indices into params */
  size_t nmembers, pending;
  int64_t numel;
  mt_dtype dtype;
} bucket;

struct mt_ddp {
  param *params;
  size_t nparams;
  bucket *buckets;
  size_t nbuckets;
  bool enabled;
  /* the current backward (main thread only) */
  bool active;     /* some parameter became ready */
  size_t launched; /* buckets [0, launched) have their gradients in their buffers */
  mt_status copy_st;
  char copy_err[512];
  /* the communication thread: it reduces buckets [reduced, queued) in order */
  bool use_thread, thread_started, stop;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  size_t queued, reduced;
  mt_status comm_st;
  char comm_err[512];
  double comm_seconds;
  uint64_t bytes, nreduced;
};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* All-reduces one bucket (any thread; dist.c serialises MPI) and records time and errors. */
static void reduce_bucket(mt_ddp *d, bucket *b) {
  double t0 = now_seconds();
  mt_status st = mt_dist_all_reduce(b->flat, MT_REDUCE_AVG);
  double dt = now_seconds() - t0;
  pthread_mutex_lock(&d->mu);
  d->comm_seconds += dt;
  d->bytes += (uint64_t)b->numel * mt_dtype_size(b->flat->dtype);
  d->nreduced++;
  if (st && !d->comm_st) {
    d->comm_st = st;
    snprintf(d->comm_err, sizeof d->comm_err, "%s", mt_last_error());
  }
  pthread_mutex_unlock(&d->mu);
}

static void *comm_main(void *arg) {
  mt_ddp *d = arg;
  pthread_mutex_lock(&d->mu);
  for (;;) {
    while (!d->stop && d->reduced == d->queued) pthread_cond_wait(&d->work, &d->mu);
    if (d->reduced == d->queued) break; /* stop, nothing left */
    bucket *b = &d->buckets[d->reduced];
    pthread_mutex_unlock(&d->mu);
    reduce_bucket(d, b);
    pthread_mutex_lock(&d->mu);
    d->reduced++;
    pthread_cond_broadcast(&d->done);
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

static void note_copy_error(mt_ddp *d, mt_status st) {
  if (st && !d->copy_st) {
    d->copy_st = st;
    snprintf(d->copy_err, sizeof d->copy_err, "%s", mt_last_error());
  }
}

/* Fills bucket i's buffer from its parameters' gradients and queues it. A failed copy is
 * recorded and the bucket still goes, so that every rank runs the same collectives. */
static void launch(mt_ddp *d, size_t i) {
  bucket *b = &d->buckets[i];
  for (size_t k = 0; k < b->nmembers; k++) {
    param *p = &d->params[b->members[k]];
    if (p->t->grad) note_copy_error(d, mt_copy_into(p->view, p->t->grad));
    else mt_fill_into(p->view, mt_scalar_int(0));
  }
  d->launched = i + 1;
  if (!d->use_thread) return; /* reduced at the end of backward */
  if (!d->thread_started) {
    if (pthread_create(&d->thread, NULL, comm_main, d) != 0) {
      d->use_thread = false; /* no thread: reduce at the end of backward */
      return;
    }
    d->thread_started = true;
  }
  pthread_mutex_lock(&d->mu);
  d->queued = i + 1;
  pthread_cond_signal(&d->work);
  pthread_mutex_unlock(&d->mu);
}

static void on_ready(void *ud, mt_tensor *leaf) {
  (void)leaf;
  param *p = ud;
  mt_ddp *d = p->owner;
  if (!d->enabled || p->ready) return;
  d->active = true;
  p->ready = true;
  d->buckets[p->bucket].pending--;
  while (d->launched < d->nbuckets && d->buckets[d->launched].pending == 0) launch(d, d->launched);
}

/* Back to "no parameter ready" for the next backward. */
static void reset_round(mt_ddp *d) {
  for (size_t i = 0; i < d->nparams; i++) d->params[i].ready = false;
  for (size_t i = 0; i < d->nbuckets; i++) d->buckets[i].pending = d->buckets[i].nmembers;
  d->active = false;
  d->launched = 0;
  d->copy_st = MT_OK;
  pthread_mutex_lock(&d->mu);
  d->queued = d->reduced = 0;
  d->comm_st = MT_OK;
  pthread_mutex_unlock(&d->mu);
}

/* Writes the averaged gradients back: into .grad where there is one, else a new one. */
static mt_status write_back(mt_ddp *d) {
  for (size_t i = 0; i < d->nparams; i++) {
    param *p = &d->params[i];
    mt_status st;
    if (p->t->grad) {
      st = mt_copy_into(p->t->grad, p->view);
      if (!st) mt_bump_version(p->t->grad);
    } else {
      mt_tensor *g;
      if ((st = mt_empty(&g, p->t->dtype, p->t->ndim, p->t->sizes))) return st;
      if (!(st = mt_copy_into(g, p->view))) p->t->grad = g;
      else mt_tensor_release(g);
    }
    if (st) return st;
  }
  return MT_OK;
}

static mt_status on_backward_end(void *ud, mt_status st) {
  mt_ddp *d = ud;
  if (!d->active) return st;
  while (d->launched < d->nbuckets) launch(d, d->launched);
  if (d->use_thread && d->thread_started) {
    pthread_mutex_lock(&d->mu);
    while (d->reduced < d->queued) pthread_cond_wait(&d->done, &d->mu);
    pthread_mutex_unlock(&d->mu);
  } else { /* no thread (MPI below SERIALIZED, or it could not start): reduce here */
    for (size_t i = 0; i < d->nbuckets; i++) reduce_bucket(d, &d->buckets[i]);
  }
  mt_status comm_st = d->comm_st, copy_st = d->copy_st;
  if (!st && copy_st) st = mt_fail(copy_st, "DistributedDataParallel: copying gradients into a bucket: %s", d->copy_err);
  if (!st && comm_st) st = mt_fail(comm_st, "DistributedDataParallel: gradient all-reduce: %s", d->comm_err);
  if (!st && (st = write_back(d))) {
    char why[512]; /* mt_fail writes where mt_last_error() points */
    snprintf(why, sizeof why, "%s", mt_last_error());
    st = mt_fail(st, "DistributedDataParallel: writing averaged gradients back: %s", why);
  }
  reset_round(d);
  return st;
}

/* ---- construction ----------------------------------------------------------------------------- */

static mt_status check_params(mt_tensor *const *params, size_t n) {
  if (n == 0)
    return mt_fail(MT_EARG, "DistributedDataParallel is not needed when a module has no parameter that requires "
                            "a gradient");
  for (size_t i = 0; i < n; i++) {
    const mt_tensor *t = params[i];
    if (!t->requires_grad || t->grad_fn)
      return mt_fail(MT_EARG, "parameter %zu is not a leaf tensor that requires grad", i + (size_t)mt_index_base);
    for (size_t j = 0; j < i; j++)
      if (params[j] == t)
        return mt_fail(MT_EARG, "parameter %zu is the same tensor as parameter %zu", i + (size_t)mt_index_base,
                       j + (size_t)mt_index_base);
  }
  return MT_OK;
}

static mt_dtype buffer_dtype(mt_dtype dt) { return dt == MT_FLOAT16 || dt == MT_BFLOAT16 ? MT_FLOAT32 : dt; }

/* Assigns params (reverse order) to buckets; fills d->buckets' members, numel and dtype. */
static mt_status assign_buckets(mt_ddp *d, size_t cap) {
  size_t open[MT_NUM_DTYPES];   /* the open bucket of each dtype, or SIZE_MAX */
  size_t filled[MT_NUM_DTYPES]; /* buckets of each dtype so far */
  for (int k = 0; k < MT_NUM_DTYPES; k++) open[k] = SIZE_MAX, filled[k] = 0;
  if (!(d->buckets = calloc(d->nparams, sizeof *d->buckets))) return mt_fail(MT_ENOMEM, "out of memory");
  for (size_t r = d->nparams; r-- > 0;) {
    mt_tensor *t = d->params[r].t;
    mt_dtype dt = t->dtype;
    size_t bytes = (size_t)mt_numel(t) * mt_dtype_size(buffer_dtype(dt));
    if (open[dt] != SIZE_MAX) {
      bucket *b = &d->buckets[open[dt]];
      size_t limit = filled[dt] == 1 ? (cap < FIRST_CAP ? cap : FIRST_CAP) : cap;
      if ((size_t)b->numel * mt_dtype_size(buffer_dtype(dt)) + bytes > limit) open[dt] = SIZE_MAX;
    }
    if (open[dt] == SIZE_MAX) {
      open[dt] = d->nbuckets++;
      filled[dt]++;
      d->buckets[open[dt]].dtype = dt;
    }
    bucket *b = &d->buckets[open[dt]];
    if (!b->members && !(b->members = malloc(d->nparams * sizeof *b->members))) return mt_fail(MT_ENOMEM, "out of memory");
    d->params[r].bucket = open[dt];
    b->members[b->nmembers++] = r;
    b->numel += mt_numel(t);
  }
  return MT_OK;
}

/* Each bucket's buffer and each parameter's view into it. */
static mt_status make_buffers(mt_ddp *d) {
  mt_status st = MT_OK;
  for (size_t i = 0; i < d->nbuckets && !st; i++) {
    bucket *b = &d->buckets[i];
    b->pending = b->nmembers;
    if ((st = mt_zeros(&b->flat, buffer_dtype(b->dtype), 1, &b->numel))) break;
    int64_t off = 0;
    for (size_t k = 0; k < b->nmembers && !st; k++) {
      param *p = &d->params[b->members[k]];
      int64_t strides[MT_MAX_DIMS];
      int64_t numel = mt_contiguous_strides(p->t->ndim, p->t->sizes, strides);
      st = mt_from_storage(&p->view, b->flat->storage, b->flat->dtype, off, p->t->ndim, p->t->sizes, strides);
      off += numel;
    }
  }
  return st;
}

MT_API mt_status mt_ddp_new(mt_tensor *const *params, size_t n, size_t bucket_cap_bytes, mt_ddp **out) {
  if (!mt_dist_is_initialized())
    return mt_dist_available() ? mt_fail(MT_ESTATE, "not initialized; call init_process_group first")
                               : mt_dist_init(); /* its "no MPI support" message */
  mt_status st = check_params(params, n);
  if (st) return st;
  mt_ddp *d = calloc(1, sizeof *d);
  if (!d || !(d->params = calloc(n, sizeof *d->params))) {
    free(d);
    return mt_fail(MT_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->work, NULL);
  pthread_cond_init(&d->done, NULL);
  d->enabled = true;
  d->use_thread = mt_dist_threads_ok();
  d->nparams = n;
  for (size_t i = 0; i < n; i++) {
    d->params[i].owner = d;
    d->params[i].t = params[i];
    mt_tensor_retain(params[i]);
  }
  st = assign_buckets(d, bucket_cap_bytes ? bucket_cap_bytes : DEFAULT_CAP);
  if (!st) st = make_buffers(d);
  for (size_t i = 0; i < n && !st; i++) st = mt_add_post_accumulate_hook(d->params[i].t, on_ready, &d->params[i]);
  if (!st) st = mt_add_backward_end_hook(on_backward_end, d);
  if (st) {
    mt_ddp_free(d); /* removes the hooks that were added; the message stays */
    return st;
  }
  *out = d;
  return MT_OK;
}

MT_API void mt_ddp_set_enabled(mt_ddp *d, bool enabled) { d->enabled = enabled; }

MT_API void mt_ddp_stats(const mt_ddp *d, double *comm_seconds, uint64_t *bytes, uint64_t *buckets) {
  mt_ddp *m = (mt_ddp *)d; /* the mutex, not the numbers, changes */
  pthread_mutex_lock(&m->mu);
  if (comm_seconds) *comm_seconds = d->comm_seconds;
  if (bytes) *bytes = d->bytes;
  if (buckets) *buckets = d->nreduced;
  pthread_mutex_unlock(&m->mu);
}

MT_API size_t mt_ddp_num_buckets(const mt_ddp *d) { return d->nbuckets; }

MT_API void mt_ddp_free(mt_ddp *d) {
  if (!d) return;
  if (d->thread_started) {
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
  }
  mt_remove_backward_end_hook(on_backward_end, d);
  for (size_t i = 0; i < d->nparams; i++) {
    param *p = &d->params[i];
    mt_remove_post_accumulate_hook(p->t, on_ready, p);
    mt_tensor_release(p->view);
    mt_tensor_release(p->t);
  }
  for (size_t i = 0; i < d->nbuckets; i++) {
    mt_tensor_release(d->buckets[i].flat);
    free(d->buckets[i].members);
  }
  free(d->buckets);
  free(d->params);
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->work);
  pthread_cond_destroy(&d->done);
  free(d);
}
