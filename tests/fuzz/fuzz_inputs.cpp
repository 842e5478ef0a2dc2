// libFuzzer target for the text files a user hands rlkv: the INI config (core/config.h, with a
// command-line override) and the JSONL problem dataset (problems/dataset.h). The first input byte
// picks the reader; the rest is the file, written to a temporary file as a user's would be:
//   0: a config. Everything up to the first NUL byte is the file, what follows is one override
//      ("section.key=value"). load_config must succeed or throw rlkv::UserError; a config that
//      loads gives back its effective text, which must load again to the same effective text.
//   1: a dataset. load_problems must succeed or throw UserError; what loads keeps the promises of
//      dataset.h (ref_len in 0..1e9, pass_rate -1 or in [0, 1]); load_problems_lenient never
//      throws a UserError for a bad line (it reports it) and keeps one raw line per problem.
// A broken promise is __builtin_trap(); any other exception escapes and aborts, so the fuzzer
// records both as crashes, as it does for ASan / UBSan reports.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "problems/dataset.h"

namespace {

// One temporary file for the whole run, rewritten for each input, in the working directory (run_fuzz.sh
// runs the fuzzer in a directory of its own and removes it afterwards).
const std::string& temp_path() {
  static const std::string path = [] {
    std::string p = "rlkv_fuzz_inputs.XXXXXX";
    const int fd = mkstemp(p.data());
    if (fd < 0) std::abort();
    close(fd);
    return p;
  }();
  return path;
}

void write_file(const std::string& text) {
  std::FILE* f = std::fopen(temp_path().c_str(), "wb");
  if (f == nullptr) std::abort();
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), f) != text.size()) std::abort();
  std::fclose(f);
}

void fuzz_config(const std::string& input) {
  const size_t nul = input.find('\0');
  write_file(input.substr(0, nul));
  std::vector<std::string> overrides;
  if (nul != std::string::npos) overrides.push_back(input.substr(nul + 1));
  std::string effective;
  try {
    effective = rlkv::effective_config_text(rlkv::load_config(temp_path(), overrides));
  } catch (const rlkv::UserError&) {
    return;
  }
  // What a checkpoint records must read back as the same run.
  write_file(effective);
  if (rlkv::effective_config_text(rlkv::load_config(temp_path(), {})) != effective) __builtin_trap();
}

void fuzz_dataset(const std::string& input) {
  write_file(input);
  try {
    for (const rlkv::Problem& p : rlkv::load_problems(temp_path())) {
      if (!(p.ref_len >= 0 && p.ref_len <= 1e9)) __builtin_trap();
      if (!(p.pass_rate == -1 || (p.pass_rate >= 0 && p.pass_rate <= 1))) __builtin_trap();
    }
  } catch (const rlkv::UserError&) {
  }
  try {
    const rlkv::LoadedProblems lp = rlkv::load_problems_lenient(temp_path());
    if (lp.raw.size() != lp.problems.size()) __builtin_trap();
  } catch (const rlkv::UserError&) {
    // A file-level problem (an empty file, no good line) may still be refused as a whole.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1)
    fuzz_dataset(rest);
  else
    fuzz_config(rest);
  return 0;
}
