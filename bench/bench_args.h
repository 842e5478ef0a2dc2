// Positional arguments of the small benchmarks: `--help` / `-h` prints the usage and exits 0; a
// value that is not a whole number in its range is one line on stderr and exit 2 (std::atoi took
// "--help" for 0 and ran the benchmark on nothing).
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rlkv_bench {

inline void help_or_run(int argc, char** argv, const char* usage) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("%s\n", usage);
      std::exit(0);
    }
}

// argv[i] as an integer in [lo, hi], or `def` when it is not given.
inline int64_t int_arg(int argc, char** argv, int i, int64_t def, int64_t lo, int64_t hi, const char* usage) {
  if (i >= argc) return def;
  const char* s = argv[i];
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s, s + std::strlen(s), v);
  if (ec != std::errc() || *end != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "argument %d: expected a whole number in %lld..%lld, got '%s'; %s\n", i, (long long)lo,
                 (long long)hi, s, usage);
    std::exit(2);
  }
  return v;
}

}  // namespace rlkv_bench
