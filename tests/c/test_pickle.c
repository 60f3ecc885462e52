/*
 * test_pickle.c — value trees, the pickle writer and the pickle reader, without files (the zip
 * container is tested in test_checkpoint.c).
 *
 * The fixtures below are data.pkl records of files written by PyTorch 1.13's torch.save (and
 * two made with Python's pickle: a CUDA-tagged state dict, a protocol-4 pickle). The writer
 * must reproduce PyTorch's bytes exactly; the reader must load every fixture; truncated,
 * bit-flipped and hostile pickles must fail with MT_EFORMAT and a message naming the problem.
 */
#include "mt_test.h"
#include "mt_internal.h"

#include <stdarg.h>
#include <stdlib.h>

/* ---- fixtures ---------------------------------------------------------------------------- */

/* torch.manual_seed(0); w = torch.randn(3, 4)
 * OrderedDict(w=w, wt=w, v=w[1:, ::2], b=torch.arange(5)) */
static const char sd_pkl[] =
    "\200\002ccollections\nOrderedDict\nq\000)Rq\001(X\001\000\000\000wq\002ctorch._utils\n_rebui"
    "ld_tensor_v2\nq\003((X\007\000\000\000storageq\004ctorch\nFloatStorage\nq\005X\001\000\000"
    "\0000q\006X\003\000\000\000cpuq\007K\014tq\010QK\000K\003K\004\206q\011K\004K\001\206q\n\211"
    "h\000)Rq\013tq\014Rq\015X\002\000\000\000wtq\016h\015X\001\000\000\000vq\017h\003((h\004h"
    "\005h\006h\007K\014tq\020QK\004K\002K\002\206q\021K\004K\002\206q\022\211h\000)Rq\023tq\024R"
    "q\025X\001\000\000\000bq\026h\003((h\004ctorch\nLongStorage\nq\027X\001\000\000\0001q\030h"
    "\007K\005tq\031QK\000K\005\205q\032K\001\205q\033\211h\000)Rq\034tq\035Rq\036u.";

/* {'a': 1, 'b': 2.5, 'c': 'hé', 'd': b'\x00\xff', 'e': [1, (2, 3), None, True, False], 'f': -300,
 * 'g': 2**40, 'i': -2**63, 'j': 70000, 'k': 255, 'l': 256, 'm': -1, 'n': (), 'o': (1,), 'p': [], 'q': {}} */
static const char nested_pkl[] =
    "\200\002}q\000(X\001\000\000\000aq\001K\001X\001\000\000\000bq\002G@\004\000\000\000\000\000"
    "\000X\001\000\000\000cq\003X\003\000\000\000h\303\251q\004X\001\000\000\000dq\005c_codecs\ne"
    "ncode\nq\006X\003\000\000\000\000\303\277q\007X\006\000\000\000latin1q\010\206q\011Rq\nX\001"
    "\000\000\000eq\013]q\014(K\001K\002K\003\206q\015N\210\211eX\001\000\000\000fq\016J\324\376"
    "\377\377X\001\000\000\000gq\017\212\006\000\000\000\000\000\001X\001\000\000\000iq\020\212"
    "\010\000\000\000\000\000\000\000\200X\001\000\000\000jq\021Jp\021\001\000X\001\000\000\000kq"
    "\022K\377X\001\000\000\000lq\023M\000\001X\001\000\000\000mq\024J\377\377\377\377X\001\000"
    "\000\000nq\025)X\001\000\000\000oq\026K\001\205q\027X\001\000\000\000pq\030]q\031X\001\000"
    "\000\000qq\032}q\033u.";

/* OrderedDict(x=1) */
static const char od_pkl[] =
    "\200\002ccollections\nOrderedDict\nq\000)Rq\001X\001\000\000\000xq\002K\001s.";

/* {name: torch.ones(2, dtype=dt) for the 10 dtypes} */
static const char dtypes_pkl[] =
    "\200\002}q\000(X\007\000\000\000float32q\001ctorch._utils\n_rebuild_tensor_v2\nq\002((X\007"
    "\000\000\000storageq\003ctorch\nFloatStorage\nq\004X\001\000\000\0000q\005X\003\000\000\000c"
    "puq\006K\002tq\007QK\000K\002\205q\010K\001\205q\011\211ccollections\nOrderedDict\nq\n)Rq"
    "\013tq\014Rq\015X\007\000\000\000float64q\016h\002((h\003ctorch\nDoubleStorage\nq\017X\001"
    "\000\000\0001q\020h\006K\002tq\021QK\000K\002\205q\022K\001\205q\023\211h\n)Rq\024tq\025Rq"
    "\026X\007\000\000\000float16q\027h\002((h\003ctorch\nHalfStorage\nq\030X\001\000\000\0002q"
    "\031h\006K\002tq\032QK\000K\002\205q\033K\001\205q\034\211h\n)Rq\035tq\036Rq\037X\010\000"
    "\000\000bfloat16q h\002((h\003ctorch\nBFloat16Storage\nq!X\001\000\000\0003q\"h\006K\002tq#Q"
    "K\000K\002\205q$K\001\205q%\211h\n)Rq&tq'Rq(X\005\000\000\000int64q)h\002((h\003ctorch\nLong"
    "Storage\nq*X\001\000\000\0004q+h\006K\002tq,QK\000K\002\205q-K\001\205q.\211h\n)Rq/tq0Rq1X"
    "\005\000\000\000int32q2h\002((h\003ctorch\nIntStorage\nq3X\001\000\000\0005q4h\006K\002tq5QK"
    "\000K\002\205q6K\001\205q7\211h\n)Rq8tq9Rq:X\005\000\000\000int16q;h\002((h\003ctorch\nShort"
    "Storage\nq<X\001\000\000\0006q=h\006K\002tq>QK\000K\002\205q\?K\001\205q@\211h\n)RqAtqBRqCX"
    "\004\000\000\000int8qDh\002((h\003ctorch\nCharStorage\nqEX\001\000\000\0007qFh\006K\002tqGQK"
    "\000K\002\205qHK\001\205qI\211h\n)RqJtqKRqLX\005\000\000\000uint8qMh\002((h\003ctorch\nByteS"
    "torage\nqNX\001\000\000\0008qOh\006K\002tqPQK\000K\002\205qQK\001\205qR\211h\n)RqStqTRqUX"
    "\004\000\000\000boolqVh\002((h\003ctorch\nBoolStorage\nqWX\001\000\000\0009qXh\006K\002tqYQK"
    "\000K\002\205qZK\001\205q[\211h\n)Rq\\tq]Rq^u.";

/* torch.optim.Adam(net.parameters(), lr=0.1).state_dict() after one step, with
 * net = Sequential(Linear(2, 2), BatchNorm1d(2)) */
static const char optim_pkl[] =
    "\200\002}q\000(X\005\000\000\000stateq\001}q\002(K\000}q\003(X\004\000\000\000stepq\004ctorc"
    "h._utils\n_rebuild_tensor_v2\nq\005((X\007\000\000\000storageq\006ctorch\nFloatStorage\nq"
    "\007X\001\000\000\0000q\010X\003\000\000\000cpuq\011K\001tq\nQK\000))\211ccollections\nOrder"
    "edDict\nq\013)Rq\014tq\015Rq\016X\007\000\000\000exp_avgq\017h\005((h\006h\007X\001\000\000"
    "\0001q\020h\011K\004tq\021QK\000K\002K\002\206q\022K\002K\001\206q\023\211h\013)Rq\024tq\025"
    "Rq\026X\n\000\000\000exp_avg_sqq\027h\005((h\006h\007X\001\000\000\0002q\030h\011K\004tq\031"
    "QK\000K\002K\002\206q\032K\002K\001\206q\033\211h\013)Rq\034tq\035Rq\036uK\001}q\037(h\004h"
    "\005((h\006h\007X\001\000\000\0003q h\011K\001tq!QK\000))\211h\013)Rq\"tq#Rq$h\017h\005((h"
    "\006h\007X\001\000\000\0004q%h\011K\002tq&QK\000K\002\205q'K\001\205q(\211h\013)Rq)tq*Rq+h"
    "\027h\005((h\006h\007X\001\000\000\0005q,h\011K\002tq-QK\000K\002\205q.K\001\205q/\211h\013)"
    "Rq0tq1Rq2uK\002}q3(h\004h\005((h\006h\007X\001\000\000\0006q4h\011K\001tq5QK\000))\211h\013)"
    "Rq6tq7Rq8h\017h\005((h\006h\007X\001\000\000\0007q9h\011K\002tq:QK\000K\002\205q;K\001\205q<"
    "\211h\013)Rq=tq>Rq\?h\027h\005((h\006h\007X\001\000\000\0008q@h\011K\002tqAQK\000K\002\205qB"
    "K\001\205qC\211h\013)RqDtqERqFuK\003}qG(h\004h\005((h\006h\007X\001\000\000\0009qHh\011K\001"
    "tqIQK\000))\211h\013)RqJtqKRqLh\017h\005((h\006h\007X\002\000\000\00010qMh\011K\002tqNQK\000"
    "K\002\205qOK\001\205qP\211h\013)RqQtqRRqSh\027h\005((h\006h\007X\002\000\000\00011qTh\011K"
    "\002tqUQK\000K\002\205qVK\001\205qW\211h\013)RqXtqYRqZuuX\014\000\000\000param_groupsq[]q\\}"
    "q](X\002\000\000\000lrq^G\?\271\231\231\231\231\231\232X\005\000\000\000betasq_G\?\354\314"
    "\314\314\314\314\315G\?\357\367\316\331\026\207+\206q`X\003\000\000\000epsqaG>Ey\216\3420"
    "\214:X\014\000\000\000weight_decayqbK\000X\007\000\000\000amsgradqc\211X\010\000\000\000maxi"
    "mizeqd\211X\007\000\000\000foreachqeNX\n\000\000\000capturableqf\211X\016\000\000\000differe"
    "ntiableqg\211X\005\000\000\000fusedqh\211X\006\000\000\000paramsqi]qj(K\000K\001K\002K\003eu"
    "au.";

