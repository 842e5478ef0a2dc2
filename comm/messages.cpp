// Wire messages: frame, MessagePack payload, and the checks both directions share (see messages.h).
//
// Shape of the code: one set of semantic checks per message type (check_*), run on the struct by the
// encoder before packing and by the decoder after reading; the decoder's reading layer (MapReader)
// only enforces MessagePack types and per-field caps. So "what is a valid message" lives in one place.
#define MSGPACK_NO_BOOST  // we use none of msgpack-cxx's Boost adaptors
#include "comm/messages.h"

#include <msgpack.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>

#include "core/coding.h"
#include "core/finish_reason.h"
#include "core/utf8.h"

namespace rlkv {
namespace {

constexpr char kMagic[4] = {'R', 'L', 'K', 'V'};
// msgpack nesting we ever produce: payload map -> rollouts array -> rollout map. Unknown fields may
// nest a little deeper; anything deeper is garbage.
constexpr size_t kMaxDepth = 8;
constexpr size_t kMaxMapPairs = 256;

[[noreturn]] void fail(MessageErrorKind kind, const std::string& msg) { throw MessageError(kind, msg); }

#define MSG_CHECK(cond, where, ...)                                                   \
  do {                                                                                \
    if (!(cond)) fail(MessageErrorKind::kPayload, str_cat(where, ": ", __VA_ARGS__)); \
  } while (0)

// ---- UTF-8 ----------------------------------------------------------------------------------------

// Each byte that does not start a valid sequence becomes U+FFFD.
std::string sanitize_utf8(const std::string& s) {
  if (is_valid_utf8(s)) return s;
  std::string out;
  out.reserve(s.size() + 16);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    size_t l = utf8_sequence_length(p + i, s.size() - i);
    if (l == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s, i, l);
      i += l;
    }
  }
  return out;
}

// ---- semantic checks (encoder and decoder) ---------------------------------------------------------

void check_string(const std::string& s, const std::string& where, const char* field, size_t max_bytes,
                  bool allow_empty) {
  MSG_CHECK(allow_empty || !s.empty(), where, "field '", field, "' must not be empty");
  MSG_CHECK(s.size() <= max_bytes, where, "field '", field, "' has ", s.size(), " bytes, more than the cap of ",
            max_bytes);
  MSG_CHECK(is_valid_utf8(s), where, "field '", field, "' is not valid UTF-8");
}

void check_shape(int64_t layers, int64_t heads, const std::string& where) {
  MSG_CHECK(layers >= 1 && layers <= kMaxLayers, where, "num_layers = ", layers, ", expected 1..", kMaxLayers);
  MSG_CHECK(heads >= 1 && heads <= kMaxKvHeads, where, "num_kv_heads = ", heads, ", expected 1..", kMaxKvHeads);
  MSG_CHECK(layers * heads <= kMaxHeads, where, "num_layers * num_kv_heads = ", layers * heads, " exceeds ", kMaxHeads);
}

void check_policy(const PolicyMsg& m) {
  const std::string w = "policy message";
  check_string(m.run_id, w, "run_id", kMaxIdBytes, false);
  MSG_CHECK(m.policy_version >= 0, w, "policy_version = ", m.policy_version, " is negative");
  MSG_CHECK(m.step >= 0, w, "step = ", m.step, " is negative");
  MSG_CHECK(m.position_base >= 0 && m.position_base < kPositionSpace, w, "position_base = ", m.position_base,
            " is outside [0, 2^40)");
  check_shape(m.num_layers, m.num_kv_heads, w);
  const size_t n = static_cast<size_t>(m.num_layers * m.num_kv_heads);
  MSG_CHECK(m.theta.size() == n, w, "theta has ", m.theta.size(), " values, expected num_layers * num_kv_heads = ", n);
  for (size_t i = 0; i < n; ++i) MSG_CHECK(std::isfinite(m.theta[i]), w, "theta[", i, "] is not finite");
}

// What a group's tokens and text must look like.
enum class TextRule {
  kCarried,  // they travel: tokens.size() == length, ids >= 0, text valid UTF-8 under the cap
  kOmitted,  // scored message with text_omitted: both empty
  kDropped,  // encoder about to drop them: not looked at
};

