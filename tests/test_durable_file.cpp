// Durable file writes (core/durable_file.h): readers see the old or the new content, never a torn
// file; temporaries are unique per writer and never outlive a call; failures are one-line
// UserErrors naming the path.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/durable_file.h"
#include "core/error.h"
#include "test_util.h"

using namespace rlkv;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

using rlkv_test::names_in;

// One whole write: `size` copies of 'a' or of 'b'. A torn file shows as a mixture or a wrong size.
bool whole(const std::string& text, size_t size) {
  return text.size() == size && text.find_first_not_of(text[0]) == std::string::npos &&
         (text[0] == 'a' || text[0] == 'b');
}

}  // namespace

TEST_CASE("write_file_atomic replaces the file by a rename, never by rewriting it in place") {
  rlkv_test::TempDir dir;
  const std::string path = dir / "out.txt";
  write_file_atomic(path, "first\n");
  // A hard link keeps the old inode: a rename leaves it intact, an in-place rewrite would not.
  fs::create_hard_link(path, dir / "old.txt");
  write_file_atomic(path, "second\n");
  REQUIRE(rlkv_test::read_text(path) == "second\n");
  REQUIRE(rlkv_test::read_text(dir / "old.txt") == "first\n");
  REQUIRE(names_in(dir.str()) == std::vector<std::string>{"old.txt", "out.txt"});
  write_file_atomic(path, "");
  REQUIRE(rlkv_test::read_text(path).empty());
}

TEST_CASE("two threads writing the same path concurrently never produce a torn file and leave no temporaries") {
  rlkv_test::TempDir dir;
  const std::string path = dir / "shared.txt";
  constexpr size_t kSize = 200'000;  // several write() calls' worth, not one atomic page
  constexpr int kWrites = 40;
  write_file_atomic(path, std::string(kSize, 'a'));
  std::atomic<int> writers{2};
  std::atomic<int> torn{0}, reads{0};
  auto writer = [&](char fill) {
    const std::string text(kSize, fill);
    for (int i = 0; i < kWrites; ++i) write_file_atomic(path, text);
    --writers;
  };
  std::thread a(writer, 'a'), b(writer, 'b');
  while (writers > 0) {
    torn += whole(rlkv_test::read_text(path), kSize) ? 0 : 1;
    ++reads;
  }
  a.join();
  b.join();
  INFO(reads << " reads while writing");
  REQUIRE(torn == 0);
  REQUIRE(whole(rlkv_test::read_text(path), kSize));
  REQUIRE(names_in(dir.str()) == std::vector<std::string>{"shared.txt"});
}

TEST_CASE("a write into a missing directory is a one-line UserError naming the path, and creates nothing") {
  rlkv_test::TempDir dir;
  const std::string path = dir / "no/such/dir/out.txt";
  try {
    write_file_atomic(path, "text");
    FAIL("no error");
  } catch (const UserError& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Contains(path));
    CHECK(msg.find('\n') == std::string::npos);
  }
  REQUIRE_THROWS_AS(DurableFileWriter(path), UserError);
  REQUIRE(names_in(dir.str()).empty());
}

TEST_CASE("the streaming writer's temporary sits beside the path and is removed unless committed") {
  rlkv_test::TempDir dir;
  const std::string path = dir / "scored.jsonl";
  rlkv_test::write_text(path, "previous\n");
  std::string tmp;
  {
    DurableFileWriter w(path);
    tmp = w.temp_path();
    REQUIRE(tmp.rfind(path + ".tmp-" + std::to_string(::getpid()) + "-", 0) == 0);
    w.append("half of it");
    REQUIRE(fs::exists(tmp));
  }  // destroyed uncommitted, as when an exception unwinds past it
  REQUIRE_FALSE(fs::exists(tmp));
  REQUIRE(rlkv_test::read_text(path) == "previous\n");
  REQUIRE(names_in(dir.str()) == std::vector<std::string>{"scored.jsonl"});

  DurableFileWriter a(path), b(path);
  REQUIRE(a.temp_path() != b.temp_path());  // two writers never share a temporary
}

