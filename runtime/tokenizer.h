// Hugging Face `tokenizer.json` byte-level BPE (GPT-2 / Llama-3 / Qwen2 families), torch-free.
//
// Pipeline, as in HF tokenizers: split the input on added tokens (special and not) -> normalizer
// (none or NFC) -> pre-tokenizer (Split with a regex, ByteLevel with or without the GPT-2 regex, or a
// Sequence of them) -> byte-level mapping of each piece to printable code points -> BPE merges by rank
// (or the whole piece when `ignore_merges` and it is in the vocabulary) -> post-processor
// (TemplateProcessing / ByteLevel / none) when special tokens are asked for.
// Decoding maps tokens back through the byte-level table; added tokens decode to their content.
//
// Errors: a malformed or unsupported tokenizer.json throws rlkv::UserError naming the file and the
// field. Encoding never throws on any input bytes (invalid UTF-8 included) and costs
// O(n log n) in the input length. Thread safety: a loaded Tokenizer is immutable except for an
// internal word cache guarded by a mutex; encode/decode may be called from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rlkv {

class Tokenizer {
 public:
  // Reads and validates `path` (a tokenizer.json). Throws UserError on bad input.
  static Tokenizer from_file(const std::string& path);
  // Same from the JSON text; `origin` names the source in error messages.
  static Tokenizer from_json(const std::string& json_text, const std::string& origin);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens = false) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // Raw bytes of one token (what it contributes to decode(); added tokens give their content).
  std::string token_bytes(int32_t id) const;

  int64_t vocab_size() const;                                          // largest id + 1, added tokens included
  std::optional<int32_t> token_to_id(const std::string& token) const;  // vocab or added token
  bool is_special(int32_t id) const;                                   // an added token marked special

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlkv
