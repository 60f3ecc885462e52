/*
 * storage.c — refcounted byte buffers. Owned ones are 64-byte aligned (SIMD loads, and the
 * alignment PyTorch gives data records in its files); wrapped ones point at memory someone
 * else provides, a mapped file for instance, and hand it back through `release`.
 *
 * An owned storage is one malloc'ed block: [caller's extra bytes][struct][pad][data], the data
 * aligned by hand. One malloc instead of a struct malloc plus an aligned_alloc (glibc's
 * memalign is several times slower than malloc), and room in front for a tensor header
 * (tensor.c) that then costs no allocation of its own: what a small elementwise op spends
 * most of its time on. Such a block is marked by `release == block_release`, its start in ctx.
 */
#include "mt_internal.h"

#include <pthread.h>
#include <sched.h>
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
/* Offsets inside a block are kept multiples of this (>= any header's alignment). */
#define MT_MALLOC_ALIGN 16
#define STRUCT_SIZE ((sizeof(mt_storage) + MT_MALLOC_ALIGN - 1) / MT_MALLOC_ALIGN * MT_MALLOC_ALIGN)

/* Data bytes as counted by bytes_allocated / bytes_live: rounded up to MT_ALIGN, never 0. */
static size_t rounded_size(size_t nbytes) {
  size_t rounded = (nbytes + MT_ALIGN - 1) / MT_ALIGN * MT_ALIGN;
  return rounded ? rounded : MT_ALIGN; /* data is never NULL, even for empty tensors */
}

/* ---- a few freed mid-sized and large blocks, kept for reuse ---------------------------------
 * A model's forward frees and makes the same activations again and again (100 KB for a small
 * CNN's inference, 6 MB for a training batch's conv outputs). Given back to malloc, they merge
 * at the top of the heap, which glibc trims (brk) and grows again, or go back to the kernel at
 * once (blocks over malloc's mmap threshold): every page faults in anew, zeroed by the kernel,
 * tens per forward of a small model (~20% of a batch-1 CNN inference) and ~1,700 per training
 * step of the demo's CNN on random input (~2 ms). Blocks between CACHE_MIN and CACHE_MAX bytes
 * are kept here instead, at most CACHE_SLOTS of them and CACHE_BUDGET bytes in all, and reused
 * for a block of exactly the same size; when a new one does not fit, others are evicted round
 * robin. Larger blocks go back at once, and the budget bounds what a freed tensor can leave in
 * RSS. (Small blocks have their own stack, below.) Neither cache exists in AddressSanitizer builds, so that a use
 * after free is still caught. */
#define CACHE_MIN ((size_t)32 << 10) /* > SMALL_BLOCK */
#if defined(__SANITIZE_ADDRESS__) /* GCC */
#define MT_ASAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define MT_ASAN 1
#endif
#endif
#if defined(MT_ASAN) || defined(MT_NO_BLOCK_CACHE)
#define CACHE_MAX ((size_t)0) /* every block goes back to malloc: AddressSanitizer sees each use after free */
#else
#define CACHE_MAX ((size_t)32 << 20)
#endif
#define CACHE_BUDGET ((size_t)96 << 20)
#define CACHE_SLOTS 32

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  void *block;
  size_t size;
} cache[CACHE_SLOTS];
static unsigned cache_next; /* the slot to evict first (round robin) */
static size_t cache_bytes;  /* held in all slots */

static void *cache_take(size_t size) {
  void *block = NULL;
  pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (cache[i].block && cache[i].size == size) {
      block = cache[i].block;
      cache[i].block = NULL;
      cache_bytes -= size;
      break;
    }
  pthread_mutex_unlock(&cache_lock);
  return block;
}

/* Small blocks (a tensor of up to 32 floats with its header and struct) all get SMALL_BLOCK
 * bytes, and up to SMALL_KEEP freed ones are kept on a stack: the collector frees a loop's
 * temporaries hundreds at a time, more than malloc's per-thread cache holds, and the rest
 * of malloc's free path costs as much as the rest of a small op. */
#define SMALL_BLOCK ((size_t)512)
#if defined(MT_ASAN) || defined(MT_NO_BLOCK_CACHE)
#define SMALL_KEEP 1 /* as CACHE_MAX: none is kept (1 only to keep the array declarable) */
#define SMALL_KEEP_LIMIT 0
#else
#define SMALL_KEEP 1024
#define SMALL_KEEP_LIMIT SMALL_KEEP
#endif
static void *small_blocks[SMALL_KEEP];
static int small_count;
static atomic_flag small_lock = ATOMIC_FLAG_INIT; /* held for a push or a pop only: a spin lock */

static void small_lock_take(void) {
  /* a holder preempted mid-push is waited for without burning the whole time slice */
  for (unsigned spins = 0; atomic_flag_test_and_set_explicit(&small_lock, memory_order_acquire);)
    if (++spins % 64 == 0) sched_yield();
}

