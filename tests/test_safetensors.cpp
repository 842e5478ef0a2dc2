// safetensors reader tests. Files are built byte by byte here rather than checked in, so each bad
// case states exactly which lie the header tells and needs no Python to regenerate. Every bad case
// asserts a UserError (not just "some exception") whose message names the file and the problem,
// because that one line is all a user sees.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/safetensors.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using rlkv::SafetensorsFile;
using rlkv::SafetensorsModelFiles;
using rlkv::UserError;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "rlkv_st_XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// header-length prefix + header + data; `declared` overrides the length prefix to make it lie.
std::string st_bytes(const std::string& header, const std::string& data, int64_t declared = -1) {
  return le64(declared < 0 ? header.size() : static_cast<uint64_t>(declared)) + header + data;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

struct Tensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// Lays tensors out back to back, as real writers do, and returns the header text and data buffer.
std::pair<std::string, std::string> layout(const std::vector<Tensor>& ts, const std::string& metadata_json = "") {
  std::string header = "{", data;
  bool first = true;
  if (!metadata_json.empty()) {
    header += "\"__metadata__\":" + metadata_json;
    first = false;
  }
  for (const auto& t : ts) {
    header += first ? "" : ",";
    first = false;
    header += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + t.bytes.size()) + "]}";
    data += t.bytes;
  }
  return {header + "}", data};
}

std::string pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + seed) & 0xff);
  return s;
}

// Runs f, requires a UserError, returns its message; any other outcome fails the test.
std::string user_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected rlkv::UserError, got another exception: " << e.what());
  } catch (...) {
    FAIL("expected rlkv::UserError, got a non-std exception");
  }
  FAIL("expected rlkv::UserError, nothing was thrown");
  return "";
}

// Writes `header` + `data` as `name` in dir and returns the UserError message from opening it.
std::string open_error(const TempDir& dir, const std::string& name, const std::string& header, const std::string& data,
                       int64_t declared = -1) {
  write_file(dir / name, st_bytes(header, data, declared));
  std::string msg = user_error_of([&] { SafetensorsFile f(dir / name); });
  INFO(msg);
  CHECK(msg.find('\n') == std::string::npos);
  return msg;
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

const std::vector<Tensor> kGood = {
    {"a.weight", "F32", {2, 3}, pattern(24, 1)}, {"b.bias", "BF16", {4}, pattern(8, 2)},
    {"step", "I64", {}, pattern(8, 3)},          {"empty", "F16", {0, 5}, ""},
    {"mask", "BOOL", {3}, pattern(3, 4)},
};

}  // namespace

TEST_CASE("safetensors: a good file round-trips dtype, shape, offsets and bytes", "[safetensors]") {
  TempDir dir;
  auto [header, data] = layout(kGood, R"({"format":"pt","note":"x"})");
  write_file(dir / "good.safetensors", st_bytes(header, data));
  SafetensorsFile f(dir / "good.safetensors");

  REQUIRE(f.tensors().size() == kGood.size());
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "x");
  for (const auto& t : kGood) {
    INFO(t.name);
    REQUIRE(f.contains(t.name));
    const auto& info = f.info(t.name);
    CHECK(std::string(rlkv::safetensors_dtype_name(info.dtype)) == t.dtype);
    CHECK(info.shape == t.shape);
    CHECK(info.end - info.begin == t.bytes.size());
    CHECK(std::string(reinterpret_cast<const char*>(f.data(t.name)), t.bytes.size()) == t.bytes);
  }
  CHECK(f.info("a.weight").dtype == rlkv::SAFETENSORS_DTYPE_F32);
  CHECK(rlkv::safetensors_dtype_size(rlkv::SAFETENSORS_DTYPE_BF16) == 2);
  CHECK(rlkv::safetensors_dtype_size(rlkv::SAFETENSORS_DTYPE_U64) == 8);
  CHECK_THAT(user_error_of([&] { f.info("nope"); }), Contains("good.safetensors") && Contains("nope"));

  // Trailing header padding (spaces, as the reference writer aligns with) is valid JSON whitespace.
  write_file(dir / "padded.safetensors", st_bytes(header + "      ", data));
  CHECK(SafetensorsFile(dir / "padded.safetensors").tensors().size() == kGood.size());

  // Empty header object: a valid file with no tensors.
  write_file(dir / "none.safetensors", st_bytes("{}", ""));
  CHECK(SafetensorsFile(dir / "none.safetensors").tensors().empty());

  // A zero-element tensor may claim an empty range anywhere, even inside another tensor's bytes, and
  // its shape may have huge dimensions next to the zero.
  std::string h = "{" + entry("x", "U8", "[4]", "[0,4]") + "," +
                  entry("z", "F64", "[1099511627776,0,1099511627776]", "[2,2]") + "}";
  write_file(dir / "zero.safetensors", st_bytes(h, "abcd"));
  SafetensorsFile z(dir / "zero.safetensors");
  CHECK(z.info("z").shape == std::vector<int64_t>{1099511627776LL, 0, 1099511627776LL});
}

