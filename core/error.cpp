#include "core/error.h"

#include <cstdio>

namespace rlkv {

std::string one_line(std::string_view s, size_t max_len, OneLine bytes) {
  std::string out;
  for (const char ch : s) {
    if (out.size() >= max_len) return out + "...";
    const auto c = static_cast<unsigned char>(ch);
    if (bytes == OneLine::kKeepBytes) {
      out += c == '\n' || c == '\r' ? ' ' : ch;
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

void throw_user_error(const std::string& msg) { throw UserError(msg); }

void throw_internal_error(const char* file, int line, const char* cond, const std::string& msg) {
  throw InternalError(
      str_cat("internal error at ", file, ":", line, ": ", cond, msg.empty() ? "" : " (", msg, msg.empty() ? "" : ")"));
}

}  // namespace rlkv
