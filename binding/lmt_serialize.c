/*
 * lmt_serialize.c — Lua values <-> the core's value trees (mt_value), and the raw entry points
 * of checkpoint files: core._save, _load, _serialize, _deserialize, _safetensors_save and
 * _safetensors_load. lua/moontorch/serialization.lua checks options and dispatches on format;
 * ordered tables come from lua/moontorch/ordered.lua (recognised by their metatable's __name,
 * iterated through __pairs, built by the `adopt` function the Lua side passes in).
 *
 * Lua -> value: nil, booleans, integers, floats, strings (str if UTF-8, else bytes), tensors;
 * ordered tables -> OrderedDict in their order; tables keyed exactly 1..n -> lists; any other
 * table -> dict with keys sorted (integers, floats, strings bytewise, booleans). Errors name the
 * place inside the object: "cannot save a function at model.forward", "cycle at a.b[2]".
 * Value -> Lua: dicts become ordered tables in file order, lists and tuples arrays, str and
 * bytes strings; one core tensor is one userdata however often the tree names it.
 *
 * Ownership: a tree under construction sits in a to-be-closed box on the stack (freed when the
 * call returns or raises: the collector does not see the tree's malloc'ed bytes, so waiting for
 * it could pile up gigabytes), and every container is attached to its parent before it is
 * filled, so raising at any point (a bad value deep inside, out of memory) leaks nothing.
 */
#include "lmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NESTING MT_MAX_NESTING /* as the pickle reader: deeper trees could not be loaded back */
#define PATH_MAX_SHOWN 240
#define BOX "moontorch.ValueBox"

/* ---- the box ------------------------------------------------------------------------------ */

typedef struct box {
  mt_value *v, *v2; /* trees: the object (or safetensors' tensors) and safetensors' metadata */
  void *data;       /* mt_serialize's output */
} box;

static void box_clear(box *b) {
  mt_value_free(b->v);
  mt_value_free(b->v2);
  free(b->data);
  b->v = b->v2 = NULL;
  b->data = NULL;
}

static int box_gc(lua_State *L) {
  box_clear((box *)luaL_checkudata(L, 1, BOX));
  return 0;
}

static box *box_push(lua_State *L) {
  box *b = (box *)lua_newuserdatauv(L, sizeof *b, 0);
  b->v = b->v2 = NULL;
  b->data = NULL;
  luaL_setmetatable(L, BOX);
  lua_toclose(L, -1); /* freed as soon as the call returns or raises, not at some later cycle */
  return b;
}

/* ---- paths inside the object, for error messages ------------------------------------------ */

typedef enum { AT_ROOT, AT_LUAKEY, AT_POS, AT_VALKEY } at_kind;

typedef struct frame {
  const struct frame *up;
  at_kind kind;
  int idx;             /* AT_LUAKEY: stack index of the key */
  lua_Integer pos;     /* AT_POS: 1-based position in a list */
  const mt_value *key; /* AT_VALKEY: a dict key of a loaded tree */
} frame;

static const frame ROOT = {NULL, AT_ROOT, 0, 0, NULL};

static void add_name(luaL_Buffer *B, bool first, const char *s, size_t len) {
  if (!first) luaL_addchar(B, '.');
  luaL_addlstring(B, s, len);
}

