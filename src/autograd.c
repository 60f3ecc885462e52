/*
 * autograd.c — the reverse-mode engine: grad mode, nodes and their edges, saved tensors, and
 * mt_backward. The ops themselves record nodes and define their backward beside their
 * forward (binary.c, unary.c, ...); this file only moves gradients between them.
 */
#include "mt_internal.h"

#include <stdlib.h>

static _Thread_local bool grad_disabled; /* zero-initialised: grad mode is on by default */
static _Thread_local uint64_t node_seq, walk_seq;

MT_API bool mt_is_grad_enabled(void) { return !grad_disabled; }
MT_API void mt_set_grad_enabled(bool enabled) { grad_disabled = !enabled; }

MT_API uint32_t mt_tensor_version(const mt_tensor *t) { return *mt_storage_version_ptr(t->storage); }
void mt_bump_version(mt_tensor *t) { (*mt_storage_version_ptr(t->storage))++; }

bool mt_grad_needed(int n, const mt_tensor *const *inputs) {
  if (grad_disabled) return false;
  for (int i = 0; i < n; i++)
    if (inputs[i] && inputs[i]->requires_grad) return true;
  return false;
}

/* ---- leaves and detaching ------------------------------------------------------------------ */

MT_API mt_status mt_requires_grad_(mt_tensor *t, bool requires_grad) {
  if (t->grad_fn) {
    if (requires_grad) return MT_OK;
    return mt_fail(MT_ESTATE, "requires_grad can only be changed on leaf tensors; use detach() for a copy "
                              "without history");
  }
  if (requires_grad && !mt_dtype_is_float(t->dtype))
    return mt_fail(MT_EDTYPE, "only tensors of floating point dtype can require gradients, got %s",
                   mt_dtype_name(t->dtype));
  t->requires_grad = requires_grad;
  return MT_OK;
}

MT_API mt_status mt_set_grad(mt_tensor *t, mt_tensor *g) {
  if (g) {
    if (g->ndim != t->ndim || memcmp(g->sizes, t->sizes, (size_t)t->ndim * sizeof(int64_t)) != 0) {
      char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
      return mt_fail(MT_ESHAPE, "gradient of shape %s does not match the tensor's shape %s",
                     mt_shape_str(a, sizeof a, g->ndim, g->sizes), mt_shape_str(b, sizeof b, t->ndim, t->sizes));
    }
    mt_tensor_retain(g);
  }
  mt_tensor_release(t->grad);
  t->grad = g;
  return MT_OK;
}

MT_API mt_status mt_detach(mt_tensor **out, const mt_tensor *t) { return mt_alias(out, t); }

/* ---- nodes ------------------------------------------------------------------------------------ */

mt_node *mt_node_new(size_t size, const char *name, mt_backward_fn backward, void (*release)(mt_node *),
                     int ninputs, const mt_tensor *const *inputs, int noutputs) {
  mt_node *n = calloc(1, size);
  mt_edge *next = ninputs ? calloc((size_t)ninputs, sizeof *next) : NULL;
  if (!n || (ninputs && !next)) {
    free(n);
    free(next);
    mt_fail(MT_ENOMEM, "out of memory recording %s", name);
    return NULL;
  }
  n->name = name;
  n->backward = backward;
  n->release = release;
  n->refcount = 1;
  n->ninputs = ninputs;
  n->noutputs = noutputs;
  n->next = next;
  n->seq = ++node_seq;
  for (int i = 0; i < ninputs; i++) {
    const mt_tensor *t = inputs[i];
    mt_edge *e = &next[i];
    if (!t) continue;
    e->dtype = t->dtype;
    e->ndim = t->ndim;
    memcpy(e->sizes, t->sizes, sizeof e->sizes);
    if (!t->requires_grad) continue;
    if (t->grad_fn) {
      e->node = t->grad_fn;
      e->output_nr = t->output_nr;
      e->node->refcount++;
    } else {
      e->leaf = (mt_tensor *)t;
      mt_tensor_retain(e->leaf);
    }
  }
  return n;
}

void mt_node_set_output(mt_node *n, mt_tensor *out, int nr) {
  /* An op whose forward went through other recorded ops gives its own node the last word;
   * the history recorded underneath is dropped instead of leaked. */
  mt_node_release(out->grad_fn);
  n->refcount++;
  out->grad_fn = n;
  out->output_nr = nr;
  out->requires_grad = true;
}

static void release_saved(mt_node *n) {
  if (!n->released && n->release) n->release(n);
  n->released = true;
}

