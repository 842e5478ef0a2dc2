#include "comm/frame_auth.h"

#include <sodium.h>
#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/durable_file.h"
#include "core/error.h"

namespace rlkv {
namespace {

void init_sodium() {
  static const bool ok = sodium_init() >= 0;
  RLKV_CHECK(ok, "frame authentication: libsodium failed to initialise");
}

}  // namespace

RunKey RunKey::generate() {
  init_sodium();
  RunKey k;
  randombytes_buf(k.key_.data(), k.key_.size());
  return k;
}

RunKey RunKey::from_hex(std::string_view hex, const std::string& what) {
  init_sodium();
  while (!hex.empty() && std::isspace(static_cast<unsigned char>(hex.front()))) hex.remove_prefix(1);
  while (!hex.empty() && std::isspace(static_cast<unsigned char>(hex.back()))) hex.remove_suffix(1);
  RunKey k;
  size_t bin_len = 0;
  const char* end = nullptr;
  const bool ok = hex.size() == 2 * kRunKeyBytes &&
                  sodium_hex2bin(k.key_.data(), k.key_.size(), hex.data(), hex.size(), nullptr, &bin_len, &end) == 0 &&
                  bin_len == kRunKeyBytes && end == hex.data() + hex.size();
  RLKV_CHECK(ok, what, ": expected a run key of ", 2 * kRunKeyBytes, " hex digits");
  return k;
}

std::string RunKey::hex() const {
  char buf[2 * kRunKeyBytes + 1];
  sodium_bin2hex(buf, sizeof buf, key_.data(), key_.size());
  return std::string(buf, 2 * kRunKeyBytes);
}

FrameOrigin FrameOrigin::fresh() {
  init_sodium();
  FrameOrigin o;
  randombytes_buf(o.sender.data(), o.sender.size());
  return o;
}

void RunKey::seal(std::string_view frame, const FrameOrigin& origin, unsigned char* out) const {
  std::memcpy(out, origin.sender.data(), kSenderIdBytes);
  for (size_t i = 0; i < kFrameCounterBytes; ++i)
    out[kSenderIdBytes + i] = static_cast<unsigned char>(origin.counter >> (8 * i));
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key_.data(), key_.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(frame.data()), frame.size());
  crypto_auth_hmacsha256_update(&st, out, kSenderIdBytes + kFrameCounterBytes);
  crypto_auth_hmacsha256_final(&st, out + kSenderIdBytes + kFrameCounterBytes);
  sodium_memzero(&st, sizeof st);
}

std::string RunKey::sealed(std::string_view frame, const FrameOrigin& origin) const {
  std::string out(frame);
  out.resize(frame.size() + kFrameTrailerBytes);
  seal(frame, origin, reinterpret_cast<unsigned char*>(&out[frame.size()]));
  return out;
}

bool RunKey::open(std::string_view sealed_frame, std::string_view* frame, FrameOrigin* origin) const {
  if (sealed_frame.size() < kFrameTrailerBytes) return false;
  const size_t signed_bytes = sealed_frame.size() - kFrameTagBytes;  // the frame, sender and counter
  const auto* data = reinterpret_cast<const unsigned char*>(sealed_frame.data());
  if (crypto_auth_hmacsha256_verify(data + signed_bytes, data, signed_bytes, key_.data()) != 0) return false;
  const size_t n = sealed_frame.size() - kFrameTrailerBytes;
  if (origin) {
    std::memcpy(origin->sender.data(), data + n, kSenderIdBytes);
    origin->counter = 0;
    for (size_t i = 0; i < kFrameCounterBytes; ++i)
      origin->counter |= uint64_t(data[n + kSenderIdBytes + i]) << (8 * i);
  }
  if (frame) *frame = sealed_frame.substr(0, n);
  return true;
}

bool ReplayGuard::accept(const FrameOrigin& origin) {
  if (origin.counter == 0) return false;  // never sealed by a socket
  Seen& s = senders_[origin.sender];
  if (origin.counter > s.highest) {
    const uint64_t shift = origin.counter - s.highest;
    if (shift >= kReplayWindow)
      s.below.reset();
    else
      s.below <<= size_t(shift);
    s.below.set(0);
    s.highest = origin.counter;
    return true;
  }
  const uint64_t age = s.highest - origin.counter;
  if (age >= kReplayWindow || s.below.test(size_t(age))) return false;
  s.below.set(size_t(age));
  return true;
}

void write_key_file(const std::string& path, const RunKey& key) {
  DurableFileWriter w(path);
  // Owner-only before the secret is written, so no reader ever sees it under a wider mode.
  RLKV_CHECK(::chmod(w.temp_path().c_str(), S_IRUSR | S_IWUSR) == 0, path, ": cannot set mode 0600 (",
             std::strerror(errno), ")");
  w.append(key.hex() + "\n");
  w.commit();
}

RunKey read_key_file(const std::string& path) {
  struct stat st {};
  RLKV_CHECK(::stat(path.c_str(), &st) == 0, path, ": cannot read the run key (", std::strerror(errno), ")");
  char mode[8];
  std::snprintf(mode, sizeof mode, "%03o", unsigned(st.st_mode & 0777));
  RLKV_CHECK((st.st_mode & (S_IRWXG | S_IRWXO)) == 0, path, ": the run key's mode is ", mode,
             ", others may read it; chmod 600 ", path);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  RLKV_CHECK(in.good() || in.eof(), path, ": cannot read the run key");
  return RunKey::from_hex(text.str(), path);
}

}  // namespace rlkv
