/*
 * pickle_write.c — value trees to protocol-2 pickles, byte for byte as PyTorch 1.13's
 * torch.save writes the same objects (Python's pickler plus torch's persistent_id):
 *
 *  - every str, non-empty tuple, list, dict, GLOBAL and REDUCE result is memoized with
 *    BINPUT (LONG_BINPUT past 255), as pickle does;
 *  - objects Python would meet again as the *same object* come back as BINGET: the GLOBALs,
 *    the constant strings 'storage', 'cpu' and 'latin1', a storage's key, and a tensor that
 *    appears twice in the tree (tied weights); other equal strings are written again, as
 *    distinct Python objects would be;
 *  - lists and dicts are filled in batches of 1000 (APPENDS / SETITEMS, or APPEND / SETITEM
 *    for a batch of one);
 *  - a tensor is _rebuild_tensor_v2(persid('storage', torch.<X>Storage, key, 'cpu', numel),
 *    offset, sizes, strides, False, OrderedDict()), its whole storage going to record
 *    data/<key>; bytes are _codecs.encode(<latin-1 text>, 'latin1').
 *
 * Deviation: Python writes b'' as __builtin__.bytes(), a global PyTorch's weights_only
 * reader refuses; we write _codecs.encode('', 'latin1'), which it may accept.
 */
#include "mt_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_NESTING MT_MAX_NESTING
#define BATCH 1000 /* pickle's _BATCHSIZE */

/* Storage class per dtype (pickle_read.c has the same table, read the other way). */
static const char *const storage_class[MT_NUM_DTYPES] = {
    [MT_FLOAT32] = "FloatStorage", [MT_FLOAT64] = "DoubleStorage", [MT_FLOAT16] = "HalfStorage",
    [MT_BFLOAT16] = "BFloat16Storage", [MT_INT64] = "LongStorage", [MT_INT32] = "IntStorage",
    [MT_INT16] = "ShortStorage", [MT_INT8] = "CharStorage", [MT_UINT8] = "ByteStorage",
    [MT_BOOL] = "BoolStorage",
};

/* Room for n more bytes (growing by doubling); the length is unchanged. */
static mt_status buffer_reserve(mt_buffer *b, size_t n) {
  if (n <= b->cap - b->len) return MT_OK;
  size_t ncap = b->cap ? b->cap : 256;
  while (ncap - b->len < n) {
    if (ncap > SIZE_MAX / 2) return mt_fail(MT_ENOMEM, "a buffer of %zu bytes cannot grow by %zu", b->len, n);
    ncap *= 2;
  }
  uint8_t *data = realloc(b->data, ncap);
  if (!data) return mt_fail(MT_ENOMEM, "out of memory growing a buffer to %zu bytes", ncap);
  b->data = data;
  b->cap = ncap;
  return MT_OK;
}

mt_status mt_buffer_append(mt_buffer *b, const void *p, size_t n) {
  mt_status st = buffer_reserve(b, n);
  if (st) return st;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return MT_OK;
}

void mt_storage_table_free(mt_storage_table *t) {
  if (!t) return;
  for (size_t i = 0; i < t->len; i++) mt_storage_release(t->items[i]);
  free(t->items);
  free(t->dtypes);
  memset(t, 0, sizeof *t);
}

/* ---- a pointer -> integer map (storages and tensors already written) ---------------------- */

typedef struct ptrmap {
  const void **keys;
  int64_t *vals;
  size_t cap, len; /* cap is 0 or a power of two */
} ptrmap;

static size_t ptr_slot(const ptrmap *m, const void *p) {
  uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
  size_t s = (size_t)(h >> 32) & (m->cap - 1);
  while (m->keys[s] && m->keys[s] != p) s = (s + 1) & (m->cap - 1);
  return s;
}

static bool ptrmap_get(const ptrmap *m, const void *p, int64_t *val) {
  if (!m->cap) return false;
  size_t s = ptr_slot(m, p);
  if (!m->keys[s]) return false;
  *val = m->vals[s];
  return true;
}

