/* fuzz_common.h — shared by the libFuzzer harnesses (fuzz/fuzz_*.c) and by the regression test
 * that replays kept inputs through the same code (tests/c/test_fuzz_regressions.c).
 *
 * Each harness defines `static mt_status fuzz_<name>(const uint8_t *, size_t)`, which feeds the
 * bytes to its reader and returns the reader's status. FUZZ_ENTRY(fn) then defines libFuzzer's
 * entry point around it, unless MT_FUZZ_NO_MAIN is defined (the regression test includes all
 * four harnesses and calls the fuzz_* functions itself). */
#ifndef MT_FUZZ_COMMON_H
#define MT_FUZZ_COMMON_H

#include "moontorch.h"

#include <stddef.h>
#include <stdint.h>

/* A failure must say why: an empty mt_last_error() after a failed load is a finding too. */
static inline void fuzz_require_message(mt_status st) {
  if (st != MT_OK) {
    const char *m = mt_last_error();
    if (!m || !*m) __builtin_trap();
  }
}

#ifdef MT_FUZZ_NO_MAIN
#define FUZZ_ENTRY(fn)
#else
#define FUZZ_ENTRY(fn)                                                                           \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {                               \
    fuzz_require_message(fn(data, size));                                                      \
    return 0;                                                                                  \
  }
#endif

#endif