/* {'size': torch.Size([2, 3]), 'dev': torch.device('cuda', 0), 'dt': torch.float16,
 * 'dev2': torch.device('cpu'), 'scalar': torch.tensor(3.5), 'empty': torch.zeros(0, 3)} */
static const char misc_pkl[] =
    "\200\002}q\000(X\004\000\000\000sizeq\001ctorch\nSize\nq\002K\002K\003\206q\003\205q\004Rq"
    "\005X\003\000\000\000devq\006ctorch\ndevice\nq\007X\004\000\000\000cudaq\010K\000\206q\011Rq"
    "\nX\002\000\000\000dtq\013ctorch\nfloat16\nq\014X\004\000\000\000dev2q\015h\007X\003\000\000"
    "\000cpuq\016\205q\017Rq\020X\006\000\000\000scalarq\021ctorch._utils\n_rebuild_tensor_v2\nq"
    "\022((X\007\000\000\000storageq\023ctorch\nFloatStorage\nq\024X\001\000\000\0000q\025X\003"
    "\000\000\000cpuq\026K\001tq\027QK\000))\211ccollections\nOrderedDict\nq\030)Rq\031tq\032Rq"
    "\033X\005\000\000\000emptyq\034h\022((h\023h\024X\001\000\000\0001q\035h\026K\000tq\036QK"
    "\000K\000K\003\206q\037K\003K\001\206q \211h\030)Rq!tq\"Rq#u.";

/* torch.nn.Parameter(torch.ones(2)) */
static const char param_pkl[] =
    "\200\002ctorch._utils\n_rebuild_parameter\nq\000ctorch._utils\n_rebuild_tensor_v2\nq\001((X"
    "\007\000\000\000storageq\002ctorch\nFloatStorage\nq\003X\001\000\000\0000q\004X\003\000\000"
    "\000cpuq\005K\002tq\006QK\000K\002\205q\007K\001\205q\010\211ccollections\nOrderedDict\nq"
    "\011)Rq\ntq\013Rq\014\210h\011)Rq\015\207q\016Rq\017.";

/* net.state_dict() (ends with BUILD of its _metadata) */
static const char msd_pkl[] =
    "\200\002ccollections\nOrderedDict\nq\000)Rq\001(X\010\000\000\0000.weightq\002ctorch._utils"
    "\n_rebuild_tensor_v2\nq\003((X\007\000\000\000storageq\004ctorch\nFloatStorage\nq\005X\001"
    "\000\000\0000q\006X\003\000\000\000cpuq\007K\004tq\010QK\000K\002K\002\206q\011K\002K\001"
    "\206q\n\211h\000)Rq\013tq\014Rq\015X\006\000\000\0000.biasq\016h\003((h\004h\005X\001\000"
    "\000\0001q\017h\007K\002tq\020QK\000K\002\205q\021K\001\205q\022\211h\000)Rq\023tq\024Rq\025"
    "X\010\000\000\0001.weightq\026h\003((h\004h\005X\001\000\000\0002q\027h\007K\002tq\030QK\000"
    "K\002\205q\031K\001\205q\032\211h\000)Rq\033tq\034Rq\035X\006\000\000\0001.biasq\036h\003((h"
    "\004h\005X\001\000\000\0003q\037h\007K\002tq QK\000K\002\205q!K\001\205q\"\211h\000)Rq#tq$Rq"
    "%X\016\000\000\0001.running_meanq&h\003((h\004h\005X\001\000\000\0004q'h\007K\002tq(QK\000K"
    "\002\205q)K\001\205q*\211h\000)Rq+tq,Rq-X\015\000\000\0001.running_varq.h\003((h\004h\005X"
    "\001\000\000\0005q/h\007K\002tq0QK\000K\002\205q1K\001\205q2\211h\000)Rq3tq4Rq5X\025\000\000"
    "\0001.num_batches_trackedq6h\003((h\004ctorch\nLongStorage\nq7X\001\000\000\0006q8h\007K\001"
    "tq9QK\000))\211h\000)Rq:tq;Rq<u}q=X\011\000\000\000_metadataq>h\000)Rq\?(X\000\000\000\000q@"
    "}qAX\007\000\000\000versionqBK\001sX\001\000\000\0000qC}qDhBK\001sX\001\000\000\0001qE}qFhBK"
    "\002susb.";

/* pickle.Pickler (protocol 2) of a state dict whose persistent ids say 'cuda:0' and 'cuda:1' */
static const char cuda_pkl[] =
    "\200\002ccollections\nOrderedDict\nq\000)Rq\001(X\001\000\000\000wq\002ctorch._utils\n_rebui"
    "ld_tensor_v2\nq\003((X\007\000\000\000storageq\004ctorch\nFloatStorage\nq\005X\001\000\000"
    "\0000q\006X\006\000\000\000cuda:0q\007K\006tq\010QK\000K\002K\003\206q\011K\003K\001\206q\n"
    "\211h\000)Rq\013tq\014Rq\015X\001\000\000\000bq\016h\003((h\004ctorch\nHalfStorage\nq\017X"
    "\001\000\000\0001q\020X\006\000\000\000cuda:1q\021K\002tq\022QK\000K\002\205q\023K\001\205q"
    "\024\211h\000)Rq\025tq\026Rq\027u.";

/* pickle.dumps(OrderedDict(b=b'\x00\xffab', s='hé', n=[1, 2.5, None], t=(1, 'x')), protocol=4) */
static const char p4_pkl[] =
    "\200\004\225Y\000\000\000\000\000\000\000\214\013collections\224\214\013OrderedDict\224\223"
    "\224)R\224(\214\001b\224C\004\000\377ab\224\214\001s\224\214\003h\303\251\224\214\001n\224]"
    "\224(K\001G@\004\000\000\000\000\000\000Ne\214\001t\224K\001\214\001x\224\206\224u.";

/* pickle.dumps([255, 256, 65535, 65536, -1, 2**31-1, 2**31, -2**31, -2**31-1, 2**63-1, -2**39,
 *               -2**39-1, -2**63], protocol=2): the smallest integer opcode that fits */
static const char ints_pkl[] =
    "\200\002]q\000(K\377M\000\001M\377\377J\000\000\001\000J\377\377\377\377J\377\377\377\177"
    "\212\005\000\000\000\200\000J\000\000\000\200\212\005\377\377\377\177\377\212\010\377\377"
    "\377\377\377\377\377\177\212\005\000\000\000\000\200\212\006\377\377\377\377\177\377\212\010"
    "\000\000\000\000\000\000\000\200e.";

/* ---- helpers ----------------------------------------------------------------------------- */

#define PK(s) (const uint8_t *)(s), sizeof(s) - 1
#define S(lit) mt_value_str(lit, strlen(lit))

/* A Python-like rendering of a value; storages are numbered in first-seen order, so that two
 * renderings agree only if the same tensors share storages. */
typedef struct text {
  char *s;
  size_t len, cap;
  const mt_storage *seen[64];
  int nseen;
} text;

