/*
 * view.c — views: new geometry over the same storage, never a copy (reshape excepted, which
 * copies only when no view can express the result, as PyTorch's does).
 */
#include "mt_internal.h"

static mt_status check_out_dims(int ndim) {
  if (ndim > MT_MAX_DIMS) return mt_fail(MT_EARG, "a %d-D result has too many dims (at most %d)", ndim, MT_MAX_DIMS);
  return MT_OK;
}

/* Resolves one -1 in `sizes` against numel; checks the product. */
static mt_status infer_sizes(const mt_tensor *t, int ndim, const int64_t *sizes, int64_t *out) {
  int64_t numel = mt_numel(t), prod = 1;
  int infer = -1;
  mt_status st = check_out_dims(ndim);
  if (st) return st;
  for (int d = 0; d < ndim; d++) {
    out[d] = sizes[d];
    if (sizes[d] == -1) {
      if (infer >= 0) return mt_fail(MT_EARG, "only one dimension can be inferred (-1)");
      infer = d;
    } else if (sizes[d] < 0) {
      return mt_fail(MT_EARG, "invalid size %lld for dim %lld", (long long)sizes[d], MT_SHOW(d));
    } else if (mt_mul_overflow(prod, sizes[d], &prod)) {
      return mt_fail(MT_EARG, "size overflows");
    }
  }
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  if (infer >= 0) {
    if (prod == 0 || numel % prod != 0)
      return mt_fail(MT_ESHAPE, "shape %s is invalid for input of size %lld", mt_shape_str(a, sizeof a, ndim, sizes),
                     (long long)numel);
    out[infer] = numel / prod;
  } else if (prod != numel) {
    return mt_fail(MT_ESHAPE, "shape %s is invalid for input of size %lld (shape %s)",
                   mt_shape_str(a, sizeof a, ndim, sizes), (long long)numel, mt_shape_str(b, sizeof b, t->ndim, t->sizes));
  }
  return MT_OK;
}

/* Strides that let `sizes` view t's memory without a copy, or false (PyTorch's computeStride:
 * walk chunks of t's dims that are contiguous with each other and split each chunk). */
static bool view_strides(const mt_tensor *t, int ndim, const int64_t *sizes, int64_t *strides) {
  int64_t numel = mt_numel(t);
  if (numel == 0 || t->ndim == 0) {
    mt_contiguous_strides(ndim, sizes, strides);
    return true;
  }
  int view_d = ndim - 1;
  int64_t base = t->strides[t->ndim - 1], chunk = 1, tensor_numel = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    tensor_numel *= t->sizes[d];
    if (d == 0 || (t->sizes[d - 1] != 1 && t->strides[d - 1] != tensor_numel * base)) {
      while (view_d >= 0 && (chunk < tensor_numel || sizes[view_d] == 1)) {
        strides[view_d] = chunk * base;
        chunk *= sizes[view_d];
        view_d--;
      }
      if (chunk != tensor_numel) return false;
      if (d > 0) {
        base = t->strides[d - 1];
        chunk = 1;
        tensor_numel = 1;
      }
    }
  }
  return view_d == -1;
}

MT_API mt_status mt_view(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *sizes) {
  int64_t sz[MT_MAX_DIMS], strides[MT_MAX_DIMS];
  mt_status st = infer_sizes(t, ndim, sizes, sz);
  if (st) return st;
  if (!view_strides(t, ndim, sz, strides))
    return mt_fail(MT_ESHAPE, "view size is not compatible with the input's size and stride "
                              "(at least one dim spans two non-contiguous parts); use reshape instead");
  return mt_make_view(out, t, t->offset, ndim, sz, strides);
}

MT_API mt_status mt_reshape(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *sizes) {
  int64_t sz[MT_MAX_DIMS], strides[MT_MAX_DIMS];
  mt_status st = infer_sizes(t, ndim, sizes, sz);
  if (st) return st;
  if (view_strides(t, ndim, sz, strides)) return mt_make_view(out, t, t->offset, ndim, sz, strides);
  mt_tensor *c;
  if ((st = mt_clone(&c, t))) return st;
  mt_contiguous_strides(ndim, sz, strides);
  st = mt_make_view(out, c, 0, ndim, sz, strides);
  mt_tensor_release(c);
  return st;
}

MT_API mt_status mt_flatten(mt_tensor **out, const mt_tensor *t, int64_t start_dim, int64_t end_dim) {
  int s, e;
  mt_status st;
  if ((st = mt_wrap_dim(start_dim, t->ndim, &s)) || (st = mt_wrap_dim(end_dim, t->ndim, &e))) return st;
  if (t->ndim == 0) {
    int64_t one = 1;
    return mt_reshape(out, t, 1, &one);
  }
  if (s > e) return mt_fail(MT_EARG, "start dim %lld comes after end dim %lld", MT_SHOW(s), MT_SHOW(e));
  int64_t sz[MT_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < s; d++) sz[n++] = t->sizes[d];
  int64_t merged = 1;
  for (int d = s; d <= e; d++) merged *= t->sizes[d];
  sz[n++] = merged;
  for (int d = e + 1; d < t->ndim; d++) sz[n++] = t->sizes[d];
  return mt_reshape(out, t, n, sz);
}

MT_API mt_status mt_transpose(mt_tensor **out, const mt_tensor *t, int64_t d0, int64_t d1) {
  int a, b;
  mt_status st;
  if ((st = mt_wrap_dim(d0, t->ndim, &a)) || (st = mt_wrap_dim(d1, t->ndim, &b))) return st;
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  memcpy(sz, t->sizes, sizeof sz);
  memcpy(sd, t->strides, sizeof sd);
  if (t->ndim > 0) {
    sz[a] = t->sizes[b], sz[b] = t->sizes[a];
    sd[a] = t->strides[b], sd[b] = t->strides[a];
  }
  return mt_make_view(out, t, t->offset, t->ndim, sz, sd);
}

