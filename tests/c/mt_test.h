/* mt_test.h — a tiny harness for the C core's CTest programs: CHECK records a failure and goes
 * on; OK(expr) checks that a core call succeeded and prints mt_last_error() if not; main
 * returns mt_test_finish(), non-zero when anything failed. */
#ifndef MT_TEST_H
#define MT_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "moontorch.h"

static int mt_test_failures = 0;
static int mt_test_checks = 0;

#define CHECK(cond)                                                                             \
  do {                                                                                          \
    mt_test_checks++;                                                                           \
    if (!(cond)) {                                                                              \
      mt_test_failures++;                                                                       \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                  \
    }                                                                                           \
  } while (0)

#define OK(expr)                                                                                \
  do {                                                                                          \
    mt_test_checks++;                                                                           \
    mt_status st_ = (expr);                                                                     \
    if (st_ != MT_OK) {                                                                         \
      mt_test_failures++;                                                                       \
      fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr, mt_status_name(st_),  \
              mt_last_error());                                                                 \
    }                                                                                           \
  } while (0)

/* Expects a failure with the given status whose message contains `needle`. */
#define FAILS(expr, status, needle)                                                             \
  do {                                                                                          \
    mt_test_checks++;                                                                           \
    mt_status st_ = (expr);                                                                     \
    if (st_ != (status) || !strstr(mt_last_error(), (needle))) {                                \
      mt_test_failures++;                                                                       \
      fprintf(stderr, "%s:%d: %s -> %s (\"%s\"), expected %s with \"%s\"\n", __FILE__, __LINE__, \
              #expr, mt_status_name(st_), mt_last_error(), mt_status_name(status), needle);     \
    }                                                                                           \
  } while (0)

#define CHECK_NEAR(a, b, tol) CHECK(fabs((double)(a) - (double)(b)) <= (tol))

static inline int mt_test_finish(const char *name) {
  printf("%s: %d checks, %d failed\n", name, mt_test_checks, mt_test_failures);
  return mt_test_failures ? 1 : 0;
}

#endif
