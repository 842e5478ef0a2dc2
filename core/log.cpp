#include "core/log.h"

#include <cstdlib>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace rlkv {

void log_init() {
  static bool done = false;
  if (done) return;
  done = true;
  auto logger = spdlog::stderr_color_mt("rlkv");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  const char* lvl = std::getenv("RLKV_LOG");
  spdlog::set_level(lvl ? spdlog::level::from_str(lvl) : spdlog::level::info);
}

}  // namespace rlkv
