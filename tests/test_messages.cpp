// Wire messages (comm/messages.h): round trips, the frame layout other languages rely on, and every
// kind of corruption a socket can deliver, which must end in MessageError and never in a crash or
// another exception. Corrupt payloads with a valid CRC are made by editing the msgpack tree of a
// good message and re-framing it, so each check of the decoder is reached on its own.
#define MSGPACK_NO_BOOST
#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "comm/messages.h"
#include "core/finish_reason.h"

using namespace rlkv;
using Catch::Matchers::Contains;

namespace {

PolicyMsg make_policy(int64_t L = 3, int64_t H = 2, int64_t version = 7) {
  PolicyMsg m;
  m.run_id = "run-A";
  m.policy_version = version;
  m.step = 41;
  m.num_layers = L;
  m.num_kv_heads = H;
  for (int64_t i = 0; i < L * H; ++i) m.theta.push_back(0.25f * static_cast<float>(i) - 1.5f);
  m.position_base = 4096;
  m.theta[0] = -0.0f;
  if (L * H > 1) m.theta[1] = std::numeric_limits<float>::denorm_min();
  return m;
}

RolloutGroupMsg make_group(int64_t L = 2, int64_t H = 2, int G = 3, uint32_t seed = 5) {
  std::mt19937 rng(seed);
  RolloutGroupMsg g;
  g.run_id = "run-A";
  g.actor_id = "actor-1";
  g.prompt_id = "toy-000123";
  g.prompt_index = 123;
  g.policy_version = 7;
  g.answer = "42";
  g.ref_len = 57.5;
  g.num_layers = L;
  g.num_kv_heads = H;
  for (int64_t i = 0; i < L * H; ++i)
    g.behaviour_keep_prob.push_back(static_cast<float>(i + 1) / static_cast<float>(L * H + 1));
  g.behaviour_keep_prob[0] = 1.0f;
  for (int r = 0; r < G; ++r) {
    Rollout ro;
    for (int64_t i = 0; i < L * H; ++i) ro.mask.push_back(static_cast<uint8_t>(rng() & 1));
    const int n = 3 + r;
    for (int t = 0; t < n; ++t) ro.tokens.push_back(static_cast<int32_t>(rng() % 50000));
    ro.text = "A: 4" + std::to_string(r) + " \xc3\xa9";  // some non-ASCII UTF-8
    ro.length = n;
    ro.finish_reason = r == 2 ? "length" : "eos";
    ro.prompt_tokens = 17;
    g.rollouts.push_back(ro);
  }
  return g;
}

ScoredGroupMsg make_scored(int64_t L = 2, int64_t H = 2, int G = 3) {
  ScoredGroupMsg s(make_group(L, H, G));
  for (size_t r = 0; r < s.rollouts.size(); ++r)
    s.rollouts[r].score =
        RolloutScore{static_cast<int32_t>(r % 2), 0.125 * static_cast<double>(r), r % 2 ? 0.75 : -0.25};
  return s;
}

HelloMsg make_hello() { return HelloMsg{"run-A", "elastic-7", 4242, "node-3"}; }

// Builds a frame around `payload` with a correct length and CRC.
std::string frame_with_payload(uint16_t type, const std::string& payload, uint16_t version = kMessageFormatVersion) {
  std::string f = "RLKV";
  f += static_cast<char>(version & 0xff);
  f += static_cast<char>(version >> 8);
  f += static_cast<char>(type & 0xff);
  f += static_cast<char>(type >> 8);
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) f += static_cast<char>((n >> (8 * i)) & 0xff);
  f += payload;
  const uint32_t crc = crc32(f.data(), f.size());
  for (int i = 0; i < 4; ++i) f += static_cast<char>((crc >> (8 * i)) & 0xff);
  return f;
}

uint16_t frame_type(const std::string& f) {
  return static_cast<uint16_t>(static_cast<unsigned char>(f[6]) | (static_cast<unsigned char>(f[7]) << 8));
}
std::string payload_of(const std::string& f) {
  return f.substr(kMessageHeaderBytes, f.size() - kMessageHeaderBytes - kMessageTrailerBytes);
}

