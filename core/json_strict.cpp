#include "core/json_strict.h"

#include <set>
#include <vector>

#include "core/error.h"

namespace rlkv {

namespace {
constexpr size_t kMaxJsonErrorChars = 300;
constexpr size_t kMaxKeyChars = 120;
}  // namespace

std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string json_error_text(std::string_view s) {
  if (s.rfind("[json.exception.", 0) == 0) {
    const size_t close = s.find("] ");
    if (close != std::string_view::npos) s.remove_prefix(close + 2);
  }
  return one_line(s, kMaxJsonErrorChars, OneLine::kEscapeBytes);
}

nlohmann::json parse_json_strict(const char* text, size_t len, const std::string& origin, const char* what,
                                 int max_depth) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> keys;
  auto cb = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    RLKV_CHECK(depth <= max_depth, origin, ": ", what, " nests deeper than ", max_depth, " levels");
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& k = parsed.get_ref<const std::string&>();
        RLKV_CHECK(keys.empty() || keys.back().insert(k).second, origin, ": ", what, ": duplicate key '",
                   one_line(k, kMaxKeyChars, OneLine::kEscapeBytes), "'");
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text, text + len, cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    throw_user_error(str_cat(origin, ": ", what, " is not valid JSON: ", json_error_text(e.what())));
  }
}

}  // namespace rlkv
