/*
 * tensor.c — tensor headers: lifetime, creation, element access. A tensor is a storage
 * reference plus offset, sizes and strides (in elements); views live in view.c.
 *
 * A fresh tensor's header lives in its storage's block (mt_storage_alloc_block): one malloc
 * per tensor. It is then only dead space once the tensor is released, until the storage
 * goes too (views keep it). Views get headers of their own.
 */
#include "mt_internal.h"

#include <math.h>
#include <stdlib.h>

MT_API void mt_tensor_retain(mt_tensor *t) {
  if (t) t->refcount++;
}

MT_API void mt_tensor_release(mt_tensor *t) {
  if (!t || --t->refcount > 0) return;
  mt_tensor_release(t->grad); /* a gradient never has a gradient: no deep recursion */
  mt_node_release(t->grad_fn);
  mt_storage *s = t->storage;
  bool in_block = mt_storage_holds(s, t); /* then freeing s frees t */
  mt_storage_release(s);
  if (!in_block) free(t);
}

MT_API int64_t mt_numel(const mt_tensor *t) {
  int64_t n = 1; /* saturates: an empty tensor's other dims may multiply past INT64_MAX */
  for (int d = 0; d < t->ndim; d++)
    if (mt_mul_overflow(n, t->sizes[d], &n)) n = INT64_MAX;
  return n;
}

MT_API bool mt_is_contiguous(const mt_tensor *t) {
  int64_t expected = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->sizes[d] == 0) return true;
    if (t->sizes[d] != 1 && t->strides[d] != expected) return false;
    /* saturates like mt_contiguous_strides: only an empty tensor can get there (and returns) */
    if (mt_mul_overflow(expected, t->sizes[d], &expected)) expected = INT64_MAX;
  }
  return true;
}

MT_API void *mt_data(const mt_tensor *t) {
  return (char *)mt_storage_data(t->storage) + t->offset * (int64_t)mt_dtype_size(t->dtype);
}

MT_API mt_status mt_wrap_dim(int64_t dim, int ndim, int *out) {
  int64_t n = ndim > 0 ? ndim : 1; /* a 0-dim tensor accepts dim 0 and -1, as PyTorch */
  if (dim < -n || dim >= n)
    return mt_fail(MT_EINDEX, "dim %lld is out of range for a %d-D tensor", MT_SHOW(dim), ndim);
  *out = (int)(dim < 0 ? dim + n : dim);
  return MT_OK;
}

int64_t mt_contiguous_strides(int ndim, const int64_t *sizes, int64_t *strides) {
  int64_t n = 1;
  for (int d = ndim - 1; d >= 0; d--) { /* saturates: with a 0 size no stride is ever used */
    strides[d] = n;
    if (mt_mul_overflow(n, sizes[d] > 1 ? sizes[d] : 1, &n)) n = INT64_MAX;
  }
  for (int d = 0; d < ndim; d++)
    if (sizes[d] == 0) return 0;
  return n;
}

mt_status mt_checked_numel(int ndim, const int64_t *sizes, int64_t *numel) {
  if (ndim < 0 || ndim > MT_MAX_DIMS)
    return mt_fail(MT_EARG, "%d dims is too many (at most %d)", ndim, MT_MAX_DIMS);
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (sizes[d] < 0) return mt_fail(MT_EARG, "size %lld of dim %lld is negative", (long long)sizes[d], MT_SHOW(d));
    if (mt_mul_overflow(n, sizes[d], &n)) return mt_fail(MT_ENOMEM, "tensor size overflows");
  }
  *numel = n;
  return MT_OK;
}

static void init_header(mt_tensor *t, mt_storage *s, mt_dtype dt, int64_t offset, int ndim, const int64_t *sizes,
                        const int64_t *strides) {
  memset(t, 0, sizeof *t);
  t->storage = s;
  t->offset = offset;
  t->ndim = ndim;
  t->dtype = dt;
  t->refcount = 1;
  if (ndim) {
    memcpy(t->sizes, sizes, (size_t)ndim * sizeof *sizes);
    memcpy(t->strides, strides, (size_t)ndim * sizeof *strides);
  }
}

