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

}  // namespace

std::string temp_path_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return str_cat(path, ".tmp-", ::getpid(), "-", counter++);
}

void write_file_atomic(const std::string& path, std::string_view text) {
  DurableFileWriter f(path);
  f.append(text);
  f.commit();
}

// ---- DurableFileWriter -----------------------------------------------------------------------------

DurableFileWriter::DurableFileWriter(std::string path) : path_(std::move(path)) {
  for (int attempt = 0; attempt < kCreateAttempts && fd_ < 0; ++attempt) {
    tmp_ = temp_path_for(path_);
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
  rename_durably(tmp_, path_, ec);
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