static void put(text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (t->len + (size_t)n + 1 > t->cap) {
    t->cap = 2 * (t->len + (size_t)n + 1);
    t->s = realloc(t->s, t->cap);
  }
  va_start(ap, fmt);
  vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

static void put_quoted(text *t, const mt_value *v) {
  put(t, v->kind == MT_VAL_BYTES ? "b'" : "'");
  for (size_t i = 0; i < v->u.str.len; i++) {
    unsigned char c = (unsigned char)v->u.str.ptr[i];
    if (c == '\'' || c == '\\') put(t, "\\%c", c);
    else if (c >= 0x20 && c < 0x7f) put(t, "%c", c);
    else if (c >= 0x80 && v->kind == MT_VAL_STR) put(t, "%c", c); /* UTF-8 passes through */
    else put(t, "\\x%02x", c);
  }
  put(t, "'");
}

static void render(text *t, const mt_value *v) {
  switch (v->kind) {
  case MT_VAL_NONE: put(t, "None"); break;
  case MT_VAL_BOOL: put(t, v->u.b ? "True" : "False"); break;
  case MT_VAL_INT: put(t, "%lld", (long long)v->u.i); break;
  case MT_VAL_FLOAT: { /* the shortest form that reads back, as Python's repr */
    char buf[32];
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, v->u.f);
      if (strtod(buf, NULL) == v->u.f) break;
    }
    put(t, "%s%s", buf, strpbrk(buf, ".en") ? "" : ".0");
    break;
  }
  case MT_VAL_STR:
  case MT_VAL_BYTES: put_quoted(t, v); break;
  case MT_VAL_LIST:
  case MT_VAL_TUPLE:
    put(t, v->kind == MT_VAL_LIST ? "[" : "(");
    for (size_t i = 0; i < v->u.seq.len; i++) {
      if (i) put(t, ", ");
      render(t, v->u.seq.items[i]);
    }
    put(t, v->kind == MT_VAL_LIST ? "]" : v->u.seq.len == 1 ? ",)" : ")");
    break;
  case MT_VAL_DICT:
    put(t, v->u.dict.ordered ? "OD{" : "{");
    for (size_t i = 0; i < v->u.dict.len; i++) {
      if (i) put(t, ", ");
      render(t, v->u.dict.keys[i]);
      put(t, ": ");
      render(t, v->u.dict.vals[i]);
    }
    put(t, "}");
    break;
  case MT_VAL_TENSOR: {
    const mt_tensor *x = v->u.tensor;
    int s = 0;
    while (s < t->nseen && t->seen[s] != x->storage) s++;
    if (s == t->nseen && s < 64) t->seen[t->nseen++] = x->storage;
    char sz[MT_SHAPE_STRLEN], st[MT_SHAPE_STRLEN];
    put(t, "T(%s %s %s +%lld s%d)", mt_dtype_name(x->dtype), mt_shape_str(sz, sizeof sz, x->ndim, x->sizes),
        mt_shape_str(st, sizeof st, x->ndim, x->strides), (long long)x->offset, s);
    break;
  }
  }
}

/* Renders v (NULL: "<null>") into a static buffer that the next call reuses. */
static const char *show(const mt_value *v) {
  static text t;
  t.len = 0;
  t.nseen = 0;
  if (!t.s) put(&t, "");
  t.s[0] = '\0';
  if (v) render(&t, v);
  else put(&t, "<null>");
  return t.s;
}

/* A loader that makes zero-filled storages and logs its calls; like the checkpoint layer's
 * record-size check, it refuses storages over max_bytes. */
typedef struct zero_loader {
  char log[512];
  size_t max_bytes;
} zero_loader;

static mt_status load_zeros(void *ctx, const char *key, mt_dtype dt, int64_t numel, mt_storage **out) {
  zero_loader *z = ctx;
  size_t used = strlen(z->log);
  snprintf(z->log + used, sizeof z->log - used, "%s:%s:%lld ", key, mt_dtype_name(dt), (long long)numel);
  if ((uint64_t)numel > z->max_bytes / mt_dtype_size(dt))
    return mt_fail(MT_EFORMAT, "data/%s: record is smaller than %lld elements", key, (long long)numel);
  return mt_storage_new(out, (size_t)numel * mt_dtype_size(dt));
}

/* Reads with a fresh zero loader; returns the status and leaves the value in *out. */
static mt_status read_zeros(const uint8_t *data, size_t len, mt_value **out, zero_loader *z) {
  zero_loader local;
  if (!z) z = &local;
  z->log[0] = '\0';
  z->max_bytes = 1 << 20;
  *out = NULL;
  return mt_pickle_read(data, len, load_zeros, z, out);
}

/* A loader that serves the storages a write collected: key i is table->items[i]. */
static mt_status load_table(void *ctx, const char *key, mt_dtype dt, int64_t numel, mt_storage **out) {
  const mt_storage_table *tb = ctx;
  char *end;
  long i = strtol(key, &end, 10);
  if (*end || i < 0 || (size_t)i >= tb->len) return mt_fail(MT_EFORMAT, "data/%s: no such record", key);
  if (tb->dtypes[i] != dt || mt_storage_nbytes(tb->items[i]) != (size_t)numel * mt_dtype_size(dt))
    return mt_fail(MT_EFORMAT, "data/%s: wrong dtype or size", key);
  mt_storage_retain(tb->items[i]);
  *out = tb->items[i];
  return MT_OK;
}

/* Same structure and contents; floats bit for bit; tensors the same view of the same storage. */
static bool same(const mt_value *a, const mt_value *b) {
  if (a->kind != b->kind) return false;
  switch (a->kind) {
  case MT_VAL_NONE: return true;
  case MT_VAL_BOOL: return a->u.b == b->u.b;
  case MT_VAL_INT: return a->u.i == b->u.i;
  case MT_VAL_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
  case MT_VAL_STR:
  case MT_VAL_BYTES: return a->u.str.len == b->u.str.len && !memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len);
  case MT_VAL_LIST:
  case MT_VAL_TUPLE:
    if (a->u.seq.len != b->u.seq.len) return false;
    for (size_t i = 0; i < a->u.seq.len; i++)
      if (!same(a->u.seq.items[i], b->u.seq.items[i])) return false;
    return true;
  case MT_VAL_DICT:
    if (a->u.dict.len != b->u.dict.len || a->u.dict.ordered != b->u.dict.ordered) return false;
    for (size_t i = 0; i < a->u.dict.len; i++)
      if (!same(a->u.dict.keys[i], b->u.dict.keys[i]) || !same(a->u.dict.vals[i], b->u.dict.vals[i])) return false;
    return true;
  case MT_VAL_TENSOR: {
    const mt_tensor *x = a->u.tensor, *y = b->u.tensor;
    if (x->dtype != y->dtype || x->ndim != y->ndim || x->offset != y->offset || x->storage != y->storage) return false;
    for (int d = 0; d < x->ndim; d++)
      if (x->sizes[d] != y->sizes[d] || x->strides[d] != y->strides[d]) return false;
    return true;
  }
  }
  return false;
}

/* Writes v, checks the result against `expect` (len bytes) and reports the first difference. */
static void check_bytes(const char *name, const mt_value *v, const char *expect, size_t len) {
  mt_buffer b = {0};
  mt_storage_table tb = {0};
  OK(mt_pickle_write(v, &b, &tb));
  size_t at = 0;
  while (at < b.len && at < len && b.data[at] == (uint8_t)expect[at]) at++;
  if (at != len || b.len != len) fprintf(stderr, "%s: %zu bytes, PyTorch wrote %zu; first difference at %zu\n", name, b.len, len, at);
  CHECK(b.len == len && at == len);
  free(b.data);
  mt_storage_table_free(&tb);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

static const mt_dtype all_dtypes[MT_NUM_DTYPES] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16, MT_INT64,
                                                   MT_INT32,   MT_INT16,   MT_INT8,    MT_UINT8,    MT_BOOL};

/* ---- values ------------------------------------------------------------------------------ */