msgpack::object& field(msgpack::object& map, const std::string& key) {
  REQUIRE(map.type == msgpack::type::MAP);
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    msgpack::object& k = map.via.map.ptr[i].key;
    if (std::string(k.via.str.ptr, k.via.str.size) == key) return map.via.map.ptr[i].val;
  }
  FAIL("no field " << key);
  throw 0;
}

void remove_field(msgpack::object& map, const std::string& key) {
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    msgpack::object& k = map.via.map.ptr[i].key;
    if (std::string(k.via.str.ptr, k.via.str.size) == key) {
      for (uint32_t j = i + 1; j < map.via.map.size; ++j) map.via.map.ptr[j - 1] = map.via.map.ptr[j];
      --map.via.map.size;
      return;
    }
  }
  FAIL("no field " << key);
}

// A writable copy of a bin / str body, so tests can change bytes of a msgpack tree.
char* own_bytes(msgpack::object& o, msgpack::zone& z) {
  const uint32_t n = o.type == msgpack::type::BIN ? o.via.bin.size : o.via.str.size;
  const char* src = o.type == msgpack::type::BIN ? o.via.bin.ptr : o.via.str.ptr;
  char* p = static_cast<char*>(z.allocate_no_align(n + 1));
  std::memcpy(p, src, n);
  if (o.type == msgpack::type::BIN)
    o.via.bin.ptr = p;
  else
    o.via.str.ptr = p;
  return p;
}

// Decodes the payload of a good frame, lets `edit` change the tree, and re-frames it (fresh CRC).
std::string edit_payload(const std::string& frame, const std::function<void(msgpack::object&, msgpack::zone&)>& edit) {
  const std::string payload = payload_of(frame);
  msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size());
  msgpack::object root = oh.get();
  edit(root, *oh.zone());
  msgpack::sbuffer sb;
  msgpack::pack(sb, root);
  return frame_with_payload(frame_type(frame), std::string(sb.data(), sb.size()));
}

// Runs `decode` and returns the MessageError's kind; fails the test on success or on any other exception.
template <typename Fn>
MessageErrorKind error_kind(Fn&& decode) {
  try {
    decode();
  } catch (const MessageError& e) {
    REQUIRE(std::string(e.what()).find('\n') == std::string::npos);  // one line
    return e.kind;
  }
  FAIL("decoding succeeded where it must fail");
  throw 0;
}

float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

TEST_CASE("each message type survives encode then decode unchanged") {
  const PolicyMsg p = make_policy();
  REQUIRE(decode_policy(encode(p)) == p);
  PolicyMsg stop = p;
  stop.stop = true;
  REQUIRE(decode_policy(encode(stop)).stop);

  const RolloutGroupMsg g = make_group();
  REQUIRE(decode_rollout_group(encode(g)) == g);

  const ScoredGroupMsg s = make_scored();
  const ScoredGroupMsg with_text = decode_scored_group(encode(s, /*include_text=*/true));
  REQUIRE(with_text == s);
  REQUIRE_FALSE(with_text.text_omitted);

  const HelloMsg h = make_hello();
  REQUIRE(decode_hello(encode(h)) == h);

  // decode_message picks the type from the frame.
  REQUIRE(std::holds_alternative<PolicyMsg>(decode_message(encode(p))));
  REQUIRE(std::holds_alternative<RolloutGroupMsg>(decode_message(encode(g))));
  REQUIRE(std::holds_alternative<ScoredGroupMsg>(decode_message(encode(s))));
  REQUIRE(std::get<HelloMsg>(decode_message(encode(h))) == h);
  REQUIRE(peek_message_type(encode(g).data(), 16) == MessageType::kRolloutGroup);
}

TEST_CASE("scored groups drop tokens and text by default and keep what the learner needs") {
  const ScoredGroupMsg s = make_scored(4, 2, 5);
  const std::string lean = encode(s);
  const std::string full = encode(s, true);
  REQUIRE(lean.size() < full.size());
  const ScoredGroupMsg d = decode_scored_group(lean);
  REQUIRE(d.text_omitted);
  REQUIRE(d.behaviour_keep_prob == s.behaviour_keep_prob);
  REQUIRE(d.policy_version == s.policy_version);
  for (size_t r = 0; r < s.rollouts.size(); ++r) {
    REQUIRE(d.rollouts[r].tokens.empty());
    REQUIRE(d.rollouts[r].text.empty());
    REQUIRE(d.rollouts[r].mask == s.rollouts[r].mask);
    REQUIRE(d.rollouts[r].length == s.rollouts[r].length);
    REQUIRE(d.rollouts[r].finish_reason == s.rollouts[r].finish_reason);
    REQUIRE(d.rollouts[r].score == s.rollouts[r].score);
  }
  // A decoded lean message re-encodes (text stays omitted even when asked to include it).
  REQUIRE(decode_scored_group(encode(d, true)) == d);
}