void mt_node_release(mt_node *n) {
  /* A worklist threaded through `link`, so that freeing a 100k-step chain needs no stack. */
  mt_node *work = NULL;
  if (n && --n->refcount == 0) n->link = NULL, work = n;
  while (work) {
    mt_node *cur = work;
    work = cur->link;
    release_saved(cur);
    for (int i = 0; i < cur->ninputs; i++) {
      mt_edge *e = &cur->next[i];
      mt_tensor_release(e->leaf);
      if (e->node && --e->node->refcount == 0) {
        e->node->link = work;
        work = e->node;
      }
    }
    free(cur->next);
    free(cur);
  }
}

MT_API const char *mt_node_name(const mt_node *n) { return n->name; }
MT_API int mt_node_num_next(const mt_node *n) { return n->ninputs; }
MT_API mt_node *mt_node_next(const mt_node *n, int i) {
  return i >= 0 && i < n->ninputs ? n->next[i].node : NULL;
}

/* ---- saved tensors ---------------------------------------------------------------------------- */

mt_status mt_save_tensor(mt_saved *s, const mt_tensor *t) {
  mt_status st = mt_alias(&s->t, t);
  if (!st) s->version = mt_tensor_version(t);
  return st;
}

mt_status mt_saved_get(const mt_saved *s, const mt_node *n, mt_tensor **out) {
  if (n->released || !s->t)
    return mt_fail(MT_ESTATE, "trying to backward through the graph a second time (%s has already freed its "
                              "saved tensors); pass retain_graph to backward the first time",
                   n->name);
  if (mt_tensor_version(s->t) != s->version)
    return mt_fail(MT_ESTATE, "a tensor needed by %s to compute gradients was modified by an in-place operation "
                              "(version %u, expected %u)",
                   n->name, mt_tensor_version(s->t), s->version);
  *out = s->t;
  return MT_OK;
}

void mt_saved_release(mt_saved *s) {
  mt_tensor_release(s->t);
  s->t = NULL;
}

/* ---- in-place ops ----------------------------------------------------------------------------- */

mt_status mt_inplace_begin(mt_tensor *t, int n, const mt_tensor *const *inputs) {
  mt_status st = mt_check_writable(t);
  if (st) return st;
  if (mt_tracing()) mt_trace_refuse("an in-place operation");
  if (!grad_disabled) {
    if (t->requires_grad && !t->grad_fn)
      return mt_fail(MT_ESTATE, "a leaf tensor that requires grad cannot be modified in place while grad mode "
                                "is on (use no_grad, or an out-of-place op)");
    if (t->grad_fn)
      return mt_fail(MT_ESTATE, "in-place operations on a tensor with autograd history are not supported; use "
                                "the out-of-place form");
    if (mt_grad_needed(n, inputs))
      return mt_fail(MT_ESTATE, "an in-place operation cannot take an input that requires grad; use the "
                                "out-of-place form");
  }
  mt_bump_version(t);
  return MT_OK;
}

/* ---- gradient plumbing ------------------------------------------------------------------------ */

mt_status mt_sum_to(mt_tensor **out, const mt_tensor *g, int ndim, const int64_t *sizes) {
  if (g->ndim == ndim && memcmp(g->sizes, sizes, (size_t)ndim * sizeof(int64_t)) == 0) {
    mt_tensor_retain((mt_tensor *)g);
    *out = (mt_tensor *)g;
    return MT_OK;
  }
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  int lead = g->ndim - ndim;
  if (lead < 0) goto mismatch;
  int64_t dims[MT_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < g->ndim; d++) {
    if (d < lead) dims[nd++] = d;
    else if (sizes[d - lead] == 1 && g->sizes[d] != 1) dims[nd++] = d;
    else if (sizes[d - lead] != g->sizes[d]) goto mismatch;
  }
  mt_tensor *s;
  mt_status st = mt_sum(&s, g, nd, dims, true);
  if (st) return st;
  st = mt_reshape(out, s, ndim, sizes);
  mt_tensor_release(s);
  return st;
mismatch:
  return mt_fail(MT_ESTATE, "gradient of shape %s cannot be reduced to shape %s", mt_shape_str(a, sizeof a, g->ndim, g->sizes),
                 mt_shape_str(b, sizeof b, ndim, sizes));
}

/* A gradient in the input's shape and dtype. */
static mt_status fit_grad(mt_tensor **out, mt_tensor *g, const mt_edge *e) {
  mt_tensor *s;
  mt_status st = mt_sum_to(&s, g, e->ndim, e->sizes);
  if (st) return st;
  st = mt_to_dtype(out, s, e->dtype);
  mt_tensor_release(s);
  return st;
}