static mt_status new_header(mt_tensor **out, mt_storage *s, mt_dtype dt, int64_t offset, int ndim,
                            const int64_t *sizes, const int64_t *strides) {
  mt_tensor *t = malloc(sizeof *t);
  if (!t) return mt_fail(MT_ENOMEM, "out of memory");
  init_header(t, s, dt, offset, ndim, sizes, strides);
  *out = t;
  return MT_OK;
}

static mt_status alloc_tensor(mt_tensor **out, mt_dtype dt, int ndim, const int64_t *sizes, bool zero) {
  if ((unsigned)dt >= MT_NUM_DTYPES) return mt_fail(MT_EDTYPE, "unknown dtype %d", (int)dt);
  int64_t numel, nbytes, strides[MT_MAX_DIMS];
  mt_status st = mt_checked_numel(ndim, sizes, &numel);
  if (st) return st;
  if (mt_mul_overflow(numel, (int64_t)mt_dtype_size(dt), &nbytes))
    return mt_fail(MT_ENOMEM, "tensor size overflows");
  mt_contiguous_strides(ndim, sizes, strides);
  mt_storage *s;
  void *hdr;
  if ((st = mt_storage_alloc_block(&s, (size_t)nbytes, zero, sizeof(mt_tensor), &hdr))) return st;
  init_header(hdr, s, dt, 0, ndim, sizes, strides);
  *out = hdr;
  return MT_OK;
}

MT_API mt_status mt_empty(mt_tensor **out, mt_dtype dt, int ndim, const int64_t *sizes) {
  return alloc_tensor(out, dt, ndim, sizes, false);
}

MT_API mt_status mt_zeros(mt_tensor **out, mt_dtype dt, int ndim, const int64_t *sizes) {
  return alloc_tensor(out, dt, ndim, sizes, true);
}

MT_API mt_status mt_full(mt_tensor **out, mt_dtype dt, int ndim, const int64_t *sizes, mt_scalar v) {
  mt_tensor *t;
  mt_status st = alloc_tensor(&t, dt, ndim, sizes, false);
  if (st) return st;
  mt_fill_into(t, v);
  *out = t;
  return MT_OK;
}

mt_status mt_empty_like(mt_tensor **out, const mt_tensor *t, mt_dtype dt) {
  return alloc_tensor(out, dt, t->ndim, t->sizes, false);
}

MT_API mt_status mt_scalar_tensor(mt_tensor **out, mt_dtype dt, mt_scalar v) { return mt_full(out, dt, 0, NULL, v); }

MT_API mt_status mt_wrap_number(mt_tensor **out, mt_scalar v) {
  mt_dtype dt = v.kind == MT_SCALAR_FLOAT ? MT_FLOAT64 : v.kind == MT_SCALAR_INT ? MT_INT64 : MT_BOOL;
  mt_status st = mt_full(out, dt, 0, NULL, v);
  if (st) return st;
  (*out)->wrapped_number = true;
  /* A node rather than a constant, so that a graph remakes it with its wrapped_number flag
   * (weakest in type promotion), which a tensor in a file would not keep. */
  if (mt_tracing()) mt_trace_record("wrap_number", 0, NULL, 1, out, "value=S", v);
  return MT_OK;
}

