// Helpers shared by the tests: fixture paths, temp dirs, reading reference tensors.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace rlkv_test {

inline std::string fixture(const std::string& rel) { return std::string(RLKV_TEST_FIXTURES) + "/" + rel; }

// A fresh directory under the system temp dir, removed when the object dies.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("rlkv-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  std::string operator/(const std::string& rel) const { return (path / rel).string(); }
};

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

// The names of the entries of `dir`, sorted.
inline std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Exit status of a std::system() result: the command's, or 128 + the signal that killed it.
inline int exit_status(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

// Runs `cmd` with /bin/sh; its exit status.
inline int sh(const std::string& cmd) { return exit_status(std::system(cmd.c_str())); }

// True when an mpirun is on PATH (the tests that launch one skip with a warning otherwise).
inline bool have_mpirun() { return sh("command -v mpirun >/dev/null") == 0; }

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

#ifdef RLKV_BINARY
// The rlkv binary run with `args` (shell syntax), stdin closed; its exit status and both outputs.
struct Run {
  int status = -1;
  std::string out, err;
};

inline Run run_rlkv(const std::string& args) {
  TempDir io;
  const std::string cmd = std::string(RLKV_BINARY) + " " + args + " >" + shell_quote(io / "out") + " 2>" +
                          shell_quote(io / "err") + " </dev/null";
  Run r;
  r.status = sh(cmd);
  r.out = read_text(io / "out");
  r.err = read_text(io / "err");
  return r;
}
#endif

}  // namespace rlkv_test