/* A tensor no one else holds can become a leaf's gradient as is; others are copied, so that
 * later in-place accumulation never writes into a tensor the user can see elsewhere. */
static mt_status accumulate_leaf(mt_tensor *leaf, mt_tensor *g) {
  if (!leaf->grad) {
    if (g->refcount == 1 && mt_storage_refcount(g->storage) == 1 && mt_is_contiguous(g) && !g->grad_fn) {
      mt_tensor_retain(g);
      leaf->grad = g;
      return MT_OK;
    }
    return mt_clone(&leaf->grad, g);
  }
  return mt_binary_(MT_ADD, leaf->grad, g);
}

static mt_status accumulate_buffer(mt_tensor **slot, mt_tensor *g) {
  if (!*slot) {
    mt_tensor_retain(g);
    *slot = g;
    return MT_OK;
  }
  mt_tensor *sum;
  mt_status st = mt_binary(&sum, MT_ADD, *slot, g);
  if (st) return st;
  mt_tensor_release(*slot);
  *slot = sum;
  return MT_OK;
}

/* Ready nodes, latest-created first (a binary max-heap on seq). */
typedef struct heap {
  mt_node **items;
  size_t len, cap;
} heap;

static mt_status heap_push(heap *h, mt_node *n) {
  if (h->len == h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 16;
    mt_node **items = realloc(h->items, cap * sizeof *items);
    if (!items) return mt_fail(MT_ENOMEM, "out of memory in backward");
    h->items = items, h->cap = cap;
  }
  size_t i = h->len++;
  while (i > 0 && h->items[(i - 1) / 2]->seq < n->seq) {
    h->items[i] = h->items[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->items[i] = n;
  return MT_OK;
}

static mt_node *heap_pop(heap *h) {
  mt_node *top = h->items[0], *last = h->items[--h->len];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->len) break;
    if (c + 1 < h->len && h->items[c + 1]->seq > h->items[c]->seq) c++;
    if (h->items[c]->seq <= last->seq) break;
    h->items[i] = h->items[c];
    i = c;
  }
  if (h->len) h->items[i] = last;
  return top;
}

/* ---- hooks ------------------------------------------------------------------------------------ */
/* Post-accumulate hooks, sorted by leaf address (a binary search finds a leaf's run). During a
 * backward, `pending` counts the edges into the leaf that have not delivered yet; `walk` says
 * which backward the count belongs to. Nothing here is looked at while no hook is set. */
typedef struct leaf_hook {
  mt_tensor *leaf; /* retained */
  mt_leaf_hook_fn fn;
  void *ud;
  uint64_t walk;
  int64_t pending;
} leaf_hook;

typedef struct end_hook {
  mt_backward_end_fn fn;
  void *ud;
} end_hook;

static leaf_hook *leaf_hooks;
static size_t n_leaf_hooks, cap_leaf_hooks;
static end_hook *end_hooks;
static size_t n_end_hooks, cap_end_hooks;

