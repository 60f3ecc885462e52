/*
 * dtype.c — the one traits table that describes every dtype, the float16/bfloat16 conversions
 * (round to nearest even, as PyTorch's c10::Half and c10::BFloat16 do) and type promotion.
 */
#include "mt_internal.h"

#include <math.h>

/* ---- float16 / bfloat16 ------------------------------------------------------------------ */

MT_API uint16_t mt_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf stays inf; NaN stays a quiet NaN with its top payload bits */
    return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (ax < 0x38800000u) {                                    /* below 2^-14: a half subnormal */
    if (ax < 0x33000000u) return sign;                       /* <= 2^-25 rounds to zero */
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e, q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u); /* round to nearest even at bit 13 */
  return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

MT_API float mt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
  if (e == 0) {
    float v = (float)m * 0x1p-24f; /* zero or subnormal: exact in float */
    return sign ? -v : v;
  }
  if (e == 31) x = sign | 0x7f800000u | (m << 13);
  else x = sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

MT_API uint16_t mt_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

MT_API float mt_bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

/* ---- per-dtype element conversions -------------------------------------------------------- */

#define DEF_FLOAT_CONV(sfx, T, LOAD, STORE)                                                      \
  static double sfx##_to_f64(const void *p) { return (double)LOAD(p); }                        \
  static void sfx##_from_f64(void *p, double v) { STORE(p, v); }                               \
  static int64_t sfx##_to_i64(const void *p) { return mt_f64_to_i64_sat((double)LOAD(p)); }    \
  static void sfx##_from_i64(void *p, int64_t v) { STORE(p, (double)v); }

#define LOAD_F32(p) (*(const float *)(p))
#define STORE_F32(p, v) (*(float *)(p) = (float)(v))
#define LOAD_F64(p) (*(const double *)(p))
#define STORE_F64(p, v) (*(double *)(p) = (double)(v))
#define LOAD_F16(p) mt_f16_to_f32(*(const uint16_t *)(p))
#define STORE_F16(p, v) (*(uint16_t *)(p) = mt_f32_to_f16((float)(v)))
#define LOAD_BF16(p) mt_bf16_to_f32(*(const uint16_t *)(p))
#define STORE_BF16(p, v) (*(uint16_t *)(p) = mt_f32_to_bf16((float)(v)))

DEF_FLOAT_CONV(f32, float, LOAD_F32, STORE_F32)
DEF_FLOAT_CONV(f64, double, LOAD_F64, STORE_F64)
DEF_FLOAT_CONV(f16, mt_half, LOAD_F16, STORE_F16)
DEF_FLOAT_CONV(bf16, mt_bf16, LOAD_BF16, STORE_BF16)

/* Integers: float -> int saturates into int64 first, then narrows like a C integer cast. */
#define DEF_INT_CONV(sfx, T)                                                                     \
  static double sfx##_to_f64(const void *p) { return (double)*(const T *)p; }                  \
  static void sfx##_from_f64(void *p, double v) { *(T *)p = (T)mt_f64_to_i64_sat(v); }         \
  static int64_t sfx##_to_i64(const void *p) { return (int64_t)*(const T *)p; }                \
  static void sfx##_from_i64(void *p, int64_t v) { *(T *)p = (T)v; }

DEF_INT_CONV(i64, int64_t)
DEF_INT_CONV(i32, int32_t)
DEF_INT_CONV(i16, int16_t)
DEF_INT_CONV(i8, int8_t)
DEF_INT_CONV(u8, uint8_t)

/* bool is read as a byte so that a file holding 2 in a bool tensor cannot produce a trap value */
static double b8_to_f64(const void *p) { return *(const uint8_t *)p != 0; }
static void b8_from_f64(void *p, double v) { *(uint8_t *)p = v != 0; }
static int64_t b8_to_i64(const void *p) { return *(const uint8_t *)p != 0; }
static void b8_from_i64(void *p, int64_t v) { *(uint8_t *)p = v != 0; }

#define TRAITS(sfx, nm, T, isf, iss, comp) {nm, sizeof(T), isf, iss, comp, sfx##_to_f64, sfx##_from_f64, sfx##_to_i64, sfx##_from_i64}

static const mt_dtype_traits traits[] = {
    [MT_FLOAT32] = TRAITS(f32, "float32", float, true, true, MT_FLOAT32),
    [MT_FLOAT64] = TRAITS(f64, "float64", double, true, true, MT_FLOAT64),
    [MT_FLOAT16] = TRAITS(f16, "float16", mt_half, true, true, MT_FLOAT32),
    [MT_BFLOAT16] = TRAITS(bf16, "bfloat16", mt_bf16, true, true, MT_FLOAT32),
    [MT_INT64] = TRAITS(i64, "int64", int64_t, false, true, MT_INT64),
    [MT_INT32] = TRAITS(i32, "int32", int32_t, false, true, MT_INT64),
    [MT_INT16] = TRAITS(i16, "int16", int16_t, false, true, MT_INT64),
    [MT_INT8] = TRAITS(i8, "int8", int8_t, false, true, MT_INT64),
    [MT_UINT8] = TRAITS(u8, "uint8", uint8_t, false, false, MT_INT64),
    [MT_BOOL] = TRAITS(b8, "bool", uint8_t, false, false, MT_INT64),
};
_Static_assert(sizeof traits / sizeof traits[0] == MT_NUM_DTYPES, "one traits row per dtype");
_Static_assert(sizeof(bool) == 1, "bool tensors store one byte per element");

