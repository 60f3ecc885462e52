/*
 * value.c — the object trees that checkpoint files hold: None, bools, ints, floats, str,
 * bytes, lists, tuples, insertion-ordered dicts and tensors.
 *
 * Dicts replace an equal key in place (Python's d[k] = v keeps k's position). So that
 * building a dict of n keys costs O(n), not O(n²), a dict with more than DICT_SMALL slots
 * keeps a hash index in the same allocation as its key array, right after the `cap` key
 * pointers: 2·cap uint32 slots holding entry index + 1 (0 = empty), open addressing with
 * linear probing. Only this file resizes dict arrays, so the index is always in step with
 * keys[0..len). Hashes are seeded per process (from an ASLR'd address) so that a crafted
 * file cannot choose keys that all collide.
 */
#include "mt_internal.h"

#include <stdlib.h>

#define DICT_SMALL 8 /* up to this many slots a linear scan beats hashing */

static mt_value *new_value(mt_value_kind kind) {
  mt_value *v = calloc(1, sizeof *v);
  if (!v) {
    mt_fail(MT_ENOMEM, "out of memory");
    return NULL;
  }
  v->kind = kind;
  return v;
}

MT_API mt_value *mt_value_none(void) { return new_value(MT_VAL_NONE); }

MT_API mt_value *mt_value_bool(bool b) {
  mt_value *v = new_value(MT_VAL_BOOL);
  if (v) v->u.b = b;
  return v;
}

MT_API mt_value *mt_value_int(int64_t i) {
  mt_value *v = new_value(MT_VAL_INT);
  if (v) v->u.i = i;
  return v;
}

MT_API mt_value *mt_value_float(double f) {
  mt_value *v = new_value(MT_VAL_FLOAT);
  if (v) v->u.f = f;
  return v;
}

static mt_value *new_bytes(mt_value_kind kind, const void *p, size_t len) {
  if (len == SIZE_MAX) {
    mt_fail(MT_ENOMEM, "string of %zu bytes is too long", len);
    return NULL;
  }
  mt_value *v = new_value(kind);
  if (!v) return NULL;
  v->u.str.ptr = malloc(len + 1);
  if (!v->u.str.ptr) {
    free(v);
    mt_fail(MT_ENOMEM, "out of memory allocating a string of %zu bytes", len);
    return NULL;
  }
  if (len) memcpy(v->u.str.ptr, p, len);
  v->u.str.ptr[len] = '\0';
  v->u.str.len = len;
  return v;
}

MT_API mt_value *mt_value_str(const char *s, size_t len) { return new_bytes(MT_VAL_STR, s, len); }
MT_API mt_value *mt_value_bytes(const void *p, size_t len) { return new_bytes(MT_VAL_BYTES, p, len); }
MT_API mt_value *mt_value_list(void) { return new_value(MT_VAL_LIST); }
MT_API mt_value *mt_value_tuple(void) { return new_value(MT_VAL_TUPLE); }

MT_API mt_value *mt_value_dict(bool ordered) {
  mt_value *v = new_value(MT_VAL_DICT);
  if (v) v->u.dict.ordered = ordered;
  return v;
}

MT_API mt_value *mt_value_tensor(mt_tensor *t) {
  if (!t) {
    mt_fail(MT_EARG, "tensor is NULL");
    return NULL;
  }
  mt_value *v = new_value(MT_VAL_TENSOR);
  if (!v) return NULL;
  mt_tensor_retain(t);
  v->u.tensor = t;
  return v;
}

MT_API void mt_value_free(mt_value *v) {
  if (!v) return;
  switch (v->kind) {
  case MT_VAL_STR:
  case MT_VAL_BYTES: free(v->u.str.ptr); break;
  case MT_VAL_LIST:
  case MT_VAL_TUPLE:
    for (size_t i = 0; i < v->u.seq.len; i++) mt_value_free(v->u.seq.items[i]);
    free(v->u.seq.items);
    break;
  case MT_VAL_DICT:
    for (size_t i = 0; i < v->u.dict.len; i++) {
      mt_value_free(v->u.dict.keys[i]);
      mt_value_free(v->u.dict.vals[i]);
    }
    free(v->u.dict.keys);
    free(v->u.dict.vals);
    break;
  case MT_VAL_TENSOR: mt_tensor_release(v->u.tensor); break;
  default: break;
  }
  free(v);
}

/* The doubled capacity for `cap` slots of `per_slot` bytes each, or 0 when the new size in
 * bytes would overflow. */
