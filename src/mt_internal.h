/*
 * mt_internal.h — what the core's files share and nobody else sees. Everything here is hidden
 * (the library is built with -fvisibility=hidden; only MT_API symbols are exported).
 */
#ifndef MT_INTERNAL_H
#define MT_INTERNAL_H

#include "moontorch.h"

#include <stdarg.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define MT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MT_LIKELY(x) __builtin_expect(!!(x), 1)
#define MT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define MT_PRINTF(f, a)
#define MT_LIKELY(x) (x)
#define MT_UNLIKELY(x) (x)
#endif

/* ---- errors (error.c) -------------------------------------------------------------------- */

/* Records a message for mt_last_error() and returns `code`, so `return mt_fail(...)` reads well. */
mt_status mt_fail(mt_status code, const char *fmt, ...) MT_PRINTF(2, 3);
/* A dim or index as the host counts it, for messages: non-negative ones shift by the base
 * (mt_set_index_base), negative ones count from the end in every convention. */
extern int mt_index_base;
#define MT_SHOW(i) ((long long)((i) >= 0 ? (int64_t)(i) + mt_index_base : (int64_t)(i)))
/* Writes "[2, 3]" into buf (always NUL-terminated); returns buf. */
char *mt_shape_str(char *buf, size_t n, int ndim, const int64_t *sizes);
#define MT_SHAPE_STRLEN (MT_MAX_DIMS * 22 + 4)

/* Checked arithmetic for sizes coming from users or files. */
static inline bool mt_mul_overflow(int64_t a, int64_t b, int64_t *out) { return __builtin_mul_overflow(a, b, out); }
static inline bool mt_add_overflow(int64_t a, int64_t b, int64_t *out) { return __builtin_add_overflow(a, b, out); }

/* ---- dtypes (dtype.c) -------------------------------------------------------------------- */

/* The C type of each dtype, for kernels generated per dtype. X(ENUM, ctype, suffix) */
typedef uint16_t mt_half;
typedef uint16_t mt_bf16;
#define MT_FOREACH_DTYPE(X)                                                                    \
  X(MT_FLOAT32, float, f32)                                                                     \
  X(MT_FLOAT64, double, f64)                                                                    \
  X(MT_FLOAT16, mt_half, f16)                                                                   \
  X(MT_BFLOAT16, mt_bf16, bf16)                                                                 \
  X(MT_INT64, int64_t, i64)                                                                     \
  X(MT_INT32, int32_t, i32)                                                                     \
  X(MT_INT16, int16_t, i16)                                                                     \
  X(MT_INT8, int8_t, i8)                                                                        \
  X(MT_UINT8, uint8_t, u8)                                                                      \
  X(MT_BOOL, bool, b8)

/* Dtypes that have their own arithmetic kernels; the others run in their traits' `compute`. */
#define MT_FOREACH_COMPUTE_DTYPE(X)                                                            \
  X(MT_FLOAT32, float, f32)                                                                     \
  X(MT_FLOAT64, double, f64)                                                                    \
  X(MT_INT64, int64_t, i64)

static inline size_t mt_dtype_size(mt_dtype dt) { return mt_dtype_info(dt)->size; }
static inline bool mt_dtype_is_float(mt_dtype dt) { return mt_dtype_info(dt)->is_float; }
static inline const char *mt_dtype_name(mt_dtype dt) { return mt_dtype_info(dt)->name; }

/* PyTorch's canCast: no float into an integer tensor, nothing but bool into a bool tensor. */
bool mt_can_cast(mt_dtype from, mt_dtype to);
/* PyTorch's checked conversion of a host number to dt: MT_EARG when it would overflow. */
mt_status mt_check_scalar_fits(mt_scalar v, mt_dtype dt);

/* Float -> integer without undefined behaviour: NaN -> 0, out of range saturates. */
static inline int64_t mt_f64_to_i64_sat(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)v;
}

/* ---- storages (storage.c) --------------------------------------------------------------- */

/* The storage's version counter (autograd's in-place check). */
uint32_t *mt_storage_version_ptr(mt_storage *s);
/* mt_storage_new without the zero fill, for outputs that are written in full anyway. */
mt_status mt_storage_alloc(mt_storage **out, size_t nbytes, bool zero);
/* The same with `extra` bytes for the caller (16-byte aligned) in the storage's own block,
 * *extra_ptr; they live until the storage is freed (tensor.c puts a tensor header there). */
mt_status mt_storage_alloc_block(mt_storage **out, size_t nbytes, bool zero, size_t extra, void **extra_ptr);
/* Whether p is the extra space of s's block (mt_storage_alloc_block with extra > 0). */
bool mt_storage_holds(const mt_storage *s, const void *p);