static mt_status ptrmap_put(ptrmap *m, const void *p, int64_t val) {
  if (2 * (m->len + 1) > m->cap) { /* keep the load under one half */
    ptrmap n = {NULL, NULL, m->cap ? 2 * m->cap : 64, 0};
    n.keys = calloc(n.cap, sizeof *n.keys);
    n.vals = malloc(n.cap * sizeof *n.vals);
    if (!n.keys || !n.vals) {
      free(n.keys);
      free(n.vals);
      return mt_fail(MT_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->cap; i++)
      if (m->keys[i]) {
        size_t s = ptr_slot(&n, m->keys[i]);
        n.keys[s] = m->keys[i];
        n.vals[s] = m->vals[i];
      }
    n.len = m->len;
    free(m->keys);
    free(m->vals);
    *m = n;
  }
  size_t s = ptr_slot(m, p);
  if (!m->keys[s]) m->len++;
  m->keys[s] = p;
  m->vals[s] = val;
  return MT_OK;
}

static void ptrmap_free(ptrmap *m) {
  free(m->keys);
  free(m->vals);
}

/* ---- the writer -------------------------------------------------------------------------- */

enum { G_ORDERED_DICT, G_REBUILD_TENSOR, G_CODECS_ENCODE, G_STORAGE, G_COUNT = G_STORAGE + MT_NUM_DTYPES };
enum { S_STORAGE, S_CPU, S_LATIN1, S_COUNT };
static const char *const const_str[S_COUNT] = {"storage", "cpu", "latin1"};

typedef struct writer {
  mt_buffer *out;
  mt_storage_table *table;
  mt_status status; /* sticky: once set, nothing more is written */
  uint32_t memo_len;
  int64_t global_memo[G_COUNT]; /* memo index, -1 until written */
  int64_t str_memo[S_COUNT];
  int64_t *key_memo; /* per storage table entry: memo index of its key, -1 until written */
  size_t key_memo_cap;
  ptrmap storages; /* mt_storage* -> storage table index */
  ptrmap tensors;  /* mt_tensor* -> memo index of the tensor */
} writer;

static void put(writer *w, const void *p, size_t n) {
  if (!w->status) w->status = mt_buffer_append(w->out, p, n);
}

static void put_op(writer *w, uint8_t op) { put(w, &op, 1); }

static void put_op_u32(writer *w, uint8_t op, uint32_t v) {
  uint8_t b[5] = {op, (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  put(w, b, 5);
}

/* BINPUT / LONG_BINPUT the object just written; returns its memo index. */
static int64_t memoize(writer *w) {
  if (w->memo_len == UINT32_MAX) {
    if (!w->status) w->status = mt_fail(MT_ENOMEM, "more than %u memoized objects", (unsigned)UINT32_MAX);
    return 0;
  }
  uint32_t i = w->memo_len++;
  if (i < 256) {
    uint8_t b[2] = {'q', (uint8_t)i};
    put(w, b, 2);
  } else {
    put_op_u32(w, 'r', i);
  }
  return i;
}

static void put_get(writer *w, int64_t i) {
  if (i < 256) {
    uint8_t b[2] = {'h', (uint8_t)i};
    put(w, b, 2);
  } else {
    put_op_u32(w, 'j', (uint32_t)i);
  }
}

static void put_int(writer *w, int64_t v) {
  if (v >= 0 && v <= 0xff) {
    uint8_t b[2] = {'K', (uint8_t)v};
    put(w, b, 2);
  } else if (v >= 0 && v <= 0xffff) {
    uint8_t b[3] = {'M', (uint8_t)v, (uint8_t)(v >> 8)};
    put(w, b, 3);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    put_op_u32(w, 'J', (uint32_t)v);
  } else { /* LONG1: the shortest little-endian two's complement that sign-extends back to v */
    uint8_t b[10] = {0x8a, 0};
    int n = 8;
    while (n > 1 && (v >> (8 * (n - 1) - 1)) == (v >> 63)) n--;
    b[1] = (uint8_t)n;
    for (int i = 0; i < n; i++) b[2 + i] = (uint8_t)((uint64_t)v >> (8 * i));
    put(w, b, 2 + (size_t)n);
  }
}

static void put_float(writer *w, double f) {
  uint64_t bits;
  memcpy(&bits, &f, sizeof bits);
  uint8_t b[9] = {'G'};
  for (int i = 0; i < 8; i++) b[1 + i] = (uint8_t)(bits >> (56 - 8 * i)); /* big-endian */
  put(w, b, 9);
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool valid_utf8(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (!len || c > 0xf4 || n - i < len) return false;
    for (size_t k = 1; k < len; k++)
      if ((s[i + k] & 0xc0) != 0x80) return false;
    unsigned c1 = s[i + 1];
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90))
      return false;
    i += len;
  }
  return true;
}

/* BINUNICODE + BINPUT; `text` is UTF-8 already. */
static int64_t put_str(writer *w, const char *text, size_t n) {
  if (n > UINT32_MAX) {
    if (!w->status) w->status = mt_fail(MT_EARG, "a string of %zu bytes is too long for the format", n);
    return 0;
  }
  put_op_u32(w, 'X', (uint32_t)n);
  put(w, text, n);
  return memoize(w);
}

static void put_const_str(writer *w, int which) {
  if (w->str_memo[which] >= 0)
    put_get(w, w->str_memo[which]);
  else
    w->str_memo[which] = put_str(w, const_str[which], strlen(const_str[which]));
}

static void put_global(writer *w, int which) {
  if (w->global_memo[which] >= 0) {
    put_get(w, w->global_memo[which]);
    return;
  }
  const char *g = which == G_ORDERED_DICT     ? "collections\nOrderedDict\n"
                  : which == G_REBUILD_TENSOR ? "torch._utils\n_rebuild_tensor_v2\n"
                  : which == G_CODECS_ENCODE  ? "_codecs\nencode\n"
                                              : NULL;
  char buf[64];
  if (!g) {
    snprintf(buf, sizeof buf, "torch\n%s\n", storage_class[which - G_STORAGE]);
    g = buf;
  }
  put_op(w, 'c');
  put(w, g, strlen(g));
  w->global_memo[which] = memoize(w);
}

/* bytes as _codecs.encode(text, 'latin1'), text being each byte as a code point in UTF-8. */
static void put_bytes(writer *w, const unsigned char *p, size_t n) {
  size_t high = 0;
  for (size_t i = 0; i < n; i++) high += p[i] >> 7;
  if (n > UINT32_MAX - high) {
    if (!w->status) w->status = mt_fail(MT_EARG, "a bytes value of %zu bytes is too long for the format", n);
    return;
  }
  put_global(w, G_CODECS_ENCODE);
  put_op_u32(w, 'X', (uint32_t)(n + high));
  mt_buffer *b = w->out;
  if (w->status || (w->status = buffer_reserve(b, n + high))) return;
  uint8_t *d = b->data + b->len;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < 0x80) {
      *d++ = p[i];
    } else {
      *d++ = (uint8_t)(0xc0 | p[i] >> 6);
      *d++ = (uint8_t)(0x80 | (p[i] & 0x3f));
    }
  }
  b->len += n + high;
  memoize(w);
  put_const_str(w, S_LATIN1);
  put_op(w, 0x86); /* TUPLE2 */
  memoize(w);
  put_op(w, 'R');
  memoize(w);
}