static void add_bracket(luaL_Buffer *B, const char *fmt, ...) {
  char buf[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  luaL_addstring(B, buf);
}

/* Keys joined with dots, integer (and other non-string) keys in brackets: a.b[2].c */
static void add_path(lua_State *L, luaL_Buffer *B, const frame *f) {
  if (!f || f->kind == AT_ROOT) return;
  add_path(L, B, f->up);
  bool first = !f->up || f->up->kind == AT_ROOT;
  if (f->kind == AT_POS) {
    add_bracket(B, "[%lld]", (long long)f->pos);
  } else if (f->kind == AT_LUAKEY) {
    switch (lua_type(L, f->idx)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, f->idx, &len); /* a string: no conversion in place */
      add_name(B, first, s, len);
      break;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, f->idx))
        add_bracket(B, "[%lld]", (long long)lua_tointeger(L, f->idx));
      else
        add_bracket(B, "[%.14g]", (double)lua_tonumber(L, f->idx));
      break;
    case LUA_TBOOLEAN:
      add_bracket(B, lua_toboolean(L, f->idx) ? "[true]" : "[false]");
      break;
    default:
      add_bracket(B, "[%s]", luaL_typename(L, f->idx));
    }
  } else {
    const mt_value *k = f->key;
    switch (k->kind) {
    case MT_VAL_STR:
    case MT_VAL_BYTES: add_name(B, first, k->u.str.ptr, k->u.str.len); break;
    case MT_VAL_INT: add_bracket(B, "[%lld]", (long long)k->u.i); break;
    case MT_VAL_FLOAT: add_bracket(B, "[%.14g]", k->u.f); break;
    case MT_VAL_BOOL: add_bracket(B, k->u.b ? "[true]" : "[false]"); break;
    case MT_VAL_NONE: add_bracket(B, "[None]"); break;
    default: add_bracket(B, "[(tuple)]"); break;
    }
  }
}

/* Pushes the path of f, its middle cut out when long (a 10000-deep nesting error). */
static void push_path(lua_State *L, const frame *f) {
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  add_path(L, &B, f);
  luaL_pushresult(&B);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (len > PATH_MAX_SHOWN) {
    const size_t half = PATH_MAX_SHOWN / 2;
    lua_pushlstring(L, s, half);
    lua_pushliteral(L, "...");
    lua_pushlstring(L, s + len - half, half);
    lua_concat(L, 3);
    lua_remove(L, -2);
  }
}

/* Raises "moontorch.<fname>: [<where>: ]<problem>[ at <path>]". */
static int fail_at(lua_State *L, const char *fname, const char *where, const frame *f, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  push_path(L, f);
  const char *path = lua_tostring(L, -1);
  lua_pushfstring(L, "moontorch.%s: %s%s%s%s%s", fname, where ? where : "", where ? ": " : "", msg,
                  *path ? " at " : "", path);
  return lua_error(L);
}

static int fail_status(lua_State *L, const char *fname) {
  return lmt_error(L, fname, "%s", mt_last_error());
}

/* dict[k] = v for two fresh values, either NULL when memory ran out; raises on failure. */
static void put(lua_State *L, mt_value *dict, mt_value *k, mt_value *v, const char *fname) {
  if (!k || !v) {
    mt_value_free(k);
    mt_value_free(v);
    fail_status(L, fname);
  }
  if (mt_value_dict_set(dict, k, v) != MT_OK) fail_status(L, fname); /* k and v are freed by then */
}

/* ---- Lua -> value ------------------------------------------------------------------------- */

/* Strict UTF-8 as Python decodes it: no overlong forms, surrogates or code points past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    while (i + 8 <= n) { /* ASCII runs, a word at a time */
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else return false;
    if (n - i < len) return false;
    for (size_t k = 1; k < len; k++) {
      unsigned d = s[i + k];
      if ((d & 0xC0) != 0x80) return false;
      cp = cp << 6 | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

typedef struct walker {
  lua_State *L;
  const char *fname;
  int visited; /* stack index: tables on the current path -> true (cycle detection) */
} walker;

static bool is_ordered(lua_State *L, int idx) {
  int tp = luaL_getmetafield(L, idx, "__name");
  if (tp == LUA_TNIL) return false; /* pushed nothing */
  bool yes = tp == LUA_TSTRING && strcmp(lua_tostring(L, -1), "moontorch.OrderedDict") == 0;
  lua_pop(L, 1);
  return yes;
}

/* The name of a value's type for messages: __name when it has one ("FILE*"). */
static const char *type_name(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TLIGHTUSERDATA) return "light userdata";
  int tp = luaL_getmetafield(L, idx, "__name");
  if (tp == LUA_TNIL) return luaL_typename(L, idx);
  const char *s = tp == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, idx); /* anchored by the metatable */
  lua_pop(L, 1);
  return s;
}

