/*
 * lmt.h — what the files of the Lua binding (moontorch.core) share. The binding uses only the
 * public API of moontorch.h; Lua's 1-based dims and indices are mapped onto the core's 0-based
 * ones here, and every failure is raised as a Lua error that names the Lua function.
 *
 * Ownership idiom: a function that will produce a tensor first pushes an empty tensor userdata
 * (lmt_slot) and lets the core write into it. If anything fails afterwards the userdata is
 * garbage and its __gc frees whatever it holds, so raising never leaks. Short-lived helper
 * tensors that are not in a slot (wrapped numbers) are released before lmt_check_status raises.
 */
#ifndef LMT_H
#define LMT_H

#include <lauxlib.h>
#include <lua.h>

#include "moontorch.h"

#define LMT_TENSOR "moontorch.Tensor" /* registry name of the one tensor metatable */

/* The module's entry point; also for hosts that link the binding statically. */
LUAMOD_API int luaopen_moontorch_core(lua_State *L);

typedef struct lmt_box {
  mt_tensor *t; /* NULL once closed or collected */
} lmt_box;

/* ---- errors (lmt_core.c) ------------------------------------------------------------------
 * All raise and never return; the `int` return lets callers write `return lmt_error(...)`. */
int lmt_error(lua_State *L, const char *fname, const char *fmt, ...);
/* "moontorch.<fname>: bad argument #n (<msg>)", counting as the user sees it (t:f(x): x is #1). */
int lmt_argerror(lua_State *L, int arg, const char *fname, const char *fmt, ...);
int lmt_typeerror(lua_State *L, int arg, const char *fname, const char *expected);
/* Raises "moontorch.<fname>: <mt_last_error()>" unless st == MT_OK; on success paces the GC. */
void lmt_check_status(lua_State *L, mt_status st, const char *fname);

/* ---- tensors on the Lua stack (lmt_core.c) ------------------------------------------------ */
mt_tensor *lmt_check(lua_State *L, int arg, const char *fname); /* a live tensor, else raise */
mt_tensor *lmt_test(lua_State *L, int arg);                     /* NULL unless a tensor (raises if closed) */
lmt_box *lmt_testbox(lua_State *L, int arg); /* the tensor userdata (closed or not), else NULL; never raises */
/* Pushes an empty tensor userdata and returns where the core should store the result. */
mt_tensor **lmt_slot(lua_State *L);
/* Adds external allocation to the collector's debt; called after each tensor the binding makes. */
void lmt_gc_pace(lua_State *L);

/* ---- argument parsing (lmt_args.c) -------------------------------------------------------- */
int64_t lmt_checkint(lua_State *L, int arg, const char *fname, const char *what);
bool lmt_optbool(lua_State *L, int arg, bool def, const char *fname);
/* A Lua dim (1-based, negative from the end, 0 rejected) checked against a tensor of `ndim`
 * dims (`ndim + extra` valid positions, e.g. extra = 1 for unsqueeze); returns it 0-based. */
int lmt_checkdim(lua_State *L, int arg, int ndim, int extra, const char *fname);
int lmt_todim(lua_State *L, int64_t d, int ndim, int extra, const char *fname); /* same, value given */
int lmt_optdim(lua_State *L, int arg, int ndim, int def, const char *fname);  /* def already 0-based */
mt_dtype lmt_checkdtype(lua_State *L, int arg, const char *fname);
mt_scalar lmt_checkscalar(lua_State *L, int arg, const char *fname); /* number, boolean or 1-element tensor */
/* Reads sizes given as varargs from `first` or as one table at `first`; stops at the first
 * non-number. Returns the stack index just past the sizes (where an options table may be).
 * allow_neg1 admits -1 (view's "infer this one", expand's "keep this one"). */
int lmt_sizes(lua_State *L, int first, int *ndim, int64_t *sizes, bool allow_neg1, const char *fname);
/* Dims to reduce over: nil -> *ndims = 0 (all), a number, or a table of numbers. */
void lmt_reduce_dims(lua_State *L, int arg, int ndim, int *ndims, int64_t *dims, const char *fname);

/* Creation options ({dtype = ..., requires_grad = false}); `arg` may be none/nil. */
typedef struct lmt_opts {
  bool has_dtype;
  mt_dtype dtype;
  bool requires_grad;
} lmt_opts;
void lmt_options(lua_State *L, int arg, lmt_opts *o, const char *fname);
/* Applies the options that act on the made tensor (requires_grad) to the tensor at the top of
 * the stack; raises if they cannot apply (requires_grad on an integer dtype). lmt_autograd.c */
void lmt_finish_options(lua_State *L, const lmt_opts *o, const char *fname);

/* A tensor operand from a tensor or a Lua number/boolean (wrapped as a 0-dim tensor that is
 * weakest in type promotion). *tmp receives the wrapped tensor to release, or NULL. */
mt_tensor *lmt_operand(lua_State *L, int arg, mt_tensor **tmp, const char *fname);

/* Index tensors: Lua's 1-based indices (a tensor of integers or a Lua array) shifted into a new
 * 0-based int64 tensor pushed on the stack; each must lie in 1..limit (the size of dim `dim`,
 * 0-based, named in the message). */
mt_tensor *lmt_index_in(lua_State *L, int arg, int64_t limit, int dim, const char *fname);
/* Shifts a fresh 0-based int64 index tensor produced by the core to 1-based, in place. */
void lmt_index_out(mt_tensor *t);
/* The same for the indices an op returned beside `values`: in place, unless values was recorded
 * for autograd (its node keeps the 0-based indices for backward); then *indices is replaced by
 * a shifted copy. */
void lmt_index_out_of(lua_State *L, mt_tensor **indices, const mt_tensor *values, const char *fname);

/* ---- registration (one per file) ----------------------------------------------------------
 * Each adds its functions to the tensor metatable (metamethods), the methods table and the
 * module table, given as absolute stack indices. */
typedef struct lmt_tables {
  int meta, methods, module, getters;
} lmt_tables;
void lmt_open_create(lua_State *L, const lmt_tables *tb);
void lmt_open_shape(lua_State *L, const lmt_tables *tb);
void lmt_open_math(lua_State *L, const lmt_tables *tb);
void lmt_open_reduce(lua_State *L, const lmt_tables *tb);
void lmt_open_autograd(lua_State *L, const lmt_tables *tb); /* requires_grad, grad, backward, grad mode */
void lmt_open_serialize(lua_State *L, const lmt_tables *tb); /* checkpoint files (raw entry points) */
void lmt_open_nn(lua_State *L, const lmt_tables *tb);        /* the NN ops, raw, as module._nn */
void lmt_open_optim(lua_State *L, const lmt_tables *tb);     /* torch.optim's update loops (_sgd_step, ...) */
void lmt_open_data(lua_State *L, const lmt_tables *tb);      /* torch.Generator, IDX files, data-loader draws */
void lmt_open_jit(lua_State *L, const lmt_tables *tb);       /* traced models, raw, as module._jit */
void lmt_open_dist(lua_State *L, const lmt_tables *tb);      /* torch.distributed on MPI, DDP reducer (dist_*, ddp_new) */
void lmt_open_threads(lua_State *L, const lmt_tables *tb);   /* torch.set_num_threads / get_num_threads */
/* Sets every function of `regs` into the table at absolute index `idx`. */
void lmt_setfuncs(lua_State *L, int idx, const luaL_Reg *regs);

#endif /* LMT_H */
