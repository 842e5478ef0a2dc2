// Logging: spdlog to stderr, one logger for the whole process. Level from RLKV_LOG (trace, debug,
// info, warn, error; default info).
#pragma once

#include <spdlog/spdlog.h>

namespace rlkv {
void log_init();
}
