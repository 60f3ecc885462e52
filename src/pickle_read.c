/*
 * pickle_read.c — the pickle subset of PyTorch checkpoints, read without running anything.
 *
 * A pickle virtual machine whose only "calls" are a short allowlist of PyTorch globals, each
 * interpreted here (OrderedDict(), _rebuild_tensor_v2, ...); any other GLOBAL is refused by
 * name. Everything the file says is checked before use: lengths against the bytes left (so
 * memory stays proportional to the input), memo indices, stack underflow, MARK nesting,
 * argument shapes, the class and size of each storage key, and view bounds (mt_from_storage).
 *
 * Objects live in an arena while the pickle runs: nodes wrapping an mt_value, shared freely by
 * the stack, the memo and containers, as Python's objects are. At STOP the result is copied out
 * into an owning value tree. An object shared through the memo is copied once per reference,
 * against a budget proportional to the input (a few BINGETs must not expand into gigabytes),
 * and a container that contains itself is an error.
 */
#include "mt_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_DEPTH MT_MAX_NESTING /* open MARKs, and nesting of the result */
#define MAX_NAME 256       /* GLOBAL module / name lines */
#define MAX_KEY 255        /* storage keys */
#define BUDGET_PER_BYTE 64 /* copy-out allowance per input byte: about a node per opcode */

typedef enum { X_VALUE, X_GLOBAL, X_STORAGE } ext_kind;

typedef struct node {
  mt_value v; /* the object when ext == X_VALUE; containers point at other nodes' v */
  uint8_t ext;
  uint8_t visiting; /* on the path of the copy-out */
  int32_t arg;      /* X_GLOBAL: global id; X_STORAGE: index into reader.storages */
} node;

#define NODE(v) ((node *)(v)) /* v is a node's first member */

/* Nodes are allocated in slabs: one malloc per 256 objects rather than per object. */
#define SLAB 256
typedef struct slab {
  struct slab *next;
  size_t used;
  node nodes[SLAB];
} slab;

enum { G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_SIZE, G_DEVICE, G_CODECS_ENCODE, G_BYTES, G_STORAGE };

static const struct {
  const char *mod, *name;
} allowed[G_STORAGE] = {
    [G_ORDERED_DICT] = {"collections", "OrderedDict"},     [G_REBUILD_TENSOR] = {"torch._utils", "_rebuild_tensor_v2"},
    [G_REBUILD_PARAMETER] = {"torch._utils", "_rebuild_parameter"}, [G_SIZE] = {"torch", "Size"},
    [G_DEVICE] = {"torch", "device"},                      [G_CODECS_ENCODE] = {"_codecs", "encode"},
    [G_BYTES] = {"builtins", "bytes"}, /* b'' as Python's protocol 2 writes it; also __builtin__ */
};

/* Storage class per dtype, global id G_STORAGE + dtype (pickle_write.c has the same table). */
static const char *const storage_class[MT_NUM_DTYPES] = {
    [MT_FLOAT32] = "FloatStorage", [MT_FLOAT64] = "DoubleStorage", [MT_FLOAT16] = "HalfStorage",
    [MT_BFLOAT16] = "BFloat16Storage", [MT_INT64] = "LongStorage", [MT_INT32] = "IntStorage",
    [MT_INT16] = "ShortStorage", [MT_INT8] = "CharStorage", [MT_UINT8] = "ByteStorage",
    [MT_BOOL] = "BoolStorage",
};

/* torch.<dtype> globals (a dtype pickles as its name) load as that name, a str. */
static const char *const torch_dtypes[] = {"float32", "float64",   "float16",   "bfloat16",   "int64", "int32",
                                           "int16",   "int8",      "uint8",     "bool",       "complex32",
                                           "complex64", "complex128", "qint8", "quint8", "qint32", "quint4x2"};

/* Opcodes outside the subset, named in the error. */
static const char *const refused_opcodes[256] = {
    ['I'] = "INT",       ['L'] = "LONG",          ['S'] = "STRING",     ['V'] = "UNICODE",    ['F'] = "FLOAT",
    ['d'] = "DICT",      ['l'] = "LIST",          ['i'] = "INST",       ['o'] = "OBJ",        ['g'] = "GET",
    ['p'] = "PUT",       ['0'] = "POP",           ['1'] = "POP_MARK",   ['2'] = "DUP",        ['P'] = "PERSID",
    [0x81] = "NEWOBJ",   [0x82] = "EXT1",         [0x83] = "EXT2",      [0x84] = "EXT4",      [0x8f] = "EMPTY_SET",
    [0x90] = "ADDITEMS", [0x91] = "FROZENSET",    [0x92] = "NEWOBJ_EX", [0x96] = "BYTEARRAY8",
    [0x97] = "NEXT_BUFFER", [0x98] = "READONLY_BUFFER",
};

typedef struct storage_entry {
  mt_dtype dt;
  int64_t numel;
  mt_storage *s;
} storage_entry;

typedef struct reader {
  const uint8_t *start, *p, *end;
  size_t op_at; /* offset of the opcode being run, for messages */
  slab *arena;
  node *constants[3]; /* None, True, False */
  node **stack;
  size_t sp, stack_cap;
  size_t marks[MAX_DEPTH];
  size_t nmarks;
  node **memo; /* NULL: unset */
  size_t memo_cap, memo_count, memo_limit;
  storage_entry *storages;
  size_t nstorages, storages_cap;
  mt_value *storage_keys; /* str key -> int index into storages */
  mt_storage_loader load;
  void *ctx;
  size_t budget; /* bytes the copy-out may still allocate */
} reader;

