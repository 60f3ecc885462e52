/*
 * jit_ops.c — the op table of traced graphs: for each op name, its inputs, outputs and
 * attribute format, and an invoker that reads the attributes and calls the same public core
 * function the trace saw. Names are the core functions' without mt_ ("conv2d" runs mt_conv2d);
 * elementwise ops are "binary" and "unary" with the op's name as attribute `op` ("add", "exp").
 *
 * Recorders (the core ops, mt_internal.h) pass exactly the format written here, with values of
 * the C types it names: `i` is an int64_t (cast ints and enums), `b` an int, `f` a double,
 * `S?` a `const mt_scalar *` (NULL: absent); mt_trace_record checks names, counts and formats.
 */
#include "jit.h"

#define U __attribute__((unused))
#define RUN(name) static mt_status run_##name(U const mt_value *a, U int nin, U mt_tensor *const *in, U mt_tensor **out)

/* ---- reading attributes (already checked against the format) ------------------------------- */

static const mt_value *attr(const mt_value *a, const char *k) { return mt_value_dict_get(a, k); }
static int64_t ai(const mt_value *a, const char *k) { return attr(a, k)->u.i; }
static bool ab(const mt_value *a, const char *k) { return attr(a, k)->u.b; }
static double af(const mt_value *a, const char *k) {
  const mt_value *v = attr(a, k);
  return v->kind == MT_VAL_INT ? (double)v->u.i : v->u.f;
}
/* An int list into buf (room for MT_MAX_DIMS); returns its length. */
static int al(const mt_value *a, const char *k, int64_t *buf) {
  const mt_value *v = attr(a, k);
  for (size_t i = 0; i < v->u.seq.len; i++) buf[i] = v->u.seq.items[i]->u.i;
  return (int)v->u.seq.len;
}
/* A scalar attribute; false when it is None (an absent optional one). */
static bool as_scalar(const mt_value *a, const char *k, mt_scalar *s) {
  const mt_value *v = attr(a, k);
  if (v->kind == MT_VAL_NONE) return false;
  *s = v->kind == MT_VAL_BOOL ? mt_scalar_bool(v->u.b) : v->kind == MT_VAL_INT ? mt_scalar_int(v->u.i)
                                                                               : mt_scalar_float(v->u.f);
  return true;
}
static mt_scalar aS(const mt_value *a, const char *k) {
  mt_scalar s = mt_scalar_int(0);
  as_scalar(a, k, &s);
  return s;
}

/* ---- value rules beyond types ---------------------------------------------------------------- */

static int binop_of(const char *name) {
  for (int op = 0; op < MT_NUM_BINOPS; op++)
    if (strcmp(name, mt_binop_name((mt_binop)op)) == 0) return op;
  return -1;
}
static int unop_of(const char *name) {
  for (int op = 0; op < MT_NUM_UNOPS; op++)
    if (strcmp(name, mt_unop_name((mt_unop)op)) == 0) return op;
  return -1;
}
static mt_status check_binary(const mt_value *a) {
  const char *s = attr(a, "op")->u.str.ptr;
  return binop_of(s) >= 0 ? MT_OK : mt_fail(MT_EFORMAT, "unknown binary op '%.40s'", s);
}
static mt_status check_unary(const mt_value *a) {
  const char *s = attr(a, "op")->u.str.ptr;
  return unop_of(s) >= 0 ? MT_OK : mt_fail(MT_EFORMAT, "unknown unary op '%.40s'", s);
}
static mt_status check_dtype(const mt_value *a) {
  mt_dtype dt;
  const char *s = attr(a, "dtype")->u.str.ptr;
  return mt_dtype_from_name(s, &dt) ? MT_OK : mt_fail(MT_EFORMAT, "unknown dtype '%.40s'", s);
}
static mt_status check_reduction(const mt_value *a) {
  int64_t r = ai(a, "reduction");
  return r >= MT_REDUCTION_NONE && r <= MT_REDUCTION_SUM
             ? MT_OK
             : mt_fail(MT_EFORMAT, "reduction %lld is not 0 (none), 1 (mean) or 2 (sum)", (long long)r);
}

/* ---- elementwise ------------------------------------------------------------------------------ */