// `scored`: every rollout needs a score.
void check_group(const RolloutGroupMsg& m, bool scored, TextRule text) {
  const std::string w = scored ? "scored_group message" : "rollout_group message";
  check_string(m.run_id, w, "run_id", kMaxIdBytes, false);
  check_string(m.actor_id, w, "actor_id", kMaxIdBytes, false);
  check_string(m.prompt_id, w, "prompt_id", kMaxIdBytes, true);
  check_string(m.answer, w, "answer", kMaxAnswerBytes, true);
  MSG_CHECK(m.prompt_index >= 0, w, "prompt_index = ", m.prompt_index, " is negative");
  MSG_CHECK(m.position >= 0, w, "position = ", m.position, " is negative");
  MSG_CHECK(m.policy_version >= 0, w, "policy_version = ", m.policy_version, " is negative");
  MSG_CHECK(std::isfinite(m.ref_len), w, "ref_len is not finite");
  check_shape(m.num_layers, m.num_kv_heads, w);
  const size_t n = static_cast<size_t>(m.num_layers * m.num_kv_heads);
  MSG_CHECK(m.behaviour_keep_prob.size() == n, w, "behaviour_keep_prob has ", m.behaviour_keep_prob.size(),
            " values, expected num_layers * num_kv_heads = ", n);
  for (size_t i = 0; i < n; ++i) {
    const float p = m.behaviour_keep_prob[i];
    MSG_CHECK(std::isfinite(p) && p >= 0.0f && p <= 1.0f, w, "behaviour_keep_prob[", i, "] = ", p,
              " is not a probability in [0, 1]");
  }
  MSG_CHECK(!m.rollouts.empty(), w, "has no rollouts");
  MSG_CHECK(static_cast<int64_t>(m.rollouts.size()) <= kMaxRollouts, w, "has ", m.rollouts.size(),
            " rollouts, more than the cap of ", kMaxRollouts);
  for (size_t r = 0; r < m.rollouts.size(); ++r) {
    const Rollout& ro = m.rollouts[r];
    const std::string rw = str_cat(w, " rollouts[", r, "]");
    MSG_CHECK(ro.mask.size() == n, rw, "mask has ", ro.mask.size(),
              " entries, expected num_layers * num_kv_heads = ", n);
    for (size_t i = 0; i < n; ++i)
      MSG_CHECK(ro.mask[i] <= 1, rw, "mask[", i, "] = ", int(ro.mask[i]), ", expected 0 or 1");
    MSG_CHECK(ro.length >= 0 && ro.length <= kMaxTokens, rw, "length = ", ro.length, ", expected 0..", kMaxTokens);
    MSG_CHECK(ro.prompt_tokens >= 0, rw, "prompt_tokens = ", ro.prompt_tokens, " is negative");
    MSG_CHECK(is_valid_finish_reason(ro.finish_reason), rw, "finish_reason '", ro.finish_reason.substr(0, 32),
              "', expected eos, stop, length or repetition");
    if (text == TextRule::kOmitted) {
      MSG_CHECK(ro.tokens.empty() && ro.text.empty(), rw, "carries tokens or text although text_omitted is set");
    } else if (text == TextRule::kCarried) {
      check_string(ro.text, rw, "text", kMaxTextBytes, true);
      MSG_CHECK(static_cast<int64_t>(ro.tokens.size()) == ro.length, rw, "has ", ro.tokens.size(),
                " tokens but length = ", ro.length);
      for (size_t i = 0; i < ro.tokens.size(); ++i) MSG_CHECK(ro.tokens[i] >= 0, rw, "tokens[", i, "] is negative");
    }
    if (scored) {
      MSG_CHECK(ro.score.has_value(), rw, "has no score");
      const RolloutScore& s = *ro.score;
      MSG_CHECK(s.correct == 0 || s.correct == 1, rw, "correct = ", s.correct, ", expected 0 or 1");
      MSG_CHECK(std::isfinite(s.excess) && s.excess >= 0 && s.excess <= 1, rw, "excess = ", s.excess,
                ", expected a number in [0, 1]");
      MSG_CHECK(std::isfinite(s.reward) && std::abs(s.reward) <= kMaxReward, rw, "reward = ", s.reward,
                ", expected a number in [-", kMaxReward, ", ", kMaxReward, "]");
    }
  }
}

void check_hello(const HelloMsg& m) {
  const std::string w = "hello message";
  check_string(m.run_id, w, "run_id", kMaxIdBytes, false);
  check_string(m.actor_id, w, "actor_id", kMaxIdBytes, false);
  check_string(m.host, w, "host", kMaxIdBytes, true);
  MSG_CHECK(m.pid >= 0, w, "pid = ", m.pid, " is negative");
  MSG_CHECK(m.in_flight >= 0 && m.in_flight <= (int64_t(1) << 30), w, "in_flight = ", m.in_flight, " out of range");
}