TEST_CASE("the frame layout is the documented one: magic, LE version, type, length, msgpack, CRC-32 of the rest") {
  REQUIRE(crc32("123456789", 9) == 0xCBF43926u);  // the CRC-32/ISO-HDLC check value (= zlib.crc32)
  REQUIRE(crc32("", 0) == 0u);
  const PolicyMsg p = make_policy(1, 2);
  const std::string f = encode(p);
  REQUIRE(f.substr(0, 4) == "RLKV");
  REQUIRE(f[4] == 1);
  REQUIRE(f[5] == 0);
  REQUIRE(frame_type(f) == static_cast<uint16_t>(MessageType::kPolicy));
  const std::string payload = payload_of(f);
  const uint32_t n = static_cast<unsigned char>(f[8]) | (static_cast<unsigned char>(f[9]) << 8) |
                     (static_cast<unsigned char>(f[10]) << 16) |
                     (static_cast<uint32_t>(static_cast<unsigned char>(f[11])) << 24);
  REQUIRE(n == payload.size());
  REQUIRE(f.size() == 16 + n);
  const uint32_t crc = crc32(f.data(), 12 + n);
  REQUIRE(f.substr(f.size() - 4) == std::string{static_cast<char>(crc & 0xff), static_cast<char>((crc >> 8) & 0xff),
                                                static_cast<char>((crc >> 16) & 0xff), static_cast<char>(crc >> 24)});
  // theta is a bin of little-endian float32: 2 logits = 8 bytes.
  msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size());
  msgpack::object root = oh.get();
  msgpack::object& theta = field(root, "theta");
  REQUIRE(theta.type == msgpack::type::BIN);
  REQUIRE(theta.via.bin.size == 8);
  uint32_t u = 0;
  for (int b = 0; b < 4; ++b)
    u |= static_cast<uint32_t>(static_cast<unsigned char>(theta.via.bin.ptr[4 + b])) << (8 * b);
  REQUIRE(f32_from_bits(u) == p.theta[1]);
  REQUIRE(field(root, "stop").type == msgpack::type::BOOLEAN);
  // Doubles are msgpack float64 even when integral (msgpack-cxx alone would write 100.0 as 100).
  RolloutGroupMsg g = make_group();
  g.ref_len = 100.0;
  const std::string gp = payload_of(encode(g));
  msgpack::object_handle goh = msgpack::unpack(gp.data(), gp.size());
  msgpack::object groot = goh.get();
  REQUIRE(field(groot, "ref_len").type == msgpack::type::FLOAT64);
  REQUIRE(field(groot, "ref_len").via.f64 == 100.0);
}

TEST_CASE("a frame cut at any length is rejected") {
  for (const std::string& f : {encode(make_policy(1, 2)), encode(make_group(1, 1, 1)), encode(make_hello())}) {
    for (size_t len = 0; len < f.size(); ++len) {
      INFO("length " << len << " of " << f.size());
      const auto kind = error_kind([&] { decode_message(f.data(), len); });
      REQUIRE(kind == MessageErrorKind::kFraming);
    }
  }
}

