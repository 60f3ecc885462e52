/* libFuzzer harness: the safetensors reader, which takes a path: the input goes to a memfd
 * (memory-backed, no disk) read through /proc/self/fd, loaded once read and once mapped. */
#define _GNU_SOURCE
#include "moontorch.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (fd < 0) {
    fd = memfd_create("fuzz.safetensors", 0);
    if (fd < 0) return 0;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
  for (int m = 0; m < 2; m++) {
    mt_load_opts opts = {.mmap = m == 1};
    mt_value *t = NULL, *meta = NULL;
    if (mt_safetensors_load(&t, &meta, path, &opts) == MT_OK) {
      mt_value_free(t);
      mt_value_free(meta);
    }
  }
  return 0;
}