// ---- encoding ---------------------------------------------------------------------------------------

// msgpack::packer's output: appends to the frame string, which starts with room for the header.
struct FrameBuffer {
  std::string bytes;
  void write(const char* p, size_t n) { bytes.append(p, n); }
};
using Packer = msgpack::packer<FrameBuffer>;

void pack_key(Packer& pk, const char* key) {
  pk.pack_str(static_cast<uint32_t>(std::strlen(key))).pack_str_body(key, static_cast<uint32_t>(std::strlen(key)));
}
void pack_string(Packer& pk, const char* key, const std::string& v) {
  pack_key(pk, key);
  pk.pack_str(static_cast<uint32_t>(v.size())).pack_str_body(v.data(), static_cast<uint32_t>(v.size()));
}
void pack_i64(Packer& pk, const char* key, int64_t v) {
  pack_key(pk, key);
  pk.pack_int64(v);
}
// Always a msgpack float64: msgpack-cxx 4.1's pack_double writes integral values (0.0, 100.0) as
// integers and loses -0.0, which strictly typed decoders in other languages would reject.
void pack_f64(Packer& pk, FrameBuffer& buf, const char* key, double v) {
  pack_key(pk, key);
  uint64_t u = 0;
  std::memcpy(&u, &v, 8);
  char b[9];
  b[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) b[1 + i] = static_cast<char>((u >> (8 * (7 - i))) & 0xff);  // big-endian, as msgpack
  buf.write(b, 9);
}
void pack_bool(Packer& pk, const char* key, bool v) {
  pack_key(pk, key);
  if (v)
    pk.pack_true();
  else
    pk.pack_false();
}
// Packed little-endian values as one `bin`.
template <typename T>
void pack_le_array(Packer& pk, const char* key, const std::vector<T>& v) {
  static_assert(sizeof(T) == 1 || sizeof(T) == 4, "1- or 4-byte elements");
  pack_key(pk, key);
  std::string raw(v.size() * sizeof(T), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    if constexpr (sizeof(T) == 1) {
      raw[i] = static_cast<char>(v[i]);
    } else {
      uint32_t u = 0;
      std::memcpy(&u, &v[i], sizeof(T));
      encode_fixed32(&raw[i * sizeof(T)], u);
    }
  }
  pk.pack_bin(static_cast<uint32_t>(raw.size())).pack_bin_body(raw.data(), static_cast<uint32_t>(raw.size()));
}

// Writes header and CRC around the payload the packer appended after kMessageHeaderBytes.
std::string finish_frame(FrameBuffer& buf, MessageType type) {
  const size_t payload = buf.bytes.size() - kMessageHeaderBytes;
  if (payload > kMaxPayloadBytes)
    fail(MessageErrorKind::kPayload, str_cat(message_type_name(type), " message: payload of ", payload,
                                             " bytes exceeds the cap of ", kMaxPayloadBytes));
  char* h = buf.bytes.data();
  std::memcpy(h, kMagic, 4);
  encode_fixed16(h + 4, kMessageFormatVersion);
  encode_fixed16(h + 6, static_cast<uint16_t>(type));
  encode_fixed32(h + 8, static_cast<uint32_t>(payload));
  put_fixed32(&buf.bytes, crc32(buf.bytes.data(), kMessageHeaderBytes + payload));
  return std::move(buf.bytes);
}

FrameBuffer start_frame() {
  FrameBuffer b;
  b.bytes.assign(kMessageHeaderBytes, '\0');
  return b;
}