/* Raises unless the Lua value at idx can be saved. */
static void check_value(walker *w, int idx, const frame *f) {
  lua_State *L = w->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: case LUA_TBOOLEAN: case LUA_TNUMBER: case LUA_TSTRING: case LUA_TTABLE: return;
  case LUA_TUSERDATA: {
    lmt_box *t = (lmt_box *)luaL_testudata(L, idx, LMT_TENSOR);
    if (t && t->t) return;
    if (t) fail_at(L, w->fname, NULL, f, "cannot save a closed tensor");
  } /* fallthrough */
  default:
    fail_at(L, w->fname, NULL, f, "cannot save a %s", type_name(L, idx));
  }
}

static void check_key(walker *w, int kidx, const frame *dict) {
  int tp = lua_type(w->L, kidx);
  if (tp != LUA_TSTRING && tp != LUA_TNUMBER && tp != LUA_TBOOLEAN)
    fail_at(w->L, w->fname, NULL, dict, "cannot save a %s as a dict key", type_name(w->L, kidx));
}

/* What a table becomes: OrderedDict, list (keys exactly 1..n) or dict. Never raises. */
static mt_value *new_container(lua_State *L, int idx) {
  if (is_ordered(L, idx)) return mt_value_dict(true);
  lua_Integer count = 0, max = 0;
  bool ints = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (ints && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k > max) max = k;
    } else {
      ints = false;
    }
  }
  /* count distinct integer keys, all in 1..max, with max == count: exactly 1..n */
  return ints && count >= 1 && max == count ? mt_value_list() : mt_value_dict(false);
}

/* A fresh value for the (checked) Lua value at idx; an empty container for a table. NULL only
 * when memory runs out. Never raises. */
static mt_value *create(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN: return mt_value_bool(lua_toboolean(L, idx));
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) return mt_value_int(lua_tointeger(L, idx));
    return mt_value_float(lua_tonumber(L, idx));
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return utf8_valid((const unsigned char *)s, len) ? mt_value_str(s, len) : mt_value_bytes(s, len);
  }
  case LUA_TTABLE: return new_container(L, lua_absindex(L, idx));
  case LUA_TUSERDATA: return mt_value_tensor(((lmt_box *)lua_touserdata(L, idx))->t);
  default: return mt_value_none();
  }
}

static void fill(walker *w, mt_value *c, int idx, const frame *f, int depth);

/* Adds key -> value (stack indices) to dict c, then fills the value if it is a table. */
static void add_entry(walker *w, mt_value *c, int kidx, int vidx, const frame *dict, int depth) {
  lua_State *L = w->L;
  frame cf = {dict, AT_LUAKEY, kidx, 0, NULL};
  check_key(w, kidx, dict);
  check_value(w, vidx, &cf);
  mt_value *v = create(L, vidx);
  put(L, c, create(L, kidx), v, w->fname);
  if (v->kind == MT_VAL_LIST || v->kind == MT_VAL_DICT) fill(w, v, vidx, &cf, depth + 1);
}

typedef struct key_entry {
  int rank;         /* 0 integers, 1 floats, 2 strings, 3 booleans */
  lua_Integer i;    /* integers; booleans as 0 / 1 */
  lua_Number f;
  const char *s;    /* anchored by the keys table */
  size_t len;
  lua_Integer slot; /* where the key sits in the keys table */
} key_entry;

static int key_cmp(const void *pa, const void *pb) {
  const key_entry *a = (const key_entry *)pa, *b = (const key_entry *)pb;
  if (a->rank != b->rank) return a->rank - b->rank;
  switch (a->rank) {
  case 0:
  case 3: return (a->i > b->i) - (a->i < b->i);
  case 1: return (a->f > b->f) - (a->f < b->f);
  default: {
    int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
  }
  }
}

