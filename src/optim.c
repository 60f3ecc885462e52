/*
 * optim.c — the update loops of torch.optim: SGD, Adam / AdamW, RMSprop and Adagrad, each one
 * fused pass over a parameter, its gradient and its state, in float32 or float64.
 *
 * Arithmetic follows PyTorch 1.13's single-tensor (foreach=False) code op for op, rounding
 * where it rounds: every op there is a separate tensor op, so every intermediate is rounded to
 * the parameter's dtype, and hyperparameters enter as the dtype's scalars ((float)lr, ...),
 * with the host-side arithmetic (1 - beta1, lr / bias_correction1, ...) done in double first.
 * PyTorch's CPU kernels (AVX2 builds) compute add(x, alpha=a) as fma(a, x, self) and
 * addcmul(x, y, value=v) as fma(v * x, y, self), while addcdiv is (v * x) / y + self without
 * fusion; FMA_FN marks exactly those places, and nothing else may be contracted (fp-contract
 * off below), so the results equal PyTorch's bit for bit. On x86-64 the kernels are compiled
 * twice: with AVX2+FMA (vectorised, chosen at run time where the CPU has it) and for the
 * baseline, where fma() is libm's correctly rounded one: slower, the same numbers.
 *
 * Operands of any layout are accepted: non-contiguous ones run through contiguous copies that
 * are written back. Updates bypass autograd (as PyTorch's steps run under no_grad) but bump
 * the version counters of what they write.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* -O2's "very cheap" vectorizer cost model leaves loops with a runtime trip count scalar, and
 * contraction would fuse mul+add pairs that PyTorch rounds separately. */
#pragma GCC optimize("vect-cost-model=dynamic", "fp-contract=off")
#endif
#include "mt_internal.h"

#include <math.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_FMA_VARIANT 1
#define FMA_TARGET __attribute__((target("avx2,fma")))
#else
#define HAVE_FMA_VARIANT 0
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ---- hyperparameters as the loops take them (host-side math already done, in double) ------- */

typedef struct sgd_k {
  double neg_lr, momentum, one_minus_dampening, weight_decay;
  bool maximize;
} sgd_k;

typedef struct adam_k {
  double beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay, bc2_sqrt, eps, neg_step_size;
  bool maximize, decoupled; /* decoupled: AdamW's decay = 1 - lr * weight_decay */
} adam_k;

typedef struct rmsprop_k {
  double neg_lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
  bool maximize;
} rmsprop_k;

typedef struct adagrad_k {
  double neg_clr, eps, weight_decay;
  bool maximize;
} adagrad_k;

/* torch.maximum: NaN in either operand wins. */
#define NAN_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))

/* ---- the loops, generated per element type and target --------------------------------------
 * T: element type; F: suffix; FMA_FN, SQRT_FN: its fused multiply-add and square root; ATTR: the
 * target attribute. Each *_loop helper takes its options (weight decay on, which state exists,
 * nesterov, ...) as a constant bit set `f` and is inlined once per combination by a switch, so
 * every loop is branch-free and vectorises (GCC will not vectorise a select on a loop-invariant
 * bool). maximize needs no variant: g * -1 is exactly -g. */

#define WD 1u       /* an L2 weight-decay term enters the gradient */
#define OPT_A 2u    /* SGD: nesterov; Adam: amsgrad; RMSprop: centered */
#define OPT_B 4u    /* SGD: first step (buffer = d); RMSprop: momentum */
#define OPT_C 8u    /* SGD: later steps (buffer = momentum * buffer + (1 - dampening) * d) */

#define CASE4(CALL, F, B)                                                                          \
  case (B) + 0: CALL(F, (B) + 0); break;                                                           \
  case (B) + 1: CALL(F, (B) + 1); break;                                                           \
  case (B) + 2: CALL(F, (B) + 2); break;                                                           \
  case (B) + 3: CALL(F, (B) + 3); break;