TEST_CASE("bad magic, version, type, length, CRC and trailing bytes are rejected by kind") {
  const std::string good = encode(make_policy());
  auto with = [&](size_t pos, char c) {
    std::string f = good;
    f[pos] = c;
    return f;
  };
  REQUIRE(error_kind([&] { decode_policy(with(0, 'X')); }) == MessageErrorKind::kFraming);
  REQUIRE_THROWS_WITH(decode_policy(with(3, 'W')), Contains("magic"));
  REQUIRE(error_kind([&] { decode_policy(with(4, 2)); }) == MessageErrorKind::kVersion);
  REQUIRE_THROWS_WITH(decode_policy(with(5, 1)), Contains("version 257"));
  REQUIRE(error_kind([&] { decode_message(with(6, 9)); }) == MessageErrorKind::kType);
  REQUIRE(error_kind([&] { decode_message(with(6, 0)); }) == MessageErrorKind::kType);
  // A valid frame of another type, given to a typed decoder.
  REQUIRE(error_kind([&] { decode_rollout_group(good); }) == MessageErrorKind::kType);
  REQUIRE_THROWS_WITH(decode_scored_group(encode(make_group())), Contains("expected a scored_group message"));
  // Declared length one more / one less than what came, and a length beyond the cap.
  REQUIRE_THROWS_WITH(decode_policy(with(8, static_cast<char>(good[8] + 1))), Contains("truncated"));
  REQUIRE_THROWS_WITH(decode_policy(with(8, static_cast<char>(good[8] - 1))), Contains("trailing"));
  REQUIRE_THROWS_WITH(decode_policy(with(11, 0x7f)), Contains("cap"));
  // CRC mismatch: a flipped payload byte, and a flipped CRC byte.
  REQUIRE_THROWS_WITH(decode_policy(with(20, static_cast<char>(good[20] ^ 0x10))), Contains("CRC"));
  REQUIRE_THROWS_WITH(decode_policy(with(good.size() - 1, static_cast<char>(good.back() ^ 1))), Contains("CRC"));
  // Bytes after the frame.
  REQUIRE(error_kind([&] { decode_policy(good + '\0'); }) == MessageErrorKind::kFraming);
  // Bytes after the msgpack map, inside a payload with a valid CRC.
  REQUIRE_THROWS_WITH(decode_policy(frame_with_payload(1, payload_of(good) + '\xc0')), Contains("trailing bytes"));
}

TEST_CASE("every single-bit flip and seeded random damage of a group frame is rejected") {
  const std::string good = encode(make_scored(2, 3, 2), true);
  std::mt19937 rng(20240611);
  for (size_t i = 0; i < good.size() * 8; ++i) {  // every bit: the CRC-32 over header and payload sees them all
    std::string f = good;
    f[i / 8] = static_cast<char>(f[i / 8] ^ (1 << (i % 8)));
    INFO("bit " << i);
    error_kind([&] { decode_message(f); });
  }
  for (int trial = 0; trial < 2000; ++trial) {
    std::string f = good;
    const int n = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < n; ++k) f[rng() % f.size()] = static_cast<char>(rng());
    if (f == good) continue;
    INFO("trial " << trial);
    error_kind([&] { decode_message(f); });
  }
}

TEST_CASE("damaged payloads behind a valid CRC: only MessageError, and what decodes re-encodes") {
  // The CRC would stop these at the door; re-framing them exercises the msgpack and field checks.
  const std::string good_payload = payload_of(encode(make_scored(2, 2, 2), true));
  std::mt19937 rng(7);
  int decoded = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string p = good_payload;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n; ++k) p[rng() % p.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) p.resize(rng() % p.size());
    const std::string f = frame_with_payload(3, p);
    try {
      ScoredGroupMsg m = decode_scored_group(f);
      ++decoded;  // e.g. a changed token id or score: still a valid message
      REQUIRE(decode_scored_group(encode(m, true)) == m);
    } catch (const MessageError&) {
    }
  }
  CHECK(decoded < 3000);  // ~150 here: damage to token ids, scores or unknown keys can leave a valid message
}

