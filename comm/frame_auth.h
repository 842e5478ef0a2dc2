// Frame authentication with a per-run secret (docs/design.md section 9): every frame a socket with
// a RunKey sends is sealed with a trailer of 56 bytes, and every frame it receives is checked, in
// constant time, before anything decodes it. The trailer: the sending socket's id (16 random bytes
// drawn when the socket gets its key), that socket's frame counter (u64, little-endian, 1 for its
// first frame) and a 32-byte HMAC-SHA256 tag (libsodium's crypto_auth_hmacsha256) of the frame and
// those 24 bytes. A frame without the right tag (a stranger, a peer with another key, a replay from a
// run with another key, an altered frame) is refused and counted, never decoded; so is a frame whose
// counter is not above the last one this receiving socket accepted from the same sender (ReplayGuard:
// a frame of this run recorded and sent again, or sent out of order).
//
// Why an HMAC rather than ZeroMQ's CURVE: it works the same on every transport (tcp://, ipc://,
// inproc://) and through any relay, a peer needs nothing but the secret (the Python client of
// docs/messages.md uses the standard library's hmac module), and the check sits at the socket, in
// front of the decoder, where a refusal can be counted per peer. It authenticates; it does not
// encrypt: the policy and the rollouts travel in clear, as they do today on a trusted network.
//
// Key files hold the secret as 64 hex digits and one newline, mode 0600.
// Thread safety: a RunKey is immutable and may be shared by every socket of a run; a ReplayGuard
// belongs to one receiving socket (one thread at a time).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace rlkv {

constexpr size_t kRunKeyBytes = 32;
constexpr size_t kFrameTagBytes = 32;
constexpr size_t kSenderIdBytes = 16;
constexpr size_t kFrameCounterBytes = 8;
constexpr size_t kFrameTrailerBytes = kSenderIdBytes + kFrameCounterBytes + kFrameTagBytes;  // 56

using SenderId = std::array<unsigned char, kSenderIdBytes>;

// Where a sealed frame comes from: the sending socket's id and its count of frames (1, 2, ...).
struct FrameOrigin {
  SenderId sender{};
  uint64_t counter = 0;
  static FrameOrigin fresh();  // a new sender id from the operating system's random source, counter 0
};

class RunKey {
 public:
  static RunKey generate();  // from the operating system's random source
  // 64 hex digits (surrounding whitespace ignored); UserError naming `what` otherwise.
  static RunKey from_hex(std::string_view hex, const std::string& what);
  std::string hex() const;

  // The frame's trailer from `origin` (kFrameTrailerBytes bytes to `out`: sender, counter, tag), and
  // the frame with its trailer appended.
  void seal(std::string_view frame, const FrameOrigin& origin, unsigned char* out) const;
  std::string sealed(std::string_view frame, const FrameOrigin& origin) const;
  // True when `sealed_frame` ends in a trailer whose tag is right for what precedes the tag; `frame`
  // then views the frame without its trailer, and `origin` holds the trailer's sender and counter.
  bool open(std::string_view sealed_frame, std::string_view* frame, FrameOrigin* origin) const;

 private:
  std::array<unsigned char, kRunKeyBytes> key_{};
};

// Each sender's frames accepted at most once and in order: accept() is true when the counter is above
// every counter accepted so far from that sender (counters start at 1), and then remembers it. Gaps
// are allowed (frames lost on the way, a PUSH socket dealing its frames to several receivers). One
// entry per sender that ever passed the tag check, so only holders of the key can make it grow.
class ReplayGuard {
 public:
  bool accept(const FrameOrigin& origin);
  size_t senders() const { return last_.size(); }

 private:
  std::map<SenderId, uint64_t> last_;
};

// Writes `key` to `path` (created or replaced, mode 0600, durably). UserError naming the path.
void write_key_file(const std::string& path, const RunKey& key);
// Reads a key file; a file that others may read or write is refused (UserError naming the path and
// the mode), as ssh refuses such keys.
RunKey read_key_file(const std::string& path);

}  // namespace rlkv