TEST_CASE("safetensors: model dir with one file or with a sharded index", "[safetensors]") {
  TempDir dir;
  auto [h1, d1] = layout({kGood[0], kGood[1]});
  auto [h2, d2] = layout({kGood[2], kGood[4], {"extra.unlisted", "U8", {1}, "z"}});
  write_file(dir / "model-00001-of-00002.safetensors", st_bytes(h1, d1));
  write_file(dir / "model-00002-of-00002.safetensors", st_bytes(h2, d2));
  write_file(dir / "model.safetensors.index.json", R"({"metadata":{"total_size":43},"weight_map":{
      "a.weight":"model-00001-of-00002.safetensors","b.bias":"model-00001-of-00002.safetensors",
      "step":"model-00002-of-00002.safetensors","mask":"model-00002-of-00002.safetensors"}})");

  SafetensorsModelFiles m(dir.path.string());
  CHECK(m.names() == std::vector<std::string>{"a.weight", "b.bias", "mask", "step"});
  CHECK(m.total_bytes() == 24 + 8 + 8 + 3);
  CHECK(m.contains("step"));
  CHECK_FALSE(m.contains("extra.unlisted"));  // the weight_map is the model's list of tensors
  CHECK(m.file_of("a.weight").path() == dir / "model-00001-of-00002.safetensors");
  CHECK(&m.file_of("a.weight") == &m.file_of("b.bias"));  // one mapping per shard
  CHECK(m.file_of("mask").path() == dir / "model-00002-of-00002.safetensors");
  CHECK(std::string(reinterpret_cast<const char*>(m.file_of("step").data("step")), 8) == kGood[2].bytes);
  CHECK_THAT(user_error_of([&] { m.file_of("nope"); }), Contains(dir.path.string()) && Contains("nope"));

  TempDir single;
  auto [h, d] = layout(kGood);
  write_file(single / "model.safetensors", st_bytes(h, d));
  SafetensorsModelFiles s(single.path.string());
  CHECK(s.names().size() == kGood.size());
  CHECK(s.file_of("empty").path() == single / "model.safetensors");

  TempDir empty;
  CHECK_THAT(user_error_of([&] { SafetensorsModelFiles e(empty.path.string()); }),
             Contains(empty.path.string()) && Contains("no model.safetensors or model.safetensors.index.json"));
}

TEST_CASE("safetensors: truncated files and lying header lengths", "[safetensors]") {
  TempDir dir;
  auto [header, data] = layout(kGood);
  const std::string good = st_bytes(header, data);

  write_file(dir / "tiny.safetensors", good.substr(0, 5));
  CHECK_THAT(user_error_of([&] { SafetensorsFile f(dir / "tiny.safetensors"); }),
             Contains("tiny.safetensors") && Contains("too short"));

  write_file(dir / "empty.safetensors", "");
  CHECK_THAT(user_error_of([&] { SafetensorsFile f(dir / "empty.safetensors"); }),
             Contains("empty.safetensors") && Contains("too short"));

  write_file(dir / "cut_header.safetensors", good.substr(0, 8 + header.size() / 2));
  CHECK_THAT(user_error_of([&] { SafetensorsFile f(dir / "cut_header.safetensors"); }),
             Contains("cut_header.safetensors") && Contains("header length") && Contains("truncated"));

  write_file(dir / "cut_data.safetensors", good.substr(0, 8 + header.size() + data.size() / 2));
  CHECK_THAT(user_error_of([&] { SafetensorsFile f(dir / "cut_data.safetensors"); }),
             Contains("cut_data.safetensors") && Contains("past the end") && Contains("truncated"));

  CHECK_THAT(open_error(dir, "long_len.safetensors", header, data, header.size() + data.size() + 1),
             Contains("long_len.safetensors") && Contains("runs past the end"));
  CHECK_THAT(open_error(dir, "huge_len.safetensors", header, data, int64_t(1) << 40),
             Contains("huge_len.safetensors") && Contains("limit"));
  // A length prefix that is too short cuts the JSON: not valid JSON.
  CHECK_THAT(open_error(dir, "short_len.safetensors", header, data, header.size() - 3),
             Contains("short_len.safetensors") && Contains("not valid JSON"));

  CHECK_THAT(user_error_of([&] { SafetensorsFile f(dir / "absent.safetensors"); }),
             Contains("absent.safetensors") && Contains("cannot open"));
  CHECK_THAT(user_error_of([&] { SafetensorsFile f(dir.path.string()); }), Contains("not a regular file"));
  // A FIFO without a writer: refused at once (a plain open for reading would wait for a writer).
  const std::string fifo = dir / "fifo.safetensors";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THAT(user_error_of([&] { SafetensorsFile f(fifo); }), Contains("not a regular file"));
}