TEST_CASE("field-level problems are named and rejected") {
  const std::string policy = encode(make_policy(2, 2));
  auto policy_err = [&](const std::function<void(msgpack::object&, msgpack::zone&)>& edit) {
    const std::string f = edit_payload(policy, edit);
    try {
      decode_policy(f);
    } catch (const MessageError& e) {
      REQUIRE(e.kind == MessageErrorKind::kPayload);
      return std::string(e.what());
    }
    FAIL("accepted");
    return std::string();
  };
  auto set_theta = [](uint32_t bits) {
    return [bits](msgpack::object& root, msgpack::zone& z) {
      char* p = own_bytes(field(root, "theta"), z);
      for (int b = 0; b < 4; ++b) p[4 + b] = static_cast<char>((bits >> (8 * b)) & 0xff);
    };
  };
  REQUIRE_THAT(policy_err(set_theta(0x7fc00000u)), Contains("theta[1]") && Contains("not finite"));  // NaN
  REQUIRE_THAT(policy_err(set_theta(0xff800000u)), Contains("not finite"));                          // -inf
  REQUIRE_THAT(policy_err([](auto& r, auto&) { remove_field(r, "theta"); }), Contains("'theta' is missing"));
  // position_base is optional (a sender without it means 0) and within one actor's position space.
  {
    PolicyMsg based = make_policy(2, 2);
    based.position_base = 12345;
    const std::string f = encode(based);
    REQUIRE(decode_policy(f).position_base == 12345);
    REQUIRE(decode_policy(edit_payload(f, [](auto& r, auto&) { remove_field(r, "position_base"); })).position_base ==
            0);
    REQUIRE_THAT(policy_err([](auto& r, auto&) {
                   msgpack::object& o = field(r, "position_base");
                   o.type = msgpack::type::POSITIVE_INTEGER;
                   o.via.u64 = uint64_t(1) << 40;
                 }),
                 Contains("position_base = 1099511627776 is outside [0, 2^40)"));
  }
  REQUIRE_THAT(policy_err([](auto& r, auto&) { field(r, "theta").via.bin.size = 12; }),
               Contains("theta has 3 values, expected num_layers * num_kv_heads = 4"));
  REQUIRE_THAT(policy_err([](auto& r, auto&) { field(r, "theta").via.bin.size = 15; }), Contains("multiple of 4"));
  REQUIRE_THAT(policy_err([](auto& r, auto&) {
                 msgpack::object& o = field(r, "num_layers");
                 o.type = msgpack::type::STR;
                 o.via.str.ptr = "2";
                 o.via.str.size = 1;
               }),
               Contains("'num_layers' must be an integer"));
  REQUIRE_THAT(policy_err([](auto& r, auto&) {
                 msgpack::object& o = field(r, "num_layers");
                 o.type = msgpack::type::NEGATIVE_INTEGER;
                 o.via.i64 = -2;
               }),
               Contains("num_layers = -2"));
  REQUIRE_THAT(policy_err([](auto& r, auto&) {
                 msgpack::object& o = field(r, "stop");
                 o.type = msgpack::type::POSITIVE_INTEGER;
                 o.via.u64 = 1;
               }),
               Contains("'stop' must be a boolean"));
  REQUIRE_THAT(policy_err([](auto& r, auto&) { field(r, "policy_version").via.u64 = (1ull << 63); }),
               Contains("int64 range"));
  REQUIRE_THAT(policy_err([](auto& r, auto&) {
                 msgpack::object& o = field(r, "run_id");
                 o.via.str.ptr = "\xff\xfe";
                 o.via.str.size = 2;
               }),
               Contains("UTF-8"));
  REQUIRE_THAT(policy_err([](auto& r, auto&) {
                 msgpack::object& k = r.via.map.ptr[2].key;  // "step" renamed to "run_id"
                 k.via.str.ptr = "run_id";
                 k.via.str.size = 6;
               }),
               Contains("'run_id' appears twice"));
  REQUIRE_THAT(policy_err([](auto& r, auto&) {
                 r.type = msgpack::type::ARRAY;
                 r.via.array.size = 0;
               }),
               Contains("expected a map"));

  // Unknown fields are ignored (forward compatibility within a format version).
  const std::string extended = edit_payload(policy, [](msgpack::object& r, msgpack::zone& z) {
    auto* kv = static_cast<msgpack::object_kv*>(z.allocate_align(sizeof(msgpack::object_kv) * (r.via.map.size + 1)));
    std::copy(r.via.map.ptr, r.via.map.ptr + r.via.map.size, kv);
    kv[r.via.map.size].key = msgpack::object(std::string("x_future_field"), z);
    kv[r.via.map.size].val = msgpack::object(3.5);
    r.via.map.ptr = kv;
    ++r.via.map.size;
  });
  REQUIRE(decode_policy(extended) == make_policy(2, 2));

  const std::string scored = encode(make_scored(2, 2, 2), true);
  auto scored_err = [&](const std::function<void(msgpack::object&, msgpack::zone&)>& edit) {
    const std::string f = edit_payload(scored, edit);
    try {
      decode_scored_group(f);
    } catch (const MessageError& e) {
      REQUIRE(e.kind == MessageErrorKind::kPayload);
      return std::string(e.what());
    }
    FAIL("accepted");
    return std::string();
  };
  auto rollout0 = [](msgpack::object& r) -> msgpack::object& { return field(r, "rollouts").via.array.ptr[0]; };
  REQUIRE_THAT(scored_err([&](auto& r, auto&) { field(rollout0(r), "mask").via.bin.size = 3; }),
               Contains("rollouts[0]") && Contains("mask has 3 entries, expected num_layers * num_kv_heads = 4"));
  REQUIRE_THAT(scored_err([&](auto& r, auto& z) { own_bytes(field(rollout0(r), "mask"), z)[1] = 2; }),
               Contains("mask[1] = 2"));
  REQUIRE_THAT(scored_err([&](auto& r, auto& z) {
                 char* p = own_bytes(field(r, "behaviour_keep_prob"), z);
                 const uint32_t bits = 0x3fc00000u;  // 1.5f
                 for (int b = 0; b < 4; ++b) p[b] = static_cast<char>((bits >> (8 * b)) & 0xff);
               }),
               Contains("behaviour_keep_prob[0] = 1.5"));
  REQUIRE_THAT(scored_err([&](auto& r, auto&) { field(rollout0(r), "length").via.u64 = 99; }),
               Contains("tokens but length = 99"));
  REQUIRE_THAT(scored_err([&](auto& r, auto&) {
                 msgpack::object& o = field(rollout0(r), "finish_reason");
                 o.via.str.ptr = "crashed";
                 o.via.str.size = 7;
               }),
               Contains("finish_reason 'crashed'"));
  REQUIRE_THAT(scored_err([&](auto& r, auto&) {
                 msgpack::object& o = field(rollout0(r), "text");
                 o.via.str.ptr = "ok \xc3";  // cut in the middle of a character
                 o.via.str.size = 4;
               }),
               Contains("'text' is not valid UTF-8"));
  REQUIRE_THAT(scored_err([&](auto& r, auto&) { field(rollout0(r), "correct").via.u64 = 2; }), Contains("correct = 2"));
  REQUIRE_THAT(scored_err([&](auto& r, auto&) { field(rollout0(r), "excess").via.f64 = std::nan(""); }),
               Contains("excess = nan"));
  REQUIRE_THAT(scored_err([&](auto& r, auto&) { remove_field(rollout0(r), "reward"); }),
               Contains("'reward' is missing"));
  REQUIRE_THAT(scored_err([&](auto& r, auto&) { field(r, "rollouts").via.array.size = 0; }), Contains("no rollouts"));
  REQUIRE_THAT(scored_err([&](auto& r, auto&) { field(r, "text_omitted").via.boolean = true; }),
               Contains("text_omitted is set"));
}