/* ---- tensors (tensor.c) ------------------------------------------------------------------ */

/* A new tensor header over t's storage (retained) with t's dtype and the given geometry.
 * No bounds check: callers derive the geometry from a valid view. */
mt_status mt_make_view(mt_tensor **out, const mt_tensor *t, int64_t offset, int ndim, const int64_t *sizes,
                       const int64_t *strides);
/* Contiguous strides for sizes; returns numel (checked by the caller beforehand). */
int64_t mt_contiguous_strides(int ndim, const int64_t *sizes, int64_t *strides);
/* numel with overflow check, MT_ENOMEM on overflow and MT_EARG on a negative size. */
mt_status mt_checked_numel(int ndim, const int64_t *sizes, int64_t *numel);
/* An empty tensor shaped like t, with dtype dt. */
mt_status mt_empty_like(mt_tensor **out, const mt_tensor *t, mt_dtype dt);
/* MT_EARG when t has a stride-0 dim (an expanded view): writes would collide. */
mt_status mt_check_writable(const mt_tensor *t);
/* Stores v into one element of dtype dt, converting as a tensor conversion would. */
void mt_write_scalar(mt_dtype dt, void *p, mt_scalar v);
/* Address of the element at flat logical index i (row-major over t's sizes). */
char *mt_elem_ptr(const mt_tensor *t, int64_t i);

/* ---- iteration (iter.c) ------------------------------------------------------------------ */

/* Walks operands of one shape (operand 0, usually the output, defines it; the others
 * broadcast to it) and calls `loop` on 1-D runs. Dims are reordered and merged so that the
 * innermost run is as long as possible; strides are in bytes. */
#define MT_ITER_MAX_OPS 4

typedef void (*mt_loop_fn)(char **data, const int64_t *strides, int64_t n, void *ctx);

typedef struct mt_iter {
  int nops;
  int ndim;
  int64_t numel;
  int64_t sizes[MT_MAX_DIMS];
  int64_t strides[MT_ITER_MAX_OPS][MT_MAX_DIMS]; /* bytes; dim 0 is the innermost */
  char *data[MT_ITER_MAX_OPS];
} mt_iter;

/* Fails with MT_ESHAPE (message names both shapes) if an input cannot broadcast to ops[0]. */
mt_status mt_iter_init(mt_iter *it, int nops, const mt_tensor *const *ops);
void mt_iter_run(const mt_iter *it, mt_loop_fn loop, void *ctx);

/* ---- copies (copy.c) --------------------------------------------------------------------- */

/* mt_copy_ without the autograd checks, for filling a fresh result from inputs that may
 * require grad (the op records its own node). */
mt_status mt_copy_into(mt_tensor *dst, const mt_tensor *src);
/* mt_fill_ without the autograd and tracing checks, for fresh tensors. */
void mt_fill_into(mt_tensor *t, mt_scalar v);
/* The conversion loop from src dtype to dst dtype (2 operands: dst, src). */
mt_loop_fn mt_convert_loop(mt_dtype dst, mt_dtype src);


/* ---- autograd recording (autograd.c) ----------------------------------------------------- */
/* A differentiable op, after computing its result `out` from inputs `ins`:
 *     if (mt_grad_needed(2, ins)) {
 *       mul_node *n = (mul_node *)mt_node_new(sizeof *n, "MulBackward0", mul_backward, mul_release, 2, ins, 1);
 *       if (!n || mt_save_tensor(&n->a, a) || ...) { mt_node_release(n ? &n->base : NULL); fail; }
 *       mt_node_set_output(&n->base, out, 0);
 *       mt_node_release(&n->base);            // the output now holds the node
 *     }
 * backward(self, grad_outputs, grad_inputs): grad_outputs[k] is the gradient of output k or
 * NULL (zero); it stores a new reference in grad_inputs[i] for each input i whose edge is live
 * (mt_edge_live), or leaves NULL for zero. A gradient may have the output's broadcast shape
 * and any float dtype: the engine sums it down to the input's shape and casts it. */
typedef struct mt_edge {
  struct mt_node *node; /* the input's grad_fn, or NULL */
  int output_nr;        /* which output of node the input is */
  mt_tensor *leaf;      /* the input itself, when it is a leaf that requires grad (retained) */
  mt_dtype dtype;       /* the input's dtype and shape, to fit its gradient */
  int ndim;
  int64_t sizes[MT_MAX_DIMS];
} mt_edge;