TEST_CASE("safetensors: malformed header JSON", "[safetensors]") {
  TempDir dir;
  const std::string t = entry("t", "F32", "[2]", "[0,8]");
  const std::string d8(8, 'x');

  CHECK_THAT(open_error(dir, "notjson.safetensors", "{\"t\": nope", d8),
             Contains("notjson.safetensors") && Contains("not valid JSON"));
  CHECK_THAT(open_error(dir, "array.safetensors", "[1,2,3]", d8),
             Contains("array.safetensors") && Contains("must be a JSON object") && Contains("array"));
  CHECK_THAT(open_error(dir, "string.safetensors", "\"hello\"", d8),
             Contains("string.safetensors") && Contains("must be a JSON object"));
  CHECK_THAT(open_error(dir, "nul.safetensors", std::string("{\0}", 3), d8),
             Contains("nul.safetensors") && Contains("not valid JSON"));
  CHECK_THAT(open_error(dir, "badutf8.safetensors", "{\"\xff\xfe\":1}", d8),
             Contains("badutf8.safetensors") && Contains("not valid JSON"));
  CHECK_THAT(open_error(dir, "dup.safetensors", "{" + t + "," + entry("t", "F32", "[1]", "[0,4]") + "}", d8),
             Contains("dup.safetensors") && Contains("duplicate key") && Contains("'t'"));
  CHECK_THAT(open_error(dir, "dupfield.safetensors",
                        R"({"t":{"dtype":"F32","dtype":"U8","shape":[2],"data_offsets":[0,8]}})", d8),
             Contains("dupfield.safetensors") && Contains("duplicate key") && Contains("dtype"));
  CHECK_THAT(open_error(dir, "deep.safetensors", std::string(100, '[') + std::string(100, ']'), d8),
             Contains("deep.safetensors") && Contains("deeper"));
  CHECK_THAT(open_error(dir, "newline.safetensors", "{\"bad\\nname\":3}", d8),
             Contains("newline.safetensors") && Contains("bad\\x0aname"));
}