TEST_CASE("hostile msgpack cannot make the decoder allocate or recurse without bound") {
  // Declared sizes far beyond the payload, and nesting past the depth cap.
  const std::string bombs[] = {
      std::string("\xdd\xff\xff\xff\xff", 5),  // array32 of 4G elements
      std::string("\xdf\xff\xff\xff\xff", 5),  // map32 of 4G pairs
      std::string("\xdb\xff\xff\xff\xff", 5),  // str32 of 4 GB
      std::string("\xc6\x7f\xff\xff\xff", 5),  // bin32 of 2 GB
      std::string(200, '\x91') + '\xc0',       // 200 nested one-element arrays
      std::string("\xc1", 1),                  // the never-used byte
      std::string(),                           // empty payload
  };
  for (const std::string& b : bombs) {
    for (uint16_t type = 1; type <= 4; ++type) {
      INFO("type " << type << ", payload of " << b.size() << " bytes");
      REQUIRE(error_kind([&] { decode_message(frame_with_payload(type, b)); }) == MessageErrorKind::kPayload);
    }
  }
}

TEST_CASE("validate checks the receiver's run and model shape") {
  const PolicyMsg p = decode_policy(encode(make_policy(3, 2)));
  REQUIRE_NOTHROW(validate(p, "run-A", 3, 2));
  REQUIRE_NOTHROW(validate(p, "", 0, 0));  // nothing known: nothing checked
  REQUIRE(error_kind([&] { validate(p, "run-B", 3, 2); }) == MessageErrorKind::kForeignRun);
  REQUIRE_THROWS_WITH(validate(p, "run-B", 3, 2), Contains("run-A") && Contains("run-B"));
  REQUIRE(error_kind([&] { validate(p, "run-A", 2, 3); }) == MessageErrorKind::kShape);
  const RolloutGroupMsg g = decode_rollout_group(encode(make_group(2, 2)));
  REQUIRE_NOTHROW(validate(g, "run-A", 2, 2));
  // A group whose masks are right for its own header but wrong for this model.
  REQUIRE(error_kind([&] { validate(g, "run-A", 4, 1); }) == MessageErrorKind::kShape);
  REQUIRE(error_kind([&] { validate(decode_scored_group(encode(make_scored())), "x", 2, 2); }) ==
          MessageErrorKind::kForeignRun);
  REQUIRE(error_kind([&] { validate(make_hello(), "run-B"); }) == MessageErrorKind::kForeignRun);
}