/* Storage table index of s (adding it on first sight); -1 with w->status set on failure. */
static int64_t storage_key(writer *w, const mt_tensor *t) {
  int64_t i;
  if (ptrmap_get(&w->storages, t->storage, &i)) {
    if (w->table->dtypes[i] != t->dtype)
      w->status = mt_fail(MT_EARG, "a storage is shared by tensors of dtypes %s and %s, which the format cannot express",
                          mt_dtype_name(w->table->dtypes[i]), mt_dtype_name(t->dtype));
    return w->status ? -1 : i;
  }
  mt_storage_table *tb = w->table;
  if (tb->len == tb->cap) {
    size_t ncap = tb->cap ? 2 * tb->cap : 16; /* cannot overflow: each entry is a live storage */
    mt_storage **items = realloc(tb->items, ncap * sizeof *items);
    if (items) tb->items = items; /* a larger block serves as well if the next one fails */
    mt_dtype *dtypes = items ? realloc(tb->dtypes, ncap * sizeof *dtypes) : NULL;
    if (dtypes) tb->dtypes = dtypes;
    if (!items || !dtypes) {
      w->status = mt_fail(MT_ENOMEM, "out of memory");
      return -1;
    }
    tb->cap = ncap;
  }
  if (tb->cap > w->key_memo_cap) {
    int64_t *km = realloc(w->key_memo, tb->cap * sizeof *km);
    if (!km) {
      w->status = mt_fail(MT_ENOMEM, "out of memory");
      return -1;
    }
    for (size_t k = w->key_memo_cap; k < tb->cap; k++) km[k] = -1;
    w->key_memo = km;
    w->key_memo_cap = tb->cap;
  }
  i = (int64_t)tb->len;
  if ((w->status = ptrmap_put(&w->storages, t->storage, i))) return -1;
  mt_storage_retain(t->storage);
  tb->items[tb->len] = t->storage;
  tb->dtypes[tb->len++] = t->dtype;
  return i;
}

