// Fixed-width little-endian integers, the one encoding of every binary header and frame rlkv writes
// or reads (checkpoint header, wire frames, safetensors' header length), whatever the host's byte
// order.
//
//  - encode_fixedN(dst, v): writes the N / 8 bytes of v at dst, least significant first.
//  - put_fixedN(dst, v):    appends them to *dst.
//  - decode_fixedN(src):    reads the N / 8 bytes at src back (src needs no alignment).
#pragma once

#include <cstdint>
#include <string>

namespace rlkv {

namespace coding_detail {

template <typename T>
inline void encode_le(void* dst, T v) {
  auto* p = static_cast<unsigned char*>(dst);
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

template <typename T>
inline T decode_le(const void* src) {
  const auto* p = static_cast<const unsigned char*>(src);
  T v = 0;
  for (size_t i = sizeof(T); i-- > 0;) v = static_cast<T>((v << 8) | p[i]);
  return v;
}

}  // namespace coding_detail

inline void encode_fixed16(void* dst, uint16_t v) { coding_detail::encode_le(dst, v); }
inline void encode_fixed32(void* dst, uint32_t v) { coding_detail::encode_le(dst, v); }
inline void encode_fixed64(void* dst, uint64_t v) { coding_detail::encode_le(dst, v); }

inline void put_fixed32(std::string* dst, uint32_t v) {
  char buf[4];
  encode_fixed32(buf, v);
  dst->append(buf, sizeof buf);
}
inline void put_fixed64(std::string* dst, uint64_t v) {
  char buf[8];
  encode_fixed64(buf, v);
  dst->append(buf, sizeof buf);
}

inline uint16_t decode_fixed16(const void* src) { return coding_detail::decode_le<uint16_t>(src); }
inline uint32_t decode_fixed32(const void* src) { return coding_detail::decode_le<uint32_t>(src); }
inline uint64_t decode_fixed64(const void* src) { return coding_detail::decode_le<uint64_t>(src); }

}  // namespace rlkv