TEST_CASE("encoding refuses what decoding would reject, and cleans rollout text to UTF-8") {
  PolicyMsg p = make_policy();
  p.theta[2] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_AS(encode(p), MessageError);
  p = make_policy();
  p.theta.pop_back();
  REQUIRE_THROWS_WITH(encode(p), Contains("theta has 5 values"));
  p = make_policy();
  p.run_id.clear();
  REQUIRE_THROWS_WITH(encode(p), Contains("'run_id' must not be empty"));
  p = make_policy();
  p.run_id.assign(kMaxIdBytes + 1, 'r');
  REQUIRE_THROWS_WITH(encode(p), Contains("cap"));

  RolloutGroupMsg g = make_group();
  g.rollouts[1].mask.push_back(1);
  REQUIRE_THROWS_WITH(encode(g), Contains("rollouts[1]") && Contains("mask"));
  g = make_group();
  g.rollouts[0].tokens.pop_back();
  REQUIRE_THROWS_WITH(encode(g), Contains("tokens but length"));
  g = make_group();
  g.behaviour_keep_prob[1] = -0.01f;
  REQUIRE_THROWS_AS(encode(g), MessageError);
  g = make_group();
  g.rollouts.clear();
  REQUIRE_THROWS_WITH(encode(g), Contains("no rollouts"));

  ScoredGroupMsg s = make_scored();
  s.rollouts[2].score.reset();
  REQUIRE_THROWS_WITH(encode(s), Contains("rollouts[2]") && Contains("no score"));
  s = make_scored();
  s.rollouts[0].score->excess = 1.5;
  REQUIRE_THROWS_WITH(encode(s), Contains("excess"));
  // A huge finite reward (two of them made a group's mean infinite and the learner's gradient NaN).
  s = make_scored();
  s.rollouts[0].score->reward = 1.7e308;
  REQUIRE_THROWS_WITH(encode(s), Contains("reward = 1.7e+308"));
  s.rollouts[0].score->reward = -kMaxReward;
  REQUIRE_NOTHROW(encode(s));

  HelloMsg h = make_hello();
  h.pid = -1;
  REQUIRE_THROWS_AS(encode(h), MessageError);

  // Byte-level BPE can stop inside a character: such text is sent with U+FFFD in place of the bad bytes.
  g = make_group();
  g.rollouts[0].text = "x = 4\xe2\x82";  // first two bytes of a three-byte character
  g.rollouts[1].text = "\xff ok";
  const RolloutGroupMsg d = decode_rollout_group(encode(g));
  REQUIRE(d.rollouts[0].text == "x = 4\xef\xbf\xbd\xef\xbf\xbd");
  REQUIRE(d.rollouts[1].text == "\xef\xbf\xbd ok");
  REQUIRE(d.rollouts[2].text == g.rollouts[2].text);
}

TEST_CASE("finish reasons are the generator's names") {
  for (const char* r : {"eos", "stop", "length", "repetition"}) REQUIRE(is_valid_finish_reason(r));
  REQUIRE_FALSE(is_valid_finish_reason("EOS"));
  REQUIRE_FALSE(is_valid_finish_reason(""));
}
