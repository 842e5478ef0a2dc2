// HDF5 checkpoints: see checkpoint.h for the layout and docs/checkpoint.md for the rules.
//
// Why a header of our own in the HDF5 user block: HDF5 1.10 checks few of its own structures (the
// default superblock and object headers carry no checksums, variable-length strings live in an
// unchecked global heap, raw data is never checked), and its parser has crashed on fuzzed files
// before. A bit flip in the logits would otherwise resume training silently from a wrong policy.
// So every byte after the 512-byte user block is covered by a CRC-32 that is checked before HDF5
// sees the file, and HDF5 then opens the very bytes that were checked (an in-memory image through
// the core driver), not the path a second time.
//
// Header, little-endian, 512 bytes (the HDF5 user block; HDF5 finds its superblock at byte 512):
//   [0, 8)    magic "RLKVCKPT"
//   [8, 12)   header version (1)
//   [12, 16)  user block size (512)
//   [16, 24)  payload bytes: file size - 512
//   [24, 28)  CRC-32 (zlib's polynomial) of the payload
//   [28, 32)  CRC-32 of these 512 bytes with this field zeroed
//   [32, 512) a line of text for people who open the file in an editor, then zeros
#include "checkpoint/checkpoint.h"

#include "core/checkpoint_name.h"
#include "core/crc32.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/coding.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace rlkv {
namespace {

constexpr size_t kUserBlock = 512;
constexpr char kMagic[8] = {'R', 'L', 'K', 'V', 'C', 'K', 'P', 'T'};
constexpr uint32_t kHeaderVersion = 1;
constexpr unsigned char kHdf5Signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
constexpr const char* kHeaderNote =
    "rlkv checkpoint. HDF5 file from byte 512 (h5py and h5dump read it as is). docs/checkpoint.md\n";
constexpr const char* kHistorySeries[] = {"reward_mean",    "correct_mean", "sparsity_expected",
                                          "penalty_weight", "length_ratio", "truncated_rate"};
// Bounds that keep a hostile header from making us allocate absurd amounts of memory.
constexpr int64_t kMaxDim = int64_t(1) << 20;
constexpr int64_t kMaxHeads = int64_t(1) << 26;

std::array<unsigned char, kUserBlock> make_header(uint64_t payload_bytes, uint32_t payload_crc) {
  std::array<unsigned char, kUserBlock> h{};
  std::memcpy(h.data(), kMagic, 8);
  encode_fixed32(h.data() + 8, kHeaderVersion);
  encode_fixed32(h.data() + 12, kUserBlock);
  encode_fixed64(h.data() + 16, payload_bytes);
  encode_fixed32(h.data() + 24, payload_crc);
  std::memcpy(h.data() + 32, kHeaderNote, std::strlen(kHeaderNote));
  encode_fixed32(h.data() + 28, crc32_update(0, h.data(), h.size()));
  return h;
}

bool has_hdf5_signature_at(const std::string& bytes, size_t offset) {
  return bytes.size() >= offset + 8 && std::memcmp(bytes.data() + offset, kHdf5Signature, 8) == 0;
}

// ---- errors ----------------------------------------------------------------------------------------

[[noreturn]] void fail_read(const std::string& path, const std::string& problem) {
  throw UserError(one_line(str_cat("checkpoint ", path, ": ", problem)));
}

[[noreturn]] void fail_write(const std::string& path, const std::string& problem) {
  throw UserError(one_line(str_cat("cannot write checkpoint ", path, ": ", problem)));
}

std::string errno_text() { return std::strerror(errno); }

// ---- HDF5 plumbing ---------------------------------------------------------------------------------

// HDF5 is thread-safe only when built so (Debian's is); serialise our calls either way.
// The first use also turns off HDF5's clean-up at exit: a file whose close failed (a full disk while
// writing, metadata damaged behind a forged checksum while reading) stays on HDF5's list of open
// files, and that clean-up then crashes closing it (SIGSEGV in H5F__close_cb) or prints "infinite
// loop closing library" with its identifier dump after the one-line error. Every file this module
// opens is closed by H5Id before it returns, so nothing is left for the clean-up to flush.
std::mutex& h5_mutex() {
  static std::mutex m;
  static const bool no_atexit = [] {
    H5dont_atexit();  // before any other HDF5 call, as the library requires
    return true;
  }();
  (void)no_atexit;
  return m;
}

// Turns HDF5's automatic error printing off for the current thread while alive, and restores it.
class H5Quiet {
 public:
  H5Quiet() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~H5Quiet() {
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, func_, data_);
  }
  H5Quiet(const H5Quiet&) = delete;
  H5Quiet& operator=(const H5Quiet&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The most specific message on HDF5's error stack (e.g. "truncated file"), then clears the stack.
std::string h5_detail() {
  std::string out;
  auto cb = [](unsigned n, const H5E_error2_t* e, void* client) -> herr_t {
    auto* s = static_cast<std::string*>(client);
    if (n == 0 && e && e->desc) *s = e->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, cb, &out);
  H5Eclear2(H5E_DEFAULT);
  // A failed read or write of the file driver carries the system's message among its buffer
  // addresses and offsets ("... errno = 28, error message = 'No space left on device', buf = ..."):
  // that message alone.
  const std::string tag = "error message = '";
  const size_t at = out.find(tag);
  if (at != std::string::npos) {
    const size_t end = out.find('\'', at + tag.size());
    if (end != std::string::npos) return out.substr(at + tag.size(), end - at - tag.size());
  }
  return out.empty() ? "HDF5 error" : out;
}

// Owns one HDF5 identifier and closes it with the matching H5?close.
class H5Id {
 public:
  H5Id() = default;
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Id(H5Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Id& operator=(H5Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() { reset(); }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  // Closes now and reports whether HDF5 managed to (for the file, where close means write).
  bool close() {
    herr_t rc = id_ >= 0 ? close_(id_) : 0;
    id_ = -1;
    return rc >= 0;
  }

 private:
  void reset() {
    if (id_ >= 0) close_(id_);
    id_ = -1;
  }
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// ---- writing ---------------------------------------------------------------------------------------

class Writer {
 public:
  explicit Writer(std::string final_path) : path_(std::move(final_path)) {}

  H5Id check(hid_t id, herr_t (*close)(hid_t), const std::string& what) const {
    if (id < 0) fail_write(path_, str_cat(what, " failed (", h5_detail(), ")"));
    return H5Id(id, close);
  }
  void check(herr_t rc, const std::string& what) const {
    if (rc < 0) fail_write(path_, str_cat(what, " failed (", h5_detail(), ")"));
  }

  // Object creation properties without modification times, so that one state gives one file.
  H5Id object_plist(hid_t cls) const {
    H5Id p = check(H5Pcreate(cls), H5Pclose, "H5Pcreate");
    check(H5Pset_obj_track_times(p.get(), 0), "H5Pset_obj_track_times");
    return p;
  }

  H5Id group(hid_t loc, const char* name) const {
    H5Id gcpl = object_plist(H5P_GROUP_CREATE);
    return check(H5Gcreate2(loc, name, H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose,
                 str_cat("creating group ", name));
  }

  void attr(hid_t loc, const char* name, hid_t file_type, hid_t mem_type, const void* data, hsize_t n,
            bool scalar) const {
    H5Id space = check(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), H5Sclose, "H5Screate");
    H5Id a = check(H5Acreate2(loc, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                   str_cat("creating attribute ", name));
    check(H5Awrite(a.get(), mem_type, data), str_cat("writing attribute ", name));
  }
  void attr_i64(hid_t loc, const char* name, int64_t v) const {
    attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, 1, true);
  }
  void attr_f64(hid_t loc, const char* name, double v) const {
    attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, 1, true);
  }
  // Variable-length UTF-8: what h5py reads back as str (invalid UTF-8 comes back surrogate-escaped).
  void attr_str(hid_t loc, const char* name, const std::string& v) const {
    H5Id t = check(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
    check(H5Tset_size(t.get(), H5T_VARIABLE), "H5Tset_size");
    check(H5Tset_cset(t.get(), H5T_CSET_UTF8), "H5Tset_cset");
    const char* p = v.c_str();
    attr(loc, name, t.get(), t.get(), &p, 1, true);
  }

  void dataset(hid_t loc, const char* name, hid_t file_type, hid_t mem_type, std::vector<hsize_t> dims,
               const void* data) const {
    H5Id space =
        check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose, "H5Screate_simple");
    H5Id dcpl = object_plist(H5P_DATASET_CREATE);
    H5Id d = check(H5Dcreate2(loc, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose,
                   str_cat("creating dataset ", name));
    hsize_t n = 1;
    for (hsize_t x : dims) n *= x;
    if (n > 0) check(H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), str_cat("writing ", name));
  }

  void write_hdf5(const std::string& tmp, const CheckpointState& s) const {
    H5Id fcpl = check(H5Pcreate(H5P_FILE_CREATE), H5Pclose, "H5Pcreate");
    check(H5Pset_userblock(fcpl.get(), kUserBlock), "H5Pset_userblock");
    // The root group's header takes its times from the file creation list: none there either.
    check(H5Pset_obj_track_times(fcpl.get(), 0), "H5Pset_obj_track_times");
    H5Id fapl = check(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate");
    check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "H5Pset_fclose_degree");
    // The 1.8 file format: superblock, object headers and link storage carry HDF5's own checksums
    // (defence in depth behind our CRC); every HDF5 >= 1.8 and h5py read it.
    check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18), "H5Pset_libver_bounds");
#if (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7) || H5_VERSION_GE(1, 12, 1)
    // The temporary file is ours alone; lock-less file systems (NFS, Lustre) must not fail the save.
    check(H5Pset_file_locking(fapl.get(), 0, 1), "H5Pset_file_locking");
#endif
    H5Id f = check(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose, str_cat("creating ", tmp));
    hid_t root = f.get();
    const hsize_t L = static_cast<hsize_t>(s.num_layers), H = static_cast<hsize_t>(s.num_kv_heads);
    const hsize_t N = s.history.step.size();

    attr_i64(root, "format_version", kCheckpointFormatVersion);
    attr_str(root, "model", s.model);
    attr_str(root, "run_id", s.run_id);
    attr_i64(root, "num_layers", s.num_layers);
    attr_i64(root, "num_kv_heads", s.num_kv_heads);
    attr_i64(root, "sink", s.sink);
    attr_i64(root, "window", s.window);
    attr_i64(root, "step", s.step);
    attr_i64(root, "policy_version", s.policy_version);
    attr_str(root, "config", s.config);
    attr_f64(root, "penalty_beta", s.penalty_beta);
    attr_i64(root, "data_epoch", s.data_epoch);
    attr_i64(root, "data_position", s.data_position);

    {
      H5Id g = group(root, "policy");
      dataset(g.get(), "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {L, H}, s.logits.data());
    }
    {
      H5Id g = group(root, "optimizer");
      dataset(g.get(), "m", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {L, H}, s.adam_m.data());
      dataset(g.get(), "v", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {L, H}, s.adam_v.data());
      attr_i64(g.get(), "step", s.adam_step);
      attr_f64(g.get(), "lr", s.lr);
      const double betas[2] = {s.beta1, s.beta2};
      attr(g.get(), "betas", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, betas, 2, false);
      attr_f64(g.get(), "eps", s.eps);
      attr_f64(g.get(), "weight_decay", s.weight_decay);
    }
    {
      H5Id g = group(root, "history");
      const CheckpointHistory& h = s.history;
      dataset(g.get(), "step", H5T_STD_I64LE, H5T_NATIVE_INT64, {N}, h.step.data());
      const std::vector<double>* series[] = {&h.reward_mean,    &h.correct_mean, &h.sparsity_expected,
                                             &h.penalty_weight, &h.length_ratio, &h.truncated_rate};
      for (size_t i = 0; i < 6; ++i)
        dataset(g.get(), kHistorySeries[i], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {N}, series[i]->data());
      dataset(g.get(), "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {N, L, H}, h.logits.data());
    }
    {
      H5Id g = group(root, "rng");
      for (const auto& [name, text] : s.rng_states) attr_str(g.get(), name.c_str(), text);
    }
    check(H5Fflush(f.get(), H5F_SCOPE_GLOBAL), "H5Fflush");
    if (!f.close()) fail_write(path_, str_cat("closing ", tmp, " failed (", h5_detail(), ")"));
  }

 private:
  std::string path_;
};

// Writes the header over the user block of `path` (an HDF5 file with a 512-byte user block) and
// fsyncs the file. `fail(problem)` throws the caller's error (write vs. reseal); it must not return.
template <typename Fail>
void seal_file(const std::string& path, Fail fail) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) fail(str_cat("cannot open ", path, " (", errno_text(), ")"));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(str_cat("cannot stat ", path, " (", errno_text(), ")"));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  unsigned char sig[8] = {};
  if (size < kUserBlock + 8 || ::pread(fd, sig, 8, kUserBlock) != 8 || std::memcmp(sig, kHdf5Signature, 8) != 0)
    fail("not an HDF5 file with a 512-byte user block");
  std::vector<unsigned char> buf(size_t(1) << 20);
  uint32_t crc = 0;
  for (uint64_t off = kUserBlock; off < size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
    ssize_t got = ::pread(fd, buf.data(), want, static_cast<off_t>(off));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) fail(str_cat("cannot read ", path, " (", got < 0 ? errno_text() : "unexpected end", ")"));
    crc = crc32_update(crc, buf.data(), static_cast<size_t>(got));
    off += static_cast<uint64_t>(got);
  }
  const auto header = make_header(size - kUserBlock, crc);
  if (::pwrite(fd, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()))
    fail(str_cat("cannot write the header of ", path, " (", errno_text(), ")"));
  std::error_code ec;
  sync_file(fd, ec);
  if (ec) fail(str_cat("fsync of ", path, " failed (", ec.message(), ")"));
}

// A temporary file of write_checkpoint: ckpt-<step>.h5.tmp-<anything>.
bool is_temp_name(const std::string& name) {
  const size_t at = name.find(".h5.tmp-");
  return at != std::string::npos && checkpoint_step_of(name.substr(0, at + 3)) >= 0;
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const int64_t step = checkpoint_step_of(it->path().filename().string());
    if (step >= 0) out.emplace_back(step, it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- validation shared by writer and reader --------------------------------------------------------

bool finite_all(const std::vector<float>& v, size_t* bad) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) {
      *bad = i;
      return false;
    }
  return true;
}

std::string fmt_float(double x) { return str_cat(x); }

// Inconsistencies the learner could only produce by a bug (sizes, counters, history order).
std::string structure_problem(const CheckpointState& s) {
  if (s.num_layers < 1 || s.num_layers > kMaxDim)
    return str_cat("num_layers ", s.num_layers, " is not in [1, ", kMaxDim, "]");
  if (s.num_kv_heads < 1 || s.num_kv_heads > kMaxDim)
    return str_cat("num_kv_heads ", s.num_kv_heads, " is not in [1, ", kMaxDim, "]");
  const int64_t n = s.num_layers * s.num_kv_heads;
  if (n > kMaxHeads) return str_cat("num_layers x num_kv_heads = ", n, " heads is implausibly large");
  const auto un = static_cast<size_t>(n);
  if (s.logits.size() != un) return str_cat("logits has ", s.logits.size(), " values, expected L x H_kv = ", n);
  if (s.adam_m.size() != un) return str_cat("optimizer m has ", s.adam_m.size(), " values, expected ", n);
  if (s.adam_v.size() != un) return str_cat("optimizer v has ", s.adam_v.size(), " values, expected ", n);
  for (auto [name, v] : {std::pair<const char*, int64_t>{"step", s.step},
                         {"policy_version", s.policy_version},
                         {"sink", s.sink},
                         {"window", s.window},
                         {"data_epoch", s.data_epoch},
                         {"data_position", s.data_position},
                         {"optimizer step", s.adam_step}})
    if (v < 0) return str_cat(name, " is negative (", v, ")");
  const CheckpointHistory& h = s.history;
  const size_t N = h.step.size();
  const std::vector<double>* series[] = {&h.reward_mean,    &h.correct_mean, &h.sparsity_expected,
                                         &h.penalty_weight, &h.length_ratio, &h.truncated_rate};
  for (size_t i = 0; i < 6; ++i)
    if (series[i]->size() != N)
      return str_cat("history ", kHistorySeries[i], " has ", series[i]->size(), " entries, history step has ", N);
  if (h.logits.size() / un != N || h.logits.size() % un != 0)
    return str_cat("history logits has ", h.logits.size(), " values, expected steps x L x H_kv = ", N, " x ", n);
  for (size_t i = 0; i < N; ++i) {
    if (h.step[i] < 0) return str_cat("history step[", i, "] is negative (", h.step[i], ")");
    if (i > 0 && h.step[i] <= h.step[i - 1])
      return str_cat("history steps are not increasing (", h.step[i - 1], " then ", h.step[i], " at entry ", i, ")");
  }
  if (N > 0 && h.step.back() > s.step)
    return str_cat("history reaches step ", h.step.back(), " beyond the checkpoint's step ", s.step);
  return {};
}

// Values that cannot be resumed from: non-finite parameters or optimizer state.
std::string value_problem(const CheckpointState& s) {
  size_t i = 0;
  if (!finite_all(s.logits, &i)) return str_cat("logits[", i, "] is ", fmt_float(s.logits[i]));
  if (!finite_all(s.adam_m, &i)) return str_cat("optimizer m[", i, "] is ", fmt_float(s.adam_m[i]));
  if (!finite_all(s.adam_v, &i)) return str_cat("optimizer v[", i, "] is ", fmt_float(s.adam_v[i]));
  for (size_t k = 0; k < s.adam_v.size(); ++k)
    if (s.adam_v[k] < 0) return str_cat("optimizer v[", k, "] is negative (", s.adam_v[k], ")");
  if (!finite_all(s.history.logits, &i)) return str_cat("history logits[", i, "] is ", fmt_float(s.history.logits[i]));
  for (auto [name, v] : {std::pair<const char*, double>{"optimizer lr", s.lr},
                         {"optimizer eps", s.eps},
                         {"optimizer weight_decay", s.weight_decay}})
    if (!std::isfinite(v) || v < 0) return str_cat(name, " is ", fmt_float(v), ", expected finite and >= 0");
  for (auto [name, v] :
       {std::pair<const char*, double>{"optimizer betas[0]", s.beta1}, {"optimizer betas[1]", s.beta2}})
    if (!(v >= 0 && v < 1)) return str_cat(name, " is ", fmt_float(v), ", expected in [0, 1)");
  if (!std::isfinite(s.penalty_beta)) return str_cat("penalty_beta is ", fmt_float(s.penalty_beta));
  return {};
}

// ---- reading ---------------------------------------------------------------------------------------

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& problem) const { fail_read(path_, problem); }

  // Link `name` under `loc` (shown as `where`) exists and is an object of `type`; opened.
  H5Id open(hid_t loc, const char* name, const std::string& where, H5I_type_t type) const {
    htri_t e = H5Lexists(loc, name, H5P_DEFAULT);
    if (e < 0) fail(str_cat("cannot look up ", where, " (", h5_detail(), ")"));
    if (e == 0) fail(str_cat("missing ", where));
    hid_t id = H5Oopen(loc, name, H5P_DEFAULT);
    if (id < 0) fail(str_cat("cannot open ", where, " (", h5_detail(), ")"));
    H5Id o(id, H5Oclose);
    if (H5Iget_type(id) != type) fail(str_cat(where, " is not a ", type == H5I_GROUP ? "group" : "dataset"));
    return o;
  }

  // Attribute `name` of `loc`, which must hold exactly `count` elements (count 1: scalar or [1]).
  H5Id attribute(hid_t loc, const std::string& where, const char* name, H5T_class_t cls, hssize_t count) const {
    const std::string what = str_cat("attribute ", name, " of ", where);
    htri_t e = H5Aexists(loc, name);
    if (e < 0) fail(str_cat("cannot look up ", what, " (", h5_detail(), ")"));
    if (e == 0) fail(str_cat("missing ", what));
    H5Id a(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
    if (!a.ok()) fail(str_cat("cannot open ", what, " (", h5_detail(), ")"));
    H5Id t(H5Aget_type(a.get()), H5Tclose);
    H5Id sp(H5Aget_space(a.get()), H5Sclose);
    if (!t.ok() || !sp.ok()) fail(str_cat("cannot read ", what, " (", h5_detail(), ")"));
    if (H5Tget_class(t.get()) != cls) fail(str_cat(what, " has the wrong type (expected ", class_name(cls), ")"));
    const int rank = H5Sget_simple_extent_ndims(sp.get());
    if (H5Sget_simple_extent_npoints(sp.get()) != count || rank > 1)
      fail(str_cat(what, " should hold ", count, count == 1 ? " value" : " values"));
    return a;
  }

  int64_t attr_i64(hid_t loc, const std::string& where, const char* name) const {
    H5Id a = attribute(loc, where, name, H5T_INTEGER, 1);
    int64_t v = 0;
    if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0)
      fail(str_cat("cannot read attribute ", name, " of ", where, " (", h5_detail(), ")"));
    return v;
  }

  std::vector<double> attr_f64(hid_t loc, const std::string& where, const char* name, hssize_t count) const {
    H5Id a = attribute(loc, where, name, H5T_FLOAT, count);
    std::vector<double> v(static_cast<size_t>(count));
    if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, v.data()) < 0)
      fail(str_cat("cannot read attribute ", name, " of ", where, " (", h5_detail(), ")"));
    return v;
  }

  // Variable-length (ours, h5py's) or fixed-length string attribute.
  std::string attr_str(hid_t loc, const std::string& where, const char* name) const {
    H5Id a = attribute(loc, where, name, H5T_STRING, 1);
    const std::string what = str_cat("attribute ", name, " of ", where);
    H5Id ft(H5Aget_type(a.get()), H5Tclose);
    H5Id mt(H5Tcopy(H5T_C_S1), H5Tclose);
    if (!ft.ok() || !mt.ok()) fail(str_cat("cannot read ", what, " (", h5_detail(), ")"));
    H5Tset_cset(mt.get(), H5Tget_cset(ft.get()));
    if (H5Tis_variable_str(ft.get()) > 0) {
      H5Tset_size(mt.get(), H5T_VARIABLE);
      char* p = nullptr;
      if (H5Aread(a.get(), mt.get(), &p) < 0) fail(str_cat("cannot read ", what, " (", h5_detail(), ")"));
      std::string s = p ? std::string(p) : std::string();
      if (p) H5free_memory(p);
      return s;
    }
    const size_t n = H5Tget_size(ft.get());
    if (n == 0 || n > (size_t(1) << 30)) fail(str_cat(what, " has an implausible size (", n, " bytes)"));
    H5Tset_size(mt.get(), n);
    H5Tset_strpad(mt.get(), H5T_STR_NULLPAD);
    std::string s(n, '\0');
    if (H5Aread(a.get(), mt.get(), s.data()) < 0) fail(str_cat("cannot read ", what, " (", h5_detail(), ")"));
    s.resize(std::strlen(s.c_str()));
    return s;
  }

  // Dataset `name` of group `loc` (shown as `where`): class `cls`, shape exactly `dims`; read as `mem`.
  template <typename T>
  std::vector<T> dataset(hid_t loc, const std::string& where, const char* name, H5T_class_t cls, hid_t mem,
                         const std::vector<hsize_t>& dims) const {
    const std::string what = str_cat(where, "/", name);
    H5Id d = open(loc, name, what, H5I_DATASET);
    H5Id t(H5Dget_type(d.get()), H5Tclose);
    H5Id sp(H5Dget_space(d.get()), H5Sclose);
    if (!t.ok() || !sp.ok()) fail(str_cat("cannot read ", what, " (", h5_detail(), ")"));
    if (H5Tget_class(t.get()) != cls) fail(str_cat(what, " has the wrong type (expected ", class_name(cls), ")"));
    const int rank = H5Sget_simple_extent_ndims(sp.get());
    std::vector<hsize_t> got(rank > 0 ? static_cast<size_t>(rank) : 0);
    if (rank < 0 || (rank > 0 && H5Sget_simple_extent_dims(sp.get(), got.data(), nullptr) < 0))
      fail(str_cat("cannot read the shape of ", what, " (", h5_detail(), ")"));
    if (got != dims) fail(str_cat(what, " has shape ", shape_text(got), ", expected ", shape_text(dims)));
    uint64_t n = 1;
    for (hsize_t x : dims) n *= x;  // no overflow: callers bound every dimension
    if (n == 0) return {};
    // A hand-edited header could declare a huge shape without the bytes behind it; HDF5 would hand
    // back fill values, after we allocated them. Uncompressed data must be stored in full; deflate
    // compresses at most ~1032:1.
    const uint64_t stored = H5Dget_storage_size(d.get());
    const uint64_t elem = H5Tget_size(t.get());
    H5Id dcpl(H5Dget_create_plist(d.get()), H5Pclose);
    const bool filtered = dcpl.ok() && H5Pget_nfilters(dcpl.get()) > 0;
    const uint64_t cap = filtered ? stored * 1100 : stored;
    if (elem == 0 || n > cap / elem)
      fail(str_cat(what, " stores ", stored, " bytes, too few for shape ", shape_text(dims)));
    std::vector<T> v(static_cast<size_t>(n));
    if (H5Dread(d.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
      fail(str_cat("cannot read ", what, " (", h5_detail(), ")"));
    return v;
  }

  // Number of entries of the 1-D dataset `name` (bounded; the reads check the stored bytes).
  hsize_t length_1d(hid_t loc, const std::string& where, const char* name) const {
    const std::string what = str_cat(where, "/", name);
    H5Id d = open(loc, name, what, H5I_DATASET);
    H5Id sp(H5Dget_space(d.get()), H5Sclose);
    hsize_t n = 0;
    if (!sp.ok() || H5Sget_simple_extent_ndims(sp.get()) != 1 || H5Sget_simple_extent_dims(sp.get(), &n, nullptr) < 0)
      fail(str_cat(what, " is not 1-D"));
    if (n > static_cast<hsize_t>(kMaxHeads)) fail(str_cat(what, " has an implausible length ", n));
    return n;
  }

  std::vector<std::string> attribute_names(hid_t loc, const std::string& where) const {
    std::vector<std::string> names;
    auto cb = [](hid_t, const char* name, const H5A_info_t*, void* client) -> herr_t {
      static_cast<std::vector<std::string>*>(client)->emplace_back(name);
      return 0;
    };
    hsize_t idx = 0;
    if (H5Aiterate2(loc, H5_INDEX_NAME, H5_ITER_INC, &idx, cb, &names) < 0)
      fail(str_cat("cannot list the attributes of ", where, " (", h5_detail(), ")"));
    return names;
  }

  static const char* class_name(H5T_class_t c) {
    switch (c) {
      case H5T_INTEGER:
        return "integer";
      case H5T_FLOAT:
        return "floating point";
      case H5T_STRING:
        return "string";
      default:
        return "other";
    }
  }

  static std::string shape_text(const std::vector<hsize_t>& d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i) s += str_cat(i ? ", " : "", d[i]);
    return s + "]";
  }

  CheckpointState read(hid_t f) const {
    CheckpointState s;
    // The version first: a newer layout should say so, not complain about a missing field.
    {
      htri_t e = H5Aexists(f, "format_version");
      if (e < 0) fail(str_cat("cannot read the root attributes (", h5_detail(), ")"));
      if (e == 0) fail("is an HDF5 file but not an rlkv checkpoint (no format_version attribute)");
      const int64_t v = attr_i64(f, "/", "format_version");
      if (v != kCheckpointFormatVersion)
        fail(str_cat("format_version ", v, " is not supported (this build reads version ", kCheckpointFormatVersion,
                     v > kCheckpointFormatVersion ? "; written by a newer rlkv?)" : ")"));
    }
    s.model = attr_str(f, "/", "model");
    s.run_id = attr_str(f, "/", "run_id");
    s.config = attr_str(f, "/", "config");
    s.num_layers = attr_i64(f, "/", "num_layers");
    s.num_kv_heads = attr_i64(f, "/", "num_kv_heads");
    s.sink = attr_i64(f, "/", "sink");
    s.window = attr_i64(f, "/", "window");
    s.step = attr_i64(f, "/", "step");
    s.policy_version = attr_i64(f, "/", "policy_version");
    s.penalty_beta = attr_f64(f, "/", "penalty_beta", 1)[0];
    s.data_epoch = attr_i64(f, "/", "data_epoch");
    s.data_position = attr_i64(f, "/", "data_position");
    if (s.num_layers < 1 || s.num_layers > kMaxDim || s.num_kv_heads < 1 || s.num_kv_heads > kMaxDim ||
        s.num_layers * s.num_kv_heads > kMaxHeads)
      fail(str_cat("implausible num_layers x num_kv_heads = ", s.num_layers, " x ", s.num_kv_heads));
    const hsize_t L = static_cast<hsize_t>(s.num_layers), H = static_cast<hsize_t>(s.num_kv_heads);

    {
      H5Id g = open(f, "policy", "/policy", H5I_GROUP);
      s.logits = dataset<float>(g.get(), "/policy", "logits", H5T_FLOAT, H5T_NATIVE_FLOAT, {L, H});
    }
    {
      H5Id g = open(f, "optimizer", "/optimizer", H5I_GROUP);
      s.adam_m = dataset<float>(g.get(), "/optimizer", "m", H5T_FLOAT, H5T_NATIVE_FLOAT, {L, H});
      s.adam_v = dataset<float>(g.get(), "/optimizer", "v", H5T_FLOAT, H5T_NATIVE_FLOAT, {L, H});
      s.adam_step = attr_i64(g.get(), "/optimizer", "step");
      s.lr = attr_f64(g.get(), "/optimizer", "lr", 1)[0];
      const auto betas = attr_f64(g.get(), "/optimizer", "betas", 2);
      s.beta1 = betas[0];
      s.beta2 = betas[1];
      s.eps = attr_f64(g.get(), "/optimizer", "eps", 1)[0];
      s.weight_decay = attr_f64(g.get(), "/optimizer", "weight_decay", 1)[0];
    }
    {
      H5Id g = open(f, "history", "/history", H5I_GROUP);
      CheckpointHistory& h = s.history;
      const hsize_t N = length_1d(g.get(), "/history", "step");
      h.step = dataset<int64_t>(g.get(), "/history", "step", H5T_INTEGER, H5T_NATIVE_INT64, {N});
      std::vector<double>* series[] = {&h.reward_mean,    &h.correct_mean, &h.sparsity_expected,
                                       &h.penalty_weight, &h.length_ratio, &h.truncated_rate};
      for (size_t i = 0; i < 6; ++i)
        *series[i] = dataset<double>(g.get(), "/history", kHistorySeries[i], H5T_FLOAT, H5T_NATIVE_DOUBLE, {N});
      h.logits = dataset<float>(g.get(), "/history", "logits", H5T_FLOAT, H5T_NATIVE_FLOAT, {N, L, H});
    }
    {
      H5Id g = open(f, "rng", "/rng", H5I_GROUP);
      for (const std::string& name : attribute_names(g.get(), "/rng"))
        s.rng_states[name] = attr_str(g.get(), "/rng", name.c_str());
    }
    std::string problem = structure_problem(s);
    if (problem.empty()) problem = value_problem(s);
    if (!problem.empty()) fail(problem);
    return s;
  }

 private:
  std::string path_;
};