/* A plain dict: keys collected into a table (which anchors the strings) and sorted. */
static void fill_sorted(walker *w, mt_value *c, int t, const frame *f, int depth) {
  lua_State *L = w->L;
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    n++;
  }
  lua_createtable(L, (int)(n < INT32_MAX ? n : 0), 0);
  int keys = lua_gettop(L);
  key_entry *e = (key_entry *)lua_newuserdatauv(L, (size_t)n * sizeof *e, 0);
  lua_Integer m = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (m == n) { /* the table grew under us (a finalizer ran); what was counted is saved */
      lua_pop(L, 1);
      break;
    }
    check_key(w, lua_gettop(L), f);
    key_entry *k = &e[m++];
    k->slot = m;
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys, m);
    switch (lua_type(L, -1)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, -1)) k->rank = 0, k->i = lua_tointeger(L, -1);
      else k->rank = 1, k->f = lua_tonumber(L, -1);
      break;
    case LUA_TSTRING: k->rank = 2, k->s = lua_tolstring(L, -1, &k->len); break;
    default: k->rank = 3, k->i = lua_toboolean(L, -1); break;
    }
  }
  qsort(e, (size_t)m, sizeof *e, key_cmp);
  for (lua_Integer i = 0; i < m; i++) {
    lua_rawgeti(L, keys, e[i].slot);
    lua_pushvalue(L, -1);
    lua_rawget(L, t);
    add_entry(w, c, lua_gettop(L) - 1, lua_gettop(L), f, depth);
    lua_pop(L, 2);
  }
  lua_pop(L, 2);
}

/* An ordered table: its own __pairs gives the order. */
static void fill_ordered(walker *w, mt_value *c, int t, const frame *f, int depth) {
  lua_State *L = w->L;
  if (luaL_getmetafield(L, t, "__pairs") == LUA_TNIL) lua_pushnil(L);
  lua_pushvalue(L, t);
  lua_call(L, 1, 3); /* iterator, state, control */
  int base = lua_gettop(L) - 2;
  for (;;) {
    lua_pushvalue(L, base);
    lua_pushvalue(L, base + 1);
    lua_pushvalue(L, base + 2);
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) {
      lua_pop(L, 2);
      break;
    }
    lua_copy(L, -2, base + 2);
    add_entry(w, c, lua_gettop(L) - 1, lua_gettop(L), f, depth);
    lua_pop(L, 2);
  }
  lua_pop(L, 3);
}

/* Fills container c (already owned by the tree) from the table at idx, which sits at f. */
static void fill(walker *w, mt_value *c, int idx, const frame *f, int depth) {
  lua_State *L = w->L;
  idx = lua_absindex(L, idx);
  if (depth > MAX_NESTING) fail_at(L, w->fname, NULL, f, "nesting deeper than %d levels", MAX_NESTING);
  luaL_checkstack(L, 12, "nesting too deep");
  lua_pushvalue(L, idx);
  if (lua_rawget(L, w->visited) != LUA_TNIL) fail_at(L, w->fname, NULL, f, "cycle");
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, w->visited);

  if (c->kind == MT_VAL_LIST) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx); /* the border of a table keyed 1..n is n */
    for (lua_Integer i = 1; i <= n; i++) {
      frame cf = {f, AT_POS, 0, i, NULL};
      lua_rawgeti(L, idx, i);
      check_value(w, -1, &cf);
      mt_value *v = create(L, -1);
      if (!v || mt_value_append(c, v) != MT_OK) fail_status(L, w->fname);
      if (v->kind == MT_VAL_LIST || v->kind == MT_VAL_DICT) fill(w, v, -1, &cf, depth + 1);
      lua_pop(L, 1);
    }
  } else if (c->u.dict.ordered) {
    fill_ordered(w, c, idx, f, depth);
  } else {
    fill_sorted(w, c, idx, f, depth);
  }

  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, w->visited); /* a table met again elsewhere (not inside itself) is fine */
}

/* Converts the Lua value at idx into b->v. */
static void to_value(lua_State *L, int idx, box *b, const char *fname) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  walker w = {L, fname, lua_gettop(L)};
  check_value(&w, idx, &ROOT);
  b->v = create(L, idx);
  if (!b->v) fail_status(L, fname);
  if (lua_type(L, idx) == LUA_TTABLE) fill(&w, b->v, idx, &ROOT, 1);
  lua_pop(L, 1);
}

/* ---- value -> Lua ------------------------------------------------------------------------- */

typedef struct loader {
  lua_State *L;
  const char *fname, *where;
  int adopt;             /* stack index: ordered.adopt(t, keys) */
  int tensors, storages; /* stack indices: core tensor -> userdata; storages seen */
  uint64_t storage_bytes;
} loader;

static void push_value(loader *ld, const mt_value *v, const frame *f, int depth);