static mt_status bad(reader *r, const char *fmt, ...) MT_PRINTF(2, 3);
static mt_status bad(reader *r, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mt_fail(MT_EFORMAT, "data.pkl: offset %zu: %s", r->op_at, msg);
}

static mt_status nomem(void) { return mt_fail(MT_ENOMEM, "data.pkl: out of memory"); }

/* "an int", "a list", ... for messages. */
static const char *a_kind(const node *n) {
  static const char *const names[] = {"None", "a bool", "an int", "a float", "a str",
                                      "a bytes", "a list", "a tuple", "a dict", "a tensor"};
  if (n->ext != X_VALUE) return n->ext == X_GLOBAL ? "a global" : "a storage";
  return (unsigned)n->v.kind < sizeof names / sizeof *names ? names[n->v.kind] : "?";
}

/* A name from the file, fit for a message: printable ASCII only, shortened. */
static void printable(char *dst, size_t cap, const char *src, size_t n) {
  size_t k = 0, i = 0;
  for (; i < n && k + 4 < cap; i++) dst[k++] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
  if (i < n) dst[k++] = '.', dst[k++] = '.', dst[k++] = '.';
  dst[k] = '\0';
}

/* "torch._utils._rebuild_tensor_v2", "torch.FloatStorage", ... */
static const char *global_name(int id, char buf[64]) {
  if (id >= G_STORAGE) {
    snprintf(buf, 64, "torch.%s", storage_class[(id - G_STORAGE) % MT_NUM_DTYPES]);
  } else {
    snprintf(buf, 64, "%s.%s", allowed[id].mod, allowed[id].name);
  }
  return buf;
}

/* ---- the arena, the stack, containers ---------------------------------------------------- */

static node *new_node(reader *r, mt_value_kind kind) {
  if (!r->arena || r->arena->used == SLAB) {
    slab *s = malloc(sizeof *s);
    if (!s) return NULL;
    s->next = r->arena;
    s->used = 0;
    r->arena = s;
  }
  node *n = &r->arena->nodes[r->arena->used++];
  memset(n, 0, sizeof *n);
  n->v.kind = kind;
  return n;
}

/* Frees every node's own memory (strings, item arrays, tensor references), not its children. */
static void free_arena(slab *s) {
  while (s) {
    for (size_t i = 0; i < s->used; i++) {
      mt_value *v = &s->nodes[i].v;
      if (s->nodes[i].ext == X_VALUE) switch (v->kind) {
        case MT_VAL_STR:
        case MT_VAL_BYTES: free(v->u.str.ptr); break;
        case MT_VAL_LIST:
        case MT_VAL_TUPLE: free(v->u.seq.items); break;
        case MT_VAL_DICT:
          free(v->u.dict.keys);
          free(v->u.dict.vals);
          break;
        case MT_VAL_TENSOR: mt_tensor_release(v->u.tensor); break;
        default: break;
        }
    }
    slab *next = s->next;
    free(s);
    s = next;
  }
}

/* The block p (of *cap slots of `size` bytes) grown by doubling to hold `need` slots: p itself
 * when it is big enough, NULL (p untouched) when memory runs out. */
static void *grown(void *p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return p;
  size_t ncap = *cap ? *cap : 16;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2 / size) return NULL;
    ncap *= 2;
  }
  if ((p = realloc(p, ncap * size))) *cap = ncap;
  return p;
}

static mt_status push(reader *r, node *n) {
  node **s = n ? grown(r->stack, &r->stack_cap, r->sp + 1, sizeof *s) : NULL;
  if (!s) return nomem();
  r->stack = s;
  r->stack[r->sp++] = n;
  return MT_OK;
}

static size_t frame_base(const reader *r) { return r->nmarks ? r->marks[r->nmarks - 1] : 0; }

/* The current frame (above the last MARK, as Python's unpickler sees it) holds n objects? */
static mt_status need_objects(reader *r, size_t n, const char *op) {
  size_t have = r->sp - frame_base(r);
  if (have < n) return bad(r, "%s needs %zu object%s on the stack, found %zu", op, n, n == 1 ? "" : "s", have);
  return MT_OK;
}

/* Closes the last MARK: the objects above it are stack[*base .. sp). */
static mt_status pop_mark(reader *r, size_t *base, const char *op) {
  if (!r->nmarks) return bad(r, "%s without a MARK", op);
  *base = r->marks[--r->nmarks];
  return MT_OK;
}

static mt_status seq_add(node *seq, node *item) {
  mt_value *s = &seq->v, **items = grown(s->u.seq.items, &s->u.seq.cap, s->u.seq.len + 1, sizeof *items);
  if (!items) return nomem();
  s->u.seq.items = items;
  items[s->u.seq.len++] = &item->v;
  return MT_OK;
}

/* Appends the pair; equal keys merge at copy-out (the last value wins, as in Python). */
static mt_status dict_add(node *dict, node *key, node *val) {
  mt_value *d = &dict->v;
  size_t kcap = d->u.dict.cap, vcap = d->u.dict.cap, need = d->u.dict.len + 1;
  mt_value **keys = grown(d->u.dict.keys, &kcap, need, sizeof *keys);
  if (keys) d->u.dict.keys = keys;
  mt_value **vals = keys ? grown(d->u.dict.vals, &vcap, need, sizeof *vals) : NULL;
  if (!vals) return nomem();
  d->u.dict.vals = vals;
  d->u.dict.cap = vcap; /* both blocks now hold at least vcap slots */
  keys[d->u.dict.len] = &key->v;
  vals[d->u.dict.len++] = &val->v;
  return MT_OK;
}

