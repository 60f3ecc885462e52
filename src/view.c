/*
 * view.c — views: new geometry over the same storage, never a copy (reshape excepted, which
 * copies only when no view can express the result, as PyTorch's does).
 *
 * Autograd: a view of a tensor that requires grad records a node (so the view has history and
 * in-place writes through it are refused). Every view's backward is a view or a scatter of the
 * gradient back into the input's geometry; the node saves no tensors, only a few numbers. A
 * view of a tensor without grad costs nothing beyond its header.
 */
#include "mt_internal.h"

/* ---- autograd ------------------------------------------------------------------------------ */

typedef enum view_kind {
  VIEW_RESHAPE,   /* view, reshape, flatten, squeeze, unsqueeze: reshape back */
  VIEW_TRANSPOSE, /* transpose back */
  VIEW_PERMUTE,   /* permute by the inverse */
  VIEW_NARROW,    /* into zeros, at [start, start + len) along dim */
  VIEW_SELECT,    /* into zeros, at index `start` along dim */
  VIEW_EXPAND     /* the gradient as is: the engine sums it down to the input's shape */
} view_kind;

typedef struct view_info {
  const char *name; /* PyTorch's node name */
  view_kind kind;
  int dim, dim2;
  int64_t start;
  int64_t perm[MT_MAX_DIMS];
} view_info;

typedef struct view_node {
  mt_node base;
  view_info info;
} view_node;

/* A zero gradient in the input's shape with g written into the part the view showed. */
static mt_status scatter_back(mt_tensor **out, const mt_tensor *g, const mt_edge *e, const view_info *v) {
  mt_tensor *z, *part;
  mt_status st = mt_zeros(&z, g->dtype, e->ndim, e->sizes);
  if (st) return st;
  st = v->kind == VIEW_NARROW ? mt_narrow(&part, z, v->dim, v->start, g->sizes[v->dim])
                              : mt_select(&part, z, v->dim, v->start);
  if (!st) {
    st = mt_copy_into(part, g);
    mt_tensor_release(part);
  }
  if (st) {
    mt_tensor_release(z);
    return st;
  }
  *out = z;
  return MT_OK;
}

static mt_status view_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  const view_info *v = &((view_node *)n)->info;
  const mt_edge *e = &n->next[0];
  mt_tensor *g = gout[0];
  if (!g) return MT_OK;
  switch (v->kind) {
  case VIEW_RESHAPE: return mt_reshape(&gin[0], g, e->ndim, e->sizes);
  case VIEW_TRANSPOSE: return mt_transpose(&gin[0], g, v->dim, v->dim2);
  case VIEW_PERMUTE: {
    int64_t inv[MT_MAX_DIMS];
    for (int i = 0; i < e->ndim; i++) inv[v->perm[i]] = i;
    return mt_permute(&gin[0], g, e->ndim, inv);
  }
  case VIEW_NARROW:
  case VIEW_SELECT: return scatter_back(&gin[0], g, e, v);
  case VIEW_EXPAND:
    mt_tensor_retain(g);
    gin[0] = g;
    return MT_OK;
  }
  return mt_fail(MT_ESTATE, "%s: unknown view kind", n->name);
}

/* out gets a node saying how its gradient goes back to t (caller checked mt_grad_needed). */
static mt_status record_view(mt_tensor *out, const mt_tensor *t, const view_info *info) {
  const mt_tensor *ins[1] = {t};
  view_node *n = (view_node *)mt_node_new(sizeof *n, info->name, view_backward, NULL, 1, ins, 1);
  if (!n) return MT_ENOMEM;
  n->info = *info;
  mt_node_set_output(&n->base, out, 0);
  mt_node_release(&n->base);
  return MT_OK;
}

/* The view of t with the given geometry, recorded when t takes part in autograd. */
static mt_status make_view(mt_tensor **out, const mt_tensor *t, int64_t offset, int ndim, const int64_t *sizes,
                           const int64_t *strides, const view_info *info) {
  mt_tensor *r;
  mt_status st = mt_make_view(&r, t, offset, ndim, sizes, strides);
  if (st) return st;
  if (mt_grad_needed(1, &t) && (st = record_view(r, t, info))) {
    mt_tensor_release(r);
    return st;
  }
  *out = r;
  return MT_OK;
}

#define RESHAPE_INFO(nm) (&(view_info){.name = (nm), .kind = VIEW_RESHAPE})

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

/* While tracing, a view op that succeeded records itself (with its arguments as given, so that
 * -1 sizes and negative dims keep their meaning for other input shapes); passes st through. */
#define RECORDED(st, ...) ((st) == MT_OK && mt_tracing() ? mt_trace_record(__VA_ARGS__) : (void)0, (st))

