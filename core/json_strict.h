#pragma once
// JSON read from users' files, parsed strictly: nlohmann keeps the last of duplicate keys silently, and a
// file that names a key twice is lying about one of them, so duplicates are refused during the parse;
// nesting is capped so that a hostile "[[[[..." cannot grow the parser's stacks. Errors are UserErrors
// on one bounded line naming the origin.
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace rlkv {

// Parses text[0, len) as JSON. `what` names the document in messages ("header", "mask file").
nlohmann::json parse_json_strict(const char* text, size_t len, const std::string& origin, const char* what,
                                 int max_depth = 16);
inline nlohmann::json parse_json_strict(std::string_view text, const std::string& origin, const char* what,
                                        int max_depth = 16) {
  return parse_json_strict(text.data(), text.size(), origin, what, max_depth);
}

// j as text; a string that is not valid UTF-8 (a path, a config comment in Latin-1) is written with
// U+FFFD for its bad bytes instead of the library's exception. indent -1: one line.
std::string dump_json(const nlohmann::json& j, int indent = -1);

// The JSON library's message, minus its "[json.exception.x.y] " tag, on one bounded line (it quotes raw
// input, which may be invalid UTF-8).
std::string json_error_text(std::string_view what);

}  // namespace rlkv