/* A tuple of the n objects on top of the stack, which it replaces. */
static mt_status make_tuple(reader *r, size_t n) {
  node *t = new_node(r, MT_VAL_TUPLE);
  if (!t || (n && !(t->v.u.seq.items = malloc(n * sizeof(mt_value *))))) return nomem();
  for (size_t i = 0; i < n; i++) t->v.u.seq.items[i] = &r->stack[r->sp - n + i]->v;
  t->v.u.seq.len = t->v.u.seq.cap = n;
  r->sp -= n;
  return push(r, t);
}

static bool is(const node *n, mt_value_kind k) { return n->ext == X_VALUE && n->v.kind == k; }
static node *item(const node *seq, size_t i) { return NODE(seq->v.u.seq.items[i]); }

/* ---- strings and numbers ----------------------------------------------------------------- */

static uint64_t rd_le(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  while (n--) v = v << 8 | p[n];
  return v;
}

/* The opcode's argument of n bytes, or an error when the data ends first. */
static mt_status take(reader *r, uint64_t n, const uint8_t **out, const char *what) {
  size_t left = (size_t)(r->end - r->p);
  if (n > left)
    return bad(r, "%s of %llu bytes runs past the end of the data (%zu left)", what, (unsigned long long)n, left);
  *out = r->p;
  r->p += n;
  return MT_OK;
}

/* UTF-8 as Python's pickle decodes it ("surrogatepass": lone surrogates are allowed). */
static bool utf8_ok(const uint8_t *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (!len || c > 0xf4 || n - i < len) return false;
    for (size_t k = 1; k < len; k++)
      if ((s[i + k] & 0xc0) != 0x80) return false;
    if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] >= 0x90))
      return false; /* overlong, or past U+10FFFF */
    i += len;
  }
  return true;
}

static mt_status push_bytes(reader *r, mt_value_kind kind, const void *p, size_t n) {
  node *s = new_node(r, kind);
  if (!s || !(s->v.u.str.ptr = malloc(n + 1))) return nomem();
  if (n) memcpy(s->v.u.str.ptr, p, n);
  s->v.u.str.ptr[n] = '\0';
  s->v.u.str.len = n;
  return push(r, s);
}

/* A string opcode with an n-byte little-endian length. kind STR must be UTF-8; kind NONE is a
 * Python 2 str: a str when it is UTF-8 (torch.load's encoding), bytes if not. */
static mt_status read_string(reader *r, size_t n, mt_value_kind kind, const char *op) {
  const uint8_t *p = NULL;
  mt_status st = take(r, n, &p, op);
  if (st) return st;
  uint64_t len = rd_le(p, n);
  if ((st = take(r, len, &p, op))) return st;
  bool text = utf8_ok(p, len);
  if (kind == MT_VAL_STR && !text) return bad(r, "%s string is not valid UTF-8", op);
  if (kind == MT_VAL_NONE) kind = text ? MT_VAL_STR : MT_VAL_BYTES;
  return push_bytes(r, kind, p, len);
}

static mt_status push_int(reader *r, int64_t i) {
  node *n = new_node(r, MT_VAL_INT);
  if (n) n->v.u.i = i;
  return push(r, n);
}

/* LONG1 / LONG4: a little-endian two's complement integer of at most 8 bytes here. */
static mt_status read_long(reader *r, size_t nlen, const char *op) {
  const uint8_t *p = NULL;
  mt_status st = take(r, nlen, &p, op);
  if (st) return st;
  uint64_t n = rd_le(p, nlen);
  if (n > 8) return bad(r, "%s integer of %llu bytes does not fit in 64 bits", op, (unsigned long long)n);
  if ((st = take(r, n, &p, op))) return st;
  uint64_t v = rd_le(p, n);
  if (n && n < 8 && (p[n - 1] & 0x80)) v |= ~0ull << (8 * n); /* sign-extend */
  return push_int(r, (int64_t)v);
}

/* ---- globals ----------------------------------------------------------------------------- */

/* Resolves module.name against the allowlist: a global node, or for a dtype its name (a str). */
static mt_status push_global(reader *r, const char *mod, size_t modlen, const char *name, size_t namelen) {
#define IS(s, n, lit) ((n) == strlen(lit) && memcmp((s), (lit), (n)) == 0)
  int id = -1;
  for (int i = 0; i < G_STORAGE && id < 0; i++)
    if (IS(mod, modlen, allowed[i].mod) && IS(name, namelen, allowed[i].name)) id = i;
  if (IS(mod, modlen, "__builtin__") && IS(name, namelen, "bytes")) id = G_BYTES;
  if (id < 0 && IS(mod, modlen, "torch")) {
    for (int dt = 0; dt < MT_NUM_DTYPES && id < 0; dt++)
      if (IS(name, namelen, storage_class[dt])) id = G_STORAGE + dt;
    for (size_t i = 0; i < sizeof torch_dtypes / sizeof *torch_dtypes; i++)
      if (IS(name, namelen, torch_dtypes[i])) return push_bytes(r, MT_VAL_STR, name, namelen);
  }
#undef IS
  if (id < 0) {
    char m[80], n[80];
    printable(m, sizeof m, mod, modlen);
    printable(n, sizeof n, name, namelen);
    return bad(r, "global '%s.%s' is not allowed", m, n);
  }
  node *g = new_node(r, MT_VAL_NONE);
  if (!g) return nomem();
  g->ext = X_GLOBAL;
  g->arg = id;
  return push(r, g);
}

