/*
 * crc32.c — the zip format's CRC-32 (reflected polynomial 0xEDB88320), fast.
 *
 * Checkpoints are checksummed whole on every save and load, so the CRC runs over hundreds of
 * megabytes. zlib 1.2's table-driven crc32 manages ~2-3.5 GB/s here and was a third of a load;
 * libdeflate (Debian's libdeflate-dev) folds with PCLMULQDQ where the CPU has it and gives
 * zlib's value bit for bit (tests/c/test_zipfile.c compares the two over many lengths, offsets
 * and start values). One function, so the zip code names one checksum.
 */
#include "mt_internal.h"

#include <libdeflate.h>

uint32_t mt_crc32(uint32_t crc, const void *buf, size_t len) { return libdeflate_crc32(crc, buf, len); }
