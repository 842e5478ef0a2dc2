// A head gate's keep probability sigmoid(theta), as the actors draw masks with it and as rollout
// groups carry it (float). The learner's importance ratio uses the same number for the current
// policy, so a rollout drawn from the current policy has rho = 1 exactly, saturated heads included
// (docs/design.md section 3).
#pragma once

#include <cmath>

namespace rlkv {

inline float keep_prob(float theta) { return float(1.0 / (1.0 + std::exp(-double(theta)))); }

}  // namespace rlkv