static size_t grown_cap(size_t cap, size_t per_slot) {
  size_t ncap = cap ? cap * 2 : 4;
  if (ncap < cap || ncap > SIZE_MAX / per_slot) return 0;
  return ncap;
}

MT_API mt_status mt_value_append(mt_value *seq, mt_value *item) {
  if (!seq || (seq->kind != MT_VAL_LIST && seq->kind != MT_VAL_TUPLE)) {
    mt_value_free(item);
    return mt_fail(MT_EARG, "can only append to a list or a tuple");
  }
  if (!item) return mt_fail(MT_EARG, "item is NULL");
  if (seq->u.seq.len == seq->u.seq.cap) {
    size_t ncap = grown_cap(seq->u.seq.cap, sizeof(mt_value *));
    mt_value **items = ncap ? realloc(seq->u.seq.items, ncap * sizeof *items) : NULL;
    if (!items) {
      mt_value_free(item);
      return mt_fail(MT_ENOMEM, "out of memory growing a list of %zu items", seq->u.seq.len);
    }
    seq->u.seq.items = items;
    seq->u.seq.cap = ncap;
  }
  seq->u.seq.items[seq->u.seq.len++] = item;
  return MT_OK;
}

/* ---- key hashing and equality ------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static const char hash_seed_anchor = 0;

static uint64_t hash_seed(void) { return mix64((uint64_t)(uintptr_t)&hash_seed_anchor); }

static uint64_t hash_value(const mt_value *v) {
  uint64_t h = hash_seed() ^ (uint64_t)v->kind * 0x9e3779b97f4a7c15ull;
  switch (v->kind) {
  case MT_VAL_BOOL: return mix64(h ^ v->u.b);
  case MT_VAL_INT: return mix64(h ^ (uint64_t)v->u.i);
  case MT_VAL_FLOAT: {
    double f = v->u.f == 0.0 ? 0.0 : v->u.f; /* -0.0 == 0.0, so they must hash alike */
    uint64_t bits;
    memcpy(&bits, &f, sizeof bits);
    return mix64(h ^ bits);
  }
  case MT_VAL_STR:
  case MT_VAL_BYTES: {
    const unsigned char *p = (const unsigned char *)v->u.str.ptr;
    size_t n = v->u.str.len, i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      memcpy(&w, p + i, 8);
      h = mix64(h ^ w);
    }
    uint64_t tail = n; /* the length keeps "a" and "a\0" apart */
    for (; i < n; i++) tail = tail << 8 | p[i];
    return mix64(h ^ tail);
  }
  case MT_VAL_LIST:
  case MT_VAL_TUPLE:
    for (size_t i = 0; i < v->u.seq.len; i++) h = mix64(h ^ hash_value(v->u.seq.items[i]));
    return h;
  case MT_VAL_DICT:
    for (size_t i = 0; i < v->u.dict.len; i++)
      h = mix64(h ^ hash_value(v->u.dict.keys[i]) ^ (hash_value(v->u.dict.vals[i]) << 1));
    return h;
  case MT_VAL_TENSOR: return mix64(h ^ (uint64_t)(uintptr_t)v->u.tensor); /* identity, as Python */
  default: return mix64(h);
  }
}

/* Equal kind and equal contents; tensors by identity; floats by value (so NaN keys never match). */
static bool value_equal(const mt_value *a, const mt_value *b) {
  if (a->kind != b->kind) return false;
  switch (a->kind) {
  case MT_VAL_NONE: return true;
  case MT_VAL_BOOL: return a->u.b == b->u.b;
  case MT_VAL_INT: return a->u.i == b->u.i;
  case MT_VAL_FLOAT: return a->u.f == b->u.f;
  case MT_VAL_STR:
  case MT_VAL_BYTES:
    return a->u.str.len == b->u.str.len && memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
  case MT_VAL_LIST:
  case MT_VAL_TUPLE:
    if (a->u.seq.len != b->u.seq.len) return false;
    for (size_t i = 0; i < a->u.seq.len; i++)
      if (!value_equal(a->u.seq.items[i], b->u.seq.items[i])) return false;
    return true;
  case MT_VAL_DICT:
    if (a->u.dict.len != b->u.dict.len) return false;
    for (size_t i = 0; i < a->u.dict.len; i++)
      if (!value_equal(a->u.dict.keys[i], b->u.dict.keys[i]) || !value_equal(a->u.dict.vals[i], b->u.dict.vals[i]))
        return false;
    return true;
  case MT_VAL_TENSOR: return a->u.tensor == b->u.tensor;
  }
  return false;
}

