#include "rewards/length_reward.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/finish_reason.h"

namespace rlkv {

double length_excess(int64_t length, double ref_len, double slack) {
  if (!(ref_len > 0) || !std::isfinite(ref_len)) return 0.0;
  const double e = double(std::max<int64_t>(length, 0)) / ref_len - (1.0 + slack);
  return std::clamp(e, 0.0, 1.0);
}

bool finish_forces_wrong(std::string_view finish_reason) {
  const std::optional<FinishReason> r = parse_finish_reason(finish_reason);
  return r && is_failed_generation(*r);
}

}  // namespace rlkv
