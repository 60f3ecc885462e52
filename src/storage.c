/*
 * storage.c — refcounted byte buffers. Owned ones are 64-byte aligned (SIMD loads, and the
 * alignment PyTorch gives data records in its files); wrapped ones point at memory someone
 * else provides, a mapped file for instance, and hand it back through `release`.
 */
#include "mt_internal.h"

#include <stdatomic.h>
#include <stdlib.h>

struct mt_storage {
  void *data;
  size_t nbytes;
  atomic_int refcount;
  mt_release_fn release; /* NULL with owned == true: free(data) */
  void *ctx;
  bool owned;
  uint32_t version; /* bumped by every in-place write through any view */
  uint64_t serial;  /* allocation order, for the tracer */
};

static atomic_uint_fast64_t bytes_allocated; /* monotonic: drives a host's GC pacing */
static atomic_uint_fast64_t bytes_live;
static atomic_uint_fast64_t next_serial;

#define MT_ALIGN 64

mt_status mt_storage_alloc(mt_storage **out, size_t nbytes, bool zero) {
  if (nbytes > (size_t)INT64_MAX - MT_ALIGN)
    return mt_fail(MT_ENOMEM, "cannot allocate %zu bytes", nbytes);
  size_t rounded = (nbytes + MT_ALIGN - 1) / MT_ALIGN * MT_ALIGN;
  if (rounded == 0) rounded = MT_ALIGN; /* data is never NULL, even for empty tensors */
  mt_storage *s = malloc(sizeof *s);
  void *data = aligned_alloc(MT_ALIGN, rounded);
  if (!s || !data) {
    free(s);
    free(data);
    return mt_fail(MT_ENOMEM, "out of memory allocating %zu bytes", nbytes);
  }
  if (zero) memset(data, 0, rounded);
  s->data = data;
  s->nbytes = nbytes;
  atomic_init(&s->refcount, 1);
  s->release = NULL;
  s->ctx = NULL;
  s->owned = true;
  s->version = 0;
  s->serial = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed) + 1;
  atomic_fetch_add_explicit(&bytes_allocated, rounded, memory_order_relaxed);
  atomic_fetch_add_explicit(&bytes_live, rounded, memory_order_relaxed);
  *out = s;
  return MT_OK;
}

MT_API mt_status mt_storage_new(mt_storage **out, size_t nbytes) { return mt_storage_alloc(out, nbytes, true); }

MT_API mt_status mt_storage_wrap(mt_storage **out, void *data, size_t nbytes, mt_release_fn release, void *ctx) {
  if (!data && nbytes) return mt_fail(MT_EARG, "cannot wrap a NULL buffer of %zu bytes", nbytes);
  mt_storage *s = malloc(sizeof *s);
  if (!s) return mt_fail(MT_ENOMEM, "out of memory");
  s->data = data;
  s->nbytes = nbytes;
  atomic_init(&s->refcount, 1);
  s->release = release;
  s->ctx = ctx;
  s->owned = false;
  s->version = 0;
  s->serial = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed) + 1;
  *out = s;
  return MT_OK;
}

MT_API void mt_storage_retain(mt_storage *s) {
  if (s) atomic_fetch_add_explicit(&s->refcount, 1, memory_order_relaxed);
}

MT_API void mt_storage_release(mt_storage *s) {
  if (!s || atomic_fetch_sub_explicit(&s->refcount, 1, memory_order_acq_rel) != 1) return;
  if (s->owned) {
    size_t rounded = (s->nbytes + MT_ALIGN - 1) / MT_ALIGN * MT_ALIGN;
    atomic_fetch_sub_explicit(&bytes_live, rounded ? rounded : MT_ALIGN, memory_order_relaxed);
    free(s->data);
  } else if (s->release) {
    s->release(s->ctx, s->data, s->nbytes);
  }
  free(s);
}

MT_API void *mt_storage_data(const mt_storage *s) { return s->data; }
uint32_t *mt_storage_version_ptr(mt_storage *s) { return &s->version; }
uint64_t mt_storage_serial(const mt_storage *s) { return s->serial; }
MT_API size_t mt_storage_nbytes(const mt_storage *s) { return s->nbytes; }
MT_API int mt_storage_refcount(const mt_storage *s) { return atomic_load(&s->refcount); }
MT_API uint64_t mt_storage_bytes_allocated(void) { return atomic_load(&bytes_allocated); }
MT_API uint64_t mt_storage_bytes_live(void) { return atomic_load(&bytes_live); }
