/*
 * sort.c — sort and topk along one dim, with 0-based int64 indices.
 *
 * Each slice along the dim is gathered into (value, index) pairs, ordered, and scattered into
 * the outputs. NaN counts as larger than every number (as in PyTorch). sort is a stable merge
 * sort (insertion-sorted runs, then bottom-up merges), so equal values keep their order, as
 * torch.sort(stable=True). topk wants the k first elements of that same order: for small k a
 * bounded heap keyed on (value, index) finds them in O(n log k), then heapsort orders them;
 * otherwise the whole slice is sorted. Either way ties go to the lowest index.
 * float16 and bfloat16 are ordered as float32 (exact both ways) and converted back.
 * The values are differentiable: their gradient is scattered back through the indices.
 */
#include "mt_internal.h"

#include <stdlib.h>

#define RUN 32 /* insertion-sorted run length before merging */

#define IS_NAN_F(x) ((x) != (x))
#define IS_NAN_I(x) ((void)(x), 0)

/* "a comes before b": ascending with NaN last, or descending with NaN first. */
#define ASC(a, b, ISNAN) ((a) < (b) || (ISNAN(b) && !ISNAN(a)))
#define DESC(a, b, ISNAN) ((a) > (b) || (ISNAN(a) && !ISNAN(b)))

/* Sort functions for one value type and one direction. `before` is the stable order on
 * values; `first` breaks its ties by index, a total order. */
#define DEFINE_ORDER(S, T, DIR, ISNAN)                                                            \
  static inline bool before_##S##_##DIR(const pair_##S *a, const pair_##S *b) {                   \
    return DIR(a->v, b->v, ISNAN);                                                                \
  }                                                                                               \
  static inline bool first_##S##_##DIR(const pair_##S *a, const pair_##S *b) {                    \
    return DIR(a->v, b->v, ISNAN) || (!DIR(b->v, a->v, ISNAN) && a->i < b->i);                    \
  }                                                                                               \
  static void msort_##S##_##DIR(pair_##S *a, pair_##S *tmp, int64_t n) {                          \
    for (int64_t lo = 0; lo < n; lo += RUN) {                                                     \
      int64_t hi = n - lo < RUN ? n : lo + RUN;                                                   \
      for (int64_t i = lo + 1; i < hi; i++) {                                                     \
        pair_##S x = a[i];                                                                        \
        int64_t j = i;                                                                            \
        for (; j > lo && before_##S##_##DIR(&x, &a[j - 1]); j--) a[j] = a[j - 1];                 \
        a[j] = x;                                                                                 \
      }                                                                                           \
    }                                                                                             \
    pair_##S *src = a, *dst = tmp;                                                                \
    for (int64_t w = RUN; w < n; w *= 2) {                                                        \
      for (int64_t lo = 0; lo < n; lo += 2 * w) {                                                 \
        int64_t mid = n - lo < w ? n : lo + w, hi = n - lo < 2 * w ? n : lo + 2 * w;              \
        int64_t i = lo, j = mid, k = lo;                                                          \
        /* the right run's element goes first only if strictly before: stable */                  \
        while (i < mid && j < hi) dst[k++] = before_##S##_##DIR(&src[j], &src[i]) ? src[j++] : src[i++]; \
        while (i < mid) dst[k++] = src[i++];                                                      \
        while (j < hi) dst[k++] = src[j++];                                                       \
      }                                                                                           \
      pair_##S *s = src;                                                                          \
      src = dst, dst = s;                                                                         \
    }                                                                                             \
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);                                          \
  }                                                                                               \
  /* Max-heap on `first`: the root is the element that comes last among those kept. */            \
  static void sift_##S##_##DIR(pair_##S *h, int64_t n, int64_t i) {                               \
    pair_##S x = h[i];                                                                            \
    for (;;) {                                                                                    \
      int64_t c = 2 * i + 1;                                                                      \
      if (c >= n) break;                                                                          \
      if (c + 1 < n && first_##S##_##DIR(&h[c], &h[c + 1])) c++;                                  \
      if (!first_##S##_##DIR(&x, &h[c])) break;                                                   \
      h[i] = h[c], i = c;                                                                         \
    }                                                                                             \
    h[i] = x;                                                                                     \
  }                                                                                               \
  /* Leaves the k first of a[0..n) in a[0..k), in order. */                                       \
  static void select_##S##_##DIR(pair_##S *a, pair_##S *tmp, int64_t n, int64_t k) {              \
    if (k == 0) return;                                                                           \
    if (k > n / 16) {                                                                             \
      msort_##S##_##DIR(a, tmp, n);                                                               \
      return;                                                                                     \
    }                                                                                             \
    for (int64_t i = k / 2; i-- > 0;) sift_##S##_##DIR(a, k, i);                                  \
    for (int64_t i = k; i < n; i++)                                                               \
      if (first_##S##_##DIR(&a[i], &a[0])) {                                                      \
        a[0] = a[i];                                                                              \
        sift_##S##_##DIR(a, k, 0);                                                                \
      }                                                                                           \
    for (int64_t m = k - 1; m > 0; m--) {                                                         \
      pair_##S x = a[0];                                                                          \
      a[0] = a[m], a[m] = x;                                                                      \
      sift_##S##_##DIR(a, m, 0);                                                                  \
    }                                                                                             \
  }

