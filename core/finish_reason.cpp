#include "core/finish_reason.h"

namespace rlkv {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kRepetition:
      return "repetition";
  }
  return "?";
}

std::optional<FinishReason> parse_finish_reason(std::string_view name) {
  for (const FinishReason r : kFinishReasons)
    if (name == finish_reason_name(r)) return r;
  return std::nullopt;
}

bool is_valid_finish_reason(std::string_view name) { return parse_finish_reason(name).has_value(); }

bool is_failed_generation(FinishReason r) { return r == FinishReason::kLength || r == FinishReason::kRepetition; }

}  // namespace rlkv