static void put_tensor(writer *w, const mt_tensor *t) {
  int64_t memo;
  if (ptrmap_get(&w->tensors, t, &memo)) { /* the same tensor again: the same object */
    put_get(w, memo);
    return;
  }
  size_t esize = mt_dtype_size(t->dtype), nbytes = mt_storage_nbytes(t->storage);
  if (nbytes % esize) {
    w->status = mt_fail(MT_EARG, "a storage of %zu bytes is not a whole number of %s elements", nbytes,
                        mt_dtype_name(t->dtype));
    return;
  }
  int64_t key = storage_key(w, t);
  if (key < 0) return;
  put_global(w, G_REBUILD_TENSOR);
  put_op(w, '(');
  put_op(w, '('); /* the persistent id ('storage', class, key, location, numel) */
  put_const_str(w, S_STORAGE);
  put_global(w, G_STORAGE + (int)t->dtype);
  if (w->key_memo[key] >= 0) {
    put_get(w, w->key_memo[key]);
  } else {
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)key);
    w->key_memo[key] = put_str(w, digits, (size_t)n);
  }
  put_const_str(w, S_CPU);
  put_int(w, (int64_t)(nbytes / esize));
  put_op(w, 't');
  memoize(w);
  put_op(w, 'Q'); /* BINPERSID */
  put_int(w, t->offset);
  for (int pass = 0; pass < 2; pass++) { /* sizes, then strides: tuples as save_tuple writes them */
    const int64_t *v = pass ? t->strides : t->sizes;
    if (t->ndim == 0) {
      put_op(w, ')');
      continue;
    }
    if (t->ndim > 3) put_op(w, '(');
    for (int d = 0; d < t->ndim; d++) put_int(w, v[d]);
    put_op(w, t->ndim > 3 ? 't' : (uint8_t)(0x84 + t->ndim));
    memoize(w);
  }
  put_op(w, 0x89); /* requires_grad: NEWFALSE */
  put_global(w, G_ORDERED_DICT); /* backward hooks: OrderedDict() */
  put_op(w, ')');
  put_op(w, 'R');
  memoize(w);
  put_op(w, 't');
  memoize(w);
  put_op(w, 'R');
  memo = memoize(w);
  if (!w->status) w->status = ptrmap_put(&w->tensors, t, memo);
}

static void put_value(writer *w, const mt_value *v, int depth);

static void put_seq_items(writer *w, const mt_value *v, int depth, uint8_t one_op, uint8_t many_op) {
  size_t n = v->kind == MT_VAL_DICT ? v->u.dict.len : v->u.seq.len;
  for (size_t start = 0; start < n && !w->status; start += BATCH) {
    size_t end = n - start > BATCH ? start + BATCH : n;
    if (end - start > 1) put_op(w, '(');
    for (size_t i = start; i < end && !w->status; i++) {
      if (v->kind == MT_VAL_DICT) {
        put_value(w, v->u.dict.keys[i], depth + 1);
        put_value(w, v->u.dict.vals[i], depth + 1);
      } else {
        put_value(w, v->u.seq.items[i], depth + 1);
      }
    }
    put_op(w, end - start > 1 ? many_op : one_op);
  }
}