void pack_group(Packer& pk, FrameBuffer& buf, const RolloutGroupMsg& m, bool scored, bool with_text) {
  pk.pack_map(scored ? 13 : 12);
  pack_string(pk, "run_id", m.run_id);
  pack_string(pk, "actor_id", m.actor_id);
  pack_string(pk, "prompt_id", m.prompt_id);
  pack_i64(pk, "prompt_index", m.prompt_index);
  pack_i64(pk, "position", m.position);
  pack_i64(pk, "policy_version", m.policy_version);
  pack_string(pk, "answer", m.answer);
  pack_f64(pk, buf, "ref_len", m.ref_len);
  pack_i64(pk, "num_layers", m.num_layers);
  pack_i64(pk, "num_kv_heads", m.num_kv_heads);
  pack_le_array(pk, "behaviour_keep_prob", m.behaviour_keep_prob);
  if (scored) pack_bool(pk, "text_omitted", !with_text);
  pack_key(pk, "rollouts");
  pk.pack_array(static_cast<uint32_t>(m.rollouts.size()));
  static const std::vector<int32_t> kNoTokens;
  static const std::string kNoText;
  for (const Rollout& r : m.rollouts) {
    pk.pack_map(scored ? 9 : 6);
    pack_le_array(pk, "mask", r.mask);
    pack_le_array(pk, "tokens", with_text ? r.tokens : kNoTokens);
    pack_string(pk, "text", with_text ? r.text : kNoText);
    pack_i64(pk, "length", r.length);
    pack_string(pk, "finish_reason", r.finish_reason);
    pack_i64(pk, "prompt_tokens", r.prompt_tokens);
    if (scored) {
      pack_i64(pk, "correct", r.score->correct);
      pack_f64(pk, buf, "excess", r.score->excess);
      pack_f64(pk, buf, "reward", r.score->reward);
    }
  }
}

// `m` itself when every text is valid UTF-8 (the common case, no copy), else a cleaned copy in `store`.
const RolloutGroupMsg& with_clean_text(const RolloutGroupMsg& m, RolloutGroupMsg& store) {
  bool clean = true;
  for (const Rollout& r : m.rollouts) clean = clean && is_valid_utf8(r.text);
  if (clean) return m;
  store = m;
  for (Rollout& r : store.rollouts) r.text = sanitize_utf8(r.text);
  return store;
}

// ---- decoding ---------------------------------------------------------------------------------------

struct Frame {
  MessageType type;
  const char* payload;
  uint32_t size;
};

bool known_type(uint16_t t) { return t >= 1 && t <= 4; }

Frame parse_frame(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (size < kMessageHeaderBytes + kMessageTrailerBytes)
    fail(MessageErrorKind::kFraming, str_cat("message truncated: ", size, " bytes, a frame has at least ",
                                             kMessageHeaderBytes + kMessageTrailerBytes));
  if (std::memcmp(p, kMagic, 4) != 0) fail(MessageErrorKind::kFraming, "message: bad magic (expected \"RLKV\")");
  const uint16_t version = decode_fixed16(p + 4);
  if (version != kMessageFormatVersion)
    fail(MessageErrorKind::kVersion,
         str_cat("message: format version ", version, ", this build speaks version ", kMessageFormatVersion));
  const uint16_t type = decode_fixed16(p + 6);
  if (!known_type(type)) fail(MessageErrorKind::kType, str_cat("message: unknown message type ", type));
  const uint32_t n = decode_fixed32(p + 8);
  if (n > kMaxPayloadBytes)
    fail(MessageErrorKind::kFraming,
         str_cat("message: declared payload of ", n, " bytes exceeds the cap of ", kMaxPayloadBytes));
  const size_t want = kMessageHeaderBytes + static_cast<size_t>(n) + kMessageTrailerBytes;
  if (size != want)
    fail(MessageErrorKind::kFraming,
         str_cat("message: ", size, " bytes, but the header declares a payload of ", n, " bytes (frame of ", want, ")",
                 size < want ? " (truncated)" : " (trailing bytes)"));
  const uint32_t crc_wire = decode_fixed32(p + kMessageHeaderBytes + n);
  const uint32_t crc_have = crc32(p, kMessageHeaderBytes + n);
  if (crc_wire != crc_have) fail(MessageErrorKind::kFraming, "message: CRC mismatch (corrupted frame)");
  return Frame{static_cast<MessageType>(type), reinterpret_cast<const char*>(p + kMessageHeaderBytes), n};
}