// The whole file, after its header was checked against the file's size. Throws for everything else.
std::string read_sealed_bytes(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) fail_read(path, "does not exist");
  if (ec) fail_read(path, str_cat("cannot access (", ec.message(), ")"));
  if (fs::is_directory(st)) fail_read(path, "is a directory, not a file");
  if (!fs::is_regular_file(st)) fail_read(path, "is not a regular file (a device, FIFO or socket)");
  // Non-blocking: a FIFO put in the checkpoint's place after the check above opens at once and is
  // refused by fstat, instead of waiting for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail_read(path, str_cat("cannot open (", errno_text(), ")"));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) fail_read(path, str_cat("cannot stat (", errno_text(), ")"));
  if (!S_ISREG(sb.st_mode)) fail_read(path, "is not a regular file (a device, FIFO or socket)");
  const uint64_t size = static_cast<uint64_t>(sb.st_size);
  auto read_at = [&](char* dst, uint64_t n, uint64_t off) {
    for (uint64_t done = 0; done < n;) {
      ssize_t got = ::pread(fd, dst + done, static_cast<size_t>(std::min<uint64_t>(n - done, 1 << 30)),
                            static_cast<off_t>(off + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail_read(path, str_cat("read error (", errno_text(), ")"));
      if (got == 0) fail_read(path, "changed size while being read");
      done += static_cast<uint64_t>(got);
    }
  };
  if (size == 0) fail_read(path, "is empty (0 bytes)");
  std::string head(static_cast<size_t>(std::min<uint64_t>(size, kUserBlock + 8)), '\0');
  read_at(head.data(), head.size(), 0);
  if (std::memcmp(head.data(), kMagic, std::min<size_t>(8, head.size())) != 0) {
    if (has_hdf5_signature_at(head, 0) || has_hdf5_signature_at(head, kUserBlock))
      fail_read(path, "is an HDF5 file but not an rlkv checkpoint (no rlkv header)");
    fail_read(path, "is not an rlkv checkpoint (unknown content)");
  }
  if (size < kUserBlock) fail_read(path, str_cat("is truncated (", size, " bytes, shorter than its header)"));
  auto* h = reinterpret_cast<unsigned char*>(head.data());
  unsigned char zeroed[kUserBlock];
  std::memcpy(zeroed, h, kUserBlock);
  encode_fixed32(zeroed + 28, 0);
  if (crc32_update(0, zeroed, kUserBlock) != decode_fixed32(h + 28))
    fail_read(path, "is corrupted (header checksum mismatch)");
  if (decode_fixed32(h + 8) != kHeaderVersion)
    fail_read(path, str_cat("has header version ", decode_fixed32(h + 8), ", this build reads ", kHeaderVersion));
  if (decode_fixed32(h + 12) != kUserBlock) fail_read(path, "is corrupted (bad user block size in header)");
  const uint64_t expect = decode_fixed64(h + 16);
  if (size - kUserBlock < expect)
    fail_read(path, str_cat("is truncated (", size, " bytes, its header says ", expect + kUserBlock, ")"));
  if (size - kUserBlock > expect)
    fail_read(path, str_cat("has ", size - kUserBlock - expect, " unexpected bytes after its end (", size,
                            " bytes, its header says ", expect + kUserBlock, ")"));
  std::string bytes(static_cast<size_t>(size), '\0');
  read_at(bytes.data(), size, 0);
  const uint32_t crc = crc32_update(0, reinterpret_cast<const unsigned char*>(bytes.data()) + kUserBlock, expect);
  if (crc != decode_fixed32(h + 24) || std::memcmp(bytes.data(), head.data(), kUserBlock) != 0)
    fail_read(path, "is corrupted (data checksum mismatch)");
  return bytes;
}

}  // namespace