/* ---- dicts ------------------------------------------------------------------------------- */

static uint32_t *dict_index(const mt_value *d) {
  return d->u.dict.cap > DICT_SMALL ? (uint32_t *)(d->u.dict.keys + d->u.dict.cap) : NULL;
}

static size_t index_slot(const uint32_t *index, size_t nslots, uint64_t h, const mt_value *d, const mt_value *key,
                         bool *found) {
  size_t mask = nslots - 1, s = (size_t)h & mask;
  for (; index[s]; s = (s + 1) & mask)
    if (value_equal(d->u.dict.keys[index[s] - 1], key)) {
      *found = true;
      return s;
    }
  *found = false;
  return s;
}

/* Position of a key equal to `key`, or -1. */
static ptrdiff_t dict_find(const mt_value *d, const mt_value *key, uint64_t h) {
  const uint32_t *index = dict_index(d);
  if (!index) {
    for (size_t i = 0; i < d->u.dict.len; i++)
      if (value_equal(d->u.dict.keys[i], key)) return (ptrdiff_t)i;
    return -1;
  }
  bool found;
  size_t s = index_slot(index, 2 * d->u.dict.cap, h, d, key, &found);
  return found ? (ptrdiff_t)index[s] - 1 : -1;
}

static mt_status dict_grow(mt_value *d) {
  size_t len = d->u.dict.len, per_slot = sizeof(mt_value *) + 2 * sizeof(uint32_t);
  size_t ncap = grown_cap(d->u.dict.cap, per_slot);
  if (!ncap || ncap > UINT32_MAX / 2) return mt_fail(MT_ENOMEM, "dict of %zu entries is too large", len);
  bool indexed = ncap > DICT_SMALL;
  mt_value **keys = malloc(ncap * (indexed ? per_slot : sizeof(mt_value *)));
  mt_value **vals = realloc(d->u.dict.vals, ncap * sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    if (vals) d->u.dict.vals = vals; /* the old block is gone; the larger one serves as well */
    return mt_fail(MT_ENOMEM, "out of memory growing a dict of %zu entries", len);
  }
  if (len) memcpy(keys, d->u.dict.keys, len * sizeof *keys);
  free(d->u.dict.keys);
  d->u.dict.keys = keys;
  d->u.dict.vals = vals;
  d->u.dict.cap = ncap;
  if (indexed) { /* rebuild the index from scratch: positions are stable, only slots move */
    uint32_t *index = dict_index(d);
    memset(index, 0, 2 * ncap * sizeof *index);
    for (size_t i = 0; i < len; i++) {
      bool found;
      size_t s = index_slot(index, 2 * ncap, hash_value(keys[i]), d, keys[i], &found);
      index[s] = (uint32_t)(i + 1);
    }
  }
  return MT_OK;
}

MT_API mt_status mt_value_dict_set(mt_value *dict, mt_value *key, mt_value *val) {
  if (!dict || dict->kind != MT_VAL_DICT || !key || !val) {
    mt_value_free(key);
    mt_value_free(val);
    return mt_fail(MT_EARG, dict && dict->kind == MT_VAL_DICT ? "key or value is NULL" : "can only set items of a dict");
  }
  uint64_t h = hash_value(key);
  ptrdiff_t at = dict_find(dict, key, h);
  if (at >= 0) { /* keep the first key and its position, as Python does */
    mt_value_free(key);
    mt_value_free(dict->u.dict.vals[at]);
    dict->u.dict.vals[at] = val;
    return MT_OK;
  }
  if (dict->u.dict.len == dict->u.dict.cap) {
    mt_status st = dict_grow(dict);
    if (st) {
      mt_value_free(key);
      mt_value_free(val);
      return st;
    }
  }
  size_t i = dict->u.dict.len++;
  dict->u.dict.keys[i] = key;
  dict->u.dict.vals[i] = val;
  uint32_t *index = dict_index(dict);
  if (index) {
    bool found;
    index[index_slot(index, 2 * dict->u.dict.cap, h, dict, key, &found)] = (uint32_t)(i + 1);
  }
  return MT_OK;
}

MT_API mt_value *mt_value_dict_get(const mt_value *dict, const char *key) {
  if (!dict || dict->kind != MT_VAL_DICT || !key) return NULL;
  /* A stack-built str key: it is only read, never freed. */
  mt_value k = {.kind = MT_VAL_STR, .u.str = {(char *)key, strlen(key)}};
  ptrdiff_t at = dict_find(dict, &k, hash_value(&k));
  return at >= 0 ? dict->u.dict.vals[at] : NULL;
}