// Field access on one msgpack map. Keys must all be strings and unique; unknown keys are ignored
// (forward compatibility, docs/messages.md "Versions"). Keys are sorted once for lookups.
class MapReader {
 public:
  MapReader(const msgpack::object& o, std::string where) : where_(std::move(where)) {
    MSG_CHECK(o.type == msgpack::type::MAP, where_, "expected a map");
    keys_.reserve(o.via.map.size);
    for (uint32_t i = 0; i < o.via.map.size; ++i) {
      const msgpack::object_kv& kv = o.via.map.ptr[i];
      MSG_CHECK(kv.key.type == msgpack::type::STR, where_, "has a key that is not a string");
      keys_.push_back({std::string_view(kv.key.via.str.ptr, kv.key.via.str.size), &kv.val});
    }
    std::sort(keys_.begin(), keys_.end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
    for (size_t i = 1; i < keys_.size(); ++i)
      MSG_CHECK(keys_[i].key != keys_[i - 1].key, where_, "field '", field_name(keys_[i].key), "' appears twice");
  }

  const msgpack::object* find(const char* key) const {
    const std::string_view k(key);
    auto it =
        std::lower_bound(keys_.begin(), keys_.end(), k, [](const Entry& e, std::string_view s) { return e.key < s; });
    return it != keys_.end() && it->key == k ? it->val : nullptr;
  }
  const msgpack::object& need(const char* key) const {
    const msgpack::object* o = find(key);
    MSG_CHECK(o, where_, "field '", key, "' is missing");
    return *o;
  }
  bool has(const char* key) const { return find(key) != nullptr; }
  int64_t i64(const char* key) const {
    const msgpack::object& o = need(key);
    if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
    MSG_CHECK(o.type == msgpack::type::POSITIVE_INTEGER, where_, "field '", key, "' must be an integer");
    MSG_CHECK(o.via.u64 <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), where_, "field '", key,
              "' is out of the int64 range");
    return static_cast<int64_t>(o.via.u64);
  }
  // Floats; integers are accepted too, since some encoders write 100.0 as 100.
  double f64(const char* key) const {
    const msgpack::object& o = need(key);
    if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) return o.via.f64;
    if (o.type == msgpack::type::POSITIVE_INTEGER) return static_cast<double>(o.via.u64);
    if (o.type == msgpack::type::NEGATIVE_INTEGER) return static_cast<double>(o.via.i64);
    fail(MessageErrorKind::kPayload, str_cat(where_, ": field '", key, "' must be a number"));
  }
  bool boolean(const char* key) const {
    const msgpack::object& o = need(key);
    MSG_CHECK(o.type == msgpack::type::BOOLEAN, where_, "field '", key, "' must be a boolean");
    return o.via.boolean;
  }
  std::string str(const char* key, size_t max_bytes) const {
    const msgpack::object& o = need(key);
    MSG_CHECK(o.type == msgpack::type::STR, where_, "field '", key, "' must be a string");
    MSG_CHECK(o.via.str.size <= max_bytes, where_, "field '", key, "' has ", o.via.str.size,
              " bytes, more than the cap of ", max_bytes);
    return std::string(o.via.str.ptr, o.via.str.size);
  }
  // A `bin` of packed little-endian 1- or 4-byte values.
  template <typename T>
  std::vector<T> le_array(const char* key, size_t max_count) const {
    const msgpack::object& o = need(key);
    MSG_CHECK(o.type == msgpack::type::BIN, where_, "field '", key, "' must be bin (packed little-endian values)");
    const size_t bytes = o.via.bin.size;
    MSG_CHECK(bytes % sizeof(T) == 0, where_, "field '", key, "' has ", bytes, " bytes, not a multiple of ", sizeof(T));
    const size_t count = bytes / sizeof(T);
    MSG_CHECK(count <= max_count, where_, "field '", key, "' has ", count, " values, more than the cap of ", max_count);
    std::vector<T> out(count);
    const auto* p = reinterpret_cast<const unsigned char*>(o.via.bin.ptr);
    for (size_t i = 0; i < count; ++i) {
      if constexpr (sizeof(T) == 1) {
        out[i] = static_cast<T>(p[i]);
      } else {
        const uint32_t u = decode_fixed32(p + i * sizeof(T));
        std::memcpy(&out[i], &u, sizeof(T));
      }
    }
    return out;
  }
  const msgpack::object& array(const char* key, size_t max_count) const {
    const msgpack::object& o = need(key);
    MSG_CHECK(o.type == msgpack::type::ARRAY, where_, "field '", key, "' must be an array");
    MSG_CHECK(o.via.array.size <= max_count, where_, "field '", key, "' has ", o.via.array.size,
              " entries, more than the cap of ", max_count);
    return o;
  }
  const std::string& where() const { return where_; }

 private:
  struct Entry {
    std::string_view key;
    const msgpack::object* val;
  };
  // Keys can be any bytes: show a bounded, printable version.
  static std::string field_name(std::string_view k) {
    std::string s;
    for (char c : k.substr(0, 64)) s += (c >= 0x20 && c < 0x7f) ? c : '?';
    return s;
  }
  std::string where_;
  std::vector<Entry> keys_;
};