/* GLOBAL: "module\nname\n". */
static mt_status read_global(reader *r) {
  const char *line[2];
  size_t len[2];
  for (int i = 0; i < 2; i++) {
    size_t left = (size_t)(r->end - r->p);
    const uint8_t *nl = memchr(r->p, '\n', left < MAX_NAME ? left : MAX_NAME);
    if (!nl) return bad(r, "GLOBAL %s is not a line of at most %d bytes", i ? "name" : "module", MAX_NAME);
    line[i] = (const char *)r->p;
    len[i] = (size_t)(nl - r->p);
    r->p = nl + 1;
  }
  return push_global(r, line[0], len[0], line[1], len[1]);
}

/* ---- persistent ids: storages ------------------------------------------------------------ */

/* BINPERSID of ('storage', torch.<X>Storage, key, location, numel): the storage, loaded
 * through the callback the first time its key is seen. Every location loads on the CPU. */
static mt_status read_persid(reader *r, node *pid) {
  if (!is(pid, MT_VAL_TUPLE) || pid->v.u.seq.len != 5 || !is(item(pid, 0), MT_VAL_STR) ||
      strcmp(item(pid, 0)->v.u.str.ptr, "storage") != 0 || item(pid, 1)->ext != X_GLOBAL ||
      item(pid, 1)->arg < G_STORAGE || !is(item(pid, 2), MT_VAL_STR) || !is(item(pid, 3), MT_VAL_STR) ||
      !is(item(pid, 4), MT_VAL_INT))
    return bad(r, "a persistent id must be ('storage', torch.<X>Storage, key, location, numel), not %s%s",
               a_kind(pid), is(pid, MT_VAL_TUPLE) ? " of another shape" : "");
  if (!r->load) return bad(r, "a storage is referenced, but no storages come with this data");
  const mt_value *key = &item(pid, 2)->v;
  mt_dtype dt = (mt_dtype)(item(pid, 1)->arg - G_STORAGE);
  int64_t numel = item(pid, 4)->v.u.i, nbytes;
  char shown[64];
  printable(shown, sizeof shown, key->u.str.ptr, key->u.str.len);
  if (key->u.str.len == 0 || key->u.str.len > MAX_KEY || strlen(key->u.str.ptr) != key->u.str.len)
    return bad(r, "storage key '%s' is empty, longer than %d bytes or holds a NUL", shown, MAX_KEY);
  if (numel < 0 || mt_mul_overflow(numel, (int64_t)mt_dtype_size(dt), &nbytes))
    return bad(r, "storage '%s' has an impossible size of %lld elements", shown, (long long)numel);
  const mt_value *known = mt_value_dict_get(r->storage_keys, key->u.str.ptr);
  size_t idx;
  if (known) {
    idx = (size_t)known->u.i;
    const storage_entry *e = &r->storages[idx];
    if (e->dt != dt)
      return bad(r, "storage '%s' is used as torch.%s and as torch.%s", shown, storage_class[e->dt], storage_class[dt]);
    if (e->numel != numel)
      return bad(r, "storage '%s' is declared with %lld and with %lld elements", shown, (long long)e->numel,
                 (long long)numel);
  } else {
    if (r->nstorages >= INT32_MAX) return bad(r, "too many storages");
    storage_entry *es = grown(r->storages, &r->storages_cap, r->nstorages + 1, sizeof *es);
    if (!es) return nomem();
    r->storages = es;
    mt_value *k = mt_value_str(key->u.str.ptr, key->u.str.len), *v = mt_value_int((int64_t)r->nstorages);
    if (!k || !v || mt_value_dict_set(r->storage_keys, k, v)) {
      if (!k || !v) mt_value_free(k), mt_value_free(v);
      return nomem();
    }
    mt_storage *s = NULL;
    mt_status st = r->load(r->ctx, key->u.str.ptr, dt, numel, &s);
    if (st) return st; /* the loader's message names the record */
    if (!s || mt_storage_nbytes(s) < (size_t)nbytes) {
      mt_storage_release(s);
      return bad(r, "the loader gave storage '%s' fewer than %lld elements", shown, (long long)numel);
    }
    idx = r->nstorages++;
    r->storages[idx] = (storage_entry){dt, numel, s};
  }
  node *n = new_node(r, MT_VAL_NONE);
  if (!n) return nomem();
  n->ext = X_STORAGE;
  n->arg = (int32_t)idx;
  return push(r, n);
}

/* ---- REDUCE: the allowlisted calls ------------------------------------------------------- */

/* A tuple of at most MT_MAX_DIMS ints (sizes or strides). */
static mt_status int_tuple(reader *r, const node *t, const char *what, int64_t *out, int *n) {
  if (!is(t, MT_VAL_TUPLE)) return bad(r, "tensor %s are %s, not a tuple", what, a_kind(t));
  if (t->v.u.seq.len > MT_MAX_DIMS) return bad(r, "tensor %s have %zu dims, more than %d", what, t->v.u.seq.len, MT_MAX_DIMS);
  for (size_t i = 0; i < t->v.u.seq.len; i++) {
    if (!is(item(t, i), MT_VAL_INT)) return bad(r, "tensor %s hold %s, not an int", what, a_kind(item(t, i)));
    out[i] = item(t, i)->v.u.i;
  }
  *n = (int)t->v.u.seq.len;
  return MT_OK;
}