typedef mt_status (*mt_backward_fn)(struct mt_node *self, mt_tensor *const *grad_outputs, mt_tensor **grad_inputs);

struct mt_node {
  const char *name;
  mt_backward_fn backward;
  void (*release)(struct mt_node *self); /* drops saved data; runs at most once */
  int refcount;
  int ninputs, noutputs;
  mt_edge *next;
  bool released; /* saved data freed: a second backward through here is an error */
  uint64_t seq;  /* creation order: backward runs later nodes first */
  /* engine scratch, meaningful during one backward only */
  uint64_t walk;
  int deps;
  mt_tensor **grads;
  struct mt_node *link;
};

static inline bool mt_edge_live(const mt_edge *e) { return e->node || e->leaf; }

/* A tensor a node keeps for its backward: an alias without history (no cycle through
 * grad_fn) and the storage version it had, to refuse data overwritten in place since. */
typedef struct mt_saved {
  mt_tensor *t;
  uint32_t version;
} mt_saved;
mt_status mt_save_tensor(mt_saved *s, const mt_tensor *t);
/* The saved tensor, or MT_ESTATE if it was released or modified in place since. */
mt_status mt_saved_get(const mt_saved *s, const struct mt_node *n, mt_tensor **out);
void mt_saved_release(mt_saved *s);

/* Grad mode is on and some input requires grad. */
bool mt_grad_needed(int n, const mt_tensor *const *inputs);
/* A zeroed node of `size` bytes (>= sizeof(mt_node)) with one edge per input; refcount 1. */
struct mt_node *mt_node_new(size_t size, const char *name, mt_backward_fn backward, void (*release)(struct mt_node *),
                            int ninputs, const mt_tensor *const *inputs, int noutputs);
/* Makes `out` (fresh, without history) output `nr` of n; out holds a reference to n. */
void mt_node_set_output(struct mt_node *n, mt_tensor *out, int nr);
void mt_node_release(struct mt_node *n); /* NULL is fine; frees long chains without recursion */

/* In-place ops call this before writing t: refuses writes through stride-0 dims, writes into a
 * leaf that requires grad or a tensor with history, and in-place ops whose other inputs
 * require grad (the last three with grad mode on); then bumps t's version. */
mt_status mt_inplace_begin(mt_tensor *t, int n, const mt_tensor *const *inputs);
/* Bumps the version of t's storage (every view of it sees the change). */
void mt_bump_version(mt_tensor *t);
/* g summed over broadcast dims down to `sizes` (g retained and returned if already so). */
mt_status mt_sum_to(mt_tensor **out, const mt_tensor *g, int ndim, const int64_t *sizes);

/* ---- files (atomic.c, mapfile.c) --------------------------------------------------------- */

/* An atomic replacement of `path`: write through mt_atomic_fd(), then commit (fsync, rename
 * over path, fsync the directory) or abort (remove the temporary). The temporary has a fixed
 * name beside the target and is locked while written, so a killed save leaves at most one
 * stale temporary, the next save reuses it, and two concurrent saves serialise. */
typedef struct mt_atomic_file mt_atomic_file;
mt_status mt_atomic_open(mt_atomic_file **out, const char *path);
int mt_atomic_fd(const mt_atomic_file *f);
mt_status mt_atomic_commit(mt_atomic_file *f); /* frees f, also on failure */
void mt_atomic_abort(mt_atomic_file *f);       /* frees f; NULL is fine */
/* Writes all of buf (retrying short writes and EINTR); MT_EIO names `path` and errno. */
mt_status mt_write_all(int fd, const void *buf, size_t n, const char *path);

/* A whole file mapped read-only-private (copy-on-write), shared by every storage that points
 * into it: each storage holds a reference, the mapping goes with the last one. */
typedef struct mt_mapfile mt_mapfile;
mt_status mt_mapfile_open(mt_mapfile **out, const char *path);
const uint8_t *mt_mapfile_data(const mt_mapfile *m);
size_t mt_mapfile_size(const mt_mapfile *m);
/* A storage over [offset, offset + nbytes) of the mapping (bounds checked); holds a reference. */
mt_status mt_mapfile_storage(mt_storage **out, mt_mapfile *m, size_t offset, size_t nbytes);
void mt_mapfile_release(mt_mapfile *m);

/* ---- zip records (zip_write.c, zip_read.c) ----------------------------------------------- */

/* zlib's crc32(crc, buf, len), bit for bit, via libdeflate (several times faster; crc32.c). */
uint32_t mt_crc32(uint32_t crc, const void *buf, size_t len);

