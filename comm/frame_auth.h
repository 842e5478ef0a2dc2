// Frame authentication with a per-run secret (docs/design.md section 9): every frame a socket with
// a RunKey sends carries a 32-byte HMAC-SHA256 tag of the frame (libsodium's crypto_auth_hmacsha256)
// appended after it, and every frame it receives is checked, in constant time, before anything
// decodes it: a frame without the right tag (a stranger, a peer with another key, a replay from a
// run with another key) is refused and counted, never decoded.
//
// Why an HMAC rather than ZeroMQ's CURVE: it works the same on every transport (tcp://, ipc://,
// inproc://) and through any relay, a peer needs nothing but the secret (the Python client of
// docs/messages.md uses the standard library's hmac module), and the check sits at the socket, in
// front of the decoder, where a refusal can be counted per peer. It authenticates; it does not
// encrypt: the policy and the rollouts travel in clear, as they do today on a trusted network.
//
// Key files hold the secret as 64 hex digits and one newline, mode 0600.
// Thread safety: a RunKey is immutable and may be shared by every socket of a run.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace rlkv {

constexpr size_t kRunKeyBytes = 32;
constexpr size_t kFrameTagBytes = 32;

class RunKey {
 public:
  static RunKey generate();  // from the operating system's random source
  // 64 hex digits (surrounding whitespace ignored); UserError naming `what` otherwise.
  static RunKey from_hex(std::string_view hex, const std::string& what);
  std::string hex() const;

  // The frame's tag (kFrameTagBytes bytes to `out`), and the frame with its tag appended.
  void tag(std::string_view frame, unsigned char* out) const;
  std::string sign(std::string_view frame) const;
  // True when `signed_frame` ends in the right tag of what precedes it; `frame` then views that part.
  bool verify(std::string_view signed_frame, std::string_view* frame) const;

 private:
  std::array<unsigned char, kRunKeyBytes> key_{};
};

// Writes `key` to `path` (created or replaced, mode 0600, durably). UserError naming the path.
void write_key_file(const std::string& path, const RunKey& key);
// Reads a key file; a file that others may read or write is refused (UserError naming the path and
// the mode), as ssh refuses such keys.
RunKey read_key_file(const std::string& path);

}  // namespace rlkv