static void test_values(void) {
  mt_value *s = mt_value_str("a\0b", 3), *b = mt_value_bytes("\xff\x00", 2);
  CHECK(s->kind == MT_VAL_STR && s->u.str.len == 3 && s->u.str.ptr[3] == '\0' && s->u.str.ptr[2] == 'b');
  CHECK(b->kind == MT_VAL_BYTES && b->u.str.len == 2 && (unsigned char)b->u.str.ptr[0] == 0xff);
  mt_value_free(s);
  mt_value_free(b);

  /* Replacing an equal key keeps its place; kinds never compare equal to each other. */
  mt_value *d = mt_value_dict(false);
  OK(mt_value_dict_set(d, S("a"), mt_value_int(1)));
  OK(mt_value_dict_set(d, S("b"), mt_value_int(2)));
  OK(mt_value_dict_set(d, S("a"), mt_value_int(3)));
  OK(mt_value_dict_set(d, mt_value_int(1), mt_value_none()));
  OK(mt_value_dict_set(d, mt_value_bool(true), mt_value_none()));
  OK(mt_value_dict_set(d, mt_value_float(1.0), mt_value_none()));
  OK(mt_value_dict_set(d, mt_value_float(0.0), mt_value_int(4)));
  OK(mt_value_dict_set(d, mt_value_float(-0.0), mt_value_int(5))); /* -0.0 == 0.0 */
  OK(mt_value_dict_set(d, mt_value_float(NAN), mt_value_int(6)));  /* NaN equals nothing */
  OK(mt_value_dict_set(d, mt_value_float(NAN), mt_value_int(7)));
  mt_value *k1 = mt_value_tuple(), *k2 = mt_value_tuple();
  OK(mt_value_append(k1, mt_value_int(1)));
  OK(mt_value_append(k1, S("x")));
  OK(mt_value_append(k2, mt_value_int(1)));
  OK(mt_value_append(k2, S("x")));
  OK(mt_value_dict_set(d, k1, mt_value_int(8)));
  OK(mt_value_dict_set(d, k2, mt_value_int(9)));
  CHECK(!strcmp(show(d), "{'a': 3, 'b': 2, 1: None, True: None, 1.0: None, 0.0: 5, nan: 6, nan: 7, (1, 'x'): 9}"));
  CHECK(mt_value_dict_get(d, "a")->u.i == 3);
  CHECK(mt_value_dict_get(d, "c") == NULL && mt_value_dict_get(NULL, "a") == NULL);

  /* Misuse fails and still frees what it was given (ASan / valgrind would see a leak). */
  FAILS(mt_value_append(d, mt_value_int(1)), MT_EARG, "append to a list or a tuple");
  mt_value *l = mt_value_list();
  FAILS(mt_value_dict_set(l, S("k"), mt_value_int(1)), MT_EARG, "items of a dict");
  CHECK(mt_value_dict_get(l, "k") == NULL);
  mt_value_free(l);
  mt_value_free(d);

  /* Many keys: the hash index (rebuilt as the dict grows) finds every one. */
  d = mt_value_dict(true);
  char key[32];
  for (int i = 0; i < 20000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    OK(mt_value_dict_set(d, S(key), mt_value_int(i)));
    OK(mt_value_dict_set(d, mt_value_int(i), mt_value_int(-i)));
  }
  for (int i = 0; i < 20000; i += 7) {
    snprintf(key, sizeof key, "k%d", i);
    OK(mt_value_dict_set(d, S(key), mt_value_int(i + 1)));
  }
  bool found = d->u.dict.len == 40000;
  for (int i = 0; i < 20000 && found; i++) {
    snprintf(key, sizeof key, "k%d", i);
    const mt_value *v = mt_value_dict_get(d, key);
    found = v && v->u.i == i + (i % 7 == 0) && d->u.dict.vals[2 * i + 1]->u.i == -i;
  }
  CHECK(found);
  OK(mt_value_dict_set(d, mt_value_float(0.0), mt_value_int(1))); /* hashed now: -0.0 must hash as 0.0 */
  OK(mt_value_dict_set(d, mt_value_float(-0.0), mt_value_int(2)));
  CHECK(d->u.dict.len == 40001 && d->u.dict.vals[40000]->u.i == 2);
  mt_value_free(d);

  mt_tensor *t;
  OK(mt_zeros(&t, MT_FLOAT32, 0, NULL));
  mt_value *tv = mt_value_tensor(t);
  CHECK(tv && tv->u.tensor == t && t->refcount == 2);
  mt_value_free(tv);
  CHECK(t->refcount == 1);
  mt_tensor_release(t);
}

/* ---- the writer: PyTorch's bytes --------------------------------------------------------- */

static void test_writer_matches_pytorch(void) {
  mt_tensor *w, *v, *r;
  int64_t sz[2] = {3, 4}, vsz[2] = {2, 2}, vst[2] = {4, 2};
  OK(mt_zeros(&w, MT_FLOAT32, 2, sz));
  OK(mt_from_storage(&v, w->storage, MT_FLOAT32, 4, 2, vsz, vst)); /* w[1:, ::2] */
  OK(mt_arange(&r, MT_INT64, 0, 5, 1));
  mt_value *d = mt_value_dict(true);
  OK(mt_value_dict_set(d, S("w"), mt_value_tensor(w)));
  OK(mt_value_dict_set(d, S("wt"), mt_value_tensor(w))); /* the same tensor: a memo reference */
  OK(mt_value_dict_set(d, S("v"), mt_value_tensor(v)));
  OK(mt_value_dict_set(d, S("b"), mt_value_tensor(r)));
  check_bytes("state dict", d, sd_pkl, sizeof sd_pkl - 1);
  mt_buffer buf = {0};
  mt_storage_table tb = {0};
  OK(mt_pickle_write(d, &buf, &tb)); /* one record per storage, first-seen order */
  CHECK(tb.len == 2 && tb.items[0] == w->storage && tb.dtypes[0] == MT_FLOAT32 && tb.items[1] == r->storage &&
        tb.dtypes[1] == MT_INT64 && mt_storage_refcount(w->storage) == 3);
  free(buf.data);
  mt_storage_table_free(&tb);
  CHECK(tb.len == 0 && tb.items == NULL && mt_storage_refcount(w->storage) == 2);
  mt_value_free(d);
  mt_tensor_release(w);
  mt_tensor_release(v);
  mt_tensor_release(r);

  d = mt_value_dict(false);
  mt_value *e = mt_value_list(), *t23 = mt_value_tuple(), *t1 = mt_value_tuple();
  OK(mt_value_append(t23, mt_value_int(2)));
  OK(mt_value_append(t23, mt_value_int(3)));
  OK(mt_value_append(t1, mt_value_int(1)));
  OK(mt_value_append(e, mt_value_int(1)));
  OK(mt_value_append(e, t23));
  OK(mt_value_append(e, mt_value_none()));
  OK(mt_value_append(e, mt_value_bool(true)));
  OK(mt_value_append(e, mt_value_bool(false)));
  OK(mt_value_dict_set(d, S("a"), mt_value_int(1)));
  OK(mt_value_dict_set(d, S("b"), mt_value_float(2.5)));
  OK(mt_value_dict_set(d, S("c"), S("h\xc3\xa9")));
  OK(mt_value_dict_set(d, S("d"), mt_value_bytes("\x00\xff", 2)));
  OK(mt_value_dict_set(d, S("e"), e));
  static const int64_t ints[] = {-300, 1099511627776, INT64_MIN, 70000, 255, 256, -1};
  for (int i = 0; i < 7; i++) {
    char k[2] = {"fgijklm"[i], 0};
    OK(mt_value_dict_set(d, S(k), mt_value_int(ints[i])));
  }
  OK(mt_value_dict_set(d, S("n"), mt_value_tuple()));
  OK(mt_value_dict_set(d, S("o"), t1));
  OK(mt_value_dict_set(d, S("p"), mt_value_list()));
  OK(mt_value_dict_set(d, S("q"), mt_value_dict(false)));
  check_bytes("plain values", d, nested_pkl, sizeof nested_pkl - 1);
  mt_value_free(d);

  d = mt_value_dict(true);
  OK(mt_value_dict_set(d, S("x"), mt_value_int(1)));
  check_bytes("OrderedDict", d, od_pkl, sizeof od_pkl - 1);
  mt_value_free(d);

  d = mt_value_dict(false);
  for (int i = 0; i < MT_NUM_DTYPES; i++) {
    int64_t two = 2;
    mt_tensor *t;
    OK(mt_full(&t, all_dtypes[i], 1, &two, mt_scalar_int(1)));
    OK(mt_value_dict_set(d, S(mt_dtype_name(all_dtypes[i])), mt_value_tensor(t)));
    mt_tensor_release(t);
  }
  check_bytes("every dtype", d, dtypes_pkl, sizeof dtypes_pkl - 1);
  mt_value_free(d);

  static const int64_t boundaries[] = {255, 256, 65535, 65536, -1, INT32_MAX, (int64_t)INT32_MAX + 1, INT32_MIN,
                                       (int64_t)INT32_MIN - 1, INT64_MAX, -(1LL << 39), -(1LL << 39) - 1, INT64_MIN};
  mt_value *l = mt_value_list();
  for (int i = 0; i < 13; i++) OK(mt_value_append(l, mt_value_int(boundaries[i])));
  check_bytes("integers", l, ints_pkl, sizeof ints_pkl - 1);
  mt_value_free(l);

  /* pickle's rules past the fixtures: APPENDS batches of 1000 (a batch of one is APPEND), and
   * LONG_BINPUT from memo index 256. */
  mt_buffer want = {0};
  l = mt_value_list();
  OK(mt_buffer_append(&want, "\200\002]q\000(", 6));
  for (int i = 0; i < 1001; i++) {
    OK(mt_value_append(l, mt_value_int(0)));
    OK(mt_buffer_append(&want, i == 1000 ? "eK\000" : "K\000", i == 1000 ? 3 : 2));
  }
  OK(mt_buffer_append(&want, "a.", 2));
  check_bytes("1001 items", l, (const char *)want.data, want.len);
  mt_value_free(l);
  want.len = 0;
  l = mt_value_list();
  OK(mt_buffer_append(&want, "\200\002]q\000(", 6));
  for (uint32_t i = 0; i < 300; i++) {
    char s[8];
    int n = snprintf(s, sizeof s, "s%03u", i);
    OK(mt_value_append(l, mt_value_str(s, (size_t)n)));
    uint8_t op[10] = {'X', 4, 0, 0, 0, (uint8_t)s[0], (uint8_t)s[1], (uint8_t)s[2], (uint8_t)s[3]};
    uint32_t memo = i + 1;
    if (memo < 256) {
      op[9] = (uint8_t)memo;
      OK(mt_buffer_append(&want, op, 9));
      OK(mt_buffer_append(&want, "q", 1));
      OK(mt_buffer_append(&want, &op[9], 1));
    } else {
      uint8_t put[5] = {'r', (uint8_t)memo, (uint8_t)(memo >> 8), 0, 0};
      OK(mt_buffer_append(&want, op, 9));
      OK(mt_buffer_append(&want, put, 5));
    }
  }
  OK(mt_buffer_append(&want, "e.", 2));
  check_bytes("300 strings", l, (const char *)want.data, want.len);
  mt_value_free(l);
  free(want.data);
}