MT_API mt_status mt_permute(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *dims) {
  if (ndim != t->ndim)
    return mt_fail(MT_EARG, "permute needs %d dims for a %d-D tensor, got %d", t->ndim, t->ndim, ndim);
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  bool seen[MT_MAX_DIMS] = {false};
  for (int i = 0; i < ndim; i++) {
    int d;
    mt_status st = mt_wrap_dim(dims[i], ndim, &d);
    if (st) return st;
    if (seen[d]) return mt_fail(MT_EARG, "dim %lld appears more than once in the permutation", MT_SHOW(d));
    seen[d] = true;
    sz[i] = t->sizes[d];
    sd[i] = t->strides[d];
  }
  return mt_make_view(out, t, t->offset, ndim, sz, sd);
}

MT_API mt_status mt_squeeze(mt_tensor **out, const mt_tensor *t, int64_t dim) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st) return st;
  if (t->ndim == 0 || t->sizes[d] != 1) return mt_alias(out, t);
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != d) sz[n] = t->sizes[i], sd[n++] = t->strides[i];
  return mt_make_view(out, t, t->offset, n, sz, sd);
}

MT_API mt_status mt_squeeze_all(mt_tensor **out, const mt_tensor *t) {
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < t->ndim; i++)
    if (t->sizes[i] != 1) sz[n] = t->sizes[i], sd[n++] = t->strides[i];
  return mt_make_view(out, t, t->offset, n, sz, sd);
}

MT_API mt_status mt_unsqueeze(mt_tensor **out, const mt_tensor *t, int64_t dim) {
  int d;
  mt_status st;
  if ((st = check_out_dims(t->ndim + 1)) || (st = mt_wrap_dim(dim, t->ndim + 1, &d))) return st;
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  for (int i = 0, j = 0; i <= t->ndim; i++) {
    if (i == d) {
      sz[i] = 1;
      sd[i] = d < t->ndim ? t->sizes[d] * t->strides[d] : 1;
    } else {
      sz[i] = t->sizes[j], sd[i] = t->strides[j];
      j++;
    }
  }
  return mt_make_view(out, t, t->offset, t->ndim + 1, sz, sd);
}

MT_API mt_status mt_narrow(mt_tensor **out, const mt_tensor *t, int64_t dim, int64_t start, int64_t length) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st) return st;
  if (t->ndim == 0) return mt_fail(MT_EARG, "cannot narrow a 0-dim tensor");
  int64_t size = t->sizes[d];
  if (start < -size || start > size)
    return mt_fail(MT_EINDEX, "start %lld is out of range for dim %lld of size %lld", MT_SHOW(start), MT_SHOW(d),
                   (long long)size);
  if (start < 0) start += size;
  if (length < 0 || length > size - start)
    return mt_fail(MT_EINDEX, "start %lld + length %lld exceeds dim %lld of size %lld", MT_SHOW(start),
                   (long long)length, MT_SHOW(d), (long long)size);
  int64_t sz[MT_MAX_DIMS];
  memcpy(sz, t->sizes, sizeof sz);
  sz[d] = length;
  return mt_make_view(out, t, t->offset + start * t->strides[d], t->ndim, sz, t->strides);
}

MT_API mt_status mt_select(mt_tensor **out, const mt_tensor *t, int64_t dim, int64_t index) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st) return st;
  if (t->ndim == 0) return mt_fail(MT_EARG, "cannot select from a 0-dim tensor");
  int64_t size = t->sizes[d];
  if (index < -size || index >= size)
    return mt_fail(MT_EINDEX, "index %lld is out of range for dim %lld of size %lld", MT_SHOW(index), MT_SHOW(d),
                   (long long)size);
  if (index < 0) index += size;
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != d) sz[n] = t->sizes[i], sd[n++] = t->strides[i];
  return mt_make_view(out, t, t->offset + index * t->strides[d], n, sz, sd);
}

MT_API mt_status mt_expand(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *sizes) {
  mt_status st = check_out_dims(ndim);
  if (st) return st;
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  if (ndim < t->ndim)
    return mt_fail(MT_ESHAPE, "cannot expand %s to %s: fewer dims than the tensor has",
                   mt_shape_str(a, sizeof a, t->ndim, t->sizes), mt_shape_str(b, sizeof b, ndim, sizes));
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  for (int i = ndim - 1, j = t->ndim - 1; i >= 0; i--, j--) {
    int64_t want = sizes[i];
    if (j < 0) { /* a new leading dim */
      if (want < 0) return mt_fail(MT_EARG, "size -1 is not allowed for the new leading dim %lld", MT_SHOW(i));
      sz[i] = want, sd[i] = 0;
    } else if (want == -1 || want == t->sizes[j]) {
      sz[i] = t->sizes[j], sd[i] = t->strides[j];
    } else if (t->sizes[j] == 1 && want >= 0) {
      sz[i] = want, sd[i] = 0;
    } else {
      return mt_fail(MT_ESHAPE, "the expanded size %lld must match the existing size %lld at dim %lld (%s to %s)",
                     (long long)want, (long long)t->sizes[j], MT_SHOW(i), mt_shape_str(a, sizeof a, t->ndim, t->sizes),
                     mt_shape_str(b, sizeof b, ndim, sizes));
    }
  }
  return mt_make_view(out, t, t->offset, ndim, sz, sd);
}