// Unpacks the payload as one msgpack object that spans it exactly. Limits tie every declared count
// to the payload size before msgpack-cxx allocates for it (it allocates arrays and maps up front).
template <typename Fn>
auto with_payload(const Frame& f, Fn&& fn) {
  const std::string where = str_cat(message_type_name(f.type), " message");
  msgpack::object_handle oh;
  size_t off = 0;
  try {
    const size_t n = f.size;
    msgpack::unpack_limit limit(std::min<size_t>(n, static_cast<size_t>(kMaxRollouts)),
                                std::min<size_t>(n, kMaxMapPairs), n, n, n, kMaxDepth);
    // Strings and bins point into the payload instead of being copied: it outlives `oh`.
    auto reference_all = [](msgpack::type::object_type, size_t, void*) { return true; };
    oh = msgpack::unpack(f.payload, n, off, reference_all, nullptr, limit);
  } catch (const std::bad_alloc&) {
    fail(MessageErrorKind::kPayload, where + ": payload too large to unpack");
  } catch (const std::exception& e) {
    fail(MessageErrorKind::kPayload, str_cat(where, ": malformed MessagePack (", e.what(), ")"));
  }
  MSG_CHECK(off == f.size, where, "payload has ", f.size - off, " trailing bytes after the MessagePack map");
  return fn(MapReader(oh.get(), where));
}

PolicyMsg read_policy(const MapReader& r) {
  PolicyMsg m;
  m.run_id = r.str("run_id", kMaxIdBytes);
  m.policy_version = r.i64("policy_version");
  m.step = r.i64("step");
  m.num_layers = r.i64("num_layers");
  m.num_kv_heads = r.i64("num_kv_heads");
  m.theta = r.le_array<float>("theta", kMaxHeads);
  m.stop = r.boolean("stop");
  m.rollouts_endpoint = r.str("rollouts_endpoint", kMaxIdBytes);
  m.position_base = r.has("position_base") ? r.i64("position_base") : 0;  // optional: absent in older senders
  check_policy(m);
  return m;
}

void read_group(const MapReader& r, RolloutGroupMsg& m, bool scored, bool* text_omitted) {
  m.run_id = r.str("run_id", kMaxIdBytes);
  m.actor_id = r.str("actor_id", kMaxIdBytes);
  m.prompt_id = r.str("prompt_id", kMaxIdBytes);
  m.prompt_index = r.i64("prompt_index");
  m.position = r.i64("position");
  m.policy_version = r.i64("policy_version");
  m.answer = r.str("answer", kMaxAnswerBytes);
  m.ref_len = r.f64("ref_len");
  m.num_layers = r.i64("num_layers");
  m.num_kv_heads = r.i64("num_kv_heads");
  m.behaviour_keep_prob = r.le_array<float>("behaviour_keep_prob", kMaxHeads);
  bool omitted = false;
  if (scored) omitted = r.boolean("text_omitted");
  const msgpack::object& arr = r.array("rollouts", static_cast<size_t>(kMaxRollouts));
  m.rollouts.resize(arr.via.array.size);
  for (uint32_t i = 0; i < arr.via.array.size; ++i) {
    MapReader rr(arr.via.array.ptr[i], str_cat(r.where(), " rollouts[", i, "]"));
    Rollout& ro = m.rollouts[i];
    ro.mask = rr.le_array<uint8_t>("mask", kMaxHeads);
    ro.tokens = rr.le_array<int32_t>("tokens", kMaxTokens);
    ro.text = rr.str("text", kMaxTextBytes);
    ro.length = rr.i64("length");
    ro.finish_reason = rr.str("finish_reason", 32);
    ro.prompt_tokens = rr.i64("prompt_tokens");
    if (scored) {
      RolloutScore s;
      const int64_t c = rr.i64("correct");
      MSG_CHECK(c == 0 || c == 1, rr.where(), "correct = ", c, ", expected 0 or 1");
      s.correct = static_cast<int32_t>(c);
      s.excess = rr.f64("excess");
      s.reward = rr.f64("reward");
      ro.score = s;
    }
  }
  check_group(m, scored, omitted ? TextRule::kOmitted : TextRule::kCarried);
  if (text_omitted) *text_omitted = omitted;
}

HelloMsg read_hello(const MapReader& r) {
  HelloMsg m;
  m.run_id = r.str("run_id", kMaxIdBytes);
  m.actor_id = r.str("actor_id", kMaxIdBytes);
  m.pid = r.i64("pid");
  m.host = r.str("host", kMaxIdBytes);
  m.in_flight = r.i64("in_flight");
  check_hello(m);
  return m;
}

void require_type(const Frame& f, MessageType want) {
  if (f.type != want)
    fail(MessageErrorKind::kType,
         str_cat("message: expected a ", message_type_name(want), " message, got ", message_type_name(f.type)));
}