std::string write_checkpoint(const std::string& dir, const CheckpointState& s, int64_t keep_last) {
  const std::string structure = structure_problem(s);
  RLKV_ASSERT(structure.empty(), "checkpoint state for step ", s.step, ": ", structure);
  for (const auto& [name, text] : s.rng_states) {
    const bool name_ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
    RLKV_ASSERT(name_ok, "RNG state name '", name, "' (use letters, digits, _ - .)");
  }
  const fs::path final_path = fs::path(dir) / str_cat("ckpt-", s.step, ".h5");
  const std::string path = final_path.string();
  const std::string values = value_problem(s);
  if (!values.empty()) fail_write(path, values);
  auto check_text = [&](const std::string& what, const std::string& text) {
    if (text.find('\0') != std::string::npos) fail_write(path, str_cat(what, " contains a NUL byte"));
  };
  check_text("model", s.model);
  check_text("run_id", s.run_id);
  check_text("config", s.config);
  for (const auto& [name, text] : s.rng_states) check_text(str_cat("RNG state ", name), text);

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail_write(path, str_cat("cannot create directory ", dir, " (", ec.message(), ")"));
  // Leftovers of a writer that crashed: never read by anyone, safe to drop (one writer per directory).
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (is_temp_name(it->path().filename().string())) {
      std::error_code rm;
      fs::remove(it->path(), rm);
    }

  const std::string tmp = temp_path_for(path);  // ckpt-<step>.h5.tmp-<pid>-<n>: is_temp_name's form
  try {
    {
      std::lock_guard<std::mutex> lock(h5_mutex());
      H5Quiet quiet;
      Writer(path).write_hdf5(tmp, s);
    }
    seal_file(tmp, [&](const std::string& problem) { fail_write(path, problem); });
    std::error_code rename_ec;
    rename_durably(tmp, path, rename_ec);
    if (rename_ec) fail_write(path, str_cat("rename failed (", rename_ec.message(), ")"));
  } catch (...) {
    std::error_code rm;
    fs::remove(tmp, rm);
    throw;
  }

  auto all = list_checkpoints(dir);
  if (keep_last > 0 && all.size() > static_cast<size_t>(keep_last)) {
    // Only checkpoints that read back count: a damaged one (which --resume auto skips) is left
    // alone and does not push a valid older one out. (Read only when there is something to prune.)
    std::vector<std::pair<int64_t, fs::path>> valid;
    for (auto& [step, p] : all) {
      bool ok = step == s.step;
      if (!ok) try {
          read_sealed_bytes(p.string());
          ok = true;
        } catch (const std::exception&) {
        }
      if (ok) valid.emplace_back(step, p);
    }
    size_t excess = valid.size() > static_cast<size_t>(keep_last) ? valid.size() - size_t(keep_last) : 0;
    for (const auto& [step, p] : valid) {
      if (excess == 0) break;
      if (step == s.step) continue;  // the file just written stays, even when older ones have higher steps
      std::error_code rm;
      if (!fs::remove(p, rm) && rm)
        log_warn(str_cat("checkpoint: cannot delete ", p.string(), " (", rm.message(), ")"));
      --excess;
    }
  }
  return path;
}