static void push_tensor(loader *ld, mt_tensor *t) {
  lua_State *L = ld->L;
  if (lua_rawgetp(L, ld->tensors, t) != LUA_TNIL) return;
  lua_pop(L, 1);
  mt_tensor **slot = lmt_slot(L);
  mt_tensor_retain(t);
  *slot = t;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, ld->tensors, t);
  if (lua_rawgetp(L, ld->storages, t->storage) == LUA_TNIL) {
    ld->storage_bytes += mt_storage_nbytes(t->storage);
    lua_pushboolean(L, 1);
    lua_rawsetp(L, ld->storages, t->storage);
  }
  lua_pop(L, 1);
  lmt_gc_pace(L);
}

/* Pushes the Lua key for a dict key, as Lua would store it (2.0 -> 2). */
static void push_key(loader *ld, const mt_value *k, const frame *dict) {
  lua_State *L = ld->L;
  switch (k->kind) {
  case MT_VAL_STR:
  case MT_VAL_BYTES: lua_pushlstring(L, k->u.str.ptr, k->u.str.len); return;
  case MT_VAL_INT: lua_pushinteger(L, k->u.i); return;
  case MT_VAL_BOOL: lua_pushboolean(L, k->u.b); return;
  case MT_VAL_FLOAT:
    if (k->u.f == k->u.f) {
      lua_Integer i;
      if (lua_numbertointeger(k->u.f, &i) && (lua_Number)i == k->u.f) lua_pushinteger(L, i);
      else lua_pushnumber(L, k->u.f);
      return;
    }
    break;
  default: break;
  }
  /* the reader's other key kinds: None and tuples */
  const char *what = k->kind == MT_VAL_FLOAT ? "NaN" : k->kind == MT_VAL_NONE ? "None" : "tuple";
  fail_at(L, ld->fname, ld->where, dict, "a dict key %s cannot be a Lua table key", what);
}

static void push_dict(loader *ld, const mt_value *v, const frame *f, int depth) {
  lua_State *L = ld->L;
  size_t n = v->u.dict.len;
  lua_createtable(L, 0, n < INT32_MAX ? (int)n : 0);
  lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
  int t = lua_gettop(L) - 1, keys = t + 1;
  lua_Integer nkeys = 0;
  for (size_t i = 0; i < n; i++) {
    frame cf = {f, AT_VALKEY, 0, 0, v->u.dict.keys[i]};
    push_key(ld, v->u.dict.keys[i], f);
    push_value(ld, v->u.dict.vals[i], &cf, depth + 1);
    if (lua_isnil(L, -1)) { /* None: the key is absent in Lua */
      lua_pop(L, 2);
      continue;
    }
    lua_pushvalue(L, -2);
    bool fresh = lua_rawget(L, t) == LUA_TNIL; /* str 'a' and bytes b'a' meet as one key */
    lua_pop(L, 1);
    if (fresh) {
      lua_pushvalue(L, -2);
      lua_rawseti(L, keys, ++nkeys);
    }
    lua_rawset(L, t);
  }
  lua_pushvalue(L, ld->adopt);
  lua_insert(L, t);
  lua_call(L, 2, 1);
}

