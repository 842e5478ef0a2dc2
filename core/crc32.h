// CRC-32 (IEEE 802.3, reflected, init and final xor 0xFFFFFFFF): the checksum of zlib, PNG and gzip,
// so Python's zlib.crc32 checks what we write (wire messages, checkpoint headers).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rlkv {

// crc32_update(0, ...) starts a new CRC; feed the previous result to continue over more bytes.
uint32_t crc32_update(uint32_t crc, const void* data, size_t size);
inline uint32_t crc32(const void* data, size_t size) { return crc32_update(0, data, size); }

}  // namespace rlkv
