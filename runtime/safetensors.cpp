// safetensors reader. The header is untrusted input that decides which bytes of a mapping we hand
// out, so it is validated completely (types, arithmetic, ranges, overlap) before any span is created;
// parsing is split from file I/O so the fuzz target can drive exactly the code that sees hostile
// bytes. Every failure is a UserError with one line naming the file and the tensor or field; the
// JSON library's own exceptions never escape.
//
// Deliberate choices:
//  - Unknown fields in a tensor entry are rejected: the format has exactly three, and an extra one
//    means a writer we do not understand.
//  - Gaps between tensors are allowed (harmless); zero-byte tensors take part in no overlap check,
//    since an empty range cannot alias any byte.
//  - Tensor data are not assumed aligned; callers that need alignment must copy.
//  - A file truncated by another process after mapping raises SIGBUS on access; we cannot defend
//    against that without copying the file.
#include "runtime/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/coding.h"
#include "core/error.h"
#include "core/json_strict.h"

namespace rlkv {
namespace {

using json = nlohmann::json;

// Same cap as the reference implementation: a header is a table of contents, never this large.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three deep (object -> entry -> shape); this leaves room without letting a
// hostile "[[[[..." header grow the parser's stacks.
constexpr int kMaxJsonDepth = 16;
constexpr size_t kMaxQuotedChars = 120;

struct DtypeEntry {
  const char* name;
  SafetensorsDtype dtype;
  size_t size;
};

constexpr DtypeEntry kDtypes[] = {
    {"BOOL", SAFETENSORS_DTYPE_BOOL, 1}, {"U8", SAFETENSORS_DTYPE_U8, 1},   {"I8", SAFETENSORS_DTYPE_I8, 1},
    {"I16", SAFETENSORS_DTYPE_I16, 2},   {"U16", SAFETENSORS_DTYPE_U16, 2}, {"F16", SAFETENSORS_DTYPE_F16, 2},
    {"BF16", SAFETENSORS_DTYPE_BF16, 2}, {"I32", SAFETENSORS_DTYPE_I32, 4}, {"U32", SAFETENSORS_DTYPE_U32, 4},
    {"F32", SAFETENSORS_DTYPE_F32, 4},   {"F64", SAFETENSORS_DTYPE_F64, 8}, {"I64", SAFETENSORS_DTYPE_I64, 8},
    {"U64", SAFETENSORS_DTYPE_U64, 8},
};

const DtypeEntry* find_dtype(SafetensorsDtype d) {
  for (const auto& e : kDtypes)
    if (e.dtype == d) return &e;
  return nullptr;
}

// Names and JSON error text come from the file: keep messages on one line and bounded.
std::string quote(const std::string& s) {
  std::string out = "'";
  size_t n = 0;
  for (unsigned char c : s) {
    if (n++ >= kMaxQuotedChars) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f || c == '\\' || c == '\'') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

std::string type_name(const json& v) { return v.type_name(); }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  return os.str() + "]";
}

// Reads a JSON value that must be an integer in [0, max]; `what` names it in errors.
uint64_t non_negative(const json& v, uint64_t max, const std::string& where, const std::string& what) {
  RLKV_CHECK(!(v.is_number_integer() && !v.is_number_unsigned()), where, ": ", what, " is negative (", v.get<int64_t>(),
             ")");
  RLKV_CHECK(v.is_number_unsigned(), where, ": ", what, " must be a non-negative integer, got ", type_name(v),
             v.is_number_float() ? " (a float, or an integer too large for 64 bits)" : "");
  uint64_t x = v.get<uint64_t>();
  RLKV_CHECK(x <= max, where, ": ", what, " is too large (", x, " > ", max, ")");
  return x;
}

SafetensorsTensorInfo parse_entry(const std::string& name, const json& e, uint64_t data_size,
                                  const std::string& origin) {
  const std::string where = origin + ": tensor " + quote(name);
  RLKV_CHECK(e.is_object(), where, ": entry must be a JSON object, got ", type_name(e));
  for (auto it = e.begin(); it != e.end(); ++it)
    RLKV_CHECK(it.key() == "dtype" || it.key() == "shape" || it.key() == "data_offsets", where, ": unknown field ",
               quote(it.key()), " (expected dtype, shape, data_offsets)");
  for (const char* f : {"dtype", "shape", "data_offsets"})
    RLKV_CHECK(e.contains(f), where, ": missing field '", f, "'");

  SafetensorsTensorInfo info;
  const json& dt = e["dtype"];
  RLKV_CHECK(dt.is_string(), where, ": dtype must be a string, got ", type_name(dt));
  const std::string& dts = dt.get_ref<const std::string&>();
  const DtypeEntry* dtype = nullptr;
  for (const auto& d : kDtypes)
    if (dts == d.name) dtype = &d;
  RLKV_CHECK(dtype != nullptr, where, ": unknown dtype ", quote(dts),
             " (known: BOOL U8 I8 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64)");
  info.dtype = dtype->dtype;

  const json& sh = e["shape"];
  RLKV_CHECK(sh.is_array(), where, ": shape must be an array, got ", type_name(sh));
  uint64_t numel = 1;
  bool overflow = false;
  for (size_t i = 0; i < sh.size(); ++i) {
    uint64_t d = non_negative(sh[i], static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), where,
                              str_cat("shape[", i, "]"));
    info.shape.push_back(static_cast<int64_t>(d));
    overflow = overflow || __builtin_mul_overflow(numel, d, &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype->size), &nbytes);
  // A zero dimension makes the tensor empty whatever the other dimensions say, so overflow in a
  // partial product does not matter then.
  bool empty = std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end();
  if (empty) {
    nbytes = 0;
    overflow = false;
  }
  RLKV_CHECK(!overflow, where, ": shape ", shape_str(info.shape), " overflows 64-bit byte count with dtype ",
             dtype->name);

