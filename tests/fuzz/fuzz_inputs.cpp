// libFuzzer target for the text files a user hands rlkv: the INI config (core/config.h, with a
// command-line override), the JSONL problem dataset (problems/dataset.h), head-score files
// (masks/head_mask.h) and a model's config.json (runtime/model_config.h). The first input byte picks
// the reader (its low two bits); the rest is the file, written to a file in the working directory:
//   0: a config. Everything up to the first NUL byte is the file, what follows is one override
//      ("section.key=value"). load_config must succeed or throw rlkv::UserError; a config that
//      loads gives back its effective text, which must load again to the same effective text.
//   1: a dataset. load_problems must succeed or throw UserError; what loads keeps the promises of
//      dataset.h (ref_len in 0..1e9, pass_rate -1 or in [0, 1]); load_problems_lenient keeps one
//      raw line per problem.
//   2: head scores, as an rlkv-head-mask JSON file (bit 2 of byte 0) or as a TSV (adapter_weights
//      / full_attention_heads, with a DuoAttention config.json after the first NUL byte). What
//      loads holds L x H finite values, and its masks keep every head at sparsity 0 and fewer heads
//      as the sparsity grows.
//   3: a model's config.json. What loads has whole GQA groups, and RoPE frequencies that are finite.
// A broken promise is __builtin_trap(); any other exception escapes and aborts, so the fuzzer
// records both as crashes, as it does for ASan / UBSan reports.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "masks/head_mask.h"
#include "problems/dataset.h"
#include "runtime/model_config.h"

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

void write_file(const std::string& text, const std::string& path = temp_path()) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
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

void fuzz_head_scores(const std::string& input, bool as_json) {
  std::string path;
  if (as_json) {
    path = "rlkv_fuzz_mask.json";
    write_file(input, path);
  } else {
    // A DuoAttention directory: the scores, and its config.json after the first NUL byte.
    std::filesystem::create_directories("rlkv_fuzz_duo");
    path = "rlkv_fuzz_duo/full_attention_heads.tsv";
    const size_t nul = input.find('\0');
    write_file(input.substr(0, nul), path);
    if (nul != std::string::npos)
      write_file(input.substr(nul + 1), "rlkv_fuzz_duo/config.json");
    else
      std::filesystem::remove("rlkv_fuzz_duo/config.json");
  }
  rlkv::HeadScores s;
  try {
    s = rlkv::load_head_scores(path);
  } catch (const rlkv::UserError&) {
    return;
  }
  if (s.num_layers < 1 || s.num_kv_heads < 1 || int64_t(s.values.size()) != s.num_layers * s.num_kv_heads)
    __builtin_trap();
  for (double v : s.values)
    if (!std::isfinite(v)) __builtin_trap();
  size_t previous = s.values.size() + 1;
  for (double sparsity : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    const std::vector<uint8_t> mask = rlkv::mask_at_sparsity(s, sparsity);
    if (mask.size() != s.values.size()) __builtin_trap();
    size_t kept = 0;
    for (uint8_t m : mask) kept += m;
    if ((sparsity == 0 && kept != mask.size()) || kept > previous) __builtin_trap();
    previous = kept;
  }
}

void fuzz_model_config(const std::string& input) {
  rlkv::ModelConfig c;
  try {
    c = rlkv::parse_model_config(input, "config.json");
  } catch (const rlkv::UserError&) {
    return;
  }
  if (c.num_layers < 1 || c.num_q_heads < 1 || c.num_kv_heads < 1 || c.num_q_heads % c.num_kv_heads != 0 ||
      c.head_dim < 2 || c.head_dim % 2 != 0)
    __builtin_trap();
  const std::vector<double> inv = rlkv::rope_inv_freq(c);
  if (int64_t(inv.size()) != c.head_dim / 2) __builtin_trap();
  for (double f : inv)
    if (!std::isfinite(f) || f < 0) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] & 3) {
    case 0:
      fuzz_config(rest);
      break;
    case 1:
      fuzz_dataset(rest);
      break;
    case 2:
      fuzz_head_scores(rest, (data[0] & 4) != 0);
      break;
    default:
      fuzz_model_config(rest);
  }
  return 0;
}