static void push_value(loader *ld, const mt_value *v, const frame *f, int depth) {
  lua_State *L = ld->L;
  if (depth > MAX_NESTING + 1) fail_at(L, ld->fname, ld->where, f, "nesting deeper than %d levels", MAX_NESTING);
  luaL_checkstack(L, 8, "nesting too deep");
  switch (v->kind) {
  case MT_VAL_NONE: lua_pushnil(L); break;
  case MT_VAL_BOOL: lua_pushboolean(L, v->u.b); break;
  case MT_VAL_INT: lua_pushinteger(L, v->u.i); break;
  case MT_VAL_FLOAT: lua_pushnumber(L, v->u.f); break;
  case MT_VAL_STR:
  case MT_VAL_BYTES: lua_pushlstring(L, v->u.str.ptr, v->u.str.len); break;
  case MT_VAL_LIST:
  case MT_VAL_TUPLE: {
    size_t n = v->u.seq.len;
    lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
    for (size_t i = 0; i < n; i++) {
      frame cf = {f, AT_POS, 0, (lua_Integer)i + 1, NULL};
      push_value(ld, v->u.seq.items[i], &cf, depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  }
  case MT_VAL_DICT: push_dict(ld, v, f, depth); break;
  case MT_VAL_TENSOR: push_tensor(ld, v->u.tensor); break;
  }
}

/* Mapped storages are not the core's allocations, so lmt_gc_pace does not see them: tell the
 * collector here, and collect fully every MAPPED_FULL bytes so that a loop of mmap loads
 * unmaps what it dropped. */
#define MAPPED_FULL ((uint64_t)256 << 20)
static const char MAPPED_KEY = 'm';

static void pace_mapped(lua_State *L, uint64_t bytes) {
  if (bytes == 0) return;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &MAPPED_KEY);
  uint64_t *since = (uint64_t *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!since) return;
  *since += bytes;
  if (lua_gc(L, LUA_GCISRUNNING) != 1) return;
  uint64_t kib = bytes >> 10;
  lua_gc(L, LUA_GCSTEP, kib > INT32_MAX ? INT32_MAX : (int)kib);
  if (*since >= MAPPED_FULL) {
    *since = 0;
    lua_gc(L, LUA_GCCOLLECT);
  }
}

/* Pushes the Lua form of tree v. `adopt` is the stack index of ordered.adopt. */
static void from_value(lua_State *L, const mt_value *v, int adopt, const char *fname, const char *where,
                       uint64_t allocated_before) {
  lua_newtable(L);
  lua_newtable(L);
  loader ld = {L, fname, where, lua_absindex(L, adopt), lua_gettop(L) - 1, lua_gettop(L), 0};
  push_value(&ld, v, &ROOT, 1);
  lua_replace(L, ld.tensors);
  lua_pop(L, 1);
  uint64_t owned = mt_storage_bytes_allocated() - allocated_before;
  if (ld.storage_bytes > owned) pace_mapped(L, ld.storage_bytes - owned);
}

/* ---- entry points -------------------------------------------------------------------------- */

static const char *check_string(lua_State *L, int arg, const char *fname, const char *what) {
  if (lua_type(L, arg) != LUA_TSTRING) lmt_typeerror(L, arg, fname, what);
  return lua_tostring(L, arg);
}

static void check_adopt(lua_State *L, int arg) { luaL_checktype(L, arg, LUA_TFUNCTION); }

/* _save(obj, path) */
static int l_save(lua_State *L) {
  const char *path = check_string(L, 2, "save", "path");
  lua_settop(L, 2);
  box *b = box_push(L);
  to_value(L, 1, b, "save");
  mt_status st = mt_save(b->v, path);
  box_clear(b); /* drop the tree's tensor references now, not at the next collection */
  if (st != MT_OK) return fail_status(L, "save");
  return 0;
}

/* _serialize(obj) -> string */
static int l_serialize(lua_State *L) {
  lua_settop(L, 1);
  box *b = box_push(L);
  to_value(L, 1, b, "serialize");
  size_t len = 0;
  mt_status st = mt_serialize(b->v, &b->data, &len);
  mt_value_free(b->v);
  b->v = NULL;
  if (st != MT_OK) return fail_status(L, "serialize");
  lua_pushlstring(L, (const char *)b->data, len);
  box_clear(b);
  return 1;
}

/* _deserialize(str, adopt) -> obj */
static int l_deserialize(lua_State *L) {
  size_t len;
  check_string(L, 1, "deserialize", "string");
  const char *s = lua_tolstring(L, 1, &len);
  check_adopt(L, 2);
  lua_settop(L, 2);
  box *b = box_push(L);
  uint64_t before = mt_storage_bytes_allocated();
  if (mt_deserialize(&b->v, s, len) != MT_OK) return fail_status(L, "deserialize");
  from_value(L, b->v, 2, "deserialize", "serialized data", before);
  box_clear(b);
  return 1;
}

/* _safetensors_save(tensors, metadata or nil, path): tensors maps names to tensors. */
static int l_safetensors_save(lua_State *L) {
  static const char *const NAME = "save";
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *path = check_string(L, 3, NAME, "path");
  lua_settop(L, 3);
  box *b = box_push(L);
  if (!(b->v = mt_value_dict(false))) return fail_status(L, NAME);
  lua_pushnil(L); /* order is the writer's (dtype alignment, then name): raw order will do */
  while (lua_next(L, 1)) {
    frame f = {&ROOT, AT_LUAKEY, lua_gettop(L) - 1, 0, NULL};
    if (lua_type(L, -2) != LUA_TSTRING)
      return fail_at(L, NAME, NULL, &f, "a safetensors file maps names to tensors: the key is a %s",
                     type_name(L, -2));
    lmt_box *t = (lmt_box *)luaL_testudata(L, -1, LMT_TENSOR);
    if (!t || !t->t)
      return fail_at(L, NAME, NULL, &f, "a safetensors file holds only tensors, not a %s",
                     t ? "closed tensor" : type_name(L, -1));
    size_t len;
    const char *k = lua_tolstring(L, -2, &len);
    put(L, b->v, mt_value_str(k, len), mt_value_tensor(t->t), NAME);
    lua_pop(L, 1);
  }
  if (!lua_isnil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!(b->v2 = mt_value_dict(false))) return fail_status(L, NAME);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return lmt_error(L, NAME, "opts.metadata must map strings to strings; found a %s key holding a %s",
                         type_name(L, -2), type_name(L, -1));
      size_t klen, vlen;
      const char *k = lua_tolstring(L, -2, &klen), *v = lua_tolstring(L, -1, &vlen);
      put(L, b->v2, mt_value_str(k, klen), mt_value_str(v, vlen), NAME);
      lua_pop(L, 1);
    }
  }
  mt_status st = mt_safetensors_save(b->v, b->v2, path);
  box_clear(b);
  if (st != MT_OK) return fail_status(L, NAME);
  return 0;
}