TEST_CASE("the streaming writer commits every piece in order, small and large") {
  rlkv_test::TempDir dir;
  const std::string path = dir / "big.bin";
  const std::string large((size_t(3) << 20) + 7, 'x');  // larger than the writer's buffer
  std::string expect;
  {
    DurableFileWriter w(path);
    for (const std::string& piece : {std::string("head\n"), large, std::string("\0tail", 5), large}) {
      w.append(piece);
      expect += piece;
    }
    w.commit();
  }
  REQUIRE(rlkv_test::read_text(path) == expect);
  REQUIRE(names_in(dir.str()) == std::vector<std::string>{"big.bin"});
}

TEST_CASE("temporary names are unique and keep the path as their prefix") {
  const std::string a = temp_path_for("/d/ckpt-5.h5"), b = temp_path_for("/d/ckpt-5.h5");
  REQUIRE(a != b);
  REQUIRE(a.rfind("/d/ckpt-5.h5.tmp-", 0) == 0);
}

TEST_CASE("a write through a symbolic link replaces the file it names and keeps the link") {
  rlkv_test::TempDir d;
  const std::string target = d / "target.json", link = d / "link.json";
  rlkv_test::write_text(target, "old");
  fs::create_symlink("target.json", link);  // relative, as `ln -s` makes it
  write_file_atomic(link, "new");
  CHECK(fs::is_symlink(fs::symlink_status(link)));
  CHECK(rlkv_test::read_text(target) == "new");
  CHECK(names_in(d.str()) == std::vector<std::string>{"link.json", "target.json"});
}

TEST_CASE("directories, devices and FIFOs are never replaced: a one-line UserError, nothing written") {
  rlkv_test::TempDir d;
  fs::create_directories(d / "dir");
  REQUIRE(::mkfifo((d / "fifo").c_str(), 0600) == 0);
  for (const std::string& path : {d / "dir", d / "fifo", std::string("/dev/null")}) {
    CAPTURE(path);
    try {
      write_file_atomic(path, "x");
      FAIL("no error");
    } catch (const UserError& e) {
      const std::string what = e.what();
      CHECK_THAT(what, Contains(path) && Contains("not a file this command may replace"));
      CHECK(what.find('\n') == std::string::npos);
    }
  }
  CHECK(fs::is_character_file("/dev/null"));
  CHECK(names_in(d.str()) == std::vector<std::string>{"dir", "fifo"});
  // The up-front check of an output says the same before any work.
  CHECK_THROWS_WITH(check_output_file(d / "dir", "--output"), Contains("not a file this command may replace"));
  CHECK_THROWS_WITH(check_output_file(d / "missing/x.json", "--output"), Contains("does not exist"));
  CHECK_NOTHROW(check_output_file(d / "new.json", "--output"));
  CHECK_THROWS_WITH(check_output_dir(d / "fifo", "--output"), Contains("not a directory"));
  CHECK_NOTHROW(check_output_dir(d / "to/be/made", "--output"));
  CHECK_FALSE(fs::exists(d / "to"));  // nothing created by the check
  CHECK_THROWS_WITH(check_output_dir(d / "fifo/below", "--output"), Contains("cannot be created"));
}

TEST_CASE("inputs: directories, devices and sockets are refused with one line, files and FIFOs pass") {
  rlkv_test::TempDir d;
  fs::create_directories(d / "dir");
  REQUIRE(::mkfifo((d / "fifo").c_str(), 0600) == 0);
  rlkv_test::write_text(d / "data.jsonl", "{}\n");
  fs::create_symlink(d / "dir", d / "link-to-dir");
  CHECK_THROWS_WITH(check_input_file(d / "dir", "a JSONL file"),
                    Contains(d / "dir") && Contains("is a directory, not a JSONL file"));
  CHECK_THROWS_WITH(check_input_file(d / "link-to-dir", "a JSONL file"), Contains("is a directory"));
  CHECK_THROWS_WITH(check_input_file("/dev/zero", "a JSONL file"), Contains("/dev/zero: is a character device"));
  CHECK_THROWS_AS(check_input_file("/dev/zero", "a JSONL file"), UserError);
  CHECK_NOTHROW(check_input_file(d / "data.jsonl", "a JSONL file"));
  CHECK_NOTHROW(check_input_file(d / "fifo", "a JSONL file"));          // a pipe feeds a streaming reader
  CHECK_NOTHROW(check_input_file(d / "absent.jsonl", "a JSONL file"));  // the caller's open names it
}