  const json& off = e["data_offsets"];
  RLKV_CHECK(off.is_array(), where, ": data_offsets must be an array, got ", type_name(off));
  RLKV_CHECK(off.size() == 2, where, ": data_offsets must have 2 elements, got ", off.size());
  const uint64_t u64max = std::numeric_limits<uint64_t>::max();
  info.begin = non_negative(off[0], u64max, where, "data_offsets[0]");
  info.end = non_negative(off[1], u64max, where, "data_offsets[1]");
  RLKV_CHECK(info.begin <= info.end, where, ": data_offsets [", info.begin, ", ", info.end, "] have begin > end");
  RLKV_CHECK(info.end <= data_size, where, ": data_offsets [", info.begin, ", ", info.end,
             "] run past the end of the data (", data_size, " bytes; file truncated?)");
  RLKV_CHECK(info.end - info.begin == nbytes, where, ": data_offsets [", info.begin, ", ", info.end,
             "] disagree with dtype ", dtype->name, " and shape ", shape_str(info.shape), " (", nbytes, " bytes)");
  return info;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

size_t safetensors_dtype_size(SafetensorsDtype dtype) {
  const DtypeEntry* e = find_dtype(dtype);
  RLKV_ASSERT(e != nullptr, "dtype ", static_cast<int>(dtype));
  return e->size;
}

const char* safetensors_dtype_name(SafetensorsDtype dtype) {
  const DtypeEntry* e = find_dtype(dtype);
  RLKV_ASSERT(e != nullptr, "dtype ", static_cast<int>(dtype));
  return e->name;
}

std::map<std::string, SafetensorsTensorInfo> safetensors_parse_header(const char* header, size_t header_len,
                                                                      uint64_t data_size, const std::string& origin,
                                                                      std::map<std::string, std::string>* metadata) {
  try {
    json root = parse_json_strict(header, header_len, origin, "header", kMaxJsonDepth);
    RLKV_CHECK(root.is_object(), origin, ": header must be a JSON object, got ", type_name(root));

    std::map<std::string, SafetensorsTensorInfo> tensors;
    std::map<std::string, std::string> meta;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (it.key() == "__metadata__") {
        const json& m = it.value();
        RLKV_CHECK(m.is_object(), origin, ": __metadata__ must be an object of strings, got ", type_name(m));
        for (auto mi = m.begin(); mi != m.end(); ++mi) {
          RLKV_CHECK(mi.value().is_string(), origin, ": __metadata__ ", quote(mi.key()), " must be a string, got ",
                     type_name(mi.value()));
          meta[mi.key()] = mi.value().get<std::string>();
        }
        continue;
      }
      tensors.emplace(it.key(), parse_entry(it.key(), it.value(), data_size, origin));
    }

    std::vector<std::pair<const std::string*, const SafetensorsTensorInfo*>> ranges;
    for (const auto& [name, info] : tensors)
      if (info.end > info.begin) ranges.emplace_back(&name, &info);
    std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) {
      return std::make_pair(a.second->begin, a.second->end) < std::make_pair(b.second->begin, b.second->end);
    });
    for (size_t i = 1; i < ranges.size(); ++i) {
      const auto& [pn, p] = ranges[i - 1];
      const auto& [cn, c] = ranges[i];
      RLKV_CHECK(c->begin >= p->end, origin, ": tensor ", quote(*cn), " data_offsets [", c->begin, ", ", c->end,
                 "] overlap tensor ", quote(*pn), " [", p->begin, ", ", p->end, "]");
    }

