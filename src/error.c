/*
 * error.c — the last error message, kept per thread so that a failing call on one thread
 * cannot garble another's message, and the status names.
 */
#include "mt_internal.h"

#include <stdio.h>

static _Thread_local char last_error[512];

int mt_index_base = 0;

MT_API const char *mt_last_error(void) { return last_error; }

MT_API void mt_set_index_base(int base) { mt_index_base = base; }

mt_status mt_fail(mt_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return code;
}

MT_API const char *mt_status_name(mt_status s) {
  static const char *const names[] = {"ok",    "bad argument", "shape mismatch", "bad dtype",
                                      "index out of range", "out of memory", "I/O error",
                                      "bad format", "bad state"};
  return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown status";
}

char *mt_shape_str(char *buf, size_t n, int ndim, const int64_t *sizes) {
  size_t used = 0;
  int w = snprintf(buf, n, "[");
  if (w > 0) used = (size_t)w;
  for (int d = 0; d < ndim && used < n; d++) {
    w = snprintf(buf + used, n - used, d ? ", %lld" : "%lld", (long long)sizes[d]);
    if (w > 0) used += (size_t)w;
  }
  if (used < n) snprintf(buf + used, n - used, "]");
  return buf;
}