#define SGD_CALL(F, C) sgd_loop_##F(n, p, g, buf, k, C)
#define ADAM_CALL(F, C) adam_loop_##F(n, p, g, m, v, vmax, k, C)
#define RMSPROP_CALL(F, C) rmsprop_loop_##F(n, p, g, sq, buf, gavg, k, C)
#define ADAGRAD_CALL(F, C) adagrad_loop_##F(n, p, g, sum, k, C)

#define DEFINE_KERNELS(T, F, FMA_FN, SQRT_FN, ATTR)                                                \
  ATTR static ALWAYS_INLINE void sgd_loop_##F(int64_t n, T *restrict p, const T *restrict g, T *restrict buf, \
                                              const sgd_k *k, const unsigned f) {                  \
    const T neg_lr = (T)k->neg_lr, mom = (T)k->momentum, damp = (T)k->one_minus_dampening;         \
    const T wd = (T)k->weight_decay, sign = k->maximize ? -1 : 1;                                  \
    for (int64_t i = 0; i < n; i++) {                                                              \
      T d = g[i] * sign;                                                                           \
      if (f & WD) d = FMA_FN(wd, p[i], d);                                                         \
      if (f & (OPT_B | OPT_C)) {                                                                   \
        T b = (f & OPT_B) ? d : FMA_FN(damp, d, buf[i] * mom);                                     \
        buf[i] = b;                                                                                \
        d = (f & OPT_A) ? FMA_FN(mom, b, d) : b;                                                   \
      }                                                                                            \
      p[i] = FMA_FN(neg_lr, d, p[i]);                                                              \
    }                                                                                              \
  }                                                                                                \
  ATTR static void sgd_##F(int64_t n, char **data, const void *args, unsigned flags) {             \
    const sgd_k *k = args;                                                                         \
    T *p = (T *)data[0], *buf = (T *)data[2];                                                      \
    const T *g = (const T *)data[1];                                                               \
    switch (flags) { CASE4(SGD_CALL, F, 0) CASE4(SGD_CALL, F, 4) CASE4(SGD_CALL, F, 8) }           \
  }                                                                                                \
                                                                                                   \
  ATTR static ALWAYS_INLINE void adam_loop_##F(int64_t n, T *restrict p, const T *restrict g, T *restrict m, \
                                               T *restrict v, T *restrict vmax, const adam_k *k,   \
                                               const unsigned f) {                                 \
    const T b1 = (T)k->beta1, omb1 = (T)k->one_minus_beta1, b2 = (T)k->beta2, omb2 = (T)k->one_minus_beta2; \
    const T wd = (T)k->weight_decay, decay = k->decoupled ? (T)k->decay : 1, bc2 = (T)k->bc2_sqrt; \
    const T eps = (T)k->eps, neg_step = (T)k->neg_step_size, sign = k->maximize ? -1 : 1;          \
    for (int64_t i = 0; i < n; i++) {                                                              \
      T gi = g[i] * sign;                                                                          \
      T pi = p[i] * decay; /* AdamW: param.mul_(1 - lr * weight_decay); Adam: * 1, exact */        \
      if (f & WD) gi = FMA_FN(wd, pi, gi);                                                         \
      T mi = FMA_FN(omb1, gi, m[i] * b1);                                                          \
      T vi = FMA_FN(omb2 * gi, gi, v[i] * b2);                                                     \
      m[i] = mi;                                                                                   \
      v[i] = vi;                                                                                   \
      if (f & OPT_A) {                                                                             \
        vi = NAN_MAX(vmax[i], vi);                                                                 \
        vmax[i] = vi;                                                                              \
      }                                                                                            \
      T denom = SQRT_FN(vi) / bc2 + eps;                                                           \
      p[i] = pi + (neg_step * mi) / denom;                                                         \
    }                                                                                              \
  }                                                                                                \
  ATTR static void adam_##F(int64_t n, char **data, const void *args, unsigned flags) {            \
    const adam_k *k = args;                                                                        \
    T *p = (T *)data[0], *m = (T *)data[2], *v = (T *)data[3], *vmax = (T *)data[4];               \
    const T *g = (const T *)data[1];                                                               \
    switch (flags) { CASE4(ADAM_CALL, F, 0) }                                                      \
  }                                                                                                \
                                                                                                   \
  ATTR static ALWAYS_INLINE void rmsprop_loop_##F(int64_t n, T *restrict p, const T *restrict g, T *restrict sq, \
                                                  T *restrict buf, T *restrict gavg, const rmsprop_k *k, \
                                                  const unsigned f) {                              \
    const T neg_lr = (T)k->neg_lr, alpha = (T)k->alpha, oma = (T)k->one_minus_alpha, eps = (T)k->eps; \
    const T wd = (T)k->weight_decay, mom = (T)k->momentum, sign = k->maximize ? -1 : 1;            \
    for (int64_t i = 0; i < n; i++) {                                                              \
      T gi = g[i] * sign;                                                                          \
      if (f & WD) gi = FMA_FN(wd, p[i], gi);                                                       \
      T s = FMA_FN(oma * gi, gi, sq[i] * alpha);                                                   \
      sq[i] = s;                                                                                   \
      T avg;                                                                                       \
      if (f & OPT_A) {                                                                             \
        T ga = FMA_FN(oma, gi, gavg[i] * alpha);                                                   \
        gavg[i] = ga;                                                                              \
        avg = SQRT_FN(FMA_FN(-ga, ga, s)); /* square_avg.addcmul(grad_avg, grad_avg, value=-1) */  \
      } else {                                                                                     \
        avg = SQRT_FN(s);                                                                          \
      }                                                                                            \
      avg = avg + eps;                                                                             \
      if (f & OPT_B) {                                                                             \
        T b = buf[i] * mom + gi / avg;                                                             \
        buf[i] = b;                                                                                \
        p[i] = FMA_FN(neg_lr, b, p[i]);                                                            \
      } else {                                                                                     \
        p[i] = p[i] + (neg_lr * gi) / avg;                                                         \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  ATTR static void rmsprop_##F(int64_t n, char **data, const void *args, unsigned flags) {         \
    const rmsprop_k *k = args;                                                                     \
    T *p = (T *)data[0], *sq = (T *)data[2], *buf = (T *)data[3], *gavg = (T *)data[4];            \
    const T *g = (const T *)data[1];                                                               \
    switch (flags) { CASE4(RMSPROP_CALL, F, 0) CASE4(RMSPROP_CALL, F, 4) }                         \
  }                                                                                                \
                                                                                                   \
  ATTR static ALWAYS_INLINE void adagrad_loop_##F(int64_t n, T *restrict p, const T *restrict g, T *restrict sum, \
                                                  const adagrad_k *k, const unsigned f) {          \
    const T neg_clr = (T)k->neg_clr, eps = (T)k->eps, wd = (T)k->weight_decay, sign = k->maximize ? -1 : 1; \
    for (int64_t i = 0; i < n; i++) {                                                              \
      T gi = g[i] * sign;                                                                          \
      if (f & WD) gi = FMA_FN(wd, p[i], gi);                                                       \
      T s = FMA_FN(gi, gi, sum[i]); /* state_sum.addcmul_(grad, grad, value=1) */                  \
      sum[i] = s;                                                                                  \
      p[i] = p[i] + (neg_clr * gi) / (SQRT_FN(s) + eps);                                           \
    }                                                                                              \
  }                                                                                                \
  ATTR static void adagrad_##F(int64_t n, char **data, const void *args, unsigned flags) {         \
    const adagrad_k *k = args;                                                                     \
    T *p = (T *)data[0], *sum = (T *)data[2];                                                      \
    const T *g = (const T *)data[1];                                                               \
    if (flags & WD) ADAGRAD_CALL(F, WD);                                                           \
    else ADAGRAD_CALL(F, 0);                                                                       \
  }