RUN(binary) { return mt_binary(out, (mt_binop)binop_of(attr(a, "op")->u.str.ptr), in[0], in[1]); }
RUN(unary) { return mt_unary(out, (mt_unop)unop_of(attr(a, "op")->u.str.ptr), in[0]); }
RUN(clamp) {
  mt_scalar lo, hi;
  bool has_lo = as_scalar(a, "min", &lo), has_hi = as_scalar(a, "max", &hi);
  return mt_clamp(out, in[0], has_lo ? &lo : NULL, has_hi ? &hi : NULL);
}
RUN(where) { return mt_where(out, in[0], in[1], in[2]); }
RUN(masked_fill) { return mt_masked_fill(out, in[0], in[1], aS(a, "value")); }
RUN(wrap_number) { return mt_wrap_number(out, aS(a, "value")); }

/* ---- reductions ------------------------------------------------------------------------------- */

#define REDUCE(name)                                                                            \
  RUN(name) {                                                                                   \
    int64_t dims[MT_MAX_DIMS];                                                                  \
    int n = al(a, "dims", dims);                                                                \
    return mt_##name(out, in[0], n, dims, ab(a, "keepdim"));                                    \
  }
REDUCE(sum) REDUCE(prod) REDUCE(mean) REDUCE(amax) REDUCE(amin) REDUCE(all) REDUCE(any)
#define REDUCE_CORRECTED(name)                                                                  \
  RUN(name) {                                                                                   \
    int64_t dims[MT_MAX_DIMS];                                                                  \
    int n = al(a, "dims", dims);                                                                \
    return mt_##name(out, in[0], n, dims, ai(a, "correction"), ab(a, "keepdim"));               \
  }
REDUCE_CORRECTED(var) REDUCE_CORRECTED(std)
RUN(max_dim) { return mt_max_dim(&out[0], &out[1], in[0], ai(a, "dim"), ab(a, "keepdim")); }
RUN(min_dim) { return mt_min_dim(&out[0], &out[1], in[0], ai(a, "dim"), ab(a, "keepdim")); }
RUN(argmax) { return mt_argmax(out, in[0], ab(a, "all_dims"), ai(a, "dim"), ab(a, "keepdim")); }
RUN(argmin) { return mt_argmin(out, in[0], ab(a, "all_dims"), ai(a, "dim"), ab(a, "keepdim")); }
RUN(softmax) { return mt_softmax(out, in[0], ai(a, "dim")); }
RUN(log_softmax) { return mt_log_softmax(out, in[0], ai(a, "dim")); }
RUN(cumsum) { return mt_cumsum(out, in[0], ai(a, "dim")); }
RUN(sort) { return mt_sort(&out[0], &out[1], in[0], ai(a, "dim"), ab(a, "descending")); }
RUN(topk) { return mt_topk(&out[0], &out[1], in[0], ai(a, "k"), ai(a, "dim"), ab(a, "largest")); }

/* ---- views and copies ------------------------------------------------------------------------- */

#define SIZED(name, key)                                                                        \
  RUN(name) {                                                                                   \
    int64_t v[MT_MAX_DIMS];                                                                     \
    int n = al(a, key, v);                                                                      \
    return mt_##name(out, in[0], n, v);                                                         \
  }
SIZED(view, "sizes") SIZED(reshape, "sizes") SIZED(expand, "sizes") SIZED(permute, "dims")
RUN(flatten) { return mt_flatten(out, in[0], ai(a, "start_dim"), ai(a, "end_dim")); }
RUN(transpose) { return mt_transpose(out, in[0], ai(a, "dim0"), ai(a, "dim1")); }
RUN(t) { return mt_t(out, in[0]); }
RUN(squeeze) { return mt_squeeze(out, in[0], ai(a, "dim")); }
RUN(squeeze_all) { return mt_squeeze_all(out, in[0]); }
RUN(unsqueeze) { return mt_unsqueeze(out, in[0], ai(a, "dim")); }
RUN(narrow) { return mt_narrow(out, in[0], ai(a, "dim"), ai(a, "start"), ai(a, "length")); }
RUN(select) { return mt_select(out, in[0], ai(a, "dim"), ai(a, "index")); }
RUN(alias) { return mt_alias(out, in[0]); }
RUN(contiguous) { return mt_contiguous(out, in[0]); }
RUN(clone) { return mt_clone(out, in[0]); }
RUN(to_dtype) {
  mt_dtype dt = MT_FLOAT32;
  mt_dtype_from_name(attr(a, "dtype")->u.str.ptr, &dt);
  return mt_to_dtype(out, in[0], dt);
}