/* Writes PyTorch's container: every record stored, under the top folder "archive/", its data
 * starting on a 64-byte boundary (a local-header extra field 'FB' pads it). To a file
 * descriptor (fd >= 0, written from offset 0) or into memory (fd < 0). `label` names the
 * destination in error messages. */
typedef struct mt_zip_writer mt_zip_writer;
mt_status mt_zip_writer_new(mt_zip_writer **out, int fd, const char *label);
/* Adds archive/<name>; `data` is not copied and must stay valid until finish. */
mt_status mt_zip_writer_add(mt_zip_writer *w, const char *name, const void *data, size_t len);
/* Writes the archive out and frees w, also on failure. A memory writer hands its bytes out
 * through *data (malloc'ed) and *len; a file writer takes NULL for both. */
mt_status mt_zip_writer_finish(mt_zip_writer *w, void **data, size_t *len);
void mt_zip_writer_discard(mt_zip_writer *w); /* NULL is fine */

/* Reads a zip archive from a file descriptor or from memory. Opening validates the whole
 * directory (bounds, overlaps, duplicate or unsafe names, sizes a compressed record cannot
 * reach) and cross-checks it against libzip. Errors are MT_EFORMAT "<label>: <problem>". */
typedef struct mt_zip_reader mt_zip_reader;
typedef struct mt_zip_record {
  const char *name;     /* the entry's full name, top folder included */
  uint64_t size;        /* uncompressed bytes */
  uint64_t comp_size;   /* bytes in the archive */
  uint64_t data_offset; /* where those bytes start, from the start of the archive */
  uint64_t index;       /* libzip's index of the entry */
  bool stored;          /* not compressed: the data lies at data_offset as it is */
} mt_zip_record;
/* The reader keeps `fd` (it does not close it) and `data` (it does not copy it). */
mt_status mt_zip_reader_open_fd(mt_zip_reader **out, int fd, const char *label);
mt_status mt_zip_reader_open_memory(mt_zip_reader **out, const void *data, size_t len, const char *label);
void mt_zip_reader_close(mt_zip_reader *r); /* NULL is fine */
/* The top folder all records sit in, with its slash ("archive/" in ours), from the first entry. */
const char *mt_zip_top(const mt_zip_reader *r);
/* The record <top>/<name>, or NULL when there is none. */
const mt_zip_record *mt_zip_find(const mt_zip_reader *r, const char *name);
/* Reads a whole record into buf (rec->size bytes), inflating it if needed; fails unless it
 * holds exactly that many bytes and its CRC matches. */
mt_status mt_zip_read(mt_zip_reader *r, const mt_zip_record *rec, void *buf);

/* ---- the pickle subset (pickle_write.c, pickle_read.c) ------------------------------------ */

/* Storages met while writing, in first-seen order: record data/<i> holds storages[i]. */
typedef struct mt_storage_table {
  mt_storage **items;
  mt_dtype *dtypes;
  size_t len, cap;
} mt_storage_table;
void mt_storage_table_free(mt_storage_table *t); /* releases the storages, frees the arrays */

/* A growable byte buffer. */
typedef struct mt_buffer {
  uint8_t *data;
  size_t len, cap;
} mt_buffer;
mt_status mt_buffer_append(mt_buffer *b, const void *p, size_t n);

/* Protocol-2 pickle of a value tree as PyTorch writes checkpoints (tensors through
 * _rebuild_tensor_v2 and persistent ids ('storage', <class>, key, 'cpu', numel)). */
mt_status mt_pickle_write(const mt_value *root, mt_buffer *out, mt_storage_table *storages);

/* Called by the reader once per distinct storage key; must return a storage of exactly
 * numel elements of dt (the checkpoint layer checks the record's size). */
typedef mt_status (*mt_storage_loader)(void *ctx, const char *key, mt_dtype dt, int64_t numel, mt_storage **out);
/* Reads the pickle subset; refuses any global outside the allowlist, naming it. */
mt_status mt_pickle_read(const uint8_t *data, size_t len, mt_storage_loader load, void *ctx, mt_value **out);


/* ---- random numbers (random.c) ---------------------------------------------------------- */
/* bernoulli_(p)'s draw from g (NULL: the default generator) into n contiguous elements of `size`
 * bytes, written as the bit patterns `one` and `zero`; `each` (if not NULL) runs on every run of
 * elements [i0, i0 + m) while it is still in cache (dropout's mask and product, nn_misc.c). */
void mt_bernoulli_runs(void *data, size_t size, int64_t n, double p, const void *one, const void *zero,
                       mt_generator *g, void (*each)(void *ctx, int64_t i0, int64_t m), void *ctx);

