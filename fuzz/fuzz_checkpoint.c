/* libFuzzer harness: the checkpoint loader (zip + pickle + storages) on arbitrary bytes. */
#include "moontorch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mt_value *v = NULL;
  if (mt_deserialize(&v, data, size) == MT_OK) mt_value_free(v);
  return 0;
}