static void put_value(writer *w, const mt_value *v, int depth) {
  if (w->status) return;
  if (!v) {
    w->status = mt_fail(MT_EARG, "a value in the tree is NULL");
    return;
  }
  if (depth > MAX_NESTING) {
    w->status = mt_fail(MT_EARG, "values are nested deeper than %d levels (does a container contain itself?)",
                        MAX_NESTING);
    return;
  }
  switch (v->kind) {
  case MT_VAL_NONE: put_op(w, 'N'); break;
  case MT_VAL_BOOL: put_op(w, v->u.b ? 0x88 : 0x89); break;
  case MT_VAL_INT: put_int(w, v->u.i); break;
  case MT_VAL_FLOAT: put_float(w, v->u.f); break;
  case MT_VAL_STR:
    if (!valid_utf8((const unsigned char *)v->u.str.ptr, v->u.str.len)) {
      w->status = mt_fail(MT_EARG, "str value \"%.40s\" is not valid UTF-8 (save it as bytes)", v->u.str.ptr);
      return;
    }
    put_str(w, v->u.str.ptr, v->u.str.len);
    break;
  case MT_VAL_BYTES: put_bytes(w, (const unsigned char *)v->u.str.ptr, v->u.str.len); break;
  case MT_VAL_TUPLE: {
    size_t n = v->u.seq.len;
    if (n == 0) {
      put_op(w, ')');
      break;
    }
    if (n > 3) put_op(w, '(');
    for (size_t i = 0; i < n; i++) put_value(w, v->u.seq.items[i], depth + 1);
    put_op(w, n > 3 ? 't' : (uint8_t)(0x84 + n));
    memoize(w);
    break;
  }
  case MT_VAL_LIST:
    put_op(w, ']');
    memoize(w);
    put_seq_items(w, v, depth, 'a', 'e');
    break;
  case MT_VAL_DICT:
    if (v->u.dict.ordered) {
      put_global(w, G_ORDERED_DICT);
      put_op(w, ')');
      put_op(w, 'R');
    } else {
      put_op(w, '}');
    }
    memoize(w);
    put_seq_items(w, v, depth, 's', 'u');
    break;
  case MT_VAL_TENSOR:
    if (!v->u.tensor) {
      w->status = mt_fail(MT_EARG, "a tensor value holds no tensor");
      return;
    }
    put_tensor(w, v->u.tensor);
    break;
  default: w->status = mt_fail(MT_EARG, "unknown value kind %d", (int)v->kind); break;
  }
}

mt_status mt_pickle_write(const mt_value *root, mt_buffer *out, mt_storage_table *storages) {
  writer w = {.out = out, .table = storages};
  for (int i = 0; i < G_COUNT; i++) w.global_memo[i] = -1;
  for (int i = 0; i < S_COUNT; i++) w.str_memo[i] = -1;
  size_t out_len = out->len, table_len = storages->len, table_cap = storages->cap;
  /* Storages already in the table keep their keys (their key strings are not in this memo). */
  if (table_len) {
    w.key_memo = malloc(storages->cap * sizeof *w.key_memo);
    if (!w.key_memo) return mt_fail(MT_ENOMEM, "out of memory");
    w.key_memo_cap = storages->cap;
    for (size_t i = 0; i < storages->cap; i++) w.key_memo[i] = -1;
    for (size_t i = 0; i < table_len && !w.status; i++)
      w.status = ptrmap_put(&w.storages, storages->items[i], (int64_t)i);
  }
  uint8_t proto[2] = {0x80, 2};
  put(&w, proto, 2);
  put_value(&w, root, 0);
  put_op(&w, '.');
  if (w.status) { /* leave out and storages as they came */
    out->len = out_len;
    for (size_t i = table_len; i < storages->len; i++) mt_storage_release(storages->items[i]);
    storages->len = table_len;
    if (!table_cap) mt_storage_table_free(storages);
  }
  free(w.key_memo);
  ptrmap_free(&w.storages);
  ptrmap_free(&w.tensors);
  return w.status;
}