TEST_CASE("safetensors: tensor entries that lie", "[safetensors]") {
  TempDir dir;
  const std::string d16(16, 'x');
  auto one = [](const std::string& e) { return "{" + e + "}"; };

  CHECK_THAT(open_error(dir, "dtype.safetensors", one(entry("w", "F8", "[2]", "[0,2]")), d16),
             Contains("dtype.safetensors") && Contains("'w'") && Contains("unknown dtype") && Contains("F8"));
  CHECK_THAT(open_error(dir, "dtype_num.safetensors", R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", d16),
             Contains("dtype_num.safetensors") && Contains("dtype must be a string"));
  CHECK_THAT(open_error(dir, "neg.safetensors", one(entry("w", "F32", "[2,-3]", "[0,8]")), d16),
             Contains("neg.safetensors") && Contains("'w'") && Contains("shape[1]") && Contains("negative"));
  CHECK_THAT(open_error(dir, "float.safetensors", one(entry("w", "F32", "[2.0]", "[0,8]")), d16),
             Contains("float.safetensors") && Contains("non-negative integer"));
  CHECK_THAT(open_error(dir, "shape_obj.safetensors", one(entry("w", "F32", "{}", "[0,8]")), d16),
             Contains("shape_obj.safetensors") && Contains("shape must be an array"));
  CHECK_THAT(
      open_error(dir, "overflow.safetensors", one(entry("w", "F32", "[1099511627776,1099511627776]", "[0,8]")), d16),
      Contains("overflow.safetensors") && Contains("'w'") && Contains("overflow"));
  CHECK_THAT(open_error(dir, "overflow2.safetensors", one(entry("w", "F64", "[2305843009213693952]", "[0,8]")), d16),
             Contains("overflow2.safetensors") && Contains("overflow"));
  CHECK_THAT(open_error(dir, "bigdim.safetensors", one(entry("w", "U8", "[18446744073709551615]", "[0,8]")), d16),
             Contains("bigdim.safetensors") && Contains("too large"));
  CHECK_THAT(open_error(dir, "past.safetensors", one(entry("w", "U8", "[10]", "[10,20]")), d16),
             Contains("past.safetensors") && Contains("'w'") && Contains("past the end"));
  CHECK_THAT(open_error(dir, "reversed.safetensors", one(entry("w", "U8", "[4]", "[8,4]")), d16),
             Contains("reversed.safetensors") && Contains("begin > end"));
  CHECK_THAT(open_error(dir, "negoff.safetensors", one(entry("w", "U8", "[4]", "[-4,0]")), d16),
             Contains("negoff.safetensors") && Contains("data_offsets[0]") && Contains("negative"));
  CHECK_THAT(open_error(dir, "three.safetensors", one(entry("w", "U8", "[4]", "[0,4,8]")), d16),
             Contains("three.safetensors") && Contains("2 elements"));
  CHECK_THAT(open_error(dir, "mismatch.safetensors", one(entry("lm_head.weight", "F32", "[5,7]", "[0,16]")), d16),
             Contains("mismatch.safetensors") && Contains("'lm_head.weight'") && Contains("disagree") &&
                 Contains("F32") && Contains("[5, 7]") && Contains("140 bytes"));
  CHECK_THAT(open_error(dir, "overlap.safetensors",
                        "{" + entry("a", "U8", "[8]", "[0,8]") + "," + entry("b", "U8", "[8]", "[4,12]") + "}", d16),
             Contains("overlap.safetensors") && Contains("overlap") && Contains("'a'") && Contains("'b'"));
  CHECK_THAT(open_error(dir, "same.safetensors",
                        "{" + entry("a", "U8", "[8]", "[0,8]") + "," + entry("b", "U8", "[8]", "[0,8]") + "}", d16),
             Contains("same.safetensors") && Contains("overlap"));
  CHECK_THAT(open_error(dir, "missing.safetensors", R"({"w":{"dtype":"U8","shape":[1]}})", d16),
             Contains("missing.safetensors") && Contains("missing field 'data_offsets'"));
  CHECK_THAT(open_error(dir, "extra.safetensors",
                        R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"stride":[1]}})", d16),
             Contains("extra.safetensors") && Contains("unknown field") && Contains("stride"));
  CHECK_THAT(open_error(dir, "notobj.safetensors", R"({"w":[1,2]})", d16),
             Contains("notobj.safetensors") && Contains("'w'") && Contains("must be a JSON object"));
  CHECK_THAT(open_error(dir, "meta_num.safetensors", R"({"__metadata__":{"format":1}})", d16),
             Contains("meta_num.safetensors") && Contains("__metadata__") && Contains("'format'"));
  CHECK_THAT(open_error(dir, "meta_arr.safetensors", R"({"__metadata__":["pt"]})", d16),
             Contains("meta_arr.safetensors") && Contains("__metadata__"));
  CHECK_THAT(open_error(dir, "meta_nested.safetensors", R"({"__metadata__":{"a":{"b":"c"}}})", d16),
             Contains("meta_nested.safetensors") && Contains("__metadata__"));
}

