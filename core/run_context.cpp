#include "core/run_context.h"

namespace rlkv {

std::atomic<bool>& run_stop_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

}  // namespace rlkv