/* _rebuild_tensor_v2(storage, offset, sizes, strides, requires_grad, hooks[, metadata]) */
static mt_status rebuild_tensor(reader *r, const node *args, node **out) {
  size_t n = args->v.u.seq.len;
  if (n != 6 && n != 7) return bad(r, "_rebuild_tensor_v2 takes 6 arguments, not %zu", n);
  const node *sn = item(args, 0);
  if (sn->ext != X_STORAGE) return bad(r, "_rebuild_tensor_v2 needs a storage, not %s", a_kind(sn));
  if (!is(item(args, 1), MT_VAL_INT)) return bad(r, "tensor offset is %s, not an int", a_kind(item(args, 1)));
  if (!is(item(args, 4), MT_VAL_BOOL) || !is(item(args, 5), MT_VAL_DICT) ||
      (n == 7 && !is(item(args, 6), MT_VAL_NONE) && !is(item(args, 6), MT_VAL_DICT)))
    return bad(r, "_rebuild_tensor_v2: requires_grad must be a bool, hooks and metadata dicts");
  int64_t sizes[MT_MAX_DIMS], strides[MT_MAX_DIMS], offset = item(args, 1)->v.u.i, numel = 1;
  int ndim, nstrides;
  mt_status st;
  if ((st = int_tuple(r, item(args, 2), "sizes", sizes, &ndim)) ||
      (st = int_tuple(r, item(args, 3), "strides", strides, &nstrides)))
    return st;
  if (ndim != nstrides) return bad(r, "tensor has %d sizes but %d strides", ndim, nstrides);
  char shape[MT_SHAPE_STRLEN], why[200];
  mt_shape_str(shape, sizeof shape, ndim, sizes);
  for (int d = 0; d < ndim; d++)
    if (sizes[d] < 0 || mt_mul_overflow(numel, sizes[d], &numel)) return bad(r, "tensor size %s is impossible", shape);
  const storage_entry *e = &r->storages[sn->arg];
  mt_tensor *t;
  if ((st = mt_from_storage(&t, e->s, e->dt, offset, ndim, sizes, strides))) {
    if (st == MT_ENOMEM) return st; /* sizes are checked: this is a real allocation failure */
    snprintf(why, sizeof why, "%s", mt_last_error());
    return bad(r, "tensor of size %s at offset %lld does not fit its storage: %s", shape, (long long)offset, why);
  }
  node *tn = new_node(r, MT_VAL_TENSOR);
  if (!tn) {
    mt_tensor_release(t);
    return nomem();
  }
  tn->v.u.tensor = t;
  *out = tn;
  return MT_OK;
}

/* _codecs.encode(text, 'latin1'): each character below U+0100 becomes one byte. */
static mt_status latin1(reader *r, const node *args, node **out) {
  if (args->v.u.seq.len != 2 || !is(item(args, 0), MT_VAL_STR) || !is(item(args, 1), MT_VAL_STR) ||
      strcmp(item(args, 1)->v.u.str.ptr, "latin1") != 0)
    return bad(r, "_codecs.encode is allowed only as encode(str, 'latin1')");
  const uint8_t *s = (const uint8_t *)item(args, 0)->v.u.str.ptr;
  size_t len = item(args, 0)->v.u.str.len, n = 0;
  node *b = new_node(r, MT_VAL_BYTES);
  if (!b || !(b->v.u.str.ptr = malloc(len + 1))) return nomem();
  for (size_t i = 0; i < len; i++) {
    if (s[i] < 0x80) {
      b->v.u.str.ptr[n++] = (char)s[i];
    } else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < len) { /* U+0080..U+00FF */
      b->v.u.str.ptr[n++] = (char)((s[i] & 0x03) << 6 | (s[i + 1] & 0x3f));
      i++;
    } else {
      return bad(r, "_codecs.encode: a character past U+00FF cannot be latin1");
    }
  }
  b->v.u.str.ptr[n] = '\0';
  b->v.u.str.len = n;
  *out = b;
  return MT_OK;
}

/* torch.device('cuda', 0) or torch.device('cuda:0'): the str "cuda:0". */
static mt_status device(reader *r, const node *args, node **out) {
  size_t n = args->v.u.seq.len;
  if (n < 1 || n > 2 || !is(item(args, 0), MT_VAL_STR) || item(args, 0)->v.u.str.len > 64 ||
      (n == 2 && !is(item(args, 1), MT_VAL_INT)))
    return bad(r, "torch.device takes a type string and an optional int index");
  char buf[96];
  int len = n == 2 ? snprintf(buf, sizeof buf, "%s:%lld", item(args, 0)->v.u.str.ptr, (long long)item(args, 1)->v.u.i)
                   : snprintf(buf, sizeof buf, "%s", item(args, 0)->v.u.str.ptr);
  mt_status st = push_bytes(r, MT_VAL_STR, buf, (size_t)len);
  if (!st) *out = r->stack[--r->sp];
  return st;
}

