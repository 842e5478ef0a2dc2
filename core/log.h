// Logging to stderr through spdlog, behind plain functions: spdlog's headers are kept out of every
// translation unit that sees LibTorch, whose bundled fmt (in a PyTorch wheel) clashes with the fmt
// Debian's spdlog is built against. Level from RLKV_LOG (trace, debug, info, warn, error; default info).
#pragma once

#include <string>

namespace rlkv {
void log_init();
void log_debug(const std::string& msg);
void log_info(const std::string& msg);
void log_warn(const std::string& msg);
void log_error(const std::string& msg);
}  // namespace rlkv