/* ---- indexing, joining, matrix products ------------------------------------------------------- */

RUN(index_select) { return mt_index_select(out, in[0], ai(a, "dim"), in[1]); }
RUN(gather) { return mt_gather(out, in[0], ai(a, "dim"), in[1]); }
RUN(scatter) { return mt_scatter(out, in[0], ai(a, "dim"), in[1], in[2]); }
RUN(scatter_add) { return mt_scatter_add(out, in[0], ai(a, "dim"), in[1], in[2]); }
RUN(cat) { return mt_cat(out, nin, (const mt_tensor *const *)in, ai(a, "dim")); }
RUN(stack) { return mt_stack(out, nin, (const mt_tensor *const *)in, ai(a, "dim")); }
RUN(matmul) { return mt_matmul(out, in[0], in[1]); }
RUN(mm) { return mt_mm(out, in[0], in[1]); }
RUN(bmm) { return mt_bmm(out, in[0], in[1]); }

/* ---- neural-network ops ----------------------------------------------------------------------- */

RUN(linear) { return mt_linear(out, in[0], in[1], in[2]); }
RUN(conv2d) {
  int64_t s[2], p[2], d[2];
  al(a, "stride", s);
  al(a, "padding", p);
  al(a, "dilation", d);
  return mt_conv2d(out, in[0], in[1], in[2], s, p, d, ai(a, "groups"));
}
RUN(conv1d) {
  return mt_conv1d(out, in[0], in[1], in[2], ai(a, "stride"), ai(a, "padding"), ai(a, "dilation"), ai(a, "groups"));
}
static mt_status max_pool2d(const mt_value *a, mt_tensor *input, mt_tensor **out, mt_tensor **indices) {
  int64_t k[2], s[2], p[2], d[2];
  al(a, "kernel", k);
  al(a, "stride", s);
  al(a, "padding", p);
  al(a, "dilation", d);
  return mt_max_pool2d(out, indices, input, k, s, p, d, ab(a, "ceil_mode"));
}
RUN(max_pool2d) { return max_pool2d(a, in[0], &out[0], NULL); }
RUN(max_pool2d_with_indices) { return max_pool2d(a, in[0], &out[0], &out[1]); }
RUN(avg_pool2d) {
  int64_t k[2], s[2], p[2];
  al(a, "kernel", k);
  al(a, "stride", s);
  al(a, "padding", p);
  return mt_avg_pool2d(out, in[0], k, s, p, ab(a, "ceil_mode"), ab(a, "count_include_pad"));
}
RUN(adaptive_avg_pool2d) {
  int64_t size[2];
  al(a, "output_size", size);
  return mt_adaptive_avg_pool2d(out, in[0], size);
}
RUN(batch_norm) {
  return mt_batch_norm(out, in[0], in[1], in[2], in[3], in[4], ab(a, "training"), af(a, "momentum"), af(a, "eps"));
}
RUN(layer_norm) {
  int64_t shape[MT_MAX_DIMS];
  int n = al(a, "normalized_shape", shape);
  return mt_layer_norm(out, in[0], n, shape, in[1], in[2], af(a, "eps"));
}
RUN(embedding) { return mt_embedding(out, in[0], in[1], ai(a, "padding_idx")); }
RUN(leaky_relu) { return mt_leaky_relu(out, in[0], af(a, "negative_slope")); }
RUN(gelu) { return mt_gelu(out, in[0], ab(a, "tanh_approximation")); }
RUN(silu) { return mt_silu(out, in[0]); }

