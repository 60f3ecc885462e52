/* libFuzzer harness: the checkpoint loader (zip + pickle + storages) on arbitrary bytes. */
#include "fuzz_common.h"

static mt_status fuzz_checkpoint(const uint8_t *data, size_t size) {
  mt_value *v = NULL;
  mt_status st = mt_deserialize(&v, data, size);
  if (st == MT_OK) mt_value_free(v);
  return st;
}

FUZZ_ENTRY(fuzz_checkpoint)
