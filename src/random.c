/*
 * random.c — seeded random numbers: PyTorch's CPU generator, reproduced bit for bit.
 *
 * Engine. MT19937 (Matsumoto–Nishimura) seeded like PyTorch's CPUGeneratorImpl: state[0] is
 * the low 32 bits of the seed, state[j] = 1812433253 * (state[j-1] ^ state[j-1] >> 30) + j.
 * random32() is one tempered MT output; random64() is (first << 32) | second. The default
 * generator starts from PyTorch's default seed, 67280421310721.
 *
 * Transformations (those of PyTorch 1.13 on an x86-64 CPU with AVX2, its usual kernel):
 *  - uniform_(lo, hi): float32 x = (random32 & (2^24-1)) * 2^-24, float64 x = (random64 &
 *    (2^53-1)) * 2^-53, float16/bfloat16 the low 11/8 bits the same way; value =
 *    fma(x, hi - lo, lo) in the dtype (float32 for the 16-bit dtypes, hi - lo rounded to them).
 *  - normal_(mean, std), two paths as PyTorch chooses them:
 *    * contiguous and >= 16 elements: every element gets a uniform [0, 1) in the dtype, then
 *      each block of 16 becomes 16 normals by Box–Muller (u1 = 1 - x[j], u2 = x[j+8],
 *      r = sqrt(-2 log u1), x[j] = r cos(2 pi u2), x[j+8] = r sin(2 pi u2), then fma(., std,
 *      mean)); when the size is not a multiple of 16 the last 16 elements are drawn again and
 *      redone. float32 evaluates log/sin/cos with the Cephes polynomials of PyTorch's
 *      avx_mathfun.h, operation by operation (including where GCC fused them into FMAs), in
 *      portable C; float64 uses the C library's log/sin/cos, as PyTorch does; float16 and
 *      bfloat16 round where c10::Half / c10::BFloat16 arithmetic rounds, with libm's logf,
 *      sinf, cosf.
 *    * otherwise, element by element in float64: u1, u2 uniform; r = sqrt(-2 log(1 - u2)),
 *      theta = 2 pi u1; the value is r cos(theta), and r sin(theta) is cached in the generator
 *      for the next scalar draw (the cache is part of the saved state).
 *  - randint_(low, high): (random32 % (high - low)) + low; random64 instead when the range is
 *    >= 2^32 and the dtype is int64, float64, float32 or bfloat16.
 *  - bernoulli_(p): one float64 uniform u per element, value u < p. (Dropout draws its mask
 *    through mt_bernoulli_runs: the same words, written straight as the mask's two values.)
 *  - randperm(n): Fisher–Yates, for i in 0 .. n-2 swap r[i] and r[i + random32 % (n - i)].
 * Elements are drawn in logical (row-major) order. A non-contiguous tensor is filled through a
 * contiguous scratch tensor (PyTorch walks such tensors in memory order instead, and takes
 * the scalar normal path for them), so the values of a fill do not depend on the layout.
 *
 * Bit-identical to PyTorch 1.13 (AVX2 kernels, checked over millions of values and in
 * tests/c/test_random.c): rand/uniform_ and randn/normal_ for float32, float64, float16 and
 * bfloat16 (both normal paths), randint/random_(low, high) for every dtype, bernoulli_(p) (as
 * PyTorch built without MKL; PyTorch has no float16 bernoulli_, this does), randperm for
 * every dtype it takes, manual_seed/initial_seed, and the bytes of get_rng_state.
 * Not identical: fills of non-contiguous tensors (same numbers, placed in logical rather than
 * memory order), and PyTorch running its non-AVX2 kernels (old CPUs) differs from itself.
 * Determinism rests on IEEE arithmetic with no contraction (disabled below; FMAs are
 * explicit, so the plain and FMA builds agree) plus, in normal_ only, the C library's
 * log/sin/cos for float64 and logf/sinf/cosf for the 16-bit dtypes (glibc here, as PyTorch).
 *
 * Speed: the engine's refill, the tempering of whole runs of words and bernoulli_'s compare
 * are integer loops that vectorise (SSE2, or AVX2 where the CPU has it: same bits either way).
 *
 * State (mt_generator_get_state): PyTorch's CPUGeneratorImplState layout, 5056 bytes, little
 * endian: u64 seed | i32 left | i32 seeded | u64 next | u64 state[624] | f64 normal_x,
 * normal_y, normal_rho | i32 normal_is_valid | 4 pad | f32 float_normal | u8 float_valid |
 * 3 pad. The cached double normal is normal_y (PyTorch's own set_state ignores it; here a
 * restored generator continues exactly as the saved one would have).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
/* -O2's "very cheap" vectorizer cost model leaves loops with a runtime trip count scalar: the
 * engine's integer loops below are written to vectorise (no floating point is reordered). */
#pragma GCC optimize("fp-contract=off", "vect-cost-model=dynamic")
#endif

#include "mt_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#define MT_N 624
#define MT_M 397
#define MT_DEFAULT_SEED UINT64_C(67280421310721)
#define MT_STATE_BYTES 5056
#define MT_PI 3.14159265358979323846

struct mt_generator {
  pthread_mutex_t lock; /* draws from several threads stay well-formed (their order does not) */
  uint64_t seed;
  uint32_t state[MT_N];
  int32_t left, next; /* PyTorch's bookkeeping: next word is state[next] unless --left == 0 */
  int32_t seeded;
  bool has_normal_f64, has_normal_f32;
  double normal_f64; /* Box–Muller's second value, returned by the next scalar normal */
  float normal_f32;  /* PyTorch's float cache: unused by its CPU kernels, kept for the state */
};

/* ---- MT19937 ----------------------------------------------------------------------------- */