void check_run_id(const std::string& got, const std::string& want, const char* what) {
  if (!want.empty() && got != want)
    fail(MessageErrorKind::kForeignRun,
         str_cat(what, " message from run '", got.substr(0, 64), "', this is run '", want, "'"));
}

void check_receiver_shape(int64_t L, int64_t H, int64_t want_L, int64_t want_H, const char* what) {
  if ((want_L > 0 && L != want_L) || (want_H > 0 && H != want_H))
    fail(MessageErrorKind::kShape,
         str_cat(what, " message for ", L, " x ", H, " heads, this model has ", want_L, " x ", want_H));
}

}  // namespace

// ---- public ------------------------------------------------------------------------------------------

const char* message_type_name(MessageType t) {
  switch (t) {
    case MessageType::kPolicy:
      return "policy";
    case MessageType::kRolloutGroup:
      return "rollout_group";
    case MessageType::kScoredGroup:
      return "scored_group";
    case MessageType::kHello:
      return "hello";
  }
  return "unknown";
}

const char* message_error_kind_name(MessageErrorKind k) {
  switch (k) {
    case MessageErrorKind::kFraming:
      return "framing";
    case MessageErrorKind::kVersion:
      return "version";
    case MessageErrorKind::kType:
      return "type";
    case MessageErrorKind::kPayload:
      return "payload";
    case MessageErrorKind::kForeignRun:
      return "foreign_run";
    case MessageErrorKind::kShape:
      return "shape";
  }
  return "unknown";
}

bool operator==(const PolicyMsg& a, const PolicyMsg& b) {
  return a.run_id == b.run_id && a.policy_version == b.policy_version && a.step == b.step &&
         a.num_layers == b.num_layers && a.num_kv_heads == b.num_kv_heads && a.theta == b.theta && a.stop == b.stop &&
         a.rollouts_endpoint == b.rollouts_endpoint && a.position_base == b.position_base;
}
bool operator==(const RolloutScore& a, const RolloutScore& b) {
  return a.correct == b.correct && a.excess == b.excess && a.reward == b.reward;
}
bool operator==(const Rollout& a, const Rollout& b) {
  return a.mask == b.mask && a.tokens == b.tokens && a.text == b.text && a.length == b.length &&
         a.finish_reason == b.finish_reason && a.prompt_tokens == b.prompt_tokens && a.score == b.score;
}
bool operator==(const RolloutGroupMsg& a, const RolloutGroupMsg& b) {
  return a.run_id == b.run_id && a.actor_id == b.actor_id && a.prompt_id == b.prompt_id &&
         a.prompt_index == b.prompt_index && a.position == b.position && a.policy_version == b.policy_version &&
         a.answer == b.answer && a.ref_len == b.ref_len && a.num_layers == b.num_layers &&
         a.num_kv_heads == b.num_kv_heads && a.behaviour_keep_prob == b.behaviour_keep_prob && a.rollouts == b.rollouts;
}
bool operator==(const ScoredGroupMsg& a, const ScoredGroupMsg& b) {
  return static_cast<const RolloutGroupMsg&>(a) == static_cast<const RolloutGroupMsg&>(b) &&
         a.text_omitted == b.text_omitted;
}
bool operator==(const HelloMsg& a, const HelloMsg& b) {
  return a.run_id == b.run_id && a.actor_id == b.actor_id && a.pid == b.pid && a.host == b.host &&
         a.in_flight == b.in_flight;
}

std::string encode(const PolicyMsg& m) {
  check_policy(m);
  FrameBuffer buf = start_frame();
  Packer pk(buf);
  pk.pack_map(9);
  pack_string(pk, "run_id", m.run_id);
  pack_string(pk, "rollouts_endpoint", m.rollouts_endpoint);
  pack_i64(pk, "position_base", m.position_base);
  pack_i64(pk, "policy_version", m.policy_version);
  pack_i64(pk, "step", m.step);
  pack_i64(pk, "num_layers", m.num_layers);
  pack_i64(pk, "num_kv_heads", m.num_kv_heads);
  pack_le_array(pk, "theta", m.theta);
  pack_bool(pk, "stop", m.stop);
  return finish_frame(buf, MessageType::kPolicy);
}