#define RED(a) ((mt_reduction)ai(a, "reduction"))
RUN(nll_loss) { return mt_nll_loss(out, in[0], in[1], in[2], ai(a, "ignore_index"), RED(a)); }
RUN(cross_entropy) {
  return mt_cross_entropy(out, in[0], in[1], in[2], ai(a, "ignore_index"), af(a, "label_smoothing"), RED(a));
}
RUN(mse_loss) { return mt_mse_loss(out, in[0], in[1], RED(a)); }
RUN(l1_loss) { return mt_l1_loss(out, in[0], in[1], RED(a)); }
RUN(smooth_l1_loss) { return mt_smooth_l1_loss(out, in[0], in[1], RED(a), af(a, "beta")); }
RUN(bce_loss) { return mt_bce_loss(out, in[0], in[1], in[2], RED(a)); }
RUN(bce_with_logits) { return mt_bce_with_logits(out, in[0], in[1], in[2], in[3], RED(a)); }

/* ---- the table -------------------------------------------------------------------------------- */

/* Bits of optional inputs. */
#define OPT(i) (1u << (i))
#define REDUCTION_ATTRS "dims=In keepdim=b"
#define POOL_ATTRS "kernel=I2 stride=I2 padding=I2 dilation=I2 ceil_mode=b"