static void engine_seed(mt_generator *g, uint64_t seed) {
  g->seed = seed;
  g->seeded = 1;
  g->state[0] = (uint32_t)seed;
  for (uint32_t j = 1; j < MT_N; j++)
    g->state[j] = 1812433253u * (g->state[j - 1] ^ (g->state[j - 1] >> 30)) + j;
  g->left = 1;
  g->next = 0;
  g->has_normal_f64 = g->has_normal_f32 = false;
  g->normal_f64 = 0.0;
  g->normal_f32 = 0.0f;
}

/* ---- CPU variants ------------------------------------------------------------------------ */

/* Some loops are compiled twice, plainly and for an x86 extension, and chosen at run time by
 * what the CPU has. Both copies give identical bits; only the speed differs. */
#define MT_ALWAYS_INLINE static inline __attribute__((always_inline))
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MT_FMA_TARGET __attribute__((target("fma")))
#define MT_AVX2_TARGET __attribute__((target("avx2")))
#else
#define MT_FMA_TARGET
#define MT_AVX2_TARGET
#endif

static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static bool use_fma, use_avx2;

static void cpu_init(void) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  use_fma = __builtin_cpu_supports("fma");
  use_avx2 = __builtin_cpu_supports("avx2");
#endif
}
static bool cpu_has_fma(void) {
  pthread_once(&cpu_once, cpu_init);
  return use_fma;
}
static bool cpu_has_avx2(void) {
  pthread_once(&cpu_once, cpu_init);
  return use_avx2;
}

/* Integer loops written to vectorise: the baseline copy gets SSE2 on x86-64, the AVX2 copy
 * twice the lanes. */
#define MT_AVX2_VARIANTS(name, params, args)                                                    \
  static void name##_base params { name##_body args; }                                          \
  MT_AVX2_TARGET static void name##_avx2 params { name##_body args; }                           \
  static void name params {                                                                     \
    if (cpu_has_avx2()) name##_avx2 args;                                                       \
    else name##_base args;                                                                      \
  }

/* ---- MT19937: refill and tempering ------------------------------------------------------- */

