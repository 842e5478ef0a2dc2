#include "core/error.h"

namespace rlkv {

void throw_user_error(const std::string& msg) { throw UserError(msg); }

void throw_internal_error(const char* file, int line, const char* cond, const std::string& msg) {
  throw InternalError(str_cat("internal error at ", file, ":", line, ": ", cond,
                              msg.empty() ? "" : " (", msg, msg.empty() ? "" : ")"));
}

}  // namespace rlkv