/* _load(path, mmap, adopt) -> obj; _safetensors_load(path, mmap, adopt) -> tensors (an ordered
 * table in file data order), metadata (a table) or nil */
static int load(lua_State *L, bool safetensors) {
  const char *path = check_string(L, 1, "load", "path");
  mt_load_opts o = {lua_toboolean(L, 2)};
  check_adopt(L, 3);
  lua_settop(L, 3);
  box *b = box_push(L);
  uint64_t before = mt_storage_bytes_allocated();
  mt_status st = safetensors ? mt_safetensors_load(&b->v, &b->v2, path, &o) : mt_load(&b->v, path, &o);
  if (st != MT_OK) return fail_status(L, "load");
  from_value(L, b->v, 3, "load", path, before);
  if (!safetensors) {
    box_clear(b);
    return 1;
  }
  const mt_value *m = b->v2;
  if (m) {
    lua_createtable(L, 0, m->u.dict.len < INT32_MAX ? (int)m->u.dict.len : 0);
    for (size_t i = 0; i < m->u.dict.len; i++) {
      const mt_value *k = m->u.dict.keys[i], *v = m->u.dict.vals[i];
      if (k->kind != MT_VAL_STR || v->kind != MT_VAL_STR) continue; /* the core promises str -> str */
      lua_pushlstring(L, k->u.str.ptr, k->u.str.len);
      lua_pushlstring(L, v->u.str.ptr, v->u.str.len);
      lua_rawset(L, -3);
    }
  } else {
    lua_pushnil(L);
  }
  box_clear(b);
  return 2;
}

static int l_load(lua_State *L) { return load(L, false); }
static int l_safetensors_load(lua_State *L) { return load(L, true); }

void lmt_open_serialize(lua_State *L, const lmt_tables *tb) {
  if (luaL_newmetatable(L, BOX)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &MAPPED_KEY) == LUA_TNIL) {
    uint64_t *since = (uint64_t *)lua_newuserdatauv(L, sizeof *since, 0);
    *since = 0;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &MAPPED_KEY);
  }
  lua_pop(L, 1);
  static const luaL_Reg module[] = {
      {"_save", l_save}, {"_load", l_load}, {"_serialize", l_serialize}, {"_deserialize", l_deserialize},
      {"_safetensors_save", l_safetensors_save}, {"_safetensors_load", l_safetensors_load}, {NULL, NULL}};
  lmt_setfuncs(L, tb->module, module);
}