static size_t leaf_hook_lower(const mt_tensor *leaf) {
  size_t lo = 0, hi = n_leaf_hooks;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if ((uintptr_t)leaf_hooks[mid].leaf < (uintptr_t)leaf) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

MT_API mt_status mt_add_post_accumulate_hook(mt_tensor *leaf, mt_leaf_hook_fn fn, void *ud) {
  if (!fn) return mt_fail(MT_EARG, "post-accumulate hook: the function is NULL");
  if (leaf->grad_fn || !leaf->requires_grad)
    return mt_fail(MT_ESTATE, "post-accumulate hooks can only be registered on leaf tensors that require grad");
  if (n_leaf_hooks == cap_leaf_hooks) {
    size_t cap = cap_leaf_hooks ? 2 * cap_leaf_hooks : 16;
    leaf_hook *h = realloc(leaf_hooks, cap * sizeof *h);
    if (!h) return mt_fail(MT_ENOMEM, "out of memory registering a hook");
    leaf_hooks = h, cap_leaf_hooks = cap;
  }
  size_t at = leaf_hook_lower(leaf);
  while (at < n_leaf_hooks && leaf_hooks[at].leaf == leaf) at++; /* after the leaf's others: call order */
  memmove(&leaf_hooks[at + 1], &leaf_hooks[at], (n_leaf_hooks - at) * sizeof *leaf_hooks);
  leaf_hooks[at] = (leaf_hook){leaf, fn, ud, 0, 0};
  n_leaf_hooks++;
  mt_tensor_retain(leaf);
  return MT_OK;
}

MT_API bool mt_remove_post_accumulate_hook(mt_tensor *leaf, mt_leaf_hook_fn fn, void *ud) {
  for (size_t k = leaf_hook_lower(leaf); k < n_leaf_hooks && leaf_hooks[k].leaf == leaf; k++) {
    if (leaf_hooks[k].fn != fn || leaf_hooks[k].ud != ud) continue;
    memmove(&leaf_hooks[k], &leaf_hooks[k + 1], (n_leaf_hooks - k - 1) * sizeof *leaf_hooks);
    if (--n_leaf_hooks == 0) {
      free(leaf_hooks);
      leaf_hooks = NULL, cap_leaf_hooks = 0;
    }
    mt_tensor_release(leaf);
    return true;
  }
  return false;
}

MT_API mt_status mt_add_backward_end_hook(mt_backward_end_fn fn, void *ud) {
  if (!fn) return mt_fail(MT_EARG, "backward-end hook: the function is NULL");
  if (n_end_hooks == cap_end_hooks) {
    size_t cap = cap_end_hooks ? 2 * cap_end_hooks : 4;
    end_hook *h = realloc(end_hooks, cap * sizeof *h);
    if (!h) return mt_fail(MT_ENOMEM, "out of memory registering a hook");
    end_hooks = h, cap_end_hooks = cap;
  }
  end_hooks[n_end_hooks++] = (end_hook){fn, ud};
  return MT_OK;
}

MT_API bool mt_remove_backward_end_hook(mt_backward_end_fn fn, void *ud) {
  for (size_t k = 0; k < n_end_hooks; k++) {
    if (end_hooks[k].fn != fn || end_hooks[k].ud != ud) continue;
    memmove(&end_hooks[k], &end_hooks[k + 1], (n_end_hooks - k - 1) * sizeof *end_hooks);
    if (--n_end_hooks == 0) {
      free(end_hooks);
      end_hooks = NULL, cap_end_hooks = 0;
    }
    return true;
  }
  return false;
}

/* discover: one more edge of this backward leads into `leaf`. */
static void leaf_hooks_count(const mt_tensor *leaf, uint64_t walk) {
  for (size_t k = leaf_hook_lower(leaf); k < n_leaf_hooks && leaf_hooks[k].leaf == leaf; k++) {
    leaf_hook *h = &leaf_hooks[k];
    if (h->walk != walk) h->walk = walk, h->pending = 0;
    h->pending++;
  }
}

/* run_node: one edge into `leaf` has delivered (or had nothing to deliver); the hooks whose
 * count reaches zero run. A hook must not add or remove hooks. */
static void leaf_hooks_arrive(mt_tensor *leaf, uint64_t walk) {
  for (size_t k = leaf_hook_lower(leaf); k < n_leaf_hooks && leaf_hooks[k].leaf == leaf; k++) {
    leaf_hook *h = &leaf_hooks[k];
    if (h->walk == walk && --h->pending == 0) h->fn(h->ud, leaf);
  }
}

/* Counts, for every node reachable from root, how many edges lead into it; allocates its
 * gradient slots. Nodes are chained through `link` for the clean-up. */
static mt_status discover(mt_node *root, uint64_t walk, mt_node **visited) {
  heap stack = {0};
  mt_status st = MT_OK;
  root->walk = walk;
  root->deps = 0;
  root->link = NULL;
  *visited = root;
  if (!(root->grads = calloc((size_t)root->noutputs, sizeof *root->grads)))
    return mt_fail(MT_ENOMEM, "out of memory in backward");
  if ((st = heap_push(&stack, root))) return st;
  while (stack.len) {
    mt_node *n = stack.items[--stack.len];
    for (int i = 0; i < n->ninputs; i++) {
      mt_node *c = n->next[i].node;
      if (MT_UNLIKELY(n_leaf_hooks) && n->next[i].leaf) leaf_hooks_count(n->next[i].leaf, walk);
      if (!c) continue;
      if (c->walk != walk) {
        c->walk = walk;
        c->deps = 0;
        c->link = *visited;
        *visited = c;
        if (!(c->grads = calloc((size_t)c->noutputs, sizeof *c->grads))) {
          st = mt_fail(MT_ENOMEM, "out of memory in backward");
          break;
        }
        if ((st = heap_push(&stack, c))) break;
      }
      c->deps++;
    }
    if (st) break;
  }
  free(stack.items);
  return st;
}

static void clear_grads(mt_node *n) {
  if (!n->grads) return;
  for (int k = 0; k < n->noutputs; k++) mt_tensor_release(n->grads[k]);
  free(n->grads);
  n->grads = NULL;
}

/* Runs one node's backward and hands each input's gradient on. */
static mt_status run_node(mt_node *n, heap *ready, bool retain_graph) {
  if (n->released)
    return mt_fail(MT_ESTATE, "trying to backward through the graph a second time (%s has already freed its "
                              "saved tensors); pass retain_graph to backward the first time",
                   n->name);
  mt_tensor *small[4] = {0}, **gin = small;
  if (n->ninputs > 4 && !(gin = calloc((size_t)n->ninputs, sizeof *gin)))
    return mt_fail(MT_ENOMEM, "out of memory in backward");
  mt_status st = n->backward(n, n->grads, gin);
  for (int i = 0; i < n->ninputs && !st; i++) {
    mt_edge *e = &n->next[i];
    if (!gin[i] || !mt_edge_live(e)) continue;
    mt_tensor *g;
    if ((st = fit_grad(&g, gin[i], e))) break;
    if (e->leaf) st = accumulate_leaf(e->leaf, g);
    else st = accumulate_buffer(&e->node->grads[e->output_nr], g);
    mt_tensor_release(g);
  }
  for (int i = 0; i < n->ninputs; i++) mt_tensor_release(gin[i]);
  if (gin != small) free(gin);
  clear_grads(n);
  if (!retain_graph) release_saved(n);
  if (st) return st;
  if (MT_UNLIKELY(n_leaf_hooks))
    for (int i = 0; i < n->ninputs; i++)
      if (n->next[i].leaf) leaf_hooks_arrive(n->next[i].leaf, walk_seq);
  for (int i = 0; i < n->ninputs && !st; i++) {
    mt_node *c = n->next[i].node;
    if (c && --c->deps == 0) st = heap_push(ready, c);
  }
  return st;
}

static mt_status backward_walk(mt_tensor *root, const mt_tensor *grad, bool retain_graph) {
  if (!root->requires_grad)
    return mt_fail(MT_ESTATE, "the tensor does not require grad and has no grad_fn: nothing to differentiate");
  mt_tensor *g0;
  mt_status st;
  if (!grad) {
    if (mt_numel(root) != 1)
      return mt_fail(MT_ESHAPE, "a gradient can be implied only for outputs with one element; pass a gradient "
                                "for a tensor of %lld elements",
                     (long long)mt_numel(root));
    if ((st = mt_full(&g0, root->dtype, root->ndim, root->sizes, mt_scalar_float(1.0)))) return st;
  } else {
    if (grad->ndim != root->ndim || memcmp(grad->sizes, root->sizes, (size_t)root->ndim * sizeof(int64_t)) != 0) {
      char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
      return mt_fail(MT_ESHAPE, "gradient of shape %s does not match the output's shape %s",
                     mt_shape_str(a, sizeof a, grad->ndim, grad->sizes), mt_shape_str(b, sizeof b, root->ndim, root->sizes));
    }
    if ((st = mt_to_dtype(&g0, grad, root->dtype))) return st;
  }

  bool was_disabled = grad_disabled;
  grad_disabled = true; /* backward formulas run on plain tensors */
  if (!root->grad_fn) {
    st = accumulate_leaf(root, g0);
    if (!st && MT_UNLIKELY(n_leaf_hooks)) {
      uint64_t walk = ++walk_seq;
      leaf_hooks_count(root, walk);
      leaf_hooks_arrive(root, walk);
    }
  } else {
    mt_node *visited = NULL;
    heap ready = {0};
    mt_node *top = root->grad_fn;
    st = discover(top, ++walk_seq, &visited);
    if (!st) {
      top->grads[root->output_nr] = g0;
      mt_tensor_retain(g0);
      st = heap_push(&ready, top);
    }
    while (!st && ready.len) st = run_node(heap_pop(&ready), &ready, retain_graph);
    for (mt_node *n = visited; n; n = n->link) clear_grads(n);
    free(ready.items);
  }
  grad_disabled = was_disabled;
  mt_tensor_release(g0);
  return st;
}

MT_API mt_status mt_backward(mt_tensor *root, const mt_tensor *grad, bool retain_graph) {
  mt_status st = backward_walk(root, grad, retain_graph);
  if (MT_LIKELY(!n_end_hooks)) return st;
  /* The end hooks run with grad mode off, as the backward formulas did. */
  bool was_disabled = grad_disabled;
  grad_disabled = true;
  for (size_t k = 0; k < n_end_hooks; k++) st = end_hooks[k].fn(end_hooks[k].ud, st);
  grad_disabled = was_disabled;
  return st;
}
