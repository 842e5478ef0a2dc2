#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>

namespace rlkv {

void log_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = spdlog::stderr_color_mt("rlkv");
    logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    spdlog::set_default_logger(logger);
    const char* lvl = std::getenv("RLKV_LOG");
    spdlog::set_level(lvl ? spdlog::level::from_str(lvl) : spdlog::level::info);
  });
}

void log_debug(const std::string& msg) { spdlog::debug("{}", msg); }
void log_info(const std::string& msg) { spdlog::info("{}", msg); }
void log_warn(const std::string& msg) { spdlog::warn("{}", msg); }
void log_error(const std::string& msg) { spdlog::error("{}", msg); }

}  // namespace rlkv