/* One slice kernel per value type: x has n elements `xs` apart; the k first (k == n for
 * sort) go to vals/idx, `os` apart. */
typedef void (*slice_fn)(const void *x, int64_t n, int64_t xs, void *vals, int64_t *idx, int64_t os, int64_t k,
                         bool desc, bool partial, void *buf);

#define DEFINE_SORT(T, S, ISNAN)                                                                  \
  typedef struct pair_##S {                                                                       \
    T v;                                                                                          \
    int64_t i;                                                                                    \
  } pair_##S;                                                                                     \
  DEFINE_ORDER(S, T, ASC, ISNAN)                                                                  \
  DEFINE_ORDER(S, T, DESC, ISNAN)                                                                 \
  static void slice_##S(const void *x_, int64_t n, int64_t xs, void *vals_, int64_t *idx, int64_t os, int64_t k, \
                        bool desc, bool partial, void *buf) {                                     \
    const T *x = x_;                                                                              \
    T *vals = vals_;                                                                              \
    pair_##S *a = buf, *tmp = a + n;                                                              \
    for (int64_t i = 0; i < n; i++) a[i].v = x[i * xs], a[i].i = i;                               \
    if (partial) {                                                                                \
      if (desc) select_##S##_DESC(a, tmp, n, k);                                                  \
      else select_##S##_ASC(a, tmp, n, k);                                                        \
    } else {                                                                                      \
      if (desc) msort_##S##_DESC(a, tmp, n);                                                      \
      else msort_##S##_ASC(a, tmp, n);                                                            \
    }                                                                                             \
    for (int64_t r = 0; r < k; r++) vals[r * os] = a[r].v, idx[r * os] = a[r].i;                  \
  }

DEFINE_SORT(float, f32, IS_NAN_F)
DEFINE_SORT(double, f64, IS_NAN_F)
DEFINE_SORT(int64_t, i64, IS_NAN_I)
DEFINE_SORT(int32_t, i32, IS_NAN_I)
DEFINE_SORT(int16_t, i16, IS_NAN_I)
DEFINE_SORT(int8_t, i8, IS_NAN_I)
DEFINE_SORT(uint8_t, u8, IS_NAN_I)
DEFINE_SORT(bool, b8, IS_NAN_I)

static const slice_fn slice_kernels[MT_NUM_DTYPES] = {
    [MT_FLOAT32] = slice_f32, [MT_FLOAT64] = slice_f64, [MT_INT64] = slice_i64, [MT_INT32] = slice_i32,
    [MT_INT16] = slice_i16,   [MT_INT8] = slice_i8,     [MT_UINT8] = slice_u8,  [MT_BOOL] = slice_b8,
};
static const size_t pair_size[MT_NUM_DTYPES] = {
    [MT_FLOAT32] = sizeof(pair_f32), [MT_FLOAT64] = sizeof(pair_f64), [MT_INT64] = sizeof(pair_i64),
    [MT_INT32] = sizeof(pair_i32),   [MT_INT16] = sizeof(pair_i16),   [MT_INT8] = sizeof(pair_i8),
    [MT_UINT8] = sizeof(pair_u8),    [MT_BOOL] = sizeof(pair_b8),
};

static bool is_half(mt_dtype dt) { return dt == MT_FLOAT16 || dt == MT_BFLOAT16; }