static const mt_jit_op ops[] = {
    /* name, inputs, optional inputs, outputs, attributes, value check, invoker */
    {"binary", 2, 0, 1, "op=s", check_binary, run_binary},
    {"unary", 1, 0, 1, "op=s", check_unary, run_unary},
    {"clamp", 1, 0, 1, "min=S? max=S?", NULL, run_clamp},
    {"where", 3, 0, 1, "", NULL, run_where},
    {"masked_fill", 2, 0, 1, "value=S", NULL, run_masked_fill},
    {"wrap_number", 0, 0, 1, "value=S", NULL, run_wrap_number},

    {"sum", 1, 0, 1, REDUCTION_ATTRS, NULL, run_sum},
    {"prod", 1, 0, 1, REDUCTION_ATTRS, NULL, run_prod},
    {"mean", 1, 0, 1, REDUCTION_ATTRS, NULL, run_mean},
    {"amax", 1, 0, 1, REDUCTION_ATTRS, NULL, run_amax},
    {"amin", 1, 0, 1, REDUCTION_ATTRS, NULL, run_amin},
    {"all", 1, 0, 1, REDUCTION_ATTRS, NULL, run_all},
    {"any", 1, 0, 1, REDUCTION_ATTRS, NULL, run_any},
    {"var", 1, 0, 1, "dims=In correction=i keepdim=b", NULL, run_var},
    {"std", 1, 0, 1, "dims=In correction=i keepdim=b", NULL, run_std},
    {"max_dim", 1, 0, 2, "dim=i keepdim=b", NULL, run_max_dim},
    {"min_dim", 1, 0, 2, "dim=i keepdim=b", NULL, run_min_dim},
    {"argmax", 1, 0, 1, "all_dims=b dim=i keepdim=b", NULL, run_argmax},
    {"argmin", 1, 0, 1, "all_dims=b dim=i keepdim=b", NULL, run_argmin},
    {"softmax", 1, 0, 1, "dim=i", NULL, run_softmax},
    {"log_softmax", 1, 0, 1, "dim=i", NULL, run_log_softmax},
    {"cumsum", 1, 0, 1, "dim=i", NULL, run_cumsum},
    {"sort", 1, 0, 2, "dim=i descending=b", NULL, run_sort},
    {"topk", 1, 0, 2, "k=i dim=i largest=b", NULL, run_topk},

    {"view", 1, 0, 1, "sizes=In", NULL, run_view},
    {"reshape", 1, 0, 1, "sizes=In", NULL, run_reshape},
    {"expand", 1, 0, 1, "sizes=In", NULL, run_expand},
    {"flatten", 1, 0, 1, "start_dim=i end_dim=i", NULL, run_flatten},
    {"transpose", 1, 0, 1, "dim0=i dim1=i", NULL, run_transpose},
    {"t", 1, 0, 1, "", NULL, run_t},
    {"permute", 1, 0, 1, "dims=In", NULL, run_permute},
    {"squeeze", 1, 0, 1, "dim=i", NULL, run_squeeze},
    {"squeeze_all", 1, 0, 1, "", NULL, run_squeeze_all},
    {"unsqueeze", 1, 0, 1, "dim=i", NULL, run_unsqueeze},
    {"narrow", 1, 0, 1, "dim=i start=i length=i", NULL, run_narrow},
    {"select", 1, 0, 1, "dim=i index=i", NULL, run_select},
    {"alias", 1, 0, 1, "", NULL, run_alias},
    {"contiguous", 1, 0, 1, "", NULL, run_contiguous},
    {"clone", 1, 0, 1, "", NULL, run_clone},
    {"to_dtype", 1, 0, 1, "dtype=s", check_dtype, run_to_dtype},

    {"index_select", 2, 0, 1, "dim=i", NULL, run_index_select},
    {"gather", 2, 0, 1, "dim=i", NULL, run_gather},
    {"scatter", 3, 0, 1, "dim=i", NULL, run_scatter},
    {"scatter_add", 3, 0, 1, "dim=i", NULL, run_scatter_add},
    {"cat", -1, 0, 1, "dim=i", NULL, run_cat},
    {"stack", -1, 0, 1, "dim=i", NULL, run_stack},
    {"matmul", 2, 0, 1, "", NULL, run_matmul},
    {"mm", 2, 0, 1, "", NULL, run_mm},
    {"bmm", 2, 0, 1, "", NULL, run_bmm},

    /* inputs in the order of the core function's tensor arguments */
    {"linear", 3, OPT(2), 1, "", NULL, run_linear},
    {"conv2d", 3, OPT(2), 1, "stride=I2 padding=I2 dilation=I2 groups=i", NULL, run_conv2d},
    {"conv1d", 3, OPT(2), 1, "stride=i padding=i dilation=i groups=i", NULL, run_conv1d},
    {"max_pool2d", 1, 0, 1, POOL_ATTRS, NULL, run_max_pool2d},
    {"max_pool2d_with_indices", 1, 0, 2, POOL_ATTRS, NULL, run_max_pool2d_with_indices},
    {"avg_pool2d", 1, 0, 1, "kernel=I2 stride=I2 padding=I2 ceil_mode=b count_include_pad=b", NULL, run_avg_pool2d},
    {"adaptive_avg_pool2d", 1, 0, 1, "output_size=I2", NULL, run_adaptive_avg_pool2d},
    {"batch_norm", 5, OPT(1) | OPT(2) | OPT(3) | OPT(4), 1, "training=b momentum=f eps=f", NULL, run_batch_norm},
    {"layer_norm", 3, OPT(1) | OPT(2), 1, "normalized_shape=In eps=f", NULL, run_layer_norm},
    {"embedding", 2, 0, 1, "padding_idx=i", NULL, run_embedding},
    {"leaky_relu", 1, 0, 1, "negative_slope=f", NULL, run_leaky_relu},
    {"gelu", 1, 0, 1, "tanh_approximation=b", NULL, run_gelu},
    {"silu", 1, 0, 1, "", NULL, run_silu},

    /* reduction: an mt_reduction as int64_t (0 none, 1 mean, 2 sum: PyTorch's own numbering) */
    {"nll_loss", 3, OPT(2), 1, "ignore_index=i reduction=i", check_reduction, run_nll_loss},
    {"cross_entropy", 3, OPT(2), 1, "ignore_index=i label_smoothing=f reduction=i", check_reduction,
     run_cross_entropy},
    {"mse_loss", 2, 0, 1, "reduction=i", check_reduction, run_mse_loss},
    {"l1_loss", 2, 0, 1, "reduction=i", check_reduction, run_l1_loss},
    {"smooth_l1_loss", 2, 0, 1, "reduction=i beta=f", check_reduction, run_smooth_l1_loss},
    {"bce_loss", 3, OPT(2), 1, "reduction=i", check_reduction, run_bce_loss},
    {"bce_with_logits", 4, OPT(2) | OPT(3), 1, "reduction=i", check_reduction, run_bce_with_logits},
};

const mt_jit_op *mt_jit_find_op(const char *name) {
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
    if (strcmp(ops[i].name, name) == 0) return &ops[i];
  return NULL;
}