MT_ALWAYS_INLINE uint32_t twist(uint32_t u, uint32_t v) {
  return (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
}

/* Word j becomes s[(j + M) mod N] ^ twist(s[j], s[j + 1]). The first N - M = 227 words read
 * only old words; each later one reads the word rewritten 227 places before it. Either way
 * any run of up to 227 consecutive words is independent, so both loops vectorise. */
MT_ALWAYS_INLINE void refill_words_body(uint32_t *s) {
  int j = 0;
  for (; j < MT_N - MT_M; j++) s[j] = s[j + MT_M] ^ twist(s[j], s[j + 1]);
  for (; j < MT_N - 1; j++) s[j] = s[j + MT_M - MT_N] ^ twist(s[j], s[j + 1]);
  s[MT_N - 1] = s[MT_M - 1] ^ twist(s[MT_N - 1], s[0]);
}
MT_AVX2_VARIANTS(refill_words, (uint32_t * s), (s))

static void engine_refill(mt_generator *g) {
  refill_words(g->state);
  g->left = MT_N;
  g->next = 0;
}

MT_ALWAYS_INLINE uint32_t temper(uint32_t y) {
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

MT_ALWAYS_INLINE void temper_run_body(uint32_t *restrict out, const uint32_t *restrict s, int64_t n) {
  for (int64_t j = 0; j < n; j++) out[j] = temper(s[j]);
}
MT_AVX2_VARIANTS(temper_run, (uint32_t *restrict out, const uint32_t *restrict s, int64_t n), (out, s, n))

static inline uint32_t random32(mt_generator *g) {
  if (--g->left == 0) engine_refill(g);
  return temper(g->state[g->next++]);
}

/* k words of the stream into out, exactly as k calls of random32 would draw them (and leaving
 * the same left/next), but tempering whole runs of the state at once.
 * After a refill, left = MT_N + 1 makes the run state[0 .. MT_N); left + next stays MT_N + 1. */
static void random32_block(mt_generator *g, uint32_t *out, int64_t k) {
  while (k > 0) {
    if (g->left <= 1) {
      engine_refill(g);
      g->left = MT_N + 1;
    }
    const int64_t take = g->left - 1 < k ? g->left - 1 : k;
    temper_run(out, g->state + g->next, take);
    g->next += (int32_t)take;
    g->left -= (int32_t)take;
    out += take;
    k -= take;
  }
}

static inline uint64_t random64(mt_generator *g) {
  uint64_t hi = random32(g);
  return hi << 32 | random32(g);
}

/* Uniform [0, 1) with the full precision of the dtype, as PyTorch's uniform_real. */
static inline float unit_f32(mt_generator *g) { return (float)(random32(g) & 0xffffffu) * 0x1p-24f; }
static inline double unit_f64(mt_generator *g) {
  return (double)(random64(g) & UINT64_C(0x1fffffffffffff)) * 0x1p-53;
}

/* ---- generators and state ---------------------------------------------------------------- */

static mt_generator default_gen = {.lock = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void) { engine_seed(&default_gen, MT_DEFAULT_SEED); }

MT_API mt_generator *mt_default_generator(void) {
  pthread_once(&default_once, default_init);
  return &default_gen;
}

static mt_generator *lock_gen(mt_generator *g) {
  if (!g) g = mt_default_generator();
  pthread_mutex_lock(&g->lock);
  return g;
}
static void unlock_gen(mt_generator *g) { pthread_mutex_unlock(&g->lock); }

MT_API mt_status mt_generator_new(mt_generator **out, uint64_t seed) {
  mt_generator *g = malloc(sizeof *g);
  if (!g) return mt_fail(MT_ENOMEM, "out of memory");
  if (pthread_mutex_init(&g->lock, NULL) != 0) {
    free(g);
    return mt_fail(MT_ENOMEM, "cannot create a mutex for the generator");
  }
  engine_seed(g, seed);
  *out = g;
  return MT_OK;
}

MT_API void mt_generator_free(mt_generator *g) {
  if (!g || g == &default_gen) return;
  pthread_mutex_destroy(&g->lock);
  free(g);
}

MT_API void mt_manual_seed(mt_generator *g, uint64_t seed) {
  g = lock_gen(g);
  engine_seed(g, seed);
  unlock_gen(g);
}

MT_API uint64_t mt_initial_seed(const mt_generator *cg) {
  mt_generator *g = lock_gen((mt_generator *)cg);
  uint64_t s = g->seed;
  unlock_gen(g);
  return s;
}

MT_API size_t mt_generator_state_size(void) { return MT_STATE_BYTES; }

/* Little-endian field access, so the bytes are the same on every machine. */
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint32_t get_u32(const uint8_t *p) { return (uint32_t)get_u64((const uint8_t[8]){p[0], p[1], p[2], p[3]}); }
static uint64_t f64_bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static double bits_f64(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

enum { OFF_SEED = 0, OFF_LEFT = 8, OFF_SEEDED = 12, OFF_NEXT = 16, OFF_STATE = 24,
       OFF_NORMAL_X = 24 + 8 * MT_N, OFF_NORMAL_Y = OFF_NORMAL_X + 8, OFF_NORMAL_RHO = OFF_NORMAL_Y + 8,
       OFF_NORMAL_VALID = OFF_NORMAL_RHO + 8, OFF_FLOAT_NORMAL = OFF_NORMAL_VALID + 8,
       OFF_FLOAT_VALID = OFF_FLOAT_NORMAL + 4 };

MT_API void mt_generator_get_state(const mt_generator *cg, uint8_t *buf) {
  mt_generator *g = lock_gen((mt_generator *)cg);
  memset(buf, 0, MT_STATE_BYTES);
  put_u64(buf + OFF_SEED, g->seed);
  put_u32(buf + OFF_LEFT, (uint32_t)g->left);
  put_u32(buf + OFF_SEEDED, (uint32_t)g->seeded);
  put_u64(buf + OFF_NEXT, (uint64_t)g->next);
  for (int i = 0; i < MT_N; i++) put_u64(buf + OFF_STATE + 8 * i, g->state[i]);
  if (g->has_normal_f64) {
    put_u64(buf + OFF_NORMAL_Y, f64_bits(g->normal_f64));
    put_u32(buf + OFF_NORMAL_VALID, 1);
  }
  if (g->has_normal_f32) {
    uint32_t u;
    memcpy(&u, &g->normal_f32, 4);
    put_u32(buf + OFF_FLOAT_NORMAL, u);
    buf[OFF_FLOAT_VALID] = 1;
  }
  unlock_gen(g);
}

MT_API mt_status mt_generator_set_state(mt_generator *g, const uint8_t *buf, size_t n) {
  if (!buf || n != MT_STATE_BYTES)
    return mt_fail(MT_EARG, "a generator state is %d bytes, got %zu", MT_STATE_BYTES, buf ? n : (size_t)0);
  int64_t left = (int32_t)get_u32(buf + OFF_LEFT), next = (int64_t)get_u64(buf + OFF_NEXT);
  uint32_t seeded = get_u32(buf + OFF_SEEDED), nvalid = get_u32(buf + OFF_NORMAL_VALID);
  uint8_t fvalid = buf[OFF_FLOAT_VALID];
  /* A fresh engine has left 1, next 0; after a draw, left + next is always 625. */
  if (left < 1 || left > MT_N || next < 0 || next > MT_N || (left + next != MT_N + 1 && !(left == 1 && next == 0)))
    return mt_fail(MT_EARG, "invalid generator state: position left=%lld, next=%lld is impossible",
                   (long long)left, (long long)next);
  if (seeded > 1 || nvalid > 1 || fvalid > 1)
    return mt_fail(MT_EARG, "invalid generator state: a flag is neither 0 nor 1");
  uint32_t words[MT_N], any = 0;
  for (int i = 0; i < MT_N; i++) {
    uint64_t w = get_u64(buf + OFF_STATE + 8 * i);
    if (w >> 32) return mt_fail(MT_EARG, "invalid generator state: word %d does not fit in 32 bits", i);
    words[i] = (uint32_t)w;
    any |= words[i];
  }
  if (!any) return mt_fail(MT_EARG, "invalid generator state: the Mersenne Twister state is all zeros");
  double ny = bits_f64(get_u64(buf + OFF_NORMAL_Y));
  float fn;
  uint32_t fu = get_u32(buf + OFF_FLOAT_NORMAL);
  memcpy(&fn, &fu, 4);
  if ((nvalid && !isfinite(ny)) || (fvalid && !isfinite(fn)))
    return mt_fail(MT_EARG, "invalid generator state: the cached normal value is not finite");

  g = lock_gen(g);
  g->seed = get_u64(buf + OFF_SEED);
  g->left = (int32_t)left;
  g->next = (int32_t)next;
  g->seeded = (int32_t)seeded;
  memcpy(g->state, words, sizeof words);
  g->has_normal_f64 = nvalid;
  g->normal_f64 = nvalid ? ny : 0.0;
  g->has_normal_f32 = fvalid;
  g->normal_f32 = fvalid ? fn : 0.0f;
  unlock_gen(g);
  return MT_OK;
}

/* ---- FMA: explicit where PyTorch's compiled kernels have one ------------------------------ */

/* Each kernel body is compiled twice: plainly (fma()/fmaf() from libm, exact but slow without
 * hardware support) and, on x86, for CPUs with FMA, where the same calls become instructions. */
#define MT_FMA_VARIANTS(name, params, args)                                                     \
  static void name##_plain params { name##_body args; }                                         \
  MT_FMA_TARGET static void name##_fma params { name##_body args; }                             \
  static void name params {                                                                     \
    if (cpu_has_fma()) name##_fma args;                                                         \
    else name##_plain args;                                                                     \
  }

/* ---- uniform ----------------------------------------------------------------------------- */

MT_ALWAYS_INLINE void uniform_f32_body(float *d, int64_t n, float lo, float range, mt_generator *g) {
  for (int64_t i = 0; i < n; i++) d[i] = fmaf(unit_f32(g), range, lo);
}
MT_FMA_VARIANTS(uniform_f32, (float *d, int64_t n, float lo, float range, mt_generator *g), (d, n, lo, range, g))

MT_ALWAYS_INLINE void uniform_f64_body(double *d, int64_t n, double lo, double range, mt_generator *g) {
  for (int64_t i = 0; i < n; i++) d[i] = fma(unit_f64(g), range, lo);
}
MT_FMA_VARIANTS(uniform_f64, (double *d, int64_t n, double lo, double range, mt_generator *g), (d, n, lo, range, g))

/* float16 / bfloat16: `bits` low bits of each word; arithmetic in float32, then rounded. */
MT_ALWAYS_INLINE void uniform_h16_body(uint16_t *d, int64_t n, bool bf, float lo, float range, mt_generator *g) {
  const uint32_t mask = bf ? 0xffu : 0x7ffu;
  const float scale = bf ? 0x1p-8f : 0x1p-11f;
  for (int64_t i = 0; i < n; i++) {
    float v = fmaf((float)(random32(g) & mask) * scale, range, lo);
    d[i] = bf ? mt_f32_to_bf16(v) : mt_f32_to_f16(v);
  }
}
MT_FMA_VARIANTS(uniform_h16, (uint16_t *d, int64_t n, bool bf, float lo, float range, mt_generator *g),
                (d, n, bf, lo, range, g))

/* ---- normal ------------------------------------------------------------------------------ */

/* PyTorch's scalar Box–Muller in float64, with the cached second value. */
MT_ALWAYS_INLINE double normal_scalar(mt_generator *g, double mean, double std) {
  double v;
  if (g->has_normal_f64) {
    v = g->normal_f64;
    g->has_normal_f64 = false;
  } else {
    double u1 = unit_f64(g), u2 = unit_f64(g);
    double r = sqrt(-2.0 * log(1.0 - u2)), theta = 2.0 * MT_PI * u1;
    g->normal_f64 = r * sin(theta);
    g->has_normal_f64 = true;
    v = r * cos(theta);
  }
  return fma(v, std, mean);
}

/* avx_mathfun.h's log256_ps for one lane, x in (0, 1]. fmaf() marks the products GCC fused. */
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

MT_ALWAYS_INLINE float cephes_logf(float x) {
  const float one = 1.0f;
  x = x > u2f(0x00800000u) ? x : u2f(0x00800000u); /* no denormals */
  int32_t imm0 = (int32_t)(f2u(x) >> 23) - 0x7f;
  x = u2f((f2u(x) & ~0x7f800000u) | f2u(0.5f)); /* mantissa in [0.5, 1) */
  float e = (float)imm0 + one;
  bool small = x < 0.707106781186547524f;
  float tmp = small ? x : 0.0f;
  x = x - one;
  e = e - (small ? one : 0.0f);
  x = x + tmp;
  float z = x * x;
  float y = fmaf(7.0376836292E-2f, x, -1.1514610310E-1f);
  y = fmaf(y, x, 1.1676998740E-1f);
  y = fmaf(y, x, -1.2420140846E-1f);
  y = fmaf(y, x, 1.4249322787E-1f);
  y = fmaf(y, x, -1.6668057665E-1f);
  y = fmaf(y, x, 2.0000714765E-1f);
  y = fmaf(y, x, -2.4999993993E-1f);
  y = fmaf(y, x, 3.3333331174E-1f);
  y = y * x;
  y = fmaf(y, z, e * -2.12194440e-4f);
  y = fmaf(-z, 0.5f, y);
  x = x + y;
  return fmaf(e, 0.693359375f, x);
}

/* avx_mathfun.h's sincos256_ps for one lane, x >= 0 and small (here [0, 2 pi)). */
MT_ALWAYS_INLINE void cephes_sincosf(float x, float *s, float *c) {
  int32_t j = (int32_t)(x * 1.27323954473516f); /* 4 / pi, truncated */
  j = (j + 1) & ~1;
  float y = (float)j;
  uint32_t sign_sin = (uint32_t)(j & 4) << 29;
  uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
  bool poly_sin = (j & 2) == 0;
  x = fmaf(y, -0.78515625f, x); /* extended-precision reduction by pi/4 */
  x = fmaf(y, -2.4187564849853515625e-4f, x);
  x = fmaf(y, -3.77489497744594108e-8f, x);
  float z = x * x;
  float yc = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
  yc = fmaf(yc, z, 4.166664568298827E-002f);
  yc = yc * z;
  yc = fmaf(yc, z, -(z * 0.5f));
  yc = yc + 1.0f;
  float ys = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
  ys = fmaf(ys, z, -1.6666654611E-1f);
  ys = ys * z;
  ys = fmaf(ys, x, x);
  /* Lane selection exactly as the vector code does it (masking and adding a zero). */
  float sin2 = poly_sin ? ys : 0.0f, sin1 = poly_sin ? 0.0f : yc;
  float cos2 = ys - sin2, cos1 = yc - sin1;
  *s = u2f(f2u(sin1 + sin2) ^ sign_sin);
  *c = u2f(f2u(cos1 + cos2) ^ sign_cos);
}

/* normal_fill_16_AVX2: d[0..15] hold uniforms in [0, 1) and become normals. */
MT_ALWAYS_INLINE void normal16_f32(float *d, float mean, float std) {
  const float two_pi = (float)(2.0 * MT_PI);
  for (int j = 0; j < 8; j++) {
    float u1 = 1.0f - d[j], u2 = d[j + 8];
    float radius = sqrtf(-2.0f * cephes_logf(u1)), theta = two_pi * u2, s, c;
    cephes_sincosf(theta, &s, &c);
    d[j] = fmaf(radius * c, std, mean);
    d[j + 8] = fmaf(radius * s, std, mean);
  }
}

MT_ALWAYS_INLINE void normal16_f64(double *d, double mean, double std) {
  for (int j = 0; j < 8; j++) {
    double u1 = 1.0 - d[j], u2 = d[j + 8];
    double radius = sqrt(-2.0 * log(u1)), theta = 2.0 * MT_PI * u2;
    d[j] = fma(radius * cos(theta), std, mean);
    d[j + 8] = fma(radius * sin(theta), std, mean);
  }
}

/* PyTorch's normal_fill: all uniforms first, blocks of 16, the ragged end redrawn. */
MT_ALWAYS_INLINE void normal_block_f32_body(float *d, int64_t n, float mean, float std, mt_generator *g) {
  for (int64_t i = 0; i < n; i++) d[i] = unit_f32(g);
  for (int64_t i = 0; i + 16 <= n; i += 16) normal16_f32(d + i, mean, std);
  if (n % 16) {
    float *tail = d + n - 16;
    for (int i = 0; i < 16; i++) tail[i] = unit_f32(g);
    normal16_f32(tail, mean, std);
  }
}
MT_FMA_VARIANTS(normal_block_f32, (float *d, int64_t n, float mean, float std, mt_generator *g),
                (d, n, mean, std, g))

MT_ALWAYS_INLINE void normal_block_f64_body(double *d, int64_t n, double mean, double std, mt_generator *g) {
  for (int64_t i = 0; i < n; i++) d[i] = unit_f64(g);
  for (int64_t i = 0; i + 16 <= n; i += 16) normal16_f64(d + i, mean, std);
  if (n % 16) {
    double *tail = d + n - 16;
    for (int i = 0; i < 16; i++) tail[i] = unit_f64(g);
    normal16_f64(tail, mean, std);
  }
}
MT_FMA_VARIANTS(normal_block_f64, (double *d, int64_t n, double mean, double std, mt_generator *g),
                (d, n, mean, std, g))

/* normal_fill_16 for float16 / bfloat16, rounding where c10::Half and c10::BFloat16 round:
 * Half keeps float32 intermediates (libm's logf/sinf/cosf, one fused multiply-add at the end),
 * BFloat16 rounds after every operation. */
MT_ALWAYS_INLINE void normal16_h16(uint16_t *d, bool bf, float mean, float std) {
  float (*w)(uint16_t) = bf ? mt_bf16_to_f32 : mt_f16_to_f32;
  uint16_t (*r)(float) = bf ? mt_f32_to_bf16 : mt_f32_to_f16;
  for (int j = 0; j < 8; j++) {
    float u1 = w(r(1.0f - w(d[j])));
    float theta = w(r((float)(2.0 * MT_PI * (double)w(d[j + 8]))));
    if (bf) {
      float radius = w(r(sqrtf(w(r(-2.0f * w(r(logf(u1))))))));
      float c = w(r(cosf(theta))), s = w(r(sinf(theta)));
      d[j] = r(w(r(w(r(radius * c)) * std)) + mean);
      d[j + 8] = r(w(r(w(r(radius * s)) * std)) + mean);
    } else {
      float radius = w(r(sqrtf(-2.0f * logf(u1))));
      d[j] = r(fmaf(radius * cosf(theta), std, mean));
      d[j + 8] = r(fmaf(radius * sinf(theta), std, mean));
    }
  }
}

MT_ALWAYS_INLINE void normal_block_h16_body(uint16_t *d, int64_t n, bool bf, float mean, float std, mt_generator *g) {
  const uint32_t mask = bf ? 0xffu : 0x7ffu;
  const float scale = bf ? 0x1p-8f : 0x1p-11f; /* these uniforms are exact in the dtype */
  uint16_t (*r)(float) = bf ? mt_f32_to_bf16 : mt_f32_to_f16;
  for (int64_t i = 0; i < n; i++) d[i] = r((float)(random32(g) & mask) * scale);
  for (int64_t i = 0; i + 16 <= n; i += 16) normal16_h16(d + i, bf, mean, std);
  if (n % 16) {
    uint16_t *tail = d + n - 16;
    for (int i = 0; i < 16; i++) tail[i] = r((float)(random32(g) & mask) * scale);
    normal16_h16(tail, bf, mean, std);
  }
}
MT_FMA_VARIANTS(normal_block_h16, (uint16_t *d, int64_t n, bool bf, float mean, float std, mt_generator *g),
                (d, n, bf, mean, std, g))

/* The scalar path into any float dtype (16-bit ones via float32, as PyTorch's casts do). */
MT_ALWAYS_INLINE void normal_scalar_fill_body(void *data, mt_dtype dt, int64_t n, double mean, double std,
                                              mt_generator *g) {
  for (int64_t i = 0; i < n; i++) {
    double v = normal_scalar(g, mean, std);
    switch (dt) {
    case MT_FLOAT64: ((double *)data)[i] = v; break;
    case MT_FLOAT32: ((float *)data)[i] = (float)v; break;
    case MT_FLOAT16: ((uint16_t *)data)[i] = mt_f32_to_f16((float)v); break;
    default: ((uint16_t *)data)[i] = mt_f32_to_bf16((float)v); break;
    }
  }
}
MT_FMA_VARIANTS(normal_scalar_fill, (void *data, mt_dtype dt, int64_t n, double mean, double std, mt_generator *g),
                (data, dt, n, mean, std, g))

/* ---- where a fill writes ----------------------------------------------------------------- */

/* A fill writes into t's memory when t is contiguous; otherwise into a contiguous scratch
 * tensor whose element i is logical element i of t, copied back afterwards. Everything that
 * can fail happens before the first number is drawn. */
typedef struct fill_target {
  mt_tensor *t, *scratch;
  void *data;
  int64_t n;
  bool contiguous;
} fill_target;

static mt_status target_begin(fill_target *ft, mt_tensor *t) {
  ft->t = t;
  ft->scratch = NULL;
  ft->n = mt_numel(t);
  ft->contiguous = mt_is_contiguous(t);
  /* A graph would replay the trace's draws, not draw anew: refused, before the in-place check
   * refuses it less precisely. */
  if (mt_tracing()) mt_trace_refuse("random number generation");
  mt_status st = mt_inplace_begin(t, 0, NULL);
  if (st) return st;
  if (ft->contiguous || ft->n == 0) {
    ft->data = mt_data(t);
    return MT_OK;
  }
  if ((st = mt_empty_like(&ft->scratch, t, t->dtype))) return st;
  ft->data = mt_data(ft->scratch);
  return MT_OK;
}

static mt_status target_end(fill_target *ft) {
  if (!ft->scratch) return MT_OK;
  mt_status st = mt_copy_(ft->t, ft->scratch);
  mt_tensor_release(ft->scratch);
  return st;
}

static mt_status need_float(const mt_tensor *t) {
  if (!t) return mt_fail(MT_EARG, "the tensor is NULL");
  if (!mt_dtype_is_float(t->dtype))
    return mt_fail(MT_EDTYPE, "needs a floating-point tensor, got %s", mt_dtype_name(t->dtype));
  return MT_OK;
}

/* Largest finite value and the bits of precision of each float dtype. */
static double float_max(mt_dtype dt) {
  switch (dt) {
  case MT_FLOAT32: return 3.4028234663852886e38;
  case MT_FLOAT64: return 1.7976931348623157e308;
  case MT_FLOAT16: return 65504.0;
  default: return 3.3895313892515355e38; /* bfloat16 */
  }
}
static int float_digits(mt_dtype dt) {
  switch (dt) {
  case MT_FLOAT32: return 24;
  case MT_FLOAT64: return 53;
  case MT_FLOAT16: return 11;
  default: return 8;
  }
}

/* ---- public fills ------------------------------------------------------------------------ */

MT_API mt_status mt_uniform_(mt_tensor *t, double lo, double hi, mt_generator *g) {
  mt_status st = need_float(t);
  if (st) return st;
  double max = float_max(t->dtype);
  if (!(lo >= -max && lo <= max) || !(hi >= -max && hi <= max))
    return mt_fail(MT_EARG, "bounds [%g, %g) are not within the finite %s range", lo, hi, mt_dtype_name(t->dtype));
  if (lo > hi) return mt_fail(MT_EARG, "lower bound %g is greater than upper bound %g", lo, hi);
  if (hi - lo > max)
    return mt_fail(MT_EARG, "range %g to %g is wider than the largest %s value", lo, hi, mt_dtype_name(t->dtype));
  fill_target ft;
  if ((st = target_begin(&ft, t))) return st;
  g = lock_gen(g);
  switch (t->dtype) {
  case MT_FLOAT32: {
    float flo = (float)lo, fhi = (float)hi;
    uniform_f32(ft.data, ft.n, flo, fhi - flo, g);
    break;
  }
  case MT_FLOAT64: uniform_f64(ft.data, ft.n, lo, hi - lo, g); break;
  default: { /* bounds and their difference rounded to the 16-bit dtype, as c10::Half does */
    bool bf = t->dtype == MT_BFLOAT16;
    float (*widen)(uint16_t) = bf ? mt_bf16_to_f32 : mt_f16_to_f32;
    uint16_t (*narrow)(float) = bf ? mt_f32_to_bf16 : mt_f32_to_f16;
    float flo = widen(narrow((float)lo)), fhi = widen(narrow((float)hi));
    uniform_h16(ft.data, ft.n, bf, flo, widen(narrow(fhi - flo)), g);
    break;
  }
  }
  unlock_gen(g);
  return target_end(&ft);
}

MT_API mt_status mt_normal_(mt_tensor *t, double mean, double std, mt_generator *g) {
  mt_status st = need_float(t);
  if (st) return st;
  if (!(std >= 0.0)) return mt_fail(MT_EARG, "standard deviation must be >= 0, got %g", std);
  fill_target ft;
  if ((st = target_begin(&ft, t))) return st;
  g = lock_gen(g);
  if (ft.contiguous && ft.n >= 16) {
    if (t->dtype == MT_FLOAT64) {
      normal_block_f64(ft.data, ft.n, mean, std, g);
    } else if (t->dtype == MT_FLOAT32) {
      normal_block_f32(ft.data, ft.n, (float)mean, (float)std, g);
    } else { /* mean and std rounded to the dtype first, as PyTorch's static_cast does */
      bool bf = t->dtype == MT_BFLOAT16;
      float m = bf ? mt_bf16_to_f32(mt_f32_to_bf16((float)mean)) : mt_f16_to_f32(mt_f32_to_f16((float)mean));
      float s = bf ? mt_bf16_to_f32(mt_f32_to_bf16((float)std)) : mt_f16_to_f32(mt_f32_to_f16((float)std));
      normal_block_h16(ft.data, ft.n, bf, m, s, g);
    }
  } else {
    normal_scalar_fill(ft.data, t->dtype, ft.n, mean, std, g);
  }
  unlock_gen(g);
  return target_end(&ft);
}

/* ---- integers: randint, bernoulli, randperm ---------------------------------------------- */

/* An integer-valued draw stored into each dtype (values are in range by the callers' checks). */
static inline float conv_f32(int64_t v) { return (float)v; }
static inline double conv_f64(int64_t v) { return (double)v; }
static inline mt_half conv_f16(int64_t v) { return mt_f32_to_f16((float)v); }
static inline mt_bf16 conv_bf16(int64_t v) { return mt_f32_to_bf16((float)v); }
static inline int64_t conv_i64(int64_t v) { return v; }
static inline int32_t conv_i32(int64_t v) { return (int32_t)v; }
static inline int16_t conv_i16(int64_t v) { return (int16_t)v; }
static inline int8_t conv_i8(int64_t v) { return (int8_t)v; }
static inline uint8_t conv_u8(int64_t v) { return (uint8_t)v; }
static inline bool conv_b8(int64_t v) { return v != 0; }

typedef void (*randint_fn)(void *data, int64_t n, uint64_t range, int64_t base, bool wide, mt_generator *g);
typedef void (*iota_fn)(void *data, int64_t n);

/* Arithmetic in uint64, as PyTorch's (val % range) + base, so that no overflow is undefined. */
#define MT_RANDOM_KERNELS(E, ctype, sfx)                                                        \
  static void randint_##sfx(void *data, int64_t n, uint64_t range, int64_t base, bool wide,     \
                            mt_generator *g) {                                                  \
    ctype *d = data;                                                                            \
    if (wide)                                                                                   \
      for (int64_t i = 0; i < n; i++) d[i] = conv_##sfx((int64_t)(random64(g) % range + (uint64_t)base)); \
    else                                                                                        \
      for (int64_t i = 0; i < n; i++) d[i] = conv_##sfx((int64_t)(random32(g) % range + (uint64_t)base)); \
  }                                                                                             \
  static void iota_##sfx(void *data, int64_t n) {                                               \
    ctype *d = data;                                                                            \
    for (int64_t i = 0; i < n; i++) d[i] = conv_##sfx(i);                                       \
  }
MT_FOREACH_DTYPE(MT_RANDOM_KERNELS)
#undef MT_RANDOM_KERNELS

#define MT_ENTRY(kernel) [MT_FLOAT32] = kernel##_f32, [MT_FLOAT64] = kernel##_f64, [MT_FLOAT16] = kernel##_f16, \
  [MT_BFLOAT16] = kernel##_bf16, [MT_INT64] = kernel##_i64, [MT_INT32] = kernel##_i32, [MT_INT16] = kernel##_i16, \
  [MT_INT8] = kernel##_i8, [MT_UINT8] = kernel##_u8, [MT_BOOL] = kernel##_b8
static const randint_fn randint_kernels[MT_NUM_DTYPES] = {MT_ENTRY(randint)};
static const iota_fn iota_kernels[MT_NUM_DTYPES] = {MT_ENTRY(iota)};
#undef MT_ENTRY

/* bernoulli_: unit_f64(g) < p per element, two words each (high first). unit_f64 is u * 2^-53
 * for the 53-bit integer u = (hi & (2^21 - 1)) << 32 | lo, exactly, and p * 2^53 is exact too
 * (p in [0, 1]), so the test is u < lim = ceil(p * 2^53): compared as two 32-bit halves, which
 * vectorises even with SSE2. p = 1 gives lim = 2^53, above every u. Each element is written as
 * the bit pattern `one` (the test holds) or `zero`, so one loop per element size serves every
 * dtype, and dropout's scaled mask too. */
#define MT_PICK(bits)                                                                           \
  MT_ALWAYS_INLINE void pick##bits##_body(uint##bits##_t *restrict d, const uint32_t *restrict w, int64_t m, \
                                          uint32_t lh, uint32_t ll, uint##bits##_t one, uint##bits##_t zero) { \
    for (int64_t j = 0; j < m; j++) {                                                           \
      const uint32_t hi = w[2 * j] & 0x1fffffu, lo = w[2 * j + 1];                              \
      const bool hit = (hi < lh) | ((hi == lh) & (lo < ll)); /* no branch: vectorises */        \
      d[j] = hit ? one : zero;                                                                  \
    }                                                                                           \
  }                                                                                             \
  MT_AVX2_VARIANTS(pick##bits, (uint##bits##_t *restrict d, const uint32_t *restrict w, int64_t m, uint32_t lh, \
                                uint32_t ll, uint##bits##_t one, uint##bits##_t zero),          \
                   (d, w, m, lh, ll, one, zero))