MT_API const mt_dtype_traits *mt_dtype_info(mt_dtype dt) {
  return (unsigned)dt < MT_NUM_DTYPES ? &traits[dt] : NULL;
}

static const struct {
  const char *name;
  mt_dtype dt;
} aliases[] = {
    {"float", MT_FLOAT32}, {"double", MT_FLOAT64}, {"half", MT_FLOAT16}, {"long", MT_INT64},
    {"int", MT_INT32},     {"short", MT_INT16},    {"char", MT_INT8},    {"byte", MT_UINT8},
};

MT_API bool mt_dtype_from_name(const char *name, mt_dtype *out) {
  if (!name) return false;
  for (int i = 0; i < MT_NUM_DTYPES; i++)
    if (strcmp(name, traits[i].name) == 0) return *out = (mt_dtype)i, true;
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strcmp(name, aliases[i].name) == 0) return *out = aliases[i].dt, true;
  return false;
}

/* PyTorch's promoteTypes for these dtypes, as rules rather than a 10x10 table. */
MT_API mt_dtype mt_promote_types(mt_dtype a, mt_dtype b) {
  if (a == b) return a;
  if (a == MT_BOOL) return b;
  if (b == MT_BOOL) return a;
  bool fa = traits[a].is_float, fb = traits[b].is_float;
  if (fa != fb) return fa ? a : b;
  if (fa) {
    if ((a == MT_FLOAT16 && b == MT_BFLOAT16) || (a == MT_BFLOAT16 && b == MT_FLOAT16)) return MT_FLOAT32;
    return traits[a].size >= traits[b].size ? a : b;
  }
  if (a == MT_UINT8 || b == MT_UINT8) { /* uint8 needs a wider signed type beside int8 */
    mt_dtype other = a == MT_UINT8 ? b : a;
    return other == MT_INT8 ? MT_INT16 : other;
  }
  return traits[a].size >= traits[b].size ? a : b;
}

/* PyTorch's canCast: no float into an integer tensor, nothing but bool into a bool tensor. */
bool mt_can_cast(mt_dtype from, mt_dtype to) {
  if (mt_dtype_is_float(from) && !mt_dtype_is_float(to)) return false;
  return from == MT_BOOL || to != MT_BOOL;
}

/* PyTorch's checked conversion of a host number to a dtype: out of range is an error (an
 * integer may wrap into an unsigned dtype from as low as -max); bool takes anything. */
mt_status mt_check_scalar_fits(mt_scalar v, mt_dtype dt) {
  if (dt == MT_BOOL) return MT_OK;
  double lo, hi;
  switch (dt) {
  case MT_FLOAT32: lo = -3.4028234663852886e38, hi = 3.4028234663852886e38; break;
  case MT_FLOAT64: return MT_OK;
  case MT_FLOAT16: lo = -65504.0, hi = 65504.0; break;
  case MT_BFLOAT16: lo = -3.3895313892515355e38, hi = 3.3895313892515355e38; break;
  case MT_INT32: lo = INT32_MIN, hi = INT32_MAX; break;
  case MT_INT16: lo = INT16_MIN, hi = INT16_MAX; break;
  case MT_INT8: lo = INT8_MIN, hi = INT8_MAX; break;
  case MT_UINT8: lo = v.kind == MT_SCALAR_FLOAT ? 0 : -255.0, hi = 255.0; break;
  default: lo = -9223372036854775808.0, hi = 9223372036854775807.0; break; /* int64 */
  }
  bool ok;
  if (v.kind != MT_SCALAR_FLOAT) ok = dt == MT_INT64 || ((double)v.i >= lo && (double)v.i <= hi);
  else if (mt_dtype_is_float(dt)) ok = isinf(v.f) || isnan(v.f) || (v.f >= lo && v.f <= hi);
  else ok = v.f >= lo && (dt == MT_INT64 ? v.f < hi : v.f <= hi); /* NaN fails both */
  if (ok) return MT_OK;
  if (v.kind == MT_SCALAR_FLOAT)
    return mt_fail(MT_EARG, "value %.17g cannot be converted to type %s without overflow", v.f, mt_dtype_name(dt));
  return mt_fail(MT_EARG, "value %lld cannot be converted to type %s without overflow", (long long)v.i,
                 mt_dtype_name(dt));
}
