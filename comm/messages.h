// Wire messages of the RL pipeline (docs/design.md section 2) and their versioned, checked encoding.
// docs/messages.md is the reference for other languages; this header is the C++ contract.
//
// Flow: learner --PolicyMsg (PUB/SUB)--> actors --RolloutGroupMsg (PUSH/PULL)--> reward workers
//       --ScoredGroupMsg (PUSH/PULL)--> learner. HelloMsg lets an elastic actor announce itself.
//
// Frame (all integers little-endian):
//   offset 0   4 bytes  magic "RLKV"
//          4   u16      format version (kMessageFormatVersion)
//          6   u16      message type (MessageType)
//          8   u32      payload length n in bytes
//         12   n bytes  payload: one MessagePack map with string keys (field names below)
//       12+n   u32      CRC-32 (IEEE, the one of zlib.crc32) of bytes [0, 12+n): header and payload
// The CRC covers the header too: with the payload alone, one flipped bit in the type field turned a
// scored group into a valid rollout group (unknown fields are ignored, see docs/messages.md).
// Arrays of numbers travel as MessagePack `bin` holding packed little-endian values (float32,
// int32, uint8): 4 bytes per logit instead of 5 for a msgpack float32, one copy to decode, and
// Python reads them with struct.unpack("<%df" % n, b) or numpy.frombuffer(b, "<f4").
//
// Decoding trusts nothing: a frame that comes from a socket may be truncated, corrupted, from
// another run, or hostile. Every decode_* checks the frame, the CRC, the MessagePack structure (with
// allocation limits tied to the payload size, so a 20-byte frame cannot ask for gigabytes), every
// field's presence and type, caps on every size, finite floats, probabilities in [0, 1], masks of
// 0/1, and internal consistency (mask and probability lengths = num_layers * num_kv_heads). What the
// frame cannot know (the receiver's run id and model shape) is checked by validate(). Any failure
// throws MessageError, one line, with a kind that receivers count (comm/transport.h DropCounter).
// Encoding runs the same semantic checks first, so we never send what a peer would reject.
//
// Thread safety: free functions on values; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/crc32.h"
#include "core/error.h"