MT_PICK(8)
MT_PICK(16)
MT_PICK(32)
MT_PICK(64)
#undef MT_PICK

/* n elements of `size` bytes at data: `one` with probability p, else `zero` (bit patterns).
 * each (if not NULL) runs on every run of elements [i0, i0 + m) as soon as it is written. */
static void bernoulli_bits(void *data, size_t size, int64_t n, double p, const void *one, const void *zero,
                           mt_generator *g, void (*each)(void *ctx, int64_t i0, int64_t m), void *ctx) {
  const uint64_t lim = (uint64_t)ceil(p * 0x1p53);
  const uint32_t lh = (uint32_t)(lim >> 32), ll = (uint32_t)lim;
  uint8_t o8, z8; /* the patterns as integers of the element's size */
  uint16_t o16 = 0, z16 = 0;
  uint32_t o32 = 0, z32 = 0;
  uint64_t o64 = 0, z64 = 0;
  memcpy(&o8, one, 1), memcpy(&z8, zero, 1);
  if (size >= 2) memcpy(&o16, one, 2), memcpy(&z16, zero, 2);
  if (size >= 4) memcpy(&o32, one, 4), memcpy(&z32, zero, 4);
  if (size >= 8) memcpy(&o64, one, 8), memcpy(&z64, zero, 8);
  uint32_t w[1024];
  for (int64_t i0 = 0; i0 < n; i0 += 512) {
    const int64_t m = n - i0 < 512 ? n - i0 : 512;
    random32_block(g, w, 2 * m);
    void *d = (char *)data + (size_t)i0 * size;
    switch (size) {
    case 1: pick8(d, w, m, lh, ll, o8, z8); break;
    case 2: pick16(d, w, m, lh, ll, o16, z16); break;
    case 4: pick32(d, w, m, lh, ll, o32, z32); break;
    default: pick64(d, w, m, lh, ll, o64, z64); break;
    }
    if (each) each(ctx, i0, m);
  }
}