static void test_writer_errors(void) {
  mt_buffer b = {0};
  mt_storage_table tb = {0};
  OK(mt_buffer_append(&b, "abc", 3));
  mt_value *bad = mt_value_list();
  OK(mt_value_append(bad, mt_value_str("ok", 2)));
  OK(mt_value_append(bad, mt_value_str("\xc3\x28", 2)));
  FAILS(mt_pickle_write(bad, &b, &tb), MT_EARG, "not valid UTF-8");
  mt_value_free(bad);
  static const char *const invalid[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x80"};
  for (int i = 0; i < 5; i++) {
    bad = S(invalid[i]);
    FAILS(mt_pickle_write(bad, &b, &tb), MT_EARG, "not valid UTF-8");
    mt_value_free(bad);
  }

  /* One storage seen through two dtypes cannot be written (the persistent id names one). */
  mt_tensor *f, *i32;
  int64_t n = 4;
  OK(mt_zeros(&f, MT_FLOAT32, 1, &n));
  OK(mt_from_storage(&i32, f->storage, MT_INT32, 0, 1, &n, (int64_t[]){1}));
  bad = mt_value_list();
  OK(mt_value_append(bad, mt_value_tensor(f)));
  OK(mt_value_append(bad, mt_value_tensor(i32)));
  FAILS(mt_pickle_write(bad, &b, &tb), MT_EARG, "shared by tensors of dtypes float32 and int32");
  CHECK(b.len == 3 && tb.len == 0 && tb.items == NULL && mt_storage_refcount(f->storage) == 2); /* left as they came */
  mt_value_free(bad);
  mt_tensor_release(f);
  mt_tensor_release(i32);

  bad = mt_value_list();
  mt_value *inner = bad;
  for (int d = 0; d < MT_MAX_NESTING + 1; d++) {
    mt_value *l = mt_value_list();
    OK(mt_value_append(inner, l));
    inner = l;
  }
  FAILS(mt_pickle_write(bad, &b, &tb), MT_EARG, "nested deeper than 1000");
  mt_value_free(bad);
  CHECK(b.len == 3 && tb.len == 0);
  free(b.data);
}

/* ---- the reader: PyTorch's files --------------------------------------------------------- */

static void check_read(const char *name, const uint8_t *data, size_t len, const char *expect, const char *log) {
  zero_loader z;
  mt_value *v;
  OK(read_zeros(data, len, &v, &z));
  if (strcmp(show(v), expect)) fprintf(stderr, "%s: read\n  %s\nexpected\n  %s\n", name, show(v), expect);
  CHECK(!strcmp(show(v), expect));
  if (log && strcmp(z.log, log)) fprintf(stderr, "%s: loader calls \"%s\", expected \"%s\"\n", name, z.log, log);
  CHECK(!log || !strcmp(z.log, log));
  mt_value_free(v);
}

static void test_reader_pytorch_files(void) {
  check_read("state dict", PK(sd_pkl),
             "OD{'w': T(float32 [3, 4] [4, 1] +0 s0), 'wt': T(float32 [3, 4] [4, 1] +0 s0), "
             "'v': T(float32 [2, 2] [4, 2] +4 s0), 'b': T(int64 [5] [1] +0 s1)}",
             "0:float32:12 1:int64:5 ");
  check_read("plain values", PK(nested_pkl),
             "{'a': 1, 'b': 2.5, 'c': 'h\xc3\xa9', 'd': b'\\x00\\xff', 'e': [1, (2, 3), None, True, False], "
             "'f': -300, 'g': 1099511627776, 'i': -9223372036854775808, 'j': 70000, 'k': 255, 'l': 256, "
             "'m': -1, 'n': (), 'o': (1,), 'p': [], 'q': {}}",
             "");
  check_read("every dtype", PK(dtypes_pkl),
             "{'float32': T(float32 [2] [1] +0 s0), 'float64': T(float64 [2] [1] +0 s1), "
             "'float16': T(float16 [2] [1] +0 s2), 'bfloat16': T(bfloat16 [2] [1] +0 s3), "
             "'int64': T(int64 [2] [1] +0 s4), 'int32': T(int32 [2] [1] +0 s5), 'int16': T(int16 [2] [1] +0 s6), "
             "'int8': T(int8 [2] [1] +0 s7), 'uint8': T(uint8 [2] [1] +0 s8), 'bool': T(bool [2] [1] +0 s9)}",
             "0:float32:2 1:float64:2 2:float16:2 3:bfloat16:2 4:int64:2 5:int32:2 6:int16:2 7:int8:2 8:uint8:2 "
             "9:bool:2 ");
  /* Adam's state dict: int keys, 0-dim step tensors, floats, a tuple, None. */
  check_read("optimizer", PK(optim_pkl),
             "{'state': {0: {'step': T(float32 [] [] +0 s0), 'exp_avg': T(float32 [2, 2] [2, 1] +0 s1), "
             "'exp_avg_sq': T(float32 [2, 2] [2, 1] +0 s2)}, 1: {'step': T(float32 [] [] +0 s3), "
             "'exp_avg': T(float32 [2] [1] +0 s4), 'exp_avg_sq': T(float32 [2] [1] +0 s5)}, "
             "2: {'step': T(float32 [] [] +0 s6), 'exp_avg': T(float32 [2] [1] +0 s7), "
             "'exp_avg_sq': T(float32 [2] [1] +0 s8)}, 3: {'step': T(float32 [] [] +0 s9), "
             "'exp_avg': T(float32 [2] [1] +0 s10), 'exp_avg_sq': T(float32 [2] [1] +0 s11)}}, "
             "'param_groups': [{'lr': 0.1, 'betas': (0.9, 0.999), 'eps': 1e-08, 'weight_decay': 0, "
             "'amsgrad': False, 'maximize': False, 'foreach': None, 'capturable': False, "
             "'differentiable': False, 'fused': False, 'params': [0, 1, 2, 3]}]}",
             NULL);
  check_read("torch globals", PK(misc_pkl),
             "{'size': (2, 3), 'dev': 'cuda:0', 'dt': 'float16', 'dev2': 'cpu', "
             "'scalar': T(float32 [] [] +0 s0), 'empty': T(float32 [0, 3] [3, 1] +0 s1)}",
             "0:float32:1 1:float32:0 ");
  check_read("Parameter", PK(param_pkl), "T(float32 [2] [1] +0 s0)", "0:float32:2 ");
  /* A module's state dict ends with BUILD of its _metadata, which is dropped. */
  check_read("module state dict", PK(msd_pkl),
             "OD{'0.weight': T(float32 [2, 2] [2, 1] +0 s0), '0.bias': T(float32 [2] [1] +0 s1), "
             "'1.weight': T(float32 [2] [1] +0 s2), '1.bias': T(float32 [2] [1] +0 s3), "
             "'1.running_mean': T(float32 [2] [1] +0 s4), '1.running_var': T(float32 [2] [1] +0 s5), "
             "'1.num_batches_tracked': T(int64 [] [] +0 s6)}",
             NULL);
  check_read("CUDA storages", PK(cuda_pkl), "OD{'w': T(float32 [2, 3] [3, 1] +0 s0), 'b': T(float16 [2] [1] +0 s1)}",
             "0:float32:6 1:float16:2 ");
  check_read("protocol 4", PK(p4_pkl), "OD{'b': b'\\x00\\xffab', 's': 'h\xc3\xa9', 'n': [1, 2.5, None], 't': (1, 'x')}", "");
}

/* ---- the reader: hostile and broken pickles ---------------------------------------------- */

/* Pieces of a valid tensor pickle; each hostile case below breaks one thing. */
#define P2 "\200\002"
#define REBUILD "ctorch._utils\n_rebuild_tensor_v2\n"
#define HOOKS "ccollections\nOrderedDict\n)R"
#define STR1(c) "X\001\000\000\000" c
#define PERSID(cls, key, numel) "(X\007\000\000\000storagectorch\n" cls "\n" key "X\003\000\000\000cpu" numel "tQ"
#define TENSOR(pid, off, sizes, strides) REBUILD "(" pid off sizes strides "\211" HOOKS "tR"
#define F4 PERSID("FloatStorage", STR1("0"), "K\004")
#define GOOD_TENSOR TENSOR(F4, "K\000", "K\004\205", "K\001\205")

typedef struct hostile {
  const char *data;
  size_t len;
  const char *needle;
} hostile;

#define H(data, needle) {data, sizeof(data) - 1, needle}

static const hostile hostile_cases[] = {
    /* globals outside the allowlist, however they are spelled */
    H(P2 "cos\nsystem\nX\002\000\000\000ls\205R.", "global 'os.system' is not allowed"),
    H(P2 "cposix\nsystem\nX\002\000\000\000ls\205R.", "global 'posix.system' is not allowed"),
    H(P2 "cnt\nsystem\nX\002\000\000\000ls\205R.", "global 'nt.system' is not allowed"),
    H(P2 "cbuiltins\neval\nX\001\000\000\0001\205R.", "global 'builtins.eval' is not allowed"),
    H(P2 "c__builtin__\neval\nN\205R.", "global '__builtin__.eval' is not allowed"),
    H(P2 "cbuiltins\ngetattr\nN\205R.", "global 'builtins.getattr' is not allowed"),
    H(P2 "ctorch\nload\n.", "global 'torch.load' is not allowed"),
    H(P2 "ctorch._utils\n_rebuild_tensor\n.", "global 'torch._utils._rebuild_tensor' is not allowed"),
    H(P2 "ccollections\nOrderedDict\001\n.", "global 'collections.OrderedDict?' is not allowed"),
    H("\200\004\214\002os\214\006system\223.", "global 'os.system' is not allowed"),
    H(P2 "cos", "GLOBAL module is not a line"),
    H(P2 "ctorch\nFloatStorage\n)R.", "torch.FloatStorage only names a storage's class"),
    /* opcodes outside the subset */
    H(P2 "\377", "offset 2: unknown opcode 0xff"),
    H("(S'os'\nS'system'\ni.", "opcode STRING (0x53) is not supported"),
    H(P2 "Vabc\n.", "opcode UNICODE (0x56)"),
    H(P2 "N(\201.", "opcode NEWOBJ (0x81)"),
    H(P2 "NN0.", "opcode POP (0x30)"),
    H(P2 "\217.", "opcode EMPTY_SET"),
    H("\200\011N.", "pickle protocol 9 is not supported"),
    /* the memo */
    H(P2 "h\005.", "memo index 5 is not set"),
    H(P2 "j\000\000\001\000.", "memo index 65536 is not set"),
    H(P2 "Nr\377\377\377\377.", "memo index 4294967295 is out of range"),
    H(P2 "q\000N.", "memo store needs 1 object on the stack, found 0"),
    H(P2 "](q\000.", "memo store needs 1 object on the stack, found 0"), /* below the MARK is out of reach */
    H(P2 "]q\000(h\000e.", "a list contains itself"),
    /* lengths */
    H(P2 "X\377\377\377\177abc", "BINUNICODE of 2147483647 bytes runs past the end of the data (3 left)"),
    H(P2 "X\005\000\000", "BINUNICODE of 4 bytes runs past the end"),
    H(P2 "C\003ab", "SHORT_BINBYTES of 3 bytes runs past the end"),
    H(P2 "\215\377\377\377\377\377\377\377\377", "BINUNICODE8 of 18446744073709551615 bytes runs past"),
    H(P2 "X\002\000\000\000\377\376.", "BINUNICODE string is not valid UTF-8"),
    H(P2 "\225\377\000\000\000\000\000\000\000N.", "FRAME runs past the end"),
    H(P2 "\212\011\000\000\000\000\000\000\000\000\001.", "LONG1 integer of 9 bytes does not fit in 64 bits"),
    H(P2 "J\001\000", "BININT of 4 bytes runs past the end"),
    H(P2 "G\000\000", "BINFLOAT of 8 bytes runs past the end"),
    /* containers and the stack */
    H(P2 "]K\001K\002s.", "SETITEM on a list, not a dict"),
    H(P2 ")(K\001K\002u.", "SETITEMS on a tuple, not a dict"),
    H(P2 "}(K\001u.", "SETITEMS with an odd number of objects"),
    H(P2 "(K\001K\002u.", "SETITEMS has no container below its MARK"),
    H(P2 "}(K\001K\002s.", "SETITEM needs 3 objects on the stack, found 2"),
    H(P2 "}K\001a.", "APPEND on a dict, not a list"),
    H(P2 "}(K\001e.", "APPENDS on a dict, not a list"),
    H(P2 "]K\001e.", "APPENDS without a MARK"),
    H(P2 "K\001t.", "TUPLE without a MARK"),
    H(P2 "K\001\206.", "TUPLE1/2/3 needs 2 objects on the stack, found 1"),
    H(P2 "NR.", "REDUCE needs 2 objects on the stack, found 1"),
    H(P2 "K\001)R.", "REDUCE calls an int, which is not callable"),
    H(P2 "ccollections\nOrderedDict\n]R.", "REDUCE arguments are a list, not a tuple"),
    H(P2 "ccollections\nOrderedDict\n]\205R.", "collections.OrderedDict is allowed only without arguments"),
    H(P2 "]}b.", "BUILD of a list with a dict as state is not supported"),
    H(P2 "}]Ns.", "offset 6: a list cannot be a dict key"),
    H(P2 "}" GOOD_TENSOR "Ns.", "a tensor cannot be a dict key"),
    H(P2 "}]\205Ns.", "a tuple cannot be a dict key"),
    /* the end */
    H("", "offset 0: the data is empty"),
    H(P2 "N", "offset 3: the data ends without a STOP opcode"),
    H(P2 ".", "STOP with 0 objects on the stack, not 1"),
    H(P2 "NN.", "STOP with 2 objects on the stack, not 1"),
    H(P2 "(N.", "STOP with a MARK still open"),
    H(P2 F4 ".", "a bare storage cannot be part of the loaded data"),
    H(P2 "ccollections\nOrderedDict\n.", "the global collections.OrderedDict cannot be part of the loaded data"),
    /* persistent ids and storages */
    H(P2 "K\001Q.", "a persistent id must be ('storage', torch.<X>Storage, key, location, numel), not an int"),
    H(P2 "(X\007\000\000\000storagectorch\nFloatStorage\n" STR1("0") "K\004tQ.", "not a tuple of another shape"),
    H(P2 "(X\007\000\000\000storagectorch\nFloatStorage\n" STR1("0") "X\003\000\000\000cpuK\004K\000tQ.", "another shape"),
    H(P2 "(X\007\000\000\000Storagectorch\nFloatStorage\n" STR1("0") "X\003\000\000\000cpuK\004tQ.", "another shape"),
    H(P2 "(X\007\000\000\000storageccollections\nOrderedDict\n" STR1("0") "X\003\000\000\000cpuK\004tQ.", "another shape"),
    H(P2 "(X\007\000\000\000storagectorch\nFloatStorage\nK\000X\003\000\000\000cpuK\004tQ.", "another shape"),
    H(P2 PERSID("FloatStorage", STR1("0"), "J\377\377\377\377") ".", "storage '0' has an impossible size of -1 elements"),
    H(P2 PERSID("DoubleStorage", STR1("0"), "\212\010\377\377\377\377\377\377\377\177") ".",
      "storage '0' has an impossible size of 9223372036854775807 elements"),
    H(P2 PERSID("FloatStorage", STR1("7"), "\212\006\000\000\000\000\000\001") ".", "data/7: record is smaller"),
    H(P2 PERSID("FloatStorage", STR1("\000"), "K\004") ".", "storage key '?' is empty, longer than 255 bytes or holds a NUL"),
    H(P2 PERSID("FloatStorage", "X\000\000\000\000", "K\004") ".", "storage key '' is empty"),
    H(P2 "(" PERSID("FloatStorage", STR1("0"), "K\004") PERSID("LongStorage", STR1("0"), "K\004") "t.",
      "storage '0' is used as torch.FloatStorage and as torch.LongStorage"),
    H(P2 "(" PERSID("FloatStorage", STR1("0"), "K\004") PERSID("FloatStorage", STR1("0"), "K\005") "t.",
      "storage '0' is declared with 4 and with 5 elements"),
    /* _rebuild_tensor_v2 and friends */
    H(P2 TENSOR(F4, "K\000", "K\005\205", "K\001\205") ".",
      "tensor of size [5] at offset 0 does not fit its storage: view reaches element 4"),
    H(P2 TENSOR(F4, "K\002", "K\002\205", "K\002\205") ".", "tensor of size [2] at offset 2 does not fit its storage"),
    H(P2 TENSOR(F4, "J\377\377\377\377", "K\001\205", "K\001\205") ".", "at offset -1 does not fit its storage"),
    H(P2 TENSOR(F4, "K\000", "J\377\377\377\377\205", "K\001\205") ".", "tensor size [-1] is impossible"),
    H(P2 TENSOR(F4, "K\000", "\212\010\000\000\000\000\000\000\000\100\212\010\000\000\000\000\000\000\000\100\206",
                "K\001K\001\206") ".",
      "tensor size [4611686018427387904, 4611686018427387904] is impossible"),
    H(P2 TENSOR(F4, "K\000", "K\002\205", "\212\010\000\000\000\000\000\000\000\100\205") ".", "does not fit its storage"),
    H(P2 TENSOR(F4, "K\000", STR1("a") "\205", "K\001\205") ".", "tensor sizes hold a str, not an int"),
    H(P2 TENSOR(F4, "K\000", "]", "K\001\205") ".", "tensor sizes are a list, not a tuple"),
    H(P2 TENSOR(F4, "K\000", "(K\001K\001K\001K\001K\001K\001K\001K\001K\001t", "K\001\205") ".",
      "tensor sizes have 9 dims, more than 8"),
    H(P2 TENSOR(F4, "K\000", "K\001K\001\206", "K\001\205") ".", "tensor has 2 sizes but 1 strides"),
    H(P2 TENSOR(F4, "N", "K\001\205", "K\001\205") ".", "tensor offset is None, not an int"),
    H(P2 TENSOR("K\000", "K\000", "K\001\205", "K\001\205") ".", "_rebuild_tensor_v2 needs a storage, not an int"),
    H(P2 REBUILD "(" F4 "K\000K\001\205K\001\205\211t" "R.", "_rebuild_tensor_v2 takes 6 arguments, not 5"),
    H(P2 REBUILD "(" F4 "K\000K\001\205K\001\205NNtR.", "requires_grad must be a bool"),
    H(P2 "ctorch._utils\n_rebuild_parameter\n(K\001\211}tR.", "_rebuild_parameter takes (tensor, bool, dict)"),
    H(P2 "ctorch\nSize\nX\001\000\000\000a\205\205R.", "torch.Size holds a str, not an int"),
    H(P2 "ctorch\nSize\n)R.", "torch.Size takes one tuple"),
    H(P2 "ctorch\ndevice\nK\001\205R.", "torch.device takes a type string and an optional int index"),
    H(P2 "c_codecs\nencode\nX\001\000\000\000aX\004\000\000\000utf8\206R.", "allowed only as encode(str, 'latin1')"),
    H(P2 "c_codecs\nencode\nX\003\000\000\000\342\202\254X\006\000\000\000latin1\206R.", "a character past U+00FF"),
    H(P2 "cbuiltins\nbytes\nK\001\205R.", "builtins.bytes is allowed only without arguments"),
};

static void test_hostile(void) {
  /* The pieces make a valid pickle when nothing is broken. */
  mt_value *v;
  OK(read_zeros(PK(P2 GOOD_TENSOR "."), &v, NULL));
  CHECK(!strcmp(show(v), "T(float32 [4] [1] +0 s0)"));
  mt_value_free(v);
  for (size_t i = 0; i < sizeof hostile_cases / sizeof *hostile_cases; i++) {
    const hostile *h = &hostile_cases[i];
    mt_status st = read_zeros((const uint8_t *)h->data, h->len, &v, NULL);
    bool ok = st == MT_EFORMAT && strstr(mt_last_error(), h->needle) && v == NULL;
    ok = ok && (!strncmp(mt_last_error(), "data.pkl: offset ", 17) || !strncmp(mt_last_error(), "data/", 5));
    if (!ok) fprintf(stderr, "hostile case %zu: %s \"%s\", expected \"%s\"\n", i, mt_status_name(st), mt_last_error(), h->needle);
    CHECK(ok);
    mt_value_free(v);
  }
}

/* Allowed oddities: Python 2 strings, protocol-3 bytes, b'' as Python writes it, dtype names,
 * an equal key set twice (the last value wins, at the first key's place). */
static void test_reader_variants(void) {
  static const struct {
    const uint8_t *data;
    size_t len;
    const char *expect;
  } cases[] = {
      {PK(P2 "U\002hi."), "'hi'"},
      {PK(P2 "T\002\000\000\000\377\376."), "b'\\xff\\xfe'"},
      {PK(P2 "B\002\000\000\000\377\376."), "b'\\xff\\xfe'"},
      {PK(P2 "c__builtin__\nbytes\n)R."), "b''"},
      {PK(P2 "c_codecs\nencode\nX\000\000\000\000X\006\000\000\000latin1\206R."), "b''"},
      {PK(P2 "ctorch\nbfloat16\n."), "'bfloat16'"},
      {PK(P2 "}(K\001K\002K\003K\004K\001K\005u."), "{1: 5, 3: 4}"},
      {PK(P2 "(\212\000\212\001\377\212\010\000\000\000\000\000\000\000\200\213\002\000\000\000\000\001t."),
       "(0, -1, -9223372036854775808, 256)"},
      {PK(P2 "G\177\360\000\000\000\000\000\000G\200\000\000\000\000\000\000\000\206."), "(inf, -0.0)"},
      {PK(P2 "(]q\000h\000t."), "([], [])"}, /* shared, not nested: fine */
      {PK(P2 "X\003\000\000\000\355\240\200."), "'\355\240\200'"}, /* a lone surrogate, as Python allows */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    mt_value *v;
    mt_status st = read_zeros(cases[i].data, cases[i].len, &v, NULL);
    bool ok = st == MT_OK && !strcmp(show(v), cases[i].expect);
    if (!ok) fprintf(stderr, "variant %zu: %s %s, expected %s\n", i, mt_status_name(st), st ? mt_last_error() : show(v), cases[i].expect);
    CHECK(ok);
    mt_value_free(v);
  }
}

/* Every strict prefix of a real pickle fails cleanly; flipped bits fail cleanly or load. */
static void test_truncation_and_bit_flips(void) {
  static const struct {
    const uint8_t *data;
    size_t len;
  } files[] = {{PK(sd_pkl)}, {PK(optim_pkl)}, {PK(misc_pkl)}, {PK(msd_pkl)}, {PK(p4_pkl)}, {PK(nested_pkl)}};
  int nfiles = sizeof files / sizeof *files, bad = 0, loaded = 0;
  for (int f = 0; f < nfiles; f++)
    for (size_t n = 0; n < files[f].len; n++) {
      uint8_t *copy = malloc(n ? n : 1); /* exactly n bytes, so ASan sees any overread */
      memcpy(copy, files[f].data, n);
      mt_value *v;
      mt_status st = read_zeros(copy, n, &v, NULL);
      if (st != MT_EFORMAT || v) bad++;
      free(copy);
    }
  CHECK(bad == 0);
  for (int iter = 0; iter < 6000; iter++) {
    int f = (int)(rnd() % (uint64_t)nfiles);
    size_t len = files[f].len;
    uint8_t *copy = malloc(len);
    memcpy(copy, files[f].data, len);
    for (int k = 0, flips = 1 + (int)(rnd() % 3); k < flips; k++) copy[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
    if (iter % 3 == 0) copy[rnd() % len] = (uint8_t)rnd(); /* and a random byte */
    mt_value *v;
    mt_status st = read_zeros(copy, len, &v, NULL);
    if (st == MT_OK) loaded++;
    else if (st != MT_EFORMAT || v) bad++;
    mt_value_free(v);
    free(copy);
  }
  CHECK(bad == 0);
  CHECK(loaded > 0); /* some flips only change a value */
}

/* Nesting and memo bombs: a clear error, quickly, in bounded memory. */
static void test_bombs(void) {
  enum { N = 100000 };
  uint8_t *p = malloc(3 * N + 16);
  mt_value *v;
  size_t n = 0;
  p[n++] = 0x80, p[n++] = 2;
  for (int i = 0; i < N; i++) p[n++] = '(';
  FAILS(read_zeros(p, n, &v, NULL), MT_EFORMAT, "offset 1002: MARKs are nested deeper than 1000");
  n = 2;
  for (int i = 0; i < N; i++) p[n++] = ']';
  for (int i = 1; i < N; i++) p[n++] = 'a';
  p[n++] = '.';
  FAILS(read_zeros(p, n, &v, NULL), MT_EFORMAT, "objects are nested deeper than 1000 levels");
  n = 2;
  p[n++] = ')';
  for (int i = 0; i < N; i++) p[n++] = 0x85;
  p[n++] = '.';
  FAILS(read_zeros(p, n, &v, NULL), MT_EFORMAT, "objects are nested deeper than 1000 levels");
  /* x = []; then 64 times x = (x, x): 4 bytes a step, 2^64 objects once copied out. */
  n = 2;
  p[n++] = ']', p[n++] = 'q', p[n++] = 0;
  for (int i = 0; i < 64; i++) p[n++] = 'h', p[n++] = 0, p[n++] = 0x86, p[n++] = 'q', p[n++] = 0;
  p[n++] = '.';
  FAILS(read_zeros(p, n, &v, NULL), MT_EFORMAT, "objects shared through the memo expand past");
  /* A few doublings stay within the budget and load. */
  n = 5 + 5 * 8;
  p[n++] = '.';
  OK(read_zeros(p, n, &v, NULL));
  CHECK(v && v->kind == MT_VAL_TUPLE);
  mt_value_free(v);
  free(p);
}

/* ---- round trips ------------------------------------------------------------------------- */

static mt_tensor *pool[64];
static int npool;

static void make_pool(void) {
  for (int i = 0; i < MT_NUM_DTYPES; i++) {
    mt_tensor *t, *tt, *row, *e;
    int64_t sz[2] = {2, 3}, esz[2] = {0, 3}, big[3] = {2, 2, 3};
    OK(mt_arange(&t, MT_FLOAT64, 0, 6, 1));
    mt_tensor *c;
    OK(mt_to_dtype(&c, t, all_dtypes[i]));
    mt_tensor_release(t);
    OK(mt_view(&t, c, 2, sz));
    mt_tensor_release(c);
    OK(mt_transpose(&tt, t, 0, 1));
    OK(mt_select(&row, t, 0, 1));
    OK(mt_zeros(&e, all_dtypes[i], 2, esz));
    pool[npool++] = t;
    pool[npool++] = tt;
    pool[npool++] = row;
    pool[npool++] = e;
    if (i < 3) {
      mt_tensor *s, *x;
      OK(mt_scalar_tensor(&s, all_dtypes[i], mt_scalar_int(7)));
      OK(mt_expand(&x, row, 3, big)); /* stride-0 dims */
      pool[npool++] = s;
      pool[npool++] = x;
    }
  }
}

static mt_value *random_key(void) {
  switch (rnd() % 6) {
  case 0: return mt_value_int((int64_t)(rnd() % 100) - 50);
  case 1: return mt_value_float((double)(rnd() % 100) / 8);
  case 2: return mt_value_bool(rnd() & 1);
  case 3: return mt_value_none();
  default: {
    char k[8];
    snprintf(k, sizeof k, "k%d", (int)(rnd() % 40));
    return S(k);
  }
  }
}

static mt_value *random_value(int depth) {
  static const int64_t ints[] = {0, 1, 255, 256, 65535, 65536, -1, -128, -129, INT32_MAX, (int64_t)INT32_MAX + 1,
                                 INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MAX, INT64_MIN, 1LL << 40, -(1LL << 40),
                                 -(1LL << 39), 1LL << 55};
  static const char *const strs[] = {"", "a", "h\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", "nul\0in", "storage", "cpu"};
  unsigned kind = (unsigned)(rnd() % (depth < 4 ? 13 : 8));
  switch (kind) {
  case 0: return mt_value_none();
  case 1: return mt_value_bool(rnd() & 1);
  case 2: return mt_value_int(rnd() & 1 ? ints[rnd() % (sizeof ints / sizeof *ints)] : (int64_t)rnd() >> (rnd() % 64));
  case 3: {
    uint64_t bits = rnd();
    double f;
    memcpy(&f, &bits, sizeof f);
    static const double specials[] = {0.0, -0.0, 1.0 / 0.0, -1.0 / 0.0, 1e-310, 0.1};
    return mt_value_float(rnd() & 1 ? f : specials[rnd() % 6]);
  }
  case 4: {
    const char *s = strs[rnd() % (sizeof strs / sizeof *strs)];
    return mt_value_str(s, strcmp(s, "nul") ? strlen(s) : 6);
  }
  case 5: {
    uint8_t b[12];
    size_t n = rnd() % 12;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rnd();
    return mt_value_bytes(b, n);
  }
  case 6:
  case 7: return mt_value_tensor(pool[rnd() % (uint64_t)npool]);
  case 8:
  case 9: {
    mt_value *l = kind == 8 ? mt_value_list() : mt_value_tuple();
    for (int n = (int)(rnd() % 6); n > 0; n--) mt_value_append(l, random_value(depth + 1));
    return l;
  }
  default: {
    mt_value *d = mt_value_dict(kind == 10);
    for (int n = (int)(rnd() % 6); n > 0; n--) mt_value_dict_set(d, random_key(), random_value(depth + 1));
    if (rnd() % 4 == 0) { /* a tuple key */
      mt_value *k = mt_value_tuple();
      mt_value_append(k, mt_value_int(1));
      mt_value_append(k, S("x"));
      mt_value_dict_set(d, k, random_value(depth + 1));
    }
    return d;
  }
  }
}

static void round_trip(const mt_value *v, const char *what) {
  mt_buffer b = {0};
  mt_storage_table tb = {0};
  mt_value *back = NULL;
  OK(mt_pickle_write(v, &b, &tb));
  OK(mt_pickle_read(b.data, b.len, load_table, &tb, &back));
  bool ok = back && same(v, back);
  if (!ok) {
    fprintf(stderr, "%s: wrote %s\n", what, show(v));
    fprintf(stderr, "%s: read  %s\n", what, show(back));
  }
  CHECK(ok);
  mt_value_free(back);
  free(b.data);
  mt_storage_table_free(&tb);
}

static void test_round_trips(void) {
  make_pool();
  for (int i = 0; i < 400; i++) {
    mt_value *v = random_value(0);
    round_trip(v, "random tree");
    mt_value_free(v);
  }
  /* Batches of 1000 and memo indices past 255 (LONG_BINPUT / LONG_BINGET). */
  mt_value *l = mt_value_list(), *d = mt_value_dict(false);
  for (int i = 0; i < 2500; i++) {
    char s[16];
    snprintf(s, sizeof s, "s%d", i);
    mt_value_append(l, S(s));
    mt_value_dict_set(d, mt_value_int(i), mt_value_tensor(pool[i % npool])); /* tensors met again: BINGET */
  }
  mt_value_append(l, d);
  round_trip(l, "big list");
  mt_value_free(l);
  /* Views of one storage come back sharing one storage. */
  mt_buffer b = {0};
  mt_storage_table tb = {0};
  mt_value *pair = mt_value_tuple(), *back = NULL;
  mt_value_append(pair, mt_value_tensor(pool[0]));
  mt_value_append(pair, mt_value_tensor(pool[1]));
  OK(mt_pickle_write(pair, &b, &tb));
  CHECK(tb.len == 1);
  zero_loader z;
  OK(read_zeros(b.data, b.len, &back, &z));
  CHECK(back && back->u.seq.items[0]->u.tensor->storage == back->u.seq.items[1]->u.tensor->storage);
  CHECK(!strcmp(z.log, "0:float32:6 "));
  mt_value_free(back);
  mt_value_free(pair);
  free(b.data);
  mt_storage_table_free(&tb);
  for (int i = 0; i < npool; i++) mt_tensor_release(pool[i]);
}

int main(void) {
  test_values();
  test_writer_matches_pytorch();
  test_writer_errors();
  test_reader_pytorch_files();
  test_hostile();
  test_reader_variants();
  test_truncation_and_bit_flips();
  test_bombs();
  test_round_trips();
  return mt_test_finish("test_pickle");
}