CheckpointState read_checkpoint(const std::string& path) {
  const std::string bytes = read_sealed_bytes(path);
  std::lock_guard<std::mutex> lock(h5_mutex());
  H5Quiet quiet;
  // Open the checked bytes themselves (core driver, no backing store), not the path a second time.
  H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.ok() || H5Pset_fapl_core(fapl.get(), 1 << 20, 0) < 0 ||
      H5Pset_file_image(fapl.get(), const_cast<char*>(bytes.data()), bytes.size()) < 0 ||
      H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG) < 0)
    fail_read(path, str_cat("cannot set up HDF5 (", h5_detail(), ")"));
  // The core driver refuses an image under the name of a file that exists; a name below the
  // checkpoint (a regular file) cannot exist.
  const std::string image_name = path + "/rlkv-memory-image";
  H5Id f(H5Fopen(image_name.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!f.ok()) fail_read(path, str_cat("is not a readable HDF5 file (", h5_detail(), ")"));
  return Reader(path).read(f.get());
}

std::optional<std::string> latest_checkpoint(const std::string& dir, std::vector<std::string>* skipped) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st)) return std::nullopt;
  RLKV_CHECK(fs::is_directory(st), "checkpoint directory ", dir, " is not a directory");
  fs::directory_iterator probe(dir, ec);
  RLKV_CHECK(!ec, "cannot list checkpoint directory ", dir, " (", ec.message(), ")");
  auto all = list_checkpoints(dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const std::string path = it->second.string();
    try {
      const CheckpointState s = read_checkpoint(path);
      if (s.step == it->first) return path;
      if (skipped)
        skipped->push_back(str_cat("checkpoint ", path, ": holds step ", s.step, ", its name says ", it->first));
    } catch (const UserError& e) {
      if (skipped) skipped->push_back(e.what());
    }
  }
  return std::nullopt;
}

void reseal_checkpoint(const std::string& path) {
  seal_file(path, [&](const std::string& problem) {
    throw UserError(one_line(str_cat("cannot reseal checkpoint ", path, ": ", problem)));
  });
}

std::vector<std::string> checkpoint_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& [step, path] : list_checkpoints(dir)) out.push_back(path.string());
  return out;
}

}  // namespace rlkv