DEFINE_KERNELS(float, f32, fmaf, sqrtf, )
DEFINE_KERNELS(double, f64, fma, sqrt, )
#if HAVE_FMA_VARIANT
DEFINE_KERNELS(float, f32_fma, fmaf, sqrtf, FMA_TARGET)
DEFINE_KERNELS(double, f64_fma, fma, sqrt, FMA_TARGET)
#endif

typedef void (*kernel_fn)(int64_t n, char **data, const void *args, unsigned flags);

typedef enum { K_SGD, K_ADAM, K_RMSPROP, K_ADAGRAD, K_COUNT } kernel_id;

/* [kernel][0: float32, 1: float64][0: baseline, 1: AVX2+FMA] */
static const kernel_fn kernels[K_COUNT][2][2] = {
#if HAVE_FMA_VARIANT
    [K_SGD] = {{sgd_f32, sgd_f32_fma}, {sgd_f64, sgd_f64_fma}},
    [K_ADAM] = {{adam_f32, adam_f32_fma}, {adam_f64, adam_f64_fma}},
    [K_RMSPROP] = {{rmsprop_f32, rmsprop_f32_fma}, {rmsprop_f64, rmsprop_f64_fma}},
    [K_ADAGRAD] = {{adagrad_f32, adagrad_f32_fma}, {adagrad_f64, adagrad_f64_fma}},
#else
    [K_SGD] = {{sgd_f32, sgd_f32}, {sgd_f64, sgd_f64}},
    [K_ADAM] = {{adam_f32, adam_f32}, {adam_f64, adam_f64}},
    [K_RMSPROP] = {{rmsprop_f32, rmsprop_f32}, {rmsprop_f64, rmsprop_f64}},
    [K_ADAGRAD] = {{adagrad_f32, adagrad_f32}, {adagrad_f64, adagrad_f64}},
#endif
};

