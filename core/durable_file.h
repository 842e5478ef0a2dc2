// Crash-safe file writes: a reader of PATH sees its old content or its new content, never a torn
// file. Every output a user or a later run reads back goes through here (datasets, exports,
// evaluation results, run metadata, scored rollouts, checkpoints, model directories).
//
// The contract, for a file PATH:
//   1. the bytes go to a temporary PATH.tmp-<pid>-<n> in PATH's directory, created exclusively, so
//      two writers (threads or processes) never share one;
//   2. the temporary is fsync'ed, renamed over PATH (atomic on POSIX), and PATH's directory is
//      fsync'ed: once the call returns, the new PATH survives a crash or a power loss;
//   3. on any failure the temporary is removed and a one-line UserError naming PATH is thrown; PATH
//      keeps its old content (or stays absent).
// What a crash can leave: at most a stray PATH.tmp-* file beside PATH, never a torn PATH. Readers
// that list a directory skip names containing ".tmp"; a writer may delete its own kind's leftovers.
// Two writers of one PATH at once: the last rename wins, whole.
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace rlkv {

// The file a write of PATH replaces: PATH, or the file its symbolic links lead to (the links stay).
// Throws a one-line UserError when that is a directory, a device, a FIFO or a socket: only absent
// paths and regular files are replaced.
std::string replaceable_file(const std::string& path);

// Checks, before the work whose result goes there, that PATH can be written: replaceable_file, its
// directory exists and is writable, and it is none of the command's `inputs` (the same file through
// any path or link: writing it would replace an input before it is read whole, or lose it; callers
// name the files a directory input reads, see model_files and mask_source_files; empty and absent
// inputs are skipped). Throws a one-line UserError naming `what` (e.g. "--output").
void check_output_file(const std::string& path, const std::string& what, const std::vector<std::string>& inputs = {});

// The same for an output directory: a writable directory, or absent below a writable directory
// (nothing is created here).
void check_output_dir(const std::string& dir, const std::string& what);

// An output directory of fixed file names (a mask directory, DuoAttention's): check_output_dir, then
// check_output_file for each name in it once the directory exists.
void check_output_dir_files(const std::string& dir, const std::vector<std::string>& names, const std::string& what,
                            const std::vector<std::string>& inputs);

// The input side: files read from start to end (datasets, rollouts to score, tokenizer and model
// configuration, masks). Throws a one-line UserError "PATH: is a directory, not WHAT" when PATH
// is a directory, a device or a socket (a read of /dev/zero never ends; a directory reads as
// nothing). Regular files and FIFOs pass (pipes and process substitution, <(zcat x.jsonl.gz), feed
// the streaming readers); an absent or unreadable PATH is left to the caller's open, which names it.
void check_input_file(const std::string& path, const std::string& what);

// PATH.tmp-<pid>-<n>: a name beside PATH that no other call in this process returns.
std::string temp_path_for(const std::string& path);

// Replaces PATH by `text` under the contract above.
void write_file_atomic(const std::string& path, std::string_view text);

// The streaming form, for output produced piece by piece: the constructor checks PATH
// (replaceable_file) and creates the temporary beside the file it replaces,
// append() adds bytes (buffered), commit() makes them PATH under the contract above. Destroyed
// without a commit (an exception on the way), it removes the temporary and PATH is untouched.
// Every failure throws a one-line UserError naming PATH, after removing the temporary.
class DurableFileWriter {
 public:
  explicit DurableFileWriter(std::string path);
  ~DurableFileWriter();
  DurableFileWriter(const DurableFileWriter&) = delete;
  DurableFileWriter& operator=(const DurableFileWriter&) = delete;

  void append(std::string_view bytes);
  void commit();  // at most once
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  void write_all(std::string_view bytes);
  [[noreturn]] void fail(const std::string& problem);
  void discard() noexcept;

  std::string path_, target_, tmp_, buffer_;  // target_: replaceable_file(path_)
  int fd_ = -1;
};

// Building blocks of the contract for writers that make the temporary themselves (through HDF5, or
// a whole directory). They report failure in `ec`, as std::filesystem does, so that the caller
// words its own error.

// fsync of an open file, retried when interrupted.
void sync_file(int fd, std::error_code& ec) noexcept;

// fsync of a directory, so that renames and creations in it are durable. Best effort: a directory
// that cannot be opened or synced (some filesystems refuse) is left as it is.
void sync_dir(const std::string& dir) noexcept;

// Renames `from` (a file, or a directory when `to` does not exist) over `to`, then syncs the
// directory of `to`. `from` should already be synced; ec is set only when the rename fails.
void rename_durably(const std::string& from, const std::string& to, std::error_code& ec) noexcept;

}  // namespace rlkv
