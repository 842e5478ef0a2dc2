// safetensors reader, torch-free (https://github.com/huggingface/safetensors format):
//   8 bytes little-endian u64 N, then N bytes of UTF-8 JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}},
//   then the data buffer; offsets are relative to the start of the data buffer.
//
// The file is memory-mapped read-only; tensors are byte spans into the mapping (zero copy). Every
// header field is validated before use, so a truncated file or a header that lies (offsets past the
// end, overlapping or unordered-but-overlapping ranges, size != numel * element size, overflowing
// shapes, unknown dtype, duplicate names, non-object JSON) throws rlkv::UserError naming the file and
// the tensor. Thread safety: immutable after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rlkv {

enum SafetensorsDtype {
  SAFETENSORS_DTYPE_BOOL,
  SAFETENSORS_DTYPE_U8,
  SAFETENSORS_DTYPE_I8,
  SAFETENSORS_DTYPE_I16,
  SAFETENSORS_DTYPE_U16,
  SAFETENSORS_DTYPE_F16,
  SAFETENSORS_DTYPE_BF16,
  SAFETENSORS_DTYPE_I32,
  SAFETENSORS_DTYPE_U32,
  SAFETENSORS_DTYPE_F32,
  SAFETENSORS_DTYPE_F64,
  SAFETENSORS_DTYPE_I64,
  SAFETENSORS_DTYPE_U64,
};

size_t safetensors_dtype_size(SafetensorsDtype dtype);       // bytes per element
const char* safetensors_dtype_name(SafetensorsDtype dtype);  // "F32", ...

struct SafetensorsTensorInfo {
  SafetensorsDtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offset in the data buffer
  uint64_t end = 0;    // one past the last byte
};

// Parses and validates a header. `header` is the JSON text; `data_size` the number of bytes that
// follow it in the file. `origin` names the file in errors. Throws UserError on any inconsistency.
// (Separate from the file reader so that the fuzz target drives it directly.)
std::map<std::string, SafetensorsTensorInfo> safetensors_parse_header(
    const char* header, size_t header_len, uint64_t data_size, const std::string& origin,
    std::map<std::string, std::string>* metadata = nullptr);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // opens, maps and validates
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsTensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const SafetensorsTensorInfo& info(const std::string& name) const;  // UserError if absent
  const uint8_t* data(const std::string& name) const;                // start of the tensor's bytes
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_begin_ = nullptr;
  std::map<std::string, SafetensorsTensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A model's weights: one `model.safetensors`, or the shards listed by
// `model.safetensors.index.json` ({"weight_map": {"name": "file", ...}}) in `dir`.
class SafetensorsModelFiles {
 public:
  explicit SafetensorsModelFiles(const std::string& dir);
  bool contains(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;  // UserError if absent
  std::vector<std::string> names() const;
  uint64_t total_bytes() const;  // bytes of tensor data across the shards

 private:
  std::string dir_;  // names the model in errors
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

}  // namespace rlkv
