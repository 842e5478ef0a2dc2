// rlkv error handling: two kinds of check, as c10 has.
//
//  - RLKV_CHECK(cond, parts...): the user's mistake (bad input file, bad config value, bad flag).
//    Throws rlkv::UserError; the entry point prints its one-line message and exits with status 2.
//  - RLKV_ASSERT(cond, parts...): our own invariant. Throws rlkv::InternalError (exit status 1).
//
// Library code never calls exit() or abort(); messages name the file / key / line and what was
// expected, so a user can act on the one line they see.
#pragma once

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace rlkv {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct InternalError : std::logic_error {
  using std::logic_error::logic_error;
};

template <typename... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

// How one_line treats the bytes it keeps.
enum class OneLine {
  kKeepBytes,    // '\n' and '\r' become spaces, every other byte stays
  kEscapeBytes,  // every byte outside printable ASCII (line breaks too) becomes \xNN: for text that
                 // quotes untrusted input, which may be invalid UTF-8
};

// Text (an exception's message, a path, a problem) made fit for a one-line error message. Once the
// result holds max_len bytes, the rest of s is dropped and "..." appended.
std::string one_line(std::string_view s, size_t max_len = std::string::npos, OneLine bytes = OneLine::kKeepBytes);

[[noreturn]] void throw_user_error(const std::string& msg);
[[noreturn]] void throw_internal_error(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace rlkv

#define RLKV_CHECK(cond, ...)                                            \
  do {                                                                   \
    if (!(cond)) ::rlkv::throw_user_error(::rlkv::str_cat(__VA_ARGS__)); \
  } while (0)

#define RLKV_ASSERT(cond, ...)                                                                          \
  do {                                                                                                  \
    if (!(cond)) ::rlkv::throw_internal_error(__FILE__, __LINE__, #cond, ::rlkv::str_cat(__VA_ARGS__)); \
  } while (0)
