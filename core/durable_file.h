// Writing a whole file so that readers see either the old content or the new one, never a torn
// file: the text goes to PATH.tmp, is flushed and checked, and is renamed over PATH. Used for every
// output a user or a later run reads back (datasets, exports, evaluation results, run metadata).
#pragma once

#include <string>

namespace rlkv {

// Throws UserError naming PATH when it cannot be written or renamed into place.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace rlkv