namespace rlkv {

constexpr uint16_t kMessageFormatVersion = 1;
constexpr size_t kMessageHeaderBytes = 12;  // magic, version, type, payload length
constexpr size_t kMessageTrailerBytes = 4;  // CRC-32 of the header and the payload
// Caps. The payload cap bounds what a receiver allocates for one frame; the others bound fields so
// that one bad actor cannot make the learner hold gigabytes of text.
constexpr uint32_t kMaxPayloadBytes = 1u << 30;  // 1 GiB
constexpr size_t kMaxMessageBytes = kMessageHeaderBytes + kMaxPayloadBytes + kMessageTrailerBytes;
constexpr size_t kMaxIdBytes = 1024;          // run_id, actor_id, prompt_id, host
constexpr size_t kMaxAnswerBytes = 1u << 20;  // reference answer, 1 MiB
constexpr size_t kMaxTextBytes = 16u << 20;   // generated text of one rollout, 16 MiB
constexpr int64_t kMaxLayers = 4096, kMaxKvHeads = 4096;
constexpr int64_t kMaxHeads = 1 << 20;  // num_layers * num_kv_heads
// Prompt positions: elastic actors draw from spaces of 2^40 positions each (space 0 is the job's).
constexpr int64_t kPositionSpace = int64_t(1) << 40;
constexpr int64_t kMaxRollouts = 1 << 16;  // G per group
constexpr int64_t kMaxTokens = 1 << 24;    // generated tokens of one rollout
// |reward| of a scored rollout: r = c - lambda_len e is within 1 + reward.lambda_len (<= 1000); two
// rewards near the largest double made a group's mean infinite and the step's gradient NaN.
constexpr double kMaxReward = 1e6;

enum class MessageType : uint16_t { kPolicy = 1, kRolloutGroup = 2, kScoredGroup = 3, kHello = 4 };
const char* message_type_name(MessageType t);  // "policy", "rollout_group", "scored_group", "hello"

// Why a message was rejected; receivers count drops per kind.
enum class MessageErrorKind {
  kFraming,     // too short, bad magic, length mismatch, CRC mismatch, trailing bytes
  kVersion,     // format version this build does not speak
  kType,        // unknown message type, or not the type this receiver takes
  kPayload,     // MessagePack malformed, field missing / duplicated / of the wrong type / out of range
  kForeignRun,  // run_id of another run (validate())
  kShape,       // num_layers / num_kv_heads not the receiver's model (validate())
};
constexpr int kNumMessageErrorKinds = 6;
const char* message_error_kind_name(MessageErrorKind k);  // "framing", "version", ...

// A rejected message (a user-facing condition: bad input from a peer, never our bug).
struct MessageError : UserError {
  MessageError(MessageErrorKind kind, const std::string& what) : UserError(what), kind(kind) {}
  MessageErrorKind kind;
};

// learner -> actors. The gate logits of every (layer, KV head) at policy version `policy_version`.
// `stop` = the run is over: actors finish in-flight work, send nothing more, and exit. The learner
// sends its last theta with it, so a stop message is a valid policy too.
struct PolicyMsg {
  std::string run_id;
  int64_t policy_version = 0;  // >= 0, +1 per published update
  int64_t step = 0;            // learner optimisation step (>= 0)
  int64_t num_layers = 0;      // L, in [1, kMaxLayers]
  int64_t num_kv_heads = 0;    // H_kv, in [1, kMaxKvHeads]
  std::vector<float> theta;    // [L * H_kv] layer-major logits, finite; p = sigmoid(theta)
  bool stop = false;
  std::string rollouts_endpoint;  // where actors push rollout groups (for elastic actors); may be empty
  // Async runs: the first prompt position (within an actor's space of kPositionSpace) the actors
  // draw from; past every position the run's checkpoints used, so a resumed run does not repeat them.
  int64_t position_base = 0;  // in [0, kPositionSpace)
};

// Reward of one rollout (docs/design.md section 4); present only in scored groups.
struct RolloutScore {
  int32_t correct = 0;  // 0 or 1
  double excess = 0;    // length excess e in [0, 1]
  double reward = 0;    // r = c - lambda_len * e, finite
};

struct Rollout {
  std::vector<uint8_t> mask;          // [L * H_kv] sampled head mask, 1 = full cache, 0 = compressed
  std::vector<int32_t> tokens;        // generated token ids (EOS included when it ended the sequence)
  std::string text;                   // decoded generated text (UTF-8, see encode note)
  int64_t length = 0;                 // generated tokens; == tokens.size() whenever tokens travel
  std::string finish_reason = "eos";  // a name of core/finish_reason.h: eos | stop | length | repetition
  int64_t prompt_tokens = 0;          // prompt length in tokens
  std::optional<RolloutScore> score;  // required in ScoredGroupMsg, ignored in RolloutGroupMsg
};

// actors -> reward workers. One prompt and its G rollouts, all sampled from the same behaviour
// policy (version `policy_version`, keep probabilities `behaviour_keep_prob`).
struct RolloutGroupMsg {
  std::string run_id;
  std::string actor_id;
  std::string prompt_id;
  int64_t prompt_index = 0;                // index in the dataset (>= 0)
  int64_t position = 0;                    // global prompt position (step * prompts_per_step + slot; >= 0)
  int64_t policy_version = 0;              // version the masks were sampled from (>= 0)
  std::string answer;                      // reference answer from the dataset
  double ref_len = 0;                      // full-cache reference length in tokens; <= 0: unknown
  int64_t num_layers = 0;                  // L
  int64_t num_kv_heads = 0;                // H_kv
  std::vector<float> behaviour_keep_prob;  // [L * H_kv] sigmoid(theta) at sampling time, in [0, 1]
  std::vector<Rollout> rollouts;           // G >= 1
};

// reward workers -> learner. The group with every rollout's score. To save bandwidth the tokens
// and text of the rollouts are normally omitted (the learner needs masks, lengths and rewards);
// `text_omitted` says so, and then every rollout's tokens and text are empty.
struct ScoredGroupMsg : RolloutGroupMsg {
  ScoredGroupMsg() = default;
  explicit ScoredGroupMsg(RolloutGroupMsg group) : RolloutGroupMsg(std::move(group)) {}
  bool text_omitted = false;
};

// An elastic actor announcing itself (docs/design.md section 2), e.g. on the rollout channel at start.
struct HelloMsg {
  std::string run_id;
  std::string actor_id;
  int64_t pid = 0;        // >= 0
  std::string host;       // hostname, may be empty
  int64_t in_flight = 0;  // groups the actor starts generating now (its claim; the learner counts
                          // claims never delivered by actors that went silent as lost)
};

using Message = std::variant<PolicyMsg, RolloutGroupMsg, ScoredGroupMsg, HelloMsg>;

bool operator==(const PolicyMsg& a, const PolicyMsg& b);
bool operator==(const RolloutScore& a, const RolloutScore& b);
bool operator==(const Rollout& a, const Rollout& b);
bool operator==(const RolloutGroupMsg& a, const RolloutGroupMsg& b);
bool operator==(const ScoredGroupMsg& a, const ScoredGroupMsg& b);
bool operator==(const HelloMsg& a, const HelloMsg& b);

// Encoding: checks the message (same rules as decoding; throws MessageError), returns one frame.
// Rollout text is made valid UTF-8 first (invalid bytes become U+FFFD): byte-level BPE can stop in
// the middle of a character, and MessagePack `str` must be UTF-8 for other languages to read it.
std::string encode(const PolicyMsg& m);
std::string encode(const RolloutGroupMsg& m);
// include_text = false (the default) drops tokens and text (text_omitted = true on the wire).
std::string encode(const ScoredGroupMsg& m, bool include_text = false);
std::string encode(const HelloMsg& m);

// Decoding one frame. decode_message returns whichever type the frame holds; the typed ones also
// require that type (MessageErrorKind::kType otherwise).
MessageType peek_message_type(const void* data, size_t size);  // frame checks only, no CRC/payload
Message decode_message(const void* data, size_t size);
PolicyMsg decode_policy(const void* data, size_t size);
RolloutGroupMsg decode_rollout_group(const void* data, size_t size);
ScoredGroupMsg decode_scored_group(const void* data, size_t size);
HelloMsg decode_hello(const void* data, size_t size);
inline Message decode_message(const std::string& f) { return decode_message(f.data(), f.size()); }
inline PolicyMsg decode_policy(const std::string& f) { return decode_policy(f.data(), f.size()); }
inline RolloutGroupMsg decode_rollout_group(const std::string& f) { return decode_rollout_group(f.data(), f.size()); }
inline ScoredGroupMsg decode_scored_group(const std::string& f) { return decode_scored_group(f.data(), f.size()); }
inline HelloMsg decode_hello(const std::string& f) { return decode_hello(f.data(), f.size()); }

// What only the receiver knows: its run and its model's shape. An empty run_id or a shape of 0
// skips that check. Throws MessageError (kForeignRun, kShape).
void validate(const PolicyMsg& m, const std::string& run_id, int64_t num_layers, int64_t num_kv_heads);
void validate(const RolloutGroupMsg& m, const std::string& run_id, int64_t num_layers, int64_t num_kv_heads);
void validate(const HelloMsg& m, const std::string& run_id);

}  // namespace rlkv