/* Dropout's draw (nn_misc.c): bernoulli_(p) into n contiguous elements of `size` bytes (the
 * same words of g's stream, in the same order), written as the bit patterns `one` and `zero`;
 * each (if not NULL) runs on every run of elements [i0, i0 + m) while it is still in cache. */
void mt_bernoulli_runs(void *data, size_t size, int64_t n, double p, const void *one, const void *zero,
                       mt_generator *g, void (*each)(void *ctx, int64_t i0, int64_t m), void *ctx) {
  g = lock_gen(g);
  bernoulli_bits(data, size, n, p, one, zero, g, each, ctx);
  unlock_gen(g);
}

/* The bit patterns of 1 and 0 in each dtype, as bernoulli_ writes them. */
static void unit_bits(mt_dtype dt, void *one, void *zero) {
  switch (dt) {
#define MT_UNIT_BITS(E, ctype, sfx)                                                             \
  case E: {                                                                                     \
    const ctype o = conv_##sfx(1), z = conv_##sfx(0);                                           \
    memcpy(one, &o, sizeof o), memcpy(zero, &z, sizeof z);                                      \
    return;                                                                                     \
  }
    MT_FOREACH_DTYPE(MT_UNIT_BITS)
#undef MT_UNIT_BITS
  default: return;
  }
}