    if (metadata) *metadata = std::move(meta);
    return tensors;
  } catch (const json::exception& e) {
    // Type checks above should make this unreachable; keep the no-escape promise regardless.
    throw_user_error(str_cat(origin, ": bad header: ", json_error_text(e.what())));
  }
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; the check below
  // refuses it (regular files ignore the flag).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  RLKV_CHECK(fd >= 0, path, ": cannot open: ", errno_text());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::string err = errno_text();
    ::close(fd);
    throw_user_error(str_cat(path, ": cannot stat: ", err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_user_error(str_cat(path, ": not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    throw_user_error(str_cat(path, ": file is ", size, " bytes, too short for the 8-byte header length (truncated?)"));
  }
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  RLKV_CHECK(m != MAP_FAILED, path, ": cannot mmap: ", std::strerror(map_errno));
  map_ = m;
  map_size_ = size;

  // From here on the destructor will not run if we throw, so unmap by hand.
  try {
    const uint8_t* p = static_cast<const uint8_t*>(map_);
    const uint64_t n = decode_fixed64(p);
    RLKV_CHECK(n <= kMaxHeaderBytes, path, ": header length ", n, " exceeds the ", kMaxHeaderBytes,
               "-byte limit (not a safetensors file?)");
    RLKV_CHECK(n <= size - 8, path, ": header length ", n, " runs past the end of the ", size,
               "-byte file (truncated?)");
    data_begin_ = p + 8 + n;
    tensors_ = safetensors_parse_header(reinterpret_cast<const char*>(p + 8), n, size - 8 - n, path, &metadata_);
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  RLKV_CHECK(it != tensors_.end(), path_, ": no tensor ", quote(name));
  return it->second;
}

const uint8_t* SafetensorsFile::data(const std::string& name) const { return data_begin_ + info(name).begin; }

SafetensorsModelFiles::SafetensorsModelFiles(const std::string& dir) : dir_(dir) {
  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  struct stat st;
  if (::stat(index_path.c_str(), &st) != 0) {
    RLKV_CHECK(::stat(single_path.c_str(), &st) == 0, dir, ": no model.safetensors or model.safetensors.index.json");
    files_.push_back(std::make_unique<SafetensorsFile>(single_path));
    for (const auto& kv : files_[0]->tensors()) where_[kv.first] = 0;
    return;
  }

  RLKV_CHECK(S_ISREG(st.st_mode), index_path, ": not a regular file");
  RLKV_CHECK(static_cast<uint64_t>(st.st_size) <= kMaxHeaderBytes, index_path, ": ", st.st_size,
             " bytes is too large for an index");
  std::ifstream in(index_path, std::ios::binary);
  RLKV_CHECK(in, index_path, ": cannot open: ", errno_text());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  RLKV_CHECK(!in.bad(), index_path, ": read error");

  json root = parse_json_strict(text.data(), text.size(), index_path, "index", kMaxJsonDepth);
  RLKV_CHECK(root.is_object(), index_path, ": must be a JSON object, got ", type_name(root));
  RLKV_CHECK(root.contains("weight_map"), index_path, ": missing 'weight_map'");
  const json& wm = root["weight_map"];
  RLKV_CHECK(wm.is_object(), index_path, ": weight_map must be an object, got ", type_name(wm));
  RLKV_CHECK(!wm.empty(), index_path, ": weight_map is empty");

  std::map<std::string, size_t> shard_index;  // each shard is mapped once however many tensors it holds
  for (auto it = wm.begin(); it != wm.end(); ++it) {
    const std::string& name = it.key();
    RLKV_CHECK(it.value().is_string(), index_path, ": weight_map ", quote(name), " must be a file name string, got ",
               type_name(it.value()));
    const std::string& file = it.value().get_ref<const std::string&>();
    // Without '/', ".." can only be the whole name; NUL would silently cut the path at open().
    RLKV_CHECK(!file.empty() && file != "." && file != ".." && file.find('/') == std::string::npos &&
                   file.find('\0') == std::string::npos,
               index_path, ": weight_map ", quote(name), ": shard file name ", quote(file),
               " must be a plain file name in the same directory (no '/' or '..')");
    auto [sit, inserted] = shard_index.emplace(file, files_.size());
    if (inserted) {
      const std::string shard_path = dir + "/" + file;
      RLKV_CHECK(::stat(shard_path.c_str(), &st) == 0, index_path, ": weight_map ", quote(name), ": shard ",
                 quote(file), " is missing (", errno_text(), ")");
      files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
    }
    const SafetensorsFile& shard = *files_[sit->second];
    RLKV_CHECK(shard.contains(name), index_path, ": weight_map lists tensor ", quote(name), " in ", shard.path(),
               ", which does not contain it");
    where_[name] = sit->second;
  }
}

bool SafetensorsModelFiles::contains(const std::string& name) const { return where_.count(name) != 0; }

const SafetensorsFile& SafetensorsModelFiles::file_of(const std::string& name) const {
  auto it = where_.find(name);
  RLKV_CHECK(it != where_.end(), dir_, ": no tensor ", quote(name), " in the model's safetensors files");
  return *files_[it->second];
}

std::vector<std::string> SafetensorsModelFiles::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

uint64_t SafetensorsModelFiles::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, idx] : where_) {
    const auto& info = files_[idx]->info(name);
    total += info.end - info.begin;
  }
  return total;
}

}  // namespace rlkv
