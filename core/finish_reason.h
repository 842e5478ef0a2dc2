// Why a generation stopped: the one list of finish reasons, shared by the generator that sets them,
// the wire messages that carry them and the rewards that judge them.
#pragma once

#include <optional>
#include <string_view>

namespace rlkv {

enum class FinishReason {
  kEos,         // an end-of-sequence token
  kStop,        // a stop string
  kLength,      // the length cap
  kRepetition,  // the repetition detector (docs/design.md section 4)
};

constexpr FinishReason kFinishReasons[] = {FinishReason::kEos, FinishReason::kStop, FinishReason::kLength,
                                           FinishReason::kRepetition};

// "eos", "stop", "length", "repetition": the name in messages, JSONL files and metrics.
const char* finish_reason_name(FinishReason r);

// The reason with exactly this name (case-sensitive), or nullopt.
std::optional<FinishReason> parse_finish_reason(std::string_view name);

bool is_valid_finish_reason(std::string_view name);

// The generation failed whatever it wrote: it hit the length cap or was stopped by the repetition
// detector.
bool is_failed_generation(FinishReason r);

}  // namespace rlkv
