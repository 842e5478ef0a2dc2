// libFuzzer target for runtime/tokenizer, which reads two kinds of hostile bytes: the tokenizer.json
// of a user's model directory, and any text (prompts, datasets, decoded model output fed back).
// The first input byte picks what the rest is:
//   bit 0 clear: text. Each fixture tokenizer (tests/fixtures/tokenizers: llama3, qwen2, gpt2)
//     encodes it (bit 1: with special tokens) and must never throw, give only ids below its
//     vocab_size and decode them without throwing; for the byte-level tokenizers without a
//     normalizer (llama3, gpt2) and without special tokens, decode(encode(text)) must be the text,
//     whatever the bytes (the contract in tokenizer.h).
//   bit 0 set: a tokenizer.json. Loading must succeed or throw rlkv::UserError (nothing else
//     escapes); a tokenizer that loads encodes a few fixed strings (invalid UTF-8 among them) under
//     the same rules, and every id's bytes can be asked for.
// A broken promise is __builtin_trap(); any other exception escapes and aborts, so the fuzzer
// records both as crashes, as it does for ASan / UBSan reports.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/tokenizer.h"

#ifndef RLKV_FUZZ_FIXTURES
#error "RLKV_FUZZ_FIXTURES (path to tests/fixtures) must be defined"
#endif

namespace {

struct Fixture {
  rlkv::Tokenizer tok;
  bool round_trips;  // byte-level, no normalizer: decode(encode(x)) == x for any bytes
};

std::vector<Fixture>& fixtures() {
  static std::vector<Fixture> all = [] {
    std::vector<Fixture> v;
    for (auto [name, round_trips] : {std::pair{"llama3", true}, std::pair{"qwen2", false}, std::pair{"gpt2", true}}) {
      const std::string path = std::string(RLKV_FUZZ_FIXTURES) + "/tokenizers/" + name + ".json";
      v.push_back({rlkv::Tokenizer::from_file(path), round_trips});
    }
    return v;
  }();
  return all;
}

// Encodes under the rules above; returns the ids.
std::vector<int32_t> checked_encode(const rlkv::Tokenizer& t, const std::string& text, bool special) {
  const std::vector<int32_t> ids = t.encode(text, special);
  for (int32_t id : ids)
    if (id < 0 || id >= t.vocab_size()) __builtin_trap();
  (void)t.decode(ids, /*skip_special_tokens=*/false);
  (void)t.decode(ids, /*skip_special_tokens=*/true);
  return ids;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((mode & 1) == 0) {
    const bool special = (mode & 2) != 0;
    for (const Fixture& f : fixtures()) {
      const std::vector<int32_t> ids = checked_encode(f.tok, rest, special);
      if (f.round_trips && !special && f.tok.decode(ids) != rest) __builtin_trap();
    }
    return 0;
  }
  try {
    const rlkv::Tokenizer t = rlkv::Tokenizer::from_json(rest, "fuzz.json");
    for (const char* text : {"", "hello world 123", "  a\tb\r\n", "caf\xc3\xa9 e\xcc\x81", "\xff\xfe invalid \xe2\x82",
                             "<|endoftext|><think>x</think>"}) {
      checked_encode(t, text, false);
      checked_encode(t, text, true);
    }
    for (int64_t id = 0; id < t.vocab_size() && id < 4096; ++id) (void)t.token_bytes(int32_t(id));
  } catch (const rlkv::UserError&) {
  }
  return 0;
}
