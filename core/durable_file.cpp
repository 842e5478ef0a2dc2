#include "core/durable_file.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace rlkv {

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    RLKV_CHECK(f.good(), path, ": cannot open for writing");
    f << text;
    f.flush();
    RLKV_CHECK(f.good(), path, ": write failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  RLKV_CHECK(!ec, path, ": cannot rename into place (", ec.message(), ")");
}

}  // namespace rlkv