static void *small_take(void) {
  void *block = NULL;
  small_lock_take();
  if (small_count > 0) block = small_blocks[--small_count];
  atomic_flag_clear_explicit(&small_lock, memory_order_release);
  return block;
}

static void small_put(void *block) {
#if SMALL_KEEP_LIMIT > 0 /* (not even compiled otherwise: GCC warns of the index it can't reach) */
  small_lock_take();
  if (small_count < SMALL_KEEP_LIMIT) small_blocks[small_count++] = block, block = NULL;
  atomic_flag_clear_explicit(&small_lock, memory_order_release);
#endif
  free(block);
}

/* Keeps block (of `size` bytes, at most CACHE_MAX) for reuse; frees whatever it displaces,
 * outside the lock. */
static void cache_put(void *block, size_t size) {
  void *evicted[CACHE_SLOTS];
  int nevicted = 0, slot = -1;
  pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < CACHE_SLOTS && slot < 0; i++)
    if (!cache[i].block) slot = i;
  while (slot < 0 || cache_bytes + size > CACHE_BUDGET) {
    const int i = (int)(cache_next++ % CACHE_SLOTS);
    if (!cache[i].block) continue;
    evicted[nevicted++] = cache[i].block;
    cache_bytes -= cache[i].size;
    cache[i].block = NULL;
    if (slot < 0) slot = i;
  }
  cache[slot].block = block;
  cache[slot].size = size;
  cache_bytes += size;
  pthread_mutex_unlock(&cache_lock);
  for (int i = 0; i < nevicted; i++) free(evicted[i]);
}

/* Never called: its address marks a storage that lives in one block with its data. */
static void block_release(void *ctx, void *data, size_t nbytes) {
  (void)ctx, (void)data, (void)nbytes;
}

mt_status mt_storage_alloc_block(mt_storage **out, size_t nbytes, bool zero, size_t extra, void **extra_ptr) {
  /* extra and the struct keep malloc's alignment; the data is padded up to MT_ALIGN by hand */
  extra = (extra + MT_MALLOC_ALIGN - 1) / MT_MALLOC_ALIGN * MT_MALLOC_ALIGN;
  const size_t ssize = STRUCT_SIZE;
  size_t head = extra + ssize + MT_ALIGN - 1;
  if (nbytes > (size_t)INT64_MAX - MT_ALIGN - head)
    return mt_fail(MT_ENOMEM, "cannot allocate %zu bytes", nbytes);
  size_t rounded = rounded_size(nbytes), size = head + rounded;
  char *block = NULL;
  if (size <= SMALL_BLOCK) block = small_take(), size = SMALL_BLOCK;
  else if (size >= CACHE_MIN && size <= CACHE_MAX) block = cache_take(size);
  if (block) {
    if (zero) memset(block, 0, size);
  } else {
    /* calloc: a large block comes from mmap already zeroed, and its pages stay untouched */
    block = zero ? calloc(1, size) : malloc(size);
    if (!block) return mt_fail(MT_ENOMEM, "out of memory allocating %zu bytes", nbytes);
  }
  mt_storage *s = (mt_storage *)(block + extra);
  uintptr_t d = (uintptr_t)(block + extra + ssize);
  d = (d + MT_ALIGN - 1) & ~(uintptr_t)(MT_ALIGN - 1);
  s->data = (void *)d;
  s->nbytes = nbytes;
  atomic_init(&s->refcount, 1);
  s->release = block_release;
  s->ctx = block;
  s->owned = true;
  s->version = 0;
  s->serial = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed) + 1;
  atomic_fetch_add_explicit(&bytes_allocated, rounded, memory_order_relaxed);
  atomic_fetch_add_explicit(&bytes_live, rounded, memory_order_relaxed);
  if (extra_ptr) *extra_ptr = extra ? block : NULL;
  *out = s;
  return MT_OK;
}

mt_status mt_storage_alloc(mt_storage **out, size_t nbytes, bool zero) {
  return mt_storage_alloc_block(out, nbytes, zero, 0, NULL);
}

bool mt_storage_holds(const mt_storage *s, const void *p) {
  return s->release == block_release && (const char *)s->ctx == (const char *)p && (const void *)s != p;
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
  if (s->release == block_release) { /* struct, data and any extra in one block */
    size_t rounded = rounded_size(s->nbytes);
    atomic_fetch_sub_explicit(&bytes_live, rounded, memory_order_relaxed);
    /* the block's size as mt_storage_alloc_block computed it (extra: where the struct sits) */
    size_t size = (size_t)((char *)s - (char *)s->ctx) + STRUCT_SIZE + MT_ALIGN - 1 + rounded;
    if (size <= SMALL_BLOCK) small_put(s->ctx);
    else if (size >= CACHE_MIN && size <= CACHE_MAX) cache_put(s->ctx, size);
    else free(s->ctx);
    return;
  }
  if (s->owned) {
    atomic_fetch_sub_explicit(&bytes_live, rounded_size(s->nbytes), memory_order_relaxed);
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