MT_API mt_status mt_from_storage(mt_tensor **out, mt_storage *s, mt_dtype dt, int64_t offset, int ndim,
                                 const int64_t *sizes, const int64_t *strides) {
  if ((unsigned)dt >= MT_NUM_DTYPES) return mt_fail(MT_EDTYPE, "unknown dtype %d", (int)dt);
  int64_t numel;
  mt_status st = mt_checked_numel(ndim, sizes, &numel);
  if (st) return st;
  if (offset < 0) return mt_fail(MT_EINDEX, "storage offset %lld is negative", (long long)offset);
  /* The furthest element must lie inside the storage; negative strides are refused. */
  int64_t last = offset, esize = (int64_t)mt_dtype_size(dt), nbytes;
  for (int d = 0; d < ndim && numel > 0; d++) {
    int64_t span;
    if (strides[d] < 0) return mt_fail(MT_EARG, "stride %lld of dim %lld is negative", (long long)strides[d], MT_SHOW(d));
    if (mt_mul_overflow(sizes[d] - 1, strides[d], &span) || mt_add_overflow(last, span, &last))
      return mt_fail(MT_EINDEX, "view extent overflows");
  }
  if (numel > 0 && (last == INT64_MAX || mt_mul_overflow(last + 1, esize, &nbytes) ||
                    (uint64_t)nbytes > mt_storage_nbytes(s)))
    return mt_fail(MT_EINDEX, "view reaches element %lld but the storage holds only %lld elements of %s",
                   (long long)last, (long long)(mt_storage_nbytes(s) / (size_t)esize), mt_dtype_name(dt));
  if ((st = new_header(out, s, dt, offset, ndim, sizes, strides))) return st;
  mt_storage_retain(s);
  return MT_OK;
}

mt_status mt_make_view(mt_tensor **out, const mt_tensor *t, int64_t offset, int ndim, const int64_t *sizes,
                       const int64_t *strides) {
  mt_status st = new_header(out, t->storage, t->dtype, offset, ndim, sizes, strides);
  if (!st) mt_storage_retain(t->storage);
  return st;
}

MT_API mt_status mt_alias(mt_tensor **out, const mt_tensor *t) {
  mt_status st = mt_make_view(out, t, t->offset, t->ndim, t->sizes, t->strides);
  if (!st && mt_tracing()) mt_trace_record("alias", 1, &t, 1, out, ""); /* detach, too */
  return st;
}

/* ---- element access ------------------------------------------------------------------------ */

char *mt_elem_ptr(const mt_tensor *t, int64_t i) {
  int64_t off = 0;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (i % t->sizes[d]) * t->strides[d];
    i /= t->sizes[d];
  }
  return (char *)mt_data(t) + off * (int64_t)mt_dtype_size(t->dtype);
}

static mt_scalar read_scalar(mt_dtype dt, const void *p) {
  const mt_dtype_traits *tr = mt_dtype_info(dt);
  if (tr->is_float) return mt_scalar_float(tr->to_f64(p));
  if (dt == MT_BOOL) return mt_scalar_bool(tr->to_i64(p) != 0);
  return mt_scalar_int(tr->to_i64(p));
}

/* Writes v converted to dt, with the same rules as a tensor conversion. */
void mt_write_scalar(mt_dtype dt, void *p, mt_scalar v) {
  const mt_dtype_traits *tr = mt_dtype_info(dt);
  if (v.kind == MT_SCALAR_FLOAT) tr->from_f64(p, v.f);
  else tr->from_i64(p, v.i);
}

MT_API mt_status mt_get_flat(const mt_tensor *t, int64_t i, mt_scalar *out) {
  int64_t n = mt_numel(t);
  if (i < 0 || i >= n) return mt_fail(MT_EINDEX, "element %lld is out of range for %lld elements", MT_SHOW(i), (long long)n);
  *out = read_scalar(t->dtype, mt_elem_ptr(t, i));
  return MT_OK;
}

MT_API mt_status mt_set_flat(mt_tensor *t, int64_t i, mt_scalar v) {
  int64_t n = mt_numel(t);
  if (i < 0 || i >= n) return mt_fail(MT_EINDEX, "element %lld is out of range for %lld elements", MT_SHOW(i), (long long)n);
  mt_write_scalar(t->dtype, mt_elem_ptr(t, i), v);
  return MT_OK;
}