MT_API mt_status mt_view(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *sizes) {
  int64_t sz[MT_MAX_DIMS], strides[MT_MAX_DIMS];
  mt_status st = infer_sizes(t, ndim, sizes, sz);
  if (st) return st;
  if (!view_strides(t, ndim, sz, strides))
    return mt_fail(MT_ESHAPE, "view size is not compatible with the input's size and stride "
                              "(at least one dim spans two non-contiguous parts); use reshape instead");
  st = make_view(out, t, t->offset, ndim, sz, strides, RESHAPE_INFO("ViewBackward0"));
  return RECORDED(st, "view", 1, &t, 1, out, "sizes=In", ndim, sizes);
}

MT_API mt_status mt_reshape(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *sizes) {
  int64_t sz[MT_MAX_DIMS], strides[MT_MAX_DIMS];
  mt_status st = infer_sizes(t, ndim, sizes, sz);
  if (st) return st;
  if (view_strides(t, ndim, sz, strides)) {
    st = make_view(out, t, t->offset, ndim, sz, strides, RESHAPE_INFO("ReshapeAliasBackward0"));
  } else { /* a copy (recorded as CloneBackward0) viewed in the new shape, as PyTorch's graph has it */
    mt_tensor *c;
    if ((st = mt_clone(&c, t))) return st;
    mt_contiguous_strides(ndim, sz, strides);
    st = make_view(out, c, 0, ndim, sz, strides, RESHAPE_INFO("UnsafeViewBackward0"));
    mt_tensor_release(c);
  }
  return RECORDED(st, "reshape", 1, &t, 1, out, "sizes=In", ndim, sizes);
}

MT_API mt_status mt_flatten(mt_tensor **out, const mt_tensor *t, int64_t start_dim, int64_t end_dim) {
  int s, e;
  mt_status st;
  if ((st = mt_wrap_dim(start_dim, t->ndim, &s)) || (st = mt_wrap_dim(end_dim, t->ndim, &e))) return st;
  if (t->ndim == 0) {
    int64_t one = 1;
    st = mt_reshape(out, t, 1, &one);
    return RECORDED(st, "flatten", 1, &t, 1, out, "start_dim=i end_dim=i", start_dim, end_dim);
  }
  if (s > e) return mt_fail(MT_EARG, "start dim %lld comes after end dim %lld", MT_SHOW(s), MT_SHOW(e));
  if (s == e) { /* nothing to merge: t itself, as PyTorch */
    mt_tensor_retain((mt_tensor *)t);
    *out = (mt_tensor *)t;
    return RECORDED(MT_OK, "flatten", 1, &t, 1, out, "start_dim=i end_dim=i", start_dim, end_dim);
  }
  int64_t sz[MT_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < s; d++) sz[n++] = t->sizes[d];
  int64_t merged = 1; /* checked: an empty tensor's other dims may multiply past INT64_MAX */
  bool overflow = false;
  for (int d = s; d <= e; d++) overflow |= mt_mul_overflow(merged, t->sizes[d], &merged);
  for (int d = s; d <= e; d++)
    if (t->sizes[d] == 0) merged = 0, overflow = false;
  if (overflow) return mt_fail(MT_EARG, "size overflows");
  sz[n++] = merged;
  for (int d = e + 1; d < t->ndim; d++) sz[n++] = t->sizes[d];
  st = mt_reshape(out, t, n, sz);
  return RECORDED(st, "flatten", 1, &t, 1, out, "start_dim=i end_dim=i", start_dim, end_dim);
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
  st = make_view(out, t, t->offset, t->ndim, sz, sd,
                 &(view_info){.name = "TransposeBackward0", .kind = VIEW_TRANSPOSE, .dim = a, .dim2 = b});
  return RECORDED(st, "transpose", 1, &t, 1, out, "dim0=i dim1=i", d0, d1);
}

MT_API mt_status mt_t(mt_tensor **out, const mt_tensor *t) {
  if (t->ndim > 2) return mt_fail(MT_EARG, "expects a tensor with at most 2 dims, got %d (use transpose)", t->ndim);
  int64_t sz[2], sd[2];
  for (int d = 0; d < t->ndim; d++) sz[d] = t->sizes[t->ndim - 1 - d], sd[d] = t->strides[t->ndim - 1 - d];
  int last = t->ndim > 0 ? t->ndim - 1 : 0;
  mt_status st = make_view(out, t, t->offset, t->ndim, sz, sd,
                           &(view_info){.name = "TBackward0", .kind = VIEW_TRANSPOSE, .dim = 0, .dim2 = last});
  return RECORDED(st, "t", 1, &t, 1, out, "");
}

