/* libFuzzer harness: the pickle reader (src/pickle_read.c) on arbitrary bytes. Storages are
 * handed out zeroed at the requested size, capped so that a pickle asking for terabytes is
 * refused here rather than exhausting the fuzzer's memory (the checkpoint layer checks real
 * sizes against the zip records). */
#include "mt_internal.h"

#include "fuzz_common.h"

#define FUZZ_MAX_STORAGE_BYTES (64u << 20)

static mt_status pickle_storage(void *ctx, const char *key, mt_dtype dt, int64_t numel, mt_storage **out) {
  (void)ctx;
  (void)key;
  size_t esz = mt_dtype_size(dt);
  if (numel < 0 || (uint64_t)numel > FUZZ_MAX_STORAGE_BYTES / esz)
    return mt_fail(MT_EFORMAT, "storage too large for the fuzzer");
  return mt_storage_new(out, (size_t)numel * esz);
}

static mt_status fuzz_pickle(const uint8_t *data, size_t size) {
  mt_value *v = NULL;
  mt_status st = mt_pickle_read(data, size, pickle_storage, NULL, &v);
  if (st == MT_OK) mt_value_free(v);
  return st;
}

FUZZ_ENTRY(fuzz_pickle)
