// libFuzzer target for the wire-message decoder (comm/messages.h), which reads frames from sockets
// that any peer can write to. A random mutation almost never keeps the frame's length field and
// CRC right, so the fuzzer would only ever test the door; the first input byte therefore says
// whether to repair them (bit 0: length, bit 1: CRC) before decoding, which lets it reach the
// MessagePack and field checks while keeping the frame checks fuzzed too. Only MessageError (a
// UserError) is an accepted outcome; any other exception escapes and aborts, so the fuzzer records
// it as a crash, as it does for ASan/UBSan reports. Accepted messages must re-encode and decode to
// the same value. Bit 2 of the first byte sends the frame through frame authentication first (as a
// socket with a run key does, comm/frame_auth.h): accepted only with the right tag over the rest,
// never a forgery, and the origin it reports is the one the trailer claims; bit 3 then repairs the
// tag (keeping the sender and counter the input claims) so that decoding goes on.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <variant>

#include "comm/frame_auth.h"
#include "comm/messages.h"
#include "core/error.h"

namespace {

void put_u32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

template <typename T>
void check_round_trip(const T& m, const std::string& again) {
  rlkv::Message back = rlkv::decode_message(again);
  if (!std::holds_alternative<T>(back) || !(std::get<T>(back) == m)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::string frame(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t overhead = rlkv::kMessageHeaderBytes + rlkv::kMessageTrailerBytes;
  if (frame.size() >= overhead) {
    const size_t n = frame.size() - overhead;
    if (mode & 1) put_u32(frame, 8, static_cast<uint32_t>(n));
    if (mode & 2)
      put_u32(frame, rlkv::kMessageHeaderBytes + n, rlkv::crc32(frame.data(), rlkv::kMessageHeaderBytes + n));
  }
  if (mode & 4) {
    static const rlkv::RunKey key = rlkv::RunKey::from_hex(std::string(2 * rlkv::kRunKeyBytes, '7'), "fuzz key");
    // The origin an input claims: its trailer's sender and counter as they stand.
    auto claimed = [](const std::string& f) {
      rlkv::FrameOrigin o;
      const size_t at = f.size() - rlkv::kFrameTrailerBytes;
      std::memcpy(o.sender.data(), f.data() + at, rlkv::kSenderIdBytes);
      for (size_t i = 0; i < rlkv::kFrameCounterBytes; ++i)
        o.counter |= uint64_t(static_cast<unsigned char>(f[at + rlkv::kSenderIdBytes + i])) << (8 * i);
      return o;
    };
    const bool long_enough = frame.size() >= rlkv::kFrameTrailerBytes;
    if ((mode & 8) && long_enough)
      frame = key.sealed(std::string_view(frame).substr(0, frame.size() - rlkv::kFrameTrailerBytes), claimed(frame));
    std::string_view body;
    rlkv::FrameOrigin origin;
    const bool accepted = key.open(frame, &body, &origin);
    const bool genuine =
        long_enough &&
        key.sealed(std::string_view(frame).substr(0, frame.size() - rlkv::kFrameTrailerBytes), claimed(frame)) == frame;
    if (accepted != genuine) __builtin_trap();
    if (accepted && (origin.counter != claimed(frame).counter || origin.sender != claimed(frame).sender))
      __builtin_trap();
    if (!accepted) return 0;  // refused before any decoding
    frame = std::string(body);
  }
  try {
    rlkv::Message m = rlkv::decode_message(frame);
    if (auto* p = std::get_if<rlkv::PolicyMsg>(&m)) {
      check_round_trip(*p, rlkv::encode(*p));
      rlkv::validate(*p, "run", 2, 2);
    } else if (auto* g = std::get_if<rlkv::RolloutGroupMsg>(&m)) {
      check_round_trip(*g, rlkv::encode(*g));
      rlkv::validate(*g, "", 2, 0);
    } else if (auto* s = std::get_if<rlkv::ScoredGroupMsg>(&m)) {
      check_round_trip(*s, rlkv::encode(*s, !s->text_omitted));
    } else if (auto* h = std::get_if<rlkv::HelloMsg>(&m)) {
      check_round_trip(*h, rlkv::encode(*h));
      rlkv::validate(*h, "run");
    }
  } catch (const rlkv::UserError&) {
  }
  return 0;
}