/* Set by tests/c/test_optim.c to run the baseline loops on a CPU with FMA too (not in a header:
 * nothing else has a reason to touch it). */
int mt_optim_baseline_only;

static int cpu_has_fma(void) {
#if HAVE_FMA_VARIANT
  if (mt_optim_baseline_only) return 0;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

/* ---- operands: checks, contiguous staging, write-back ------------------------------------- */

#define MAX_OPS 5

/* Slot 0 is the parameter, slot 1 the gradient, the rest state; absent state is NULL. */
typedef struct operands {
  int n;
  const char *names[MAX_OPS];
  mt_tensor *t[MAX_OPS];
  bool write[MAX_OPS];
  mt_tensor *tmp[MAX_OPS]; /* contiguous stand-ins for non-contiguous (or aliased) operands */
  char *data[MAX_OPS];
} operands;

static void ops_add(operands *o, const char *name, const mt_tensor *t, bool write) {
  o->names[o->n] = name;
  o->t[o->n] = (mt_tensor *)t;
  o->write[o->n] = write;
  o->tmp[o->n] = NULL;
  o->data[o->n] = NULL;
  o->n++;
}

static void ops_release(operands *o) {
  for (int i = 0; i < o->n; i++) {
    mt_tensor_release(o->tmp[i]);
    o->tmp[i] = NULL;
  }
}

static bool same_shape(const mt_tensor *a, const mt_tensor *b) {
  if (a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->sizes[d] != b->sizes[d]) return false;
  return true;
}

/* Every operand has the parameter's dtype (float32 or float64) and shape; written ones can be
 * written and share no memory with each other. */
static mt_status ops_check(const operands *o) {
  const mt_tensor *p = o->t[0];
  if (p->dtype != MT_FLOAT32 && p->dtype != MT_FLOAT64)
    return mt_fail(MT_EDTYPE, "the parameter is %s; optimizers update float32 and float64 tensors",
                   mt_dtype_name(p->dtype));
  for (int i = 1; i < o->n; i++) {
    const mt_tensor *t = o->t[i];
    if (!t) continue;
    if (t->dtype != p->dtype)
      return mt_fail(MT_EDTYPE, "%s is %s but the parameter is %s", o->names[i], mt_dtype_name(t->dtype),
                     mt_dtype_name(p->dtype));
    if (!same_shape(t, p)) {
      char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
      return mt_fail(MT_ESHAPE, "%s has shape %s but the parameter has shape %s", o->names[i],
                     mt_shape_str(a, sizeof a, t->ndim, t->sizes), mt_shape_str(b, sizeof b, p->ndim, p->sizes));
    }
  }
  for (int i = 0; i < o->n; i++) {
    if (!o->t[i] || !o->write[i]) continue;
    if (mt_check_writable(o->t[i]) != MT_OK)
      return mt_fail(MT_EARG, "%s is an expanded view (several elements share one memory location)", o->names[i]);
    for (int j = 0; j < i; j++)
      if (o->t[j] && o->write[j] && o->t[j]->storage == o->t[i]->storage)
        return mt_fail(MT_EARG, "%s and %s share memory", o->names[j], o->names[i]);
  }
  return MT_OK;
}

/* Points data[] at each operand, staging non-contiguous ones (and a gradient that shares memory
 * with something written, so that it is read as it was) in fresh contiguous copies. */
static mt_status ops_stage(operands *o) {
  for (int i = 0; i < o->n; i++) {
    mt_tensor *t = o->t[i];
    if (!t) continue;
    bool stage = !mt_is_contiguous(t);
    for (int j = 0; j < o->n && !stage && !o->write[i]; j++)
      stage = o->t[j] && o->write[j] && o->t[j]->storage == t->storage;
    if (stage) {
      mt_status st = mt_empty_like(&o->tmp[i], t, t->dtype);
      if (st == MT_OK) st = mt_copy_into(o->tmp[i], t);
      if (st != MT_OK) {
        ops_release(o);
        return st;
      }
      o->data[i] = mt_data(o->tmp[i]);
    } else {
      o->data[i] = mt_data(t);
    }
  }
  return MT_OK;
}

/* A slice of an update on the pool: elements are independent, so any split gives the same
 * bits, and a big parameter's update (memory-bound: 3-5 streams) no longer runs on one core
 * while the other waits. */
typedef struct run_job {
  kernel_fn fn;
  char *const *data;
  int n;
  size_t es;
  const void *args;
  unsigned flags;
} run_job;

static void run_chunk(void *ctx, int64_t b, int64_t e, int chunk, int worker) {
  (void)chunk, (void)worker;
  const run_job *j = ctx;
  char *d[MAX_OPS];
  for (int i = 0; i < j->n; i++) d[i] = j->data[i] ? j->data[i] + (size_t)b * j->es : NULL;
  j->fn(e - b, d, j->args, j->flags);
}

#define RUN_GRAIN ((int64_t)1 << 15) /* elements per pool chunk: ~10-20 us of a 3-5 stream update */

/* Runs the kernel over the staged operands, writes staged results back, bumps versions. */
static mt_status ops_run(operands *o, kernel_id k, const void *args, unsigned flags) {
  mt_tensor *p = o->t[0];
  const run_job j = {kernels[k][p->dtype == MT_FLOAT64][cpu_has_fma()], o->data, o->n, mt_dtype_size(p->dtype), args,
                     flags};
  mt_parallel_for(mt_numel(p), RUN_GRAIN, run_chunk, (void *)&j);
  mt_status st = MT_OK;
  for (int i = 0; i < o->n; i++) {
    if (!o->t[i] || !o->write[i]) continue;
    if (o->tmp[i] && st == MT_OK) st = mt_copy_into(o->t[i], o->tmp[i]);
    mt_bump_version(o->t[i]);
  }
  ops_release(o);
  return st;
}

/* Checks the step tensor; its value after the increment goes to *next. */
static mt_status check_step(const mt_tensor *step, double *next) {
  if (!step) return mt_fail(MT_EARG, "the step count is missing");
  if (mt_numel(step) != 1) {
    char s[MT_SHAPE_STRLEN];
    return mt_fail(MT_ESHAPE, "the step count must hold one number, got a tensor of shape %s",
                   mt_shape_str(s, sizeof s, step->ndim, step->sizes));
  }
  if (step->dtype == MT_BOOL) return mt_fail(MT_EDTYPE, "the step count must be a number, got a bool tensor");
  mt_status st = mt_check_writable(step);
  if (st != MT_OK) return st;
  mt_scalar v;
  st = mt_item(step, &v);
  if (st != MT_OK) return st;
  *next = mt_scalar_to_f64(v) + 1;
  return MT_OK;
}

/* step_t += 1 in the step tensor's own dtype; returns what it then holds (step_t.item()). */
static double bump_step(mt_tensor *step, double next) {
  mt_scalar v = mt_dtype_is_float(step->dtype) ? mt_scalar_float(next) : mt_scalar_int((int64_t)next);
  mt_write_scalar(step->dtype, mt_data(step), v);
  mt_bump_version(step);
  mt_scalar now;
  if (mt_item(step, &now) != MT_OK) return next;
  return mt_scalar_to_f64(now);
}

static mt_status check_args(const mt_tensor *param, const mt_tensor *grad, const void *opts) {
  if (!param || !grad || !opts) return mt_fail(MT_EARG, "parameter, gradient and options must not be NULL");
  return MT_OK;
}

/* ---- the optimizers ----------------------------------------------------------------------- */

MT_API mt_status mt_sgd_step(mt_tensor *param, const mt_tensor *grad, mt_tensor **momentum_buffer,
                             const mt_sgd_opts *opts) {
  mt_status st = check_args(param, grad, opts);
  if (st != MT_OK) return st;
  bool use_mom = opts->momentum != 0;
  if (use_mom && !momentum_buffer)
    return mt_fail(MT_EARG, "momentum is %g but no momentum buffer was given", opts->momentum);
  bool first = use_mom && !*momentum_buffer;
  operands o = {0};
  ops_add(&o, "param", param, true);
  ops_add(&o, "grad", grad, false);
  ops_add(&o, "momentum_buffer", use_mom ? *momentum_buffer : NULL, true);
  if ((st = ops_check(&o)) != MT_OK) return st;
  mt_tensor *fresh = NULL; /* the first step's buffer: PyTorch's clone of the update direction */
  if (first) {
    if ((st = mt_empty_like(&fresh, param, param->dtype)) != MT_OK) return st;
    o.t[2] = fresh;
  }
  if ((st = ops_stage(&o)) != MT_OK) {
    mt_tensor_release(fresh);
    return st;
  }
  sgd_k k = {.neg_lr = -opts->lr, .momentum = opts->momentum, .one_minus_dampening = 1 - opts->dampening,
             .weight_decay = opts->weight_decay, .maximize = opts->maximize};
  unsigned flags = (opts->weight_decay != 0 ? WD : 0) | (!use_mom ? 0 : first ? OPT_B : OPT_C) |
                   (use_mom && opts->nesterov ? OPT_A : 0);
  if ((st = ops_run(&o, K_SGD, &k, flags)) != MT_OK) {
    mt_tensor_release(fresh);
    return st;
  }
  if (fresh) *momentum_buffer = fresh;
  return MT_OK;
}

MT_API mt_status mt_adam_step(mt_tensor *param, const mt_tensor *grad, mt_tensor *step, mt_tensor *exp_avg,
                              mt_tensor *exp_avg_sq, mt_tensor *max_exp_avg_sq, const mt_adam_opts *opts) {
  mt_status st = check_args(param, grad, opts);
  if (st != MT_OK) return st;
  if (!exp_avg || !exp_avg_sq) return mt_fail(MT_EARG, "exp_avg and exp_avg_sq must not be NULL");
  if (opts->amsgrad && !max_exp_avg_sq) return mt_fail(MT_EARG, "amsgrad needs max_exp_avg_sq");
  double next;
  if ((st = check_step(step, &next)) != MT_OK) return st;
  operands o = {0};
  ops_add(&o, "param", param, true);
  ops_add(&o, "grad", grad, false);
  ops_add(&o, "exp_avg", exp_avg, true);
  ops_add(&o, "exp_avg_sq", exp_avg_sq, true);
  ops_add(&o, "max_exp_avg_sq", opts->amsgrad ? max_exp_avg_sq : NULL, true);
  if ((st = ops_check(&o)) != MT_OK) return st;
  for (int i = 0; i < o.n; i++)
    if (o.t[i] && o.t[i]->storage == step->storage)
      return mt_fail(MT_EARG, "the step count shares memory with %s", o.names[i]);
  if ((st = ops_stage(&o)) != MT_OK) return st;
  /* From here on nothing can fail: the state moves on. */
  double t = bump_step(step, next);
  double bc1 = 1 - pow(opts->beta1, t), bc2 = 1 - pow(opts->beta2, t);
  adam_k k = {.beta1 = opts->beta1, .one_minus_beta1 = 1 - opts->beta1, .beta2 = opts->beta2,
              .one_minus_beta2 = 1 - opts->beta2, .weight_decay = opts->weight_decay,
              .decay = 1 - opts->lr * opts->weight_decay, .bc2_sqrt = sqrt(bc2), .eps = opts->eps,
              .neg_step_size = -(opts->lr / bc1), .maximize = opts->maximize,
              .decoupled = opts->decoupled_weight_decay};
  return ops_run(&o, K_ADAM, &k, (k.decoupled || k.weight_decay == 0 ? 0 : WD) | (opts->amsgrad ? OPT_A : 0));
}

MT_API mt_status mt_rmsprop_step(mt_tensor *param, const mt_tensor *grad, mt_tensor *square_avg,
                                 mt_tensor *momentum_buffer, mt_tensor *grad_avg, const mt_rmsprop_opts *opts) {
  mt_status st = check_args(param, grad, opts);
  if (st != MT_OK) return st;
  if (!square_avg) return mt_fail(MT_EARG, "square_avg must not be NULL");
  bool use_mom = opts->momentum > 0; /* PyTorch's test: `if momentum > 0` */
  if (use_mom && !momentum_buffer)
    return mt_fail(MT_EARG, "momentum is %g but no momentum_buffer was given", opts->momentum);
  if (opts->centered && !grad_avg) return mt_fail(MT_EARG, "centered RMSprop needs grad_avg");
  operands o = {0};
  ops_add(&o, "param", param, true);
  ops_add(&o, "grad", grad, false);
  ops_add(&o, "square_avg", square_avg, true);
  ops_add(&o, "momentum_buffer", use_mom ? momentum_buffer : NULL, true);
  ops_add(&o, "grad_avg", opts->centered ? grad_avg : NULL, true);
  if ((st = ops_check(&o)) != MT_OK) return st;
  if ((st = ops_stage(&o)) != MT_OK) return st;
  rmsprop_k k = {.neg_lr = -opts->lr, .alpha = opts->alpha, .one_minus_alpha = 1 - opts->alpha, .eps = opts->eps,
                 .weight_decay = opts->weight_decay, .momentum = opts->momentum, .maximize = opts->maximize};
  unsigned flags = (k.weight_decay != 0 ? WD : 0) | (opts->centered ? OPT_A : 0) | (use_mom ? OPT_B : 0);
  return ops_run(&o, K_RMSPROP, &k, flags);
}

MT_API mt_status mt_adagrad_step(mt_tensor *param, const mt_tensor *grad, mt_tensor *step, mt_tensor *sum,
                                 const mt_adagrad_opts *opts) {
  mt_status st = check_args(param, grad, opts);
  if (st != MT_OK) return st;
  if (!sum) return mt_fail(MT_EARG, "sum must not be NULL");
  double next;
  if ((st = check_step(step, &next)) != MT_OK) return st;
  operands o = {0};
  ops_add(&o, "param", param, true);
  ops_add(&o, "grad", grad, false);
  ops_add(&o, "sum", sum, true);
  if ((st = ops_check(&o)) != MT_OK) return st;
  for (int i = 0; i < o.n; i++)
    if (o.t[i]->storage == step->storage) return mt_fail(MT_EARG, "the step count shares memory with %s", o.names[i]);
  if ((st = ops_stage(&o)) != MT_OK) return st;
  double t = bump_step(step, next);
  adagrad_k k = {.neg_clr = -(opts->lr / (1 + (t - 1) * opts->lr_decay)), .eps = opts->eps,
                 .weight_decay = opts->weight_decay, .maximize = opts->maximize};
  return ops_run(&o, K_ADAGRAD, &k, k.weight_decay != 0 ? WD : 0);
}