MT_API mt_status mt_item(const mt_tensor *t, mt_scalar *out) {
  int64_t n = mt_numel(t);
  if (n != 1)
    return mt_fail(MT_EARG, "a tensor with %lld elements cannot be converted to a number", (long long)n);
  *out = read_scalar(t->dtype, mt_data(t));
  return MT_OK;
}

/* ---- ranges ---------------------------------------------------------------------------------- */

MT_API mt_status mt_arange(mt_tensor **out, mt_dtype dt, double start, double end, double step) {
  if (!isfinite(start) || !isfinite(end)) return mt_fail(MT_EARG, "start and end must be finite");
  if (step == 0 || !isfinite(step)) return mt_fail(MT_EARG, "step must be finite and nonzero");
  if ((step > 0 && end < start) || (step < 0 && end > start))
    return mt_fail(MT_EARG, "upper bound and lower bound are inconsistent with the sign of step");
  double len = ceil((end - start) / step);
  if (!(len < 9.0e18)) return mt_fail(MT_ENOMEM, "arange of %g elements is too large", len);
  int64_t n = (int64_t)len;
  mt_tensor *t;
  mt_status st = mt_empty(&t, dt, 1, &n);
  if (st) return st;
  const mt_dtype_traits *tr = mt_dtype_info(dt);
  char *p = mt_data(t);
  /* Integer ranges in exact int64 arithmetic, wrapping through uint64: i * step may pass
   * INT64_MAX on its way to a value in [start, end), e.g. arange(mininteger, 2^62, 2^62). */
  bool exact_ints = !tr->is_float && start == floor(start) && step == floor(step) && start >= -0x1p63 &&
                    start < 0x1p63 && step >= -0x1p63 && step < 0x1p63;
  const uint64_t ustart = exact_ints ? (uint64_t)(int64_t)start : 0, ustep = exact_ints ? (uint64_t)(int64_t)step : 0;
  for (int64_t i = 0; i < n; i++, p += tr->size) {
    if (exact_ints) tr->from_i64(p, (int64_t)(ustart + (uint64_t)i * ustep));
    else tr->from_f64(p, start + (double)i * step);
  }
  *out = t;
  return MT_OK;
}

MT_API mt_status mt_linspace(mt_tensor **out, mt_dtype dt, double start, double end, int64_t steps) {
  if (steps < 0) return mt_fail(MT_EARG, "number of steps must be non-negative, got %lld", (long long)steps);
  if (steps == 1) end = start; /* a single step is the start, as PyTorch */
  mt_tensor *t;
  mt_status st = mt_empty(&t, dt, 1, &steps);
  if (st) return st;
  const mt_dtype_traits *tr = mt_dtype_info(dt);
  char *p = mt_data(t);
  /* PyTorch fills the two halves from each end so that the last value is exactly `end` */
  double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
  int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; i++, p += tr->size)
    tr->from_f64(p, i < half ? start + step * (double)i : end - step * (double)(steps - i - 1));
  *out = t;
  return MT_OK;
}

MT_API mt_status mt_eye(mt_tensor **out, mt_dtype dt, int64_t n, int64_t m) {
  if (m < 0) m = n;
  if (n < 0) return mt_fail(MT_EARG, "n must be non-negative, got %lld", (long long)n);
  int64_t sizes[2] = {n, m};
  mt_tensor *t;
  mt_status st = mt_zeros(&t, dt, 2, sizes);
  if (st) return st;
  const mt_dtype_traits *tr = mt_dtype_info(dt);
  char *p = mt_data(t);
  for (int64_t i = 0; i < n && i < m; i++) tr->from_i64(p + (i * m + i) * (int64_t)tr->size, 1);
  *out = t;
  return MT_OK;
}

/* Writing through a stride-0 dim would store several results into one element. */
mt_status mt_check_writable(const mt_tensor *t) {
  for (int d = 0; d < t->ndim; d++)
    if (t->sizes[d] > 1 && t->strides[d] == 0)
      return mt_fail(MT_EARG, "more than one element of the written-to tensor refers to a single memory location "
                              "(an expanded view); clone it first");
  return MT_OK;
}