static mt_status reduce(reader *r) {
  mt_status st = need_objects(r, 2, "REDUCE");
  if (st) return st;
  node *args = r->stack[--r->sp], *fn = r->stack[r->sp - 1], *res = NULL;
  char name[64];
  if (fn->ext != X_GLOBAL) return bad(r, "REDUCE calls %s, which is not callable", a_kind(fn));
  if (!is(args, MT_VAL_TUPLE)) return bad(r, "REDUCE arguments are %s, not a tuple", a_kind(args));
  size_t n = args->v.u.seq.len;
  switch (fn->arg) {
  case G_ORDERED_DICT:
    if (n) return bad(r, "collections.OrderedDict is allowed only without arguments");
    if (!(res = new_node(r, MT_VAL_DICT))) return nomem();
    res->v.u.dict.ordered = true;
    break;
  case G_REBUILD_TENSOR: st = rebuild_tensor(r, args, &res); break;
  case G_REBUILD_PARAMETER: /* (tensor, requires_grad, hooks): the tensor itself */
    if (n != 3 || !is(item(args, 0), MT_VAL_TENSOR) || !is(item(args, 1), MT_VAL_BOOL) || !is(item(args, 2), MT_VAL_DICT))
      return bad(r, "_rebuild_parameter takes (tensor, bool, dict)");
    res = item(args, 0);
    break;
  case G_SIZE: /* torch.Size((2, 3)): the tuple */
    if (n != 1 || !is(item(args, 0), MT_VAL_TUPLE)) return bad(r, "torch.Size takes one tuple");
    res = item(args, 0);
    for (size_t i = 0; i < res->v.u.seq.len; i++)
      if (!is(item(res, i), MT_VAL_INT)) return bad(r, "torch.Size holds %s, not an int", a_kind(item(res, i)));
    break;
  case G_DEVICE: st = device(r, args, &res); break;
  case G_CODECS_ENCODE: st = latin1(r, args, &res); break;
  case G_BYTES:
    if (n) return bad(r, "builtins.bytes is allowed only without arguments");
    if (!(res = new_node(r, MT_VAL_BYTES)) || !(res->v.u.str.ptr = calloc(1, 1))) return nomem();
    break;
  default: return bad(r, "%s only names a storage's class and cannot be called", global_name(fn->arg, name));
  }
  if (st) return st;
  r->stack[r->sp - 1] = res;
  return MT_OK;
}

/* ---- copying the result out of the arena ------------------------------------------------- */

static mt_status charge(reader *r, size_t bytes) {
  if (bytes > r->budget)
    return bad(r, "objects shared through the memo expand past %zu bytes",
               BUDGET_PER_BYTE * (size_t)(r->end - r->start) + ((size_t)1 << 20));
  r->budget -= bytes;
  return MT_OK;
}

static bool key_ok(const mt_value *k) {
  if (k->kind != MT_VAL_TUPLE) return k->kind <= MT_VAL_BYTES; /* None, bool, int, float, str, bytes */
  for (size_t i = 0; i < k->u.seq.len; i++)
    if (!key_ok(k->u.seq.items[i])) return false;
  return true;
}

/* Kept out of copy_out so that its recursion frames stay small. */
static __attribute__((noinline)) mt_status not_a_value(reader *r, const node *n) {
  char name[64];
  if (n->ext == X_GLOBAL) return bad(r, "the global %s cannot be part of the loaded data", global_name(n->arg, name));
  return bad(r, "a bare storage cannot be part of the loaded data, only tensors over it");
}

static mt_status copy_out(reader *r, node *n, int depth, mt_value **out);

static mt_status copy_items(reader *r, node *n, int depth, mt_value *c) {
  const mt_value *v = &n->v;
  mt_status st = MT_OK;
  if (v->kind != MT_VAL_DICT) {
    for (size_t i = 0; i < v->u.seq.len && !st; i++) {
      mt_value *x;
      if (!(st = copy_out(r, NODE(v->u.seq.items[i]), depth + 1, &x))) st = mt_value_append(c, x);
    }
    return st;
  }
  for (size_t i = 0; i < v->u.dict.len && !st; i++) {
    mt_value *k, *x;
    if ((st = copy_out(r, NODE(v->u.dict.keys[i]), depth + 1, &k))) break;
    if (!key_ok(k)) {
      st = bad(r, "%s cannot be a dict key", a_kind(NODE(v->u.dict.keys[i])));
      mt_value_free(k);
    } else if ((st = copy_out(r, NODE(v->u.dict.vals[i]), depth + 1, &x))) {
      mt_value_free(k);
    } else {
      st = mt_value_dict_set(c, k, x); /* MT_ENOMEM is its only failure here */
    }
  }
  return st;
}

static mt_status copy_out(reader *r, node *n, int depth, mt_value **out) {
  if (depth > MAX_DEPTH) return bad(r, "objects are nested deeper than %d levels", MAX_DEPTH);
  if (n->ext != X_VALUE) return not_a_value(r, n);
  const mt_value *v = &n->v;
  bool seq = v->kind == MT_VAL_LIST || v->kind == MT_VAL_TUPLE;
  size_t extra = v->kind == MT_VAL_STR || v->kind == MT_VAL_BYTES ? v->u.str.len
                 : seq                                           ? v->u.seq.len * sizeof(mt_value *)
                 : v->kind == MT_VAL_DICT                        ? v->u.dict.len * 3 * sizeof(mt_value *)
                                                                 : 0;
  mt_status st = charge(r, sizeof(mt_value) + extra);
  if (st) return st;
  mt_value *c = NULL;
  switch (v->kind) {
  case MT_VAL_NONE: c = mt_value_none(); break;
  case MT_VAL_BOOL: c = mt_value_bool(v->u.b); break;
  case MT_VAL_INT: c = mt_value_int(v->u.i); break;
  case MT_VAL_FLOAT: c = mt_value_float(v->u.f); break;
  case MT_VAL_STR: c = mt_value_str(v->u.str.ptr, v->u.str.len); break;
  case MT_VAL_BYTES: c = mt_value_bytes(v->u.str.ptr, v->u.str.len); break;
  case MT_VAL_TENSOR: c = mt_value_tensor(v->u.tensor); break;
  case MT_VAL_LIST: c = mt_value_list(); break;
  case MT_VAL_TUPLE: c = mt_value_tuple(); break;
  case MT_VAL_DICT: c = mt_value_dict(v->u.dict.ordered); break;
  }
  if (!c) return nomem();
  if (seq || v->kind == MT_VAL_DICT) {
    if (n->visiting) {
      mt_value_free(c);
      return bad(r, "%s contains itself", a_kind(n));
    }
    n->visiting = 1;
    st = copy_items(r, n, depth, c);
    n->visiting = 0;
    if (st) {
      mt_value_free(c);
      return st;
    }
  }
  *out = c;
  return MT_OK;
}