/* The integers a dtype holds exactly: its range for integer dtypes, +-2^digits for floats. */
static void exact_int_range(mt_dtype dt, int64_t *lo, int64_t *hi) {
  switch (dt) {
  case MT_INT64: *lo = INT64_MIN; *hi = INT64_MAX; return;
  case MT_INT32: *lo = INT32_MIN; *hi = INT32_MAX; return;
  case MT_INT16: *lo = INT16_MIN; *hi = INT16_MAX; return;
  case MT_INT8: *lo = INT8_MIN; *hi = INT8_MAX; return;
  case MT_UINT8: *lo = 0; *hi = UINT8_MAX; return;
  case MT_BOOL: *lo = 0; *hi = 1; return;
  default: *hi = INT64_C(1) << float_digits(dt); *lo = -*hi; return;
  }
}

MT_API mt_status mt_randint_(mt_tensor *t, int64_t low, int64_t high, mt_generator *g) {
  if (!t) return mt_fail(MT_EARG, "the tensor is NULL");
  if (low >= high)
    return mt_fail(MT_EARG, "low must be less than high, but got low=%lld >= high=%lld", (long long)low,
                   (long long)high);
  int64_t min, max;
  exact_int_range(t->dtype, &min, &max);
  if (low < min || high - 1 > max)
    return mt_fail(MT_EARG, "range [%lld, %lld) does not fit %s (which holds the integers %lld to %lld exactly)",
                   (long long)low, (long long)high, mt_dtype_name(t->dtype), (long long)min, (long long)max);
  uint64_t range = (uint64_t)high - (uint64_t)low;
  mt_dtype dt = t->dtype;
  bool wide = range >= (UINT64_C(1) << 32) && (dt == MT_INT64 || dt == MT_FLOAT64 || dt == MT_FLOAT32 || dt == MT_BFLOAT16);
  fill_target ft;
  mt_status st = target_begin(&ft, t);
  if (st) return st;
  g = lock_gen(g);
  randint_kernels[dt](ft.data, ft.n, range, low, wide, g);
  unlock_gen(g);
  return target_end(&ft);
}

