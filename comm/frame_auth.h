// Frame authentication with a per-run secret (docs/design.md section 9): every frame a socket with
// a RunKey sends is sealed with a trailer of 56 bytes, and every frame it receives is checked, in
// constant time, before anything decodes it. The trailer: the sending socket's id (16 random bytes
// drawn when the socket gets its key), that socket's frame counter (u64, little-endian, 1 for its
// first frame) and a 32-byte HMAC-SHA256 tag (libsodium's crypto_auth_hmacsha256) of the frame and
// those 24 bytes. A frame without the right tag (a stranger, a peer with another key, a replay from a
// run with another key, an altered frame) is refused and counted, never decoded; so is a frame whose
// counter this receiving socket already accepted from the same sender, or one older than its window
// (ReplayGuard: a frame of this run recorded and sent again).
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
#include <bitset>
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

// Each sender's frames accepted at most once: the anti-replay window of IPsec (RFC 4303). Per sender,
// the highest counter accepted and which of the kReplayWindow counters below it were: accept() is
// true for a counter above the highest, or within the window and not seen yet, and then remembers
// it; false for a counter seen, older than the window, or 0 (counters start at 1). Gaps are allowed
// (frames lost on the way, a PUSH socket dealing its frames over several receivers), and so is a
// little disorder: when a connection drops and the sender reconnects, the receiver may still read
// the old connection's queued frames (at most its receive high-water mark) after newer ones from the
// new connection. One entry per sender that ever passed the tag check (kReplayWindow / 8 bytes and
// a counter), so only holders of the key can make it grow.
constexpr uint64_t kReplayWindow = 4096;

class ReplayGuard {
 public:
  bool accept(const FrameOrigin& origin);
  size_t senders() const { return senders_.size(); }

 private:
  struct Seen {
    uint64_t highest = 0;
    std::bitset<kReplayWindow> below;  // bit i: counter highest - i accepted (bit 0: highest itself)
  };
  std::map<SenderId, Seen> senders_;
};

// Writes `key` to `path` (created or replaced, mode 0600, durably). UserError naming the path.
void write_key_file(const std::string& path, const RunKey& key);
// Reads a key file; a file that others may read or write is refused (UserError naming the path and
// the mode), as ssh refuses such keys.
RunKey read_key_file(const std::string& path);

}  // namespace rlkv