/* ---- the machine ------------------------------------------------------------------------- */

static mt_status memo_put(reader *r, uint64_t idx) {
  mt_status st = need_objects(r, 1, "memo store");
  if (st) return st;
  if (idx >= r->memo_limit) return bad(r, "memo index %llu is out of range", (unsigned long long)idx);
  size_t old = r->memo_cap;
  node **memo = grown(r->memo, &r->memo_cap, (size_t)idx + 1, sizeof *memo);
  if (!memo) return nomem();
  if (r->memo_cap > old) memset(memo + old, 0, (r->memo_cap - old) * sizeof *memo);
  r->memo = memo;
  r->memo_count += !memo[idx];
  memo[idx] = r->stack[r->sp - 1];
  return MT_OK;
}

static mt_status memo_get(reader *r, uint64_t idx) {
  if (idx >= r->memo_cap || !r->memo[idx]) return bad(r, "memo index %llu is not set", (unsigned long long)idx);
  return push(r, r->memo[idx]);
}

/* None, True and False: one node each, as Python has one object each. */
static node *constant(reader *r, int which) {
  if (!r->constants[which] && (r->constants[which] = new_node(r, which ? MT_VAL_BOOL : MT_VAL_NONE)))
    r->constants[which]->v.u.b = which == 1;
  return r->constants[which];
}

/* Fills the container below the last MARK with the objects above it (SETITEMS, APPENDS). */
static mt_status fill(reader *r, const char *op, mt_value_kind kind) {
  size_t base = 0;
  mt_status st = pop_mark(r, &base, op);
  if (st) return st;
  if (base == frame_base(r)) return bad(r, "%s has no container below its MARK", op);
  node *c = r->stack[base - 1];
  if (!is(c, kind)) return bad(r, "%s on %s, not a %s", op, a_kind(c), kind == MT_VAL_DICT ? "dict" : "list");
  if (kind == MT_VAL_DICT && (r->sp - base) % 2) return bad(r, "%s with an odd number of objects", op);
  for (size_t i = base; i < r->sp && !st; i += kind == MT_VAL_DICT ? 2 : 1)
    st = kind == MT_VAL_DICT ? dict_add(c, r->stack[i], r->stack[i + 1]) : seq_add(c, r->stack[i]);
  r->sp = base;
  return st;
}