MT_API mt_status mt_permute(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *dims) {
  if (ndim != t->ndim)
    return mt_fail(MT_EARG, "permute needs %d dims for a %d-D tensor, got %d", t->ndim, t->ndim, ndim);
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  bool seen[MT_MAX_DIMS] = {false};
  view_info info = {.name = "PermuteBackward0", .kind = VIEW_PERMUTE};
  for (int i = 0; i < ndim; i++) {
    int d;
    mt_status st = mt_wrap_dim(dims[i], ndim, &d);
    if (st) return st;
    if (seen[d]) return mt_fail(MT_EARG, "dim %lld appears more than once in the permutation", MT_SHOW(d));
    seen[d] = true;
    sz[i] = t->sizes[d];
    sd[i] = t->strides[d];
    info.perm[i] = d;
  }
  mt_status st = make_view(out, t, t->offset, ndim, sz, sd, &info);
  return RECORDED(st, "permute", 1, &t, 1, out, "dims=In", ndim, dims);
}

MT_API mt_status mt_squeeze(mt_tensor **out, const mt_tensor *t, int64_t dim) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st) return st;
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < t->ndim; i++) /* a dim whose size is not 1 stays: the view is then t's own shape */
    if (i != d || t->sizes[i] != 1) sz[n] = t->sizes[i], sd[n++] = t->strides[i];
  st = make_view(out, t, t->offset, n, sz, sd, RESHAPE_INFO("SqueezeBackward1"));
  return RECORDED(st, "squeeze", 1, &t, 1, out, "dim=i", dim);
}

MT_API mt_status mt_squeeze_all(mt_tensor **out, const mt_tensor *t) {
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < t->ndim; i++)
    if (t->sizes[i] != 1) sz[n] = t->sizes[i], sd[n++] = t->strides[i];
  mt_status st = make_view(out, t, t->offset, n, sz, sd, RESHAPE_INFO("SqueezeBackward0"));
  return RECORDED(st, "squeeze_all", 1, &t, 1, out, "");
}

MT_API mt_status mt_unsqueeze(mt_tensor **out, const mt_tensor *t, int64_t dim) {
  int d;
  mt_status st;
  if ((st = check_out_dims(t->ndim + 1)) || (st = mt_wrap_dim(dim, t->ndim + 1, &d))) return st;
  int64_t sz[MT_MAX_DIMS], sd[MT_MAX_DIMS];
  for (int i = 0, j = 0; i <= t->ndim; i++) {
    if (i == d) {
      sz[i] = 1;
      sd[i] = 1; /* PyTorch's stride for the new size-1 dim; saturated for empty tensors */
      if (d < t->ndim && mt_mul_overflow(t->sizes[d], t->strides[d], &sd[i])) sd[i] = INT64_MAX;
    } else {
      sz[i] = t->sizes[j], sd[i] = t->strides[j];
      j++;
    }
  }
  st = make_view(out, t, t->offset, t->ndim + 1, sz, sd, RESHAPE_INFO("UnsqueezeBackward0"));
  return RECORDED(st, "unsqueeze", 1, &t, 1, out, "dim=i", dim);
}

/* Where a view starting at `index` along dim d begins. An empty tensor's strides may be huge
 * (nothing is ever read through them): its views keep its offset rather than overflow. */
static int64_t view_offset(const mt_tensor *t, int d, int64_t index) {
  return mt_numel(t) == 0 ? t->offset : t->offset + index * t->strides[d];
}

MT_API mt_status mt_narrow(mt_tensor **out, const mt_tensor *t, int64_t dim, int64_t start, int64_t length) {
  const int64_t start0 = start; /* as given: a negative start counts from the end of any size */
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
  st = make_view(out, t, view_offset(t, d, start), t->ndim, sz, t->strides,
                 &(view_info){.name = "SliceBackward0", .kind = VIEW_NARROW, .dim = d, .start = start});
  return RECORDED(st, "narrow", 1, &t, 1, out, "dim=i start=i length=i", dim, start0, length);
}

MT_API mt_status mt_select(mt_tensor **out, const mt_tensor *t, int64_t dim, int64_t index) {
  const int64_t index0 = index; /* as given: a negative index counts from the end of any size */
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
  st = make_view(out, t, view_offset(t, d, index), n, sz, sd,
                 &(view_info){.name = "SelectBackward0", .kind = VIEW_SELECT, .dim = d, .start = index});
  return RECORDED(st, "select", 1, &t, 1, out, "dim=i index=i", dim, index0);
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
  st = make_view(out, t, t->offset, ndim, sz, sd, &(view_info){.name = "ExpandBackward0", .kind = VIEW_EXPAND});
  return RECORDED(st, "expand", 1, &t, 1, out, "sizes=In", ndim, sizes);
}