TEST_CASE("safetensors: bad sharded indexes", "[safetensors]") {
  TempDir dir;
  auto [h1, d1] = layout({kGood[0]});
  write_file(dir / "shard1.safetensors", st_bytes(h1, d1));
  const std::string index = dir / "model.safetensors.index.json";
  auto model_error = [&](const std::string& index_text) {
    write_file(index, index_text);
    return user_error_of([&] { SafetensorsModelFiles m(dir.path.string()); });
  };

  CHECK_THAT(model_error(R"({"weight_map":{"a.weight":"shard1.safetensors","b":"gone.safetensors"}})"),
             Contains("model.safetensors.index.json") && Contains("gone.safetensors") && Contains("missing"));
  CHECK_THAT(
      model_error(R"({"weight_map":{"a.weight":"../shard1.safetensors"}})"),
      Contains("model.safetensors.index.json") && Contains("../shard1.safetensors") && Contains("plain file name"));
  CHECK_THAT(model_error(R"({"weight_map":{"a.weight":".."}})"), Contains("plain file name"));
  CHECK_THAT(model_error(R"({"weight_map":{"a.weight":"/etc/passwd"}})"), Contains("plain file name"));
  CHECK_THAT(model_error(R"({"weight_map":{"a.weight":"shard1.safetensors","lm_head.weight":"shard1.safetensors"}})"),
             Contains("model.safetensors.index.json") && Contains("shard1.safetensors") &&
                 Contains("'lm_head.weight'") && Contains("does not contain"));
  CHECK_THAT(model_error(R"({"weight_map":{"a.weight":3}})"),
             Contains("model.safetensors.index.json") && Contains("file name string"));
  CHECK_THAT(model_error(R"({"weight_map":{}})"), Contains("model.safetensors.index.json") && Contains("empty"));
  CHECK_THAT(model_error(R"({"metadata":{}})"), Contains("model.safetensors.index.json") && Contains("weight_map"));
  CHECK_THAT(model_error("[\"weight_map\"]"), Contains("model.safetensors.index.json") && Contains("JSON object"));
  CHECK_THAT(model_error("{\"weight_map\":"), Contains("model.safetensors.index.json") && Contains("not valid JSON"));
  CHECK_THAT(model_error(R"({"weight_map":{"a.weight":"shard1.safetensors","a.weight":"shard1.safetensors"}})"),
             Contains("model.safetensors.index.json") && Contains("duplicate key"));

  // A broken shard is reported under the shard's own name.
  write_file(dir / "broken.safetensors", "1234");
  CHECK_THAT(model_error(R"({"weight_map":{"a.weight":"broken.safetensors"}})"),
             Contains("broken.safetensors") && Contains("too short"));
}

// Whatever a corrupted header says, the reader either accepts it (after full validation) or throws
// UserError: never another exception, never a crash (run under ASan/UBSan to also catch bad reads).
TEST_CASE("safetensors: flipping header bytes gives success or UserError only", "[safetensors]") {
  TempDir dir;
  auto [header, data] = layout(kGood, R"({"format":"pt"})");
  const std::string good = st_bytes(header, data);
  const std::string path = dir / "flip.safetensors";
  size_t ok = 0, rejected = 0;

  auto try_open = [&](const std::string& bytes, const std::string& what) {
    write_file(path, bytes);
    try {
      SafetensorsFile f(path);
      uint64_t hdr_len = 0;
      for (int i = 7; i >= 0; --i) hdr_len = (hdr_len << 8) | static_cast<unsigned char>(bytes[i]);
      for (const auto& [name, info] : f.tensors()) {  // every span handed out lies inside the file
        REQUIRE(info.begin <= info.end);
        REQUIRE(8 + hdr_len + info.end <= bytes.size());
      }
      ++ok;
    } catch (const UserError& e) {
      REQUIRE(std::string(e.what()).find("flip.safetensors") != std::string::npos);
      ++rejected;
    } catch (const std::exception& e) {
      FAIL(what << ": expected success or UserError, got: " << e.what());
    } catch (...) {
      FAIL(what << ": expected success or UserError, got a non-std exception");
    }
  };

  // Every byte of the length prefix and the header, with several masks (low bit, case bit, high bit, all).
  for (size_t pos = 0; pos < 8 + header.size(); ++pos)
    for (unsigned mask : {0x01u, 0x20u, 0x80u, 0xffu}) {
      std::string b = good;
      b[pos] = static_cast<char>(static_cast<unsigned char>(b[pos]) ^ mask);
      try_open(b, "byte " + std::to_string(pos) + " ^ " + std::to_string(mask));
    }

  // Seeded multi-byte damage: 300 files with 1-4 random bytes replaced by random values.
  std::mt19937 rng(20240531);
  std::uniform_int_distribution<size_t> pos_d(0, 8 + header.size() - 1);
  std::uniform_int_distribution<int> byte_d(0, 255), count_d(1, 4);
  for (int i = 0; i < 300; ++i) {
    std::string b = good;
    for (int k = count_d(rng); k > 0; --k) b[pos_d(rng)] = static_cast<char>(byte_d(rng));
    try_open(b, "random sample " + std::to_string(i));
  }
  INFO("accepted " << ok << ", rejected " << rejected);
  CHECK(rejected > 0);
  CHECK(ok > 0);  // flips inside tensor names or metadata strings leave a valid file
}