/* Runs one opcode; STOP sets *done. */
static mt_status step(reader *r, bool *done) {
  r->op_at = (size_t)(r->p - r->start);
  uint8_t op = *r->p++;
  const uint8_t *a = NULL;
  mt_status st = MT_OK;
  size_t base = 0;
  node *n;
  switch (op) {
  case 0x80: /* PROTO */
    if ((st = take(r, 1, &a, "PROTO"))) return st;
    return *a > 5 ? bad(r, "pickle protocol %d is not supported", *a) : MT_OK;
  case 0x95: /* FRAME (protocol 4): only a length hint */
    if ((st = take(r, 8, &a, "FRAME"))) return st;
    return rd_le(a, 8) > (uint64_t)(r->end - r->p) ? bad(r, "FRAME runs past the end of the data") : MT_OK;
  case '.': /* STOP */
    if (r->nmarks) return bad(r, "STOP with a MARK still open");
    if (r->sp != 1) return bad(r, "STOP with %zu objects on the stack, not 1", r->sp);
    *done = true;
    return MT_OK;
  case '(': /* MARK */
    if (r->nmarks == MAX_DEPTH) return bad(r, "MARKs are nested deeper than %d", MAX_DEPTH);
    r->marks[r->nmarks++] = r->sp;
    return MT_OK;
  case 'c': return read_global(r);
  case 0x93: /* STACK_GLOBAL */
    if ((st = need_objects(r, 2, "STACK_GLOBAL"))) return st;
    if (!is(r->stack[r->sp - 1], MT_VAL_STR) || !is(r->stack[r->sp - 2], MT_VAL_STR))
      return bad(r, "STACK_GLOBAL needs two strings");
    r->sp -= 2;
    return push_global(r, r->stack[r->sp]->v.u.str.ptr, r->stack[r->sp]->v.u.str.len,
                       r->stack[r->sp + 1]->v.u.str.ptr, r->stack[r->sp + 1]->v.u.str.len);
  case 'R': return reduce(r);
  case 'b': /* BUILD: only PyTorch's OrderedDict attributes (_metadata), which are dropped */
    if ((st = need_objects(r, 2, "BUILD"))) return st;
    n = r->stack[r->sp - 2];
    if (!is(n, MT_VAL_DICT) || !is(r->stack[r->sp - 1], MT_VAL_DICT))
      return bad(r, "BUILD of %s with %s as state is not supported", a_kind(n), a_kind(r->stack[r->sp - 1]));
    r->sp--;
    return MT_OK;
  case 'Q': /* BINPERSID */
    if ((st = need_objects(r, 1, "BINPERSID"))) return st;
    return read_persid(r, r->stack[--r->sp]);
  case 'q': return (st = take(r, 1, &a, "BINPUT")) ? st : memo_put(r, *a);
  case 'r': return (st = take(r, 4, &a, "LONG_BINPUT")) ? st : memo_put(r, rd_le(a, 4));
  case 0x94: return memo_put(r, r->memo_count); /* MEMOIZE */
  case 'h': return (st = take(r, 1, &a, "BINGET")) ? st : memo_get(r, *a);
  case 'j': return (st = take(r, 4, &a, "LONG_BINGET")) ? st : memo_get(r, rd_le(a, 4));
  case '}': return push(r, new_node(r, MT_VAL_DICT));
  case ']': return push(r, new_node(r, MT_VAL_LIST));
  case ')': return push(r, new_node(r, MT_VAL_TUPLE));
  case 't': return (st = pop_mark(r, &base, "TUPLE")) ? st : make_tuple(r, r->sp - base);
  case 0x85:
  case 0x86:
  case 0x87: /* TUPLE1..3 */
    return (st = need_objects(r, op - 0x84u, "TUPLE1/2/3")) ? st : make_tuple(r, op - 0x84u);
  case 's': /* SETITEM */
    if ((st = need_objects(r, 3, "SETITEM"))) return st;
    n = r->stack[r->sp - 3];
    if (!is(n, MT_VAL_DICT)) return bad(r, "SETITEM on %s, not a dict", a_kind(n));
    r->sp -= 2;
    return dict_add(n, r->stack[r->sp], r->stack[r->sp + 1]);
  case 'u': return fill(r, "SETITEMS", MT_VAL_DICT);
  case 'a': /* APPEND */
    if ((st = need_objects(r, 2, "APPEND"))) return st;
    n = r->stack[r->sp - 2];
    if (!is(n, MT_VAL_LIST)) return bad(r, "APPEND on %s, not a list", a_kind(n));
    return seq_add(n, r->stack[--r->sp]);
  case 'e': return fill(r, "APPENDS", MT_VAL_LIST);
  case 'X': return read_string(r, 4, MT_VAL_STR, "BINUNICODE");
  case 0x8c: return read_string(r, 1, MT_VAL_STR, "SHORT_BINUNICODE");
  case 0x8d: return read_string(r, 8, MT_VAL_STR, "BINUNICODE8");
  case 'U': return read_string(r, 1, MT_VAL_NONE, "SHORT_BINSTRING");
  case 'T': return read_string(r, 4, MT_VAL_NONE, "BINSTRING");
  case 'C': return read_string(r, 1, MT_VAL_BYTES, "SHORT_BINBYTES");
  case 'B': return read_string(r, 4, MT_VAL_BYTES, "BINBYTES");
  case 0x8e: return read_string(r, 8, MT_VAL_BYTES, "BINBYTES8");
  case 'K': return (st = take(r, 1, &a, "BININT1")) ? st : push_int(r, *a);
  case 'M': return (st = take(r, 2, &a, "BININT2")) ? st : push_int(r, (int64_t)rd_le(a, 2));
  case 'J': return (st = take(r, 4, &a, "BININT")) ? st : push_int(r, (int32_t)(uint32_t)rd_le(a, 4));
  case 0x8a: return read_long(r, 1, "LONG1");
  case 0x8b: return read_long(r, 4, "LONG4");
  case 'G': { /* BINFLOAT: a big-endian double */
    if ((st = take(r, 8, &a, "BINFLOAT"))) return st;
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++) bits = bits << 8 | a[i];
    if (!(n = new_node(r, MT_VAL_FLOAT))) return nomem();
    memcpy(&n->v.u.f, &bits, sizeof bits);
    return push(r, n);
  }
  case 'N': return push(r, constant(r, 0));
  case 0x88: return push(r, constant(r, 1)); /* NEWTRUE */
  case 0x89: return push(r, constant(r, 2)); /* NEWFALSE */
  default:
    if (refused_opcodes[op]) return bad(r, "opcode %s (0x%02x) is not supported", refused_opcodes[op], op);
    return bad(r, "unknown opcode 0x%02x", op);
  }
}

mt_status mt_pickle_read(const uint8_t *data, size_t len, mt_storage_loader load, void *ctx, mt_value **out) {
  reader *r = calloc(1, sizeof *r); /* ~80 KB of MARK slots: on the heap */
  if (!r) return nomem();
  r->start = r->p = data;
  r->end = data + len;
  r->load = load;
  r->ctx = ctx;
  r->memo_limit = len > 256 ? len : 256; /* a dense memo cannot outgrow the opcodes that fill it */
  r->budget = len > (SIZE_MAX >> 8) ? SIZE_MAX : BUDGET_PER_BYTE * len + ((size_t)1 << 20);
  mt_status st = (r->storage_keys = mt_value_dict(false)) ? MT_OK : nomem();
  bool done = false;
  while (!st && !done) {
    if (r->p == r->end) {
      r->op_at = len;
      st = bad(r, len ? "the data ends without a STOP opcode" : "the data is empty");
    } else {
      st = step(r, &done);
    }
  }
  mt_value *v = NULL;
  if (!st) st = copy_out(r, r->stack[0], 0, &v);
  for (size_t i = 0; i < r->nstorages; i++) mt_storage_release(r->storages[i].s);
  free(r->storages);
  mt_value_free(r->storage_keys);
  free_arena(r->arena);
  free(r->stack);
  free(r->memo);
  free(r);
  if (!st) *out = v;
  return st;
}