MT_API mt_status mt_bernoulli_(mt_tensor *t, double p, mt_generator *g) {
  if (!t) return mt_fail(MT_EARG, "the tensor is NULL");
  if (!(p >= 0.0 && p <= 1.0)) return mt_fail(MT_EARG, "probability must be in [0, 1], got %g", p);
  fill_target ft;
  mt_status st = target_begin(&ft, t);
  if (st) return st;
  uint8_t one[8] = {0}, zero[8] = {0};
  unit_bits(t->dtype, one, zero);
  g = lock_gen(g);
  bernoulli_bits(ft.data, mt_dtype_size(t->dtype), ft.n, p, one, zero, g, NULL, NULL);
  unlock_gen(g);
  return target_end(&ft);
}

/* Swaps of whole elements, whatever their type (values are only moved). */
#define MT_SHUFFLE(ctype)                                                                       \
  do {                                                                                          \
    ctype *d = data;                                                                            \
    for (int64_t i = 0; i < n - 1; i++) {                                                       \
      int64_t z = i + (int64_t)(random32(g) % (uint64_t)(n - i));                               \
      ctype tmp = d[i];                                                                         \
      d[i] = d[z];                                                                              \
      d[z] = tmp;                                                                               \
    }                                                                                           \
  } while (0)

MT_API mt_status mt_randperm(mt_tensor **out, int64_t n, mt_dtype dt, mt_generator *g) {
  if (mt_tracing()) mt_trace_refuse("random number generation");
  if (n < 0) return mt_fail(MT_EARG, "n must be non-negative, got %lld", (long long)n);
  if ((unsigned)dt >= MT_NUM_DTYPES || dt == MT_BOOL)
    return mt_fail(MT_EDTYPE, "a permutation needs an integer or floating-point dtype, got %s",
                   (unsigned)dt < MT_NUM_DTYPES ? mt_dtype_name(dt) : "an unknown dtype");
  int64_t min, max;
  exact_int_range(dt, &min, &max);
  if (n > 0 && n - 1 > max)
    return mt_fail(MT_EARG, "n=%lld is too large for %s (at most %lld)", (long long)n, mt_dtype_name(dt),
                   (long long)(max == INT64_MAX ? max : max + 1));
  mt_tensor *r;
  mt_status st = mt_empty(&r, dt, 1, &n);
  if (st) return st;
  void *data = mt_data(r);
  iota_kernels[dt](data, n);
  g = lock_gen(g);
  switch (mt_dtype_size(dt)) {
  case 8: MT_SHUFFLE(uint64_t); break;
  case 4: MT_SHUFFLE(uint32_t); break;
  case 2: MT_SHUFFLE(uint16_t); break;
  default: MT_SHUFFLE(uint8_t); break;
  }
  unlock_gen(g);
  *out = r;
  return MT_OK;
}