std::string encode(const RolloutGroupMsg& m) {
  RolloutGroupMsg store;
  const RolloutGroupMsg& c = with_clean_text(m, store);
  check_group(c, false, TextRule::kCarried);
  FrameBuffer buf = start_frame();
  Packer pk(buf);
  pack_group(pk, buf, c, false, true);
  return finish_frame(buf, MessageType::kRolloutGroup);
}

std::string encode(const ScoredGroupMsg& m, bool include_text) {
  const bool with_text = include_text && !m.text_omitted;
  RolloutGroupMsg store;
  const RolloutGroupMsg& c = with_text ? with_clean_text(m, store) : m;
  check_group(c, true, with_text ? TextRule::kCarried : TextRule::kDropped);
  FrameBuffer buf = start_frame();
  Packer pk(buf);
  pack_group(pk, buf, c, true, with_text);
  return finish_frame(buf, MessageType::kScoredGroup);
}

std::string encode(const HelloMsg& m) {
  check_hello(m);
  FrameBuffer buf = start_frame();
  Packer pk(buf);
  pk.pack_map(5);
  pack_string(pk, "run_id", m.run_id);
  pack_string(pk, "actor_id", m.actor_id);
  pack_i64(pk, "pid", m.pid);
  pack_string(pk, "host", m.host);
  pack_i64(pk, "in_flight", m.in_flight);
  return finish_frame(buf, MessageType::kHello);
}

MessageType peek_message_type(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (size < kMessageHeaderBytes) fail(MessageErrorKind::kFraming, str_cat("message truncated: ", size, " bytes"));
  if (std::memcmp(p, kMagic, 4) != 0) fail(MessageErrorKind::kFraming, "message: bad magic (expected \"RLKV\")");
  const uint16_t version = decode_fixed16(p + 4), type = decode_fixed16(p + 6);
  if (version != kMessageFormatVersion)
    fail(MessageErrorKind::kVersion,
         str_cat("message: format version ", version, ", this build speaks version ", kMessageFormatVersion));
  if (!known_type(type)) fail(MessageErrorKind::kType, str_cat("message: unknown message type ", type));
  return static_cast<MessageType>(type);
}

Message decode_message(const void* data, size_t size) {
  const Frame f = parse_frame(data, size);
  switch (f.type) {
    case MessageType::kPolicy:
      return with_payload(f, read_policy);
    case MessageType::kRolloutGroup:
      return with_payload(f, [](const MapReader& r) {
        RolloutGroupMsg m;
        read_group(r, m, false, nullptr);
        return Message(std::move(m));
      });
    case MessageType::kScoredGroup:
      return with_payload(f, [](const MapReader& r) {
        ScoredGroupMsg m;
        read_group(r, m, true, &m.text_omitted);
        return Message(std::move(m));
      });
    case MessageType::kHello:
      break;
  }
  return with_payload(f, read_hello);
}

PolicyMsg decode_policy(const void* data, size_t size) {
  const Frame f = parse_frame(data, size);
  require_type(f, MessageType::kPolicy);
  return with_payload(f, read_policy);
}

RolloutGroupMsg decode_rollout_group(const void* data, size_t size) {
  const Frame f = parse_frame(data, size);
  require_type(f, MessageType::kRolloutGroup);
  return with_payload(f, [](const MapReader& r) {
    RolloutGroupMsg m;
    read_group(r, m, false, nullptr);
    return m;
  });
}

ScoredGroupMsg decode_scored_group(const void* data, size_t size) {
  const Frame f = parse_frame(data, size);
  require_type(f, MessageType::kScoredGroup);
  return with_payload(f, [](const MapReader& r) {
    ScoredGroupMsg m;
    read_group(r, m, true, &m.text_omitted);
    return m;
  });
}

HelloMsg decode_hello(const void* data, size_t size) {
  const Frame f = parse_frame(data, size);
  require_type(f, MessageType::kHello);
  return with_payload(f, read_hello);
}

void validate(const PolicyMsg& m, const std::string& run_id, int64_t num_layers, int64_t num_kv_heads) {
  check_run_id(m.run_id, run_id, "policy");
  check_receiver_shape(m.num_layers, m.num_kv_heads, num_layers, num_kv_heads, "policy");
}

void validate(const RolloutGroupMsg& m, const std::string& run_id, int64_t num_layers, int64_t num_kv_heads) {
  check_run_id(m.run_id, run_id, "rollout group");
  check_receiver_shape(m.num_layers, m.num_kv_heads, num_layers, num_kv_heads, "rollout group");
}

void validate(const HelloMsg& m, const std::string& run_id) { check_run_id(m.run_id, run_id, "hello"); }

}  // namespace rlkv
