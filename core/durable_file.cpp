#include "core/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "core/error.h"

namespace rlkv {
namespace {

constexpr size_t kBufferBytes = size_t(1) << 20;
constexpr int kCreateAttempts = 64;  // names taken by leftovers of a dead process with our pid

std::error_code last_error() { return std::error_code(errno, std::generic_category()); }

std::string directory_of(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// What a path that is not a regular file is, for messages.
const char* kind_of(const std::filesystem::file_status& st) {
  namespace fs = std::filesystem;
  return fs::is_directory(st)        ? "a directory"
         : fs::is_character_file(st) ? "a character device"
         : fs::is_block_file(st)     ? "a block device"
         : fs::is_fifo(st)           ? "a FIFO"
         : fs::is_socket(st)         ? "a socket"
                                     : "not a regular file";
}

}  // namespace

void check_input_file(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  RLKV_CHECK(!path.empty(), "an empty path where ", what, " was expected");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);  // through links
  if (!fs::exists(st) || fs::is_regular_file(st) || fs::is_fifo(st)) return;
  throw UserError(one_line(str_cat(path, ": is ", kind_of(st), ", not ", what)));
}

std::string temp_path_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return str_cat(path, ".tmp-", ::getpid(), "-", counter++);
}

void write_file_atomic(const std::string& path, std::string_view text) {
  DurableFileWriter f(path);
  f.append(text);
  f.commit();
}

std::string replaceable_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target(path);
  // Follow symbolic links (a chain of them) to the file they name, so that the link stays a link.
  for (int hops = 0; fs::is_symlink(fs::symlink_status(target, ec)); ++hops) {
    if (hops == 40) throw UserError(one_line(str_cat(path, ": too many levels of symbolic links")));
    const fs::path next = fs::read_symlink(target, ec);
    if (ec) throw UserError(one_line(str_cat(path, ": cannot read the symbolic link (", ec.message(), ")")));
    target = next.is_absolute() ? next : target.parent_path() / next;
  }
  const fs::file_status st = fs::status(target, ec);
  if (fs::exists(st) && !fs::is_regular_file(st))
    throw UserError(one_line(str_cat(path, ": is ", kind_of(st), ", not a file this command may replace")));
  return target.string();
}

namespace {

// Whether a file can be created in `dir` (tried: a temporary file, removed at once; permission bits
// alone do not tell, e.g. for root or on /proc).
bool directory_writable(const std::string& dir) {
  const std::string probe = temp_path_for((std::filesystem::path(dir) / ".rlkv-write-probe").string());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  ::close(fd);
  ::unlink(probe.c_str());
  return true;
}

}  // namespace

void check_output_file(const std::string& path, const std::string& what, const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  RLKV_CHECK(!path.empty(), what, ": empty path");
  const std::string target = replaceable_file(path);
  const std::string dir = directory_of(target);
  std::error_code ec;
  RLKV_CHECK(fs::is_directory(dir, ec), what, " ", path, ": directory ", dir, " does not exist");
  RLKV_CHECK(directory_writable(dir), what, " ", path, ": directory ", dir, " is not writable");
  if (!fs::exists(target, ec)) return;  // a new file replaces nothing
  for (const std::string& input : inputs) {
    if (input.empty()) continue;
    RLKV_CHECK(!fs::equivalent(input, target, ec), what, " ", path, ": is the input file ", input,
               "; write the output elsewhere");
  }
}

void check_output_dir(const std::string& dir, const std::string& what) {
  namespace fs = std::filesystem;
  RLKV_CHECK(!dir.empty(), what, ": empty path");
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(dir), ec).lexically_normal();
  if (fs::exists(p, ec)) {
    RLKV_CHECK(fs::is_directory(p, ec), what, " ", dir, ": exists and is not a directory");
    RLKV_CHECK(directory_writable(p.string()), what, " ", dir, ": the directory is not writable");
    return;
  }
  // Absent: the nearest directory above it that exists must take the directories to be created.
  while (!fs::exists(p, ec) && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  RLKV_CHECK(fs::is_directory(p, ec) && directory_writable(p.string()), what, " ", dir, ": cannot be created (",
             p.string(), " is not a writable directory)");
}

void check_output_dir_files(const std::string& dir, const std::vector<std::string>& names, const std::string& what,
                            const std::vector<std::string>& inputs) {
  check_output_dir(dir, what);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return;  // created later: replaces nothing
  for (const std::string& name : names) check_output_file(dir + "/" + name, what, inputs);
}

// ---- DurableFileWriter -----------------------------------------------------------------------------

DurableFileWriter::DurableFileWriter(std::string path) : path_(std::move(path)), target_(replaceable_file(path_)) {
  for (int attempt = 0; attempt < kCreateAttempts && fd_ < 0; ++attempt) {
    tmp_ = temp_path_for(target_);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    const std::error_code ec = last_error();
    tmp_.clear();  // nothing of ours to remove
    throw UserError(one_line(str_cat(path_, ": cannot open for writing (", ec.message(), ")")));
  }
}

DurableFileWriter::~DurableFileWriter() { discard(); }

void DurableFileWriter::append(std::string_view bytes) {
  RLKV_ASSERT(fd_ >= 0, path_, ": append after commit or failure");
  if (buffer_.size() + bytes.size() > kBufferBytes) {
    write_all(buffer_);
    buffer_.clear();
  }
  if (bytes.size() >= kBufferBytes)
    write_all(bytes);
  else
    buffer_.append(bytes);
}

void DurableFileWriter::commit() {
  RLKV_ASSERT(fd_ >= 0, path_, ": commit after commit or failure");
  write_all(buffer_);
  buffer_.clear();
  std::error_code ec;
  sync_file(fd_, ec);
  if (ec) fail(str_cat("fsync failed (", ec.message(), ")"));
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail(str_cat("write failed at close (", last_error().message(), ")"));
  rename_durably(tmp_, target_, ec);
  if (ec) fail(str_cat("cannot rename into place (", ec.message(), ")"));
  tmp_.clear();  // it is PATH now
}

void DurableFileWriter::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(str_cat("write failed (", last_error().message(), ")"));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void DurableFileWriter::fail(const std::string& problem) {
  discard();
  throw UserError(one_line(str_cat(path_, ": ", problem)));
}

void DurableFileWriter::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
  tmp_.clear();
  buffer_.clear();
}

// ---- building blocks -------------------------------------------------------------------------------

void sync_file(int fd, std::error_code& ec) noexcept {
  ec.clear();
  while (::fsync(fd) != 0) {
    if (errno != EINTR) {
      ec = last_error();
      return;
    }
  }
}

void sync_dir(const std::string& dir) noexcept {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  std::error_code ignored;
  sync_file(fd, ignored);
  ::close(fd);
}

void rename_durably(const std::string& from, const std::string& to, std::error_code& ec) noexcept {
  ec.clear();
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    ec = last_error();
    return;
  }
  sync_dir(directory_of(to));
}

}  // namespace rlkv