/* The k first elements of every slice along dim, in order (partial), or all of them. */
static mt_status order(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t dim, int64_t k, bool desc,
                       bool partial) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st) return st;
  const int64_t n = t->ndim ? t->sizes[d] : 1;
  if (!partial) k = n;
  if (k < 0 || k > n)
    return mt_fail(MT_EARG, "k = %lld is out of range for dim %lld of size %lld (expected 0 to %lld)", (long long)k, MT_SHOW(d),
                   (long long)n, (long long)n);
  int64_t outer = 1, inner = 1, sizes[MT_MAX_DIMS];
  const bool empty = mt_numel(t) == 0; /* nothing to sort; its other dims may be huge */
  for (int i = 0; i < t->ndim; i++) {
    sizes[i] = i == d ? k : t->sizes[i];
    if (empty) outer = 0;
    else if (i < d) outer *= t->sizes[i];
    else if (i > d) inner *= t->sizes[i];
  }
  if (t->ndim == 0) k = 1; /* a 0-dim tensor is its own sort and top-1 (and, as PyTorch, top-0) */

  const mt_dtype cdt = is_half(t->dtype) ? MT_FLOAT32 : t->dtype;
  mt_tensor *c = NULL, *x = NULL, *vals = NULL, *idx = NULL;
  void *buf = NULL;
  if ((st = mt_to_dtype(&c, t, cdt))) return st;
  st = mt_contiguous(&x, c);
  mt_tensor_release(c);
  if (st) return st;
  if (!(st = mt_empty(&vals, cdt, t->ndim, sizes)) && !(st = mt_empty(&idx, MT_INT64, t->ndim, sizes))) {
    size_t bytes = (size_t)n * 2 * pair_size[cdt];
    if (n > 0 && outer * inner > 0 && k > 0 && !(buf = malloc(bytes))) {
      st = mt_fail(MT_ENOMEM, "out of memory for a %lld-element sort buffer", (long long)n);
    } else if (buf) {
      const size_t es = mt_dtype_size(cdt);
      const char *xd = mt_data(x);
      char *vd = mt_data(vals);
      int64_t *id = mt_data(idx);
      for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++)
          slice_kernels[cdt](xd + (size_t)(o * n * inner + j) * es, n, inner, vd + (size_t)(o * k * inner + j) * es,
                             id + o * k * inner + j, inner, k, desc, partial, buf);
    }
  }
  free(buf);
  mt_tensor_release(x);
  if (!st && vals->dtype != t->dtype) {
    mt_tensor *h;
    if (!(st = mt_to_dtype(&h, vals, t->dtype))) {
      mt_tensor_release(vals);
      vals = h;
    }
  }
  if (st) {
    mt_tensor_release(vals);
    mt_tensor_release(idx);
    return st;
  }
  *values = vals;
  *indices = idx;
  return MT_OK;
}

/* ---- backward: the values' gradient goes back to where each value came from --------------- */

typedef struct order_node {
  mt_node base;
  int dim;
  mt_saved idx;
} order_node;

static void order_release(mt_node *n) { mt_saved_release(&((order_node *)n)->idx); }

static mt_status order_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  order_node *on = (order_node *)n;
  const mt_edge *e = &n->next[0];
  mt_tensor *idx, *zeros, *g = gout[0];
  mt_status st;
  if (!g || !mt_edge_live(e)) return MT_OK;
  if ((st = mt_saved_get(&on->idx, n, &idx))) return st;
  if (e->ndim == 0) return mt_tensor_retain(g), gin[0] = g, MT_OK; /* its own sort */
  if ((st = mt_zeros(&zeros, g->dtype, e->ndim, e->sizes))) return st;
  st = mt_scatter(&gin[0], zeros, on->dim, idx, g);
  mt_tensor_release(zeros);
  return st;
}

/* order(), recording a node for the values when t requires grad (indices never do). The
 * forward runs with grad mode off, so that its internal copies record nothing. */
static mt_status order_rec(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t dim, int64_t k,
                           bool desc, bool partial) {
  if (!mt_grad_needed(1, &t)) return order(values, indices, t, dim, k, desc, partial);
  mt_tensor *vals, *idx;
  mt_set_grad_enabled(false);
  mt_status st = order(&vals, &idx, t, dim, k, desc, partial);
  mt_set_grad_enabled(true);
  if (st) return st;
  order_node *n = (order_node *)mt_node_new(sizeof *n, partial ? "TopkBackward0" : "SortBackward0", order_backward,
                                            order_release, 1, &t, 1);
  if (!n) st = MT_ENOMEM;
  else {
    mt_wrap_dim(dim, t->ndim, &n->dim); /* checked by the forward */
    if (!(st = mt_save_tensor(&n->idx, idx))) mt_node_set_output(&n->base, vals, 0);
    mt_node_release(&n->base);
  }
  if (st) {
    mt_tensor_release(vals);
    mt_tensor_release(idx);
    return st;
  }
  *values = vals;
  *indices = idx;
  return MT_OK;
}

MT_API mt_status mt_sort(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t dim, bool descending) {
  mt_status st = order_rec(values, indices, t, dim, 0, descending, false);
  if (st == MT_OK && mt_tracing() && values && indices) {
    mt_tensor *outs[2] = {*values, *indices};
    mt_trace_record("sort", 1, &t, 2, outs, "dim=i descending=b", dim, (int)descending);
  }
  return st;
}

MT_API mt_status mt_topk(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t k, int64_t dim,
                         bool largest) {
  mt_status st = order_rec(values, indices, t, dim, k, largest, true);
  if (st == MT_OK && mt_tracing() && values && indices) {
    mt_tensor *outs[2] = {*values, *indices};
    mt_trace_record("topk", 1, &t, 2, outs, "k=i dim=i largest=b", k, dim, (int)largest);
  }
  return st;
}