/* ---- parallel loops (parallel.c) --------------------------------------------------------- */
/* mt_parallel_for(n, grain, fn, ctx) splits [0, n) into k = mt_parallel_chunks(n, grain)
 * chunks (ceil(n / grain), at most MT_PARALLEL_MAX_CHUNKS) and calls
 *     fn(ctx, begin, end, chunk, worker)
 * once per chunk: chunk c covers [c*n/k, (c+1)*n/k). The chunks depend on (n, grain) alone,
 * not on the thread count or which thread runs them, so a reduction that writes one partial
 * per chunk (partials[chunk]) and combines them in chunk order afterwards is bit-identical
 * for any thread count, run after run. `worker` (0 .. mt_get_num_threads() - 1) names the
 * thread running the chunk, for per-thread scratch owned by this loop (ids repeat across
 * concurrent loops, so never index global scratch by them); chunks on one worker run one at
 * a time.
 * Returns when every chunk is done. Runs inline (on the caller's thread, chunks in order)
 * when k == 1, with 1 thread, when called from inside a chunk (nested), or when another
 * thread's loop holds the pool; so small problems pay one function call per chunk. Choose
 * grain so a chunk is worth ~10 us or more (e.g. 32K floats for a cheap elementwise op):
 * handing a chunk to a spinning worker costs about a microsecond, waking a sleeping one tens.
 * fn must not fail (check inputs before the loop; record failures per chunk if it can);
 * chunks must write disjoint memory. fn may call OpenBLAS: OpenBLAS is kept single-threaded
 * (parallel.c), and products that are worth splitting go through mt_gemm. Between loops the
 * workers spin for up to 50 us (yielding now and then), then sleep. */
#define MT_PARALLEL_MAX_CHUNKS 256
#define MT_PARALLEL_MAX_THREADS 64
typedef void (*mt_parallel_fn)(void *ctx, int64_t begin, int64_t end, int chunk, int worker);
int mt_parallel_chunks(int64_t n, int64_t grain);
void mt_parallel_for(int64_t n, int64_t grain, mt_parallel_fn fn, void *ctx);

/* ---- gemm on the pool (gemm.c) ---------------------------------------------------------- */
/* C = alpha op(A) op(B) + beta C for row-major float32 (f64 false) or float64 matrices, as
 * cblas_?gemm with CblasRowMajor: cut into shape-fixed blocks of C's rows or columns, each a
 * single-threaded OpenBLAS call on the pool, so the bits do not depend on the thread count. */
void mt_gemm(bool f64, bool trans_a, bool trans_b, int M, int N, int K, double alpha, const void *A, int lda,
             const void *B, int ldb, double beta, void *C, int ldc);

/* ---- tracing hooks (jit.c) ---------------------------------------------------------------- */
/* Every public op that computes tensors ends with
 *     if (mt_tracing()) mt_trace_record("conv2d", 3, ins, 1, &out, "stride=I2 padding=I2 dilation=I2 groups=i",
 *                                       stride, padding, dilation, groups);
 * naming the op as jit_ops.c's table does; inputs may contain NULL (an absent optional
 * input). The attribute format is space-separated `name=T`, T one of: i (int64_t), f (double),
 * b (int, as bool), s (const char *), I<n> (const int64_t * with n items, n a digit),
 * In (int count, then const int64_t *), S (mt_scalar). Recording never fails the op: an
 * allocation failure poisons the trace and mt_trace_end reports it. mt_wrap_number marks its
 * result as a constant (mt_trace_constant); in-place ops (through mt_inplace_begin) and random
 * ops call mt_trace_refuse(name), which poisons the trace with "<name> cannot be traced".
 * A tensor's last record wins and the graph keeps only the nodes its outputs need, so an op
 * built from other recorded ops may record itself on top (it then runs as one node). */
extern _Thread_local mt_trace *mt_active_trace;
static inline bool mt_tracing(void) { return mt_active_trace != NULL; }
void mt_trace_record(const char *op, int nin, const mt_tensor *const *ins, int nout, mt_tensor *const *outs,
                     const char *attr_fmt, ...);
void mt_trace_refuse(const char *what);
/* Each storage gets a serial number at allocation: the tracer tells weights made before the
 * trace from tensors made during it. */
uint64_t mt_storage_serial(const mt_storage *s);

/* ---- distributed (dist.c; only in builds that include it) -------------------------------- */

/* MPI was initialised with at least MPI_THREAD_SERIALIZED: the reducer may call MPI from its
 * own thread (dist.c serialises all calls); otherwise it reduces on the caller's thread. */
bool mt_dist_threads_ok(void);

#endif /* MT_INTERNAL_H */
