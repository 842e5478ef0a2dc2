// Hugging Face tokenizer.json byte-level BPE. Why it is shaped this way:
//
//  - It follows HF tokenizers' own pipeline step by step (added-token split on the raw text ->
//    normalizer -> added-token split of `normalized` tokens -> pre-tokenizers applied piece by
//    piece -> BPE -> post-processor), because id parity with HF is the contract; each step mimics
//    the Rust code's edge cases (Split behaviours, ByteLevel add_prefix_space per piece,
//    leftmost-longest added tokens with lstrip/rstrip/single_word, the BPE merge queue with HF's
//    stale-entry check, unk/fuse_unk/byte_fallback, ignore_merges, and HF's way of giving ids to
//    added_tokens, which ignores the ids written in the file).
//  - Pieces are string_views into the input or into a per-call arena; the ByteLevel byte->char
//    mapping is applied lazily (a flag), so "Split then ByteLevel" (Llama-3, Qwen2) costs one copy
//    per word, made right before BPE.
//  - Regexes: PCRE2 in UTF+UCP mode, compiled (and JIT-compiled when available) once at load.
//    HF uses Oniguruma, whose \s differs from PCRE2's by U+180E only; patterns are rewritten so
//    that \s means [\t-\r\x{85}\p{Z}] as in Oniguruma. A JIT stack overflow falls back to the
//    interpreter; any other match failure treats the rest of the piece as unmatched.
//  - Invalid UTF-8 (HF never sees it: a Python str is always valid): the text is validated once;
//    each byte that is not part of a valid sequence becomes a piece of its own that skips the
//    normalizer and the regex splits (PCRE2 with NO_UTF_CHECK is unsafe on it) and goes to BPE
//    as one byte. With a ByteLevel tokenizer that byte has a token, so decode(encode(x)) == x for
//    any bytes. Valid runs between such bytes are processed normally; encode() never throws.
//  - BPE merges use a priority queue over a linked array of symbols: O(n log n) per word.
//    Results for words up to kMaxCachedWord bytes go to a bounded, mutex-guarded cache.
//  - decode() concatenates per-token bytes precomputed at load: every token string, added tokens
//    included as in HF, goes through the decoder (ByteLevel: chars -> bytes, all-or-nothing per
//    token; ByteFallback: "<0xAB>" -> byte), so realistic added tokens decode to their content.
//    No lossy UTF-8 repair: the output is raw bytes. Without a decoder HF joins tokens with
//    spaces; we concatenate, so that decode() is the concatenation of token_bytes().
//  - Known differences from HF, all from Unicode tables: PCRE2 10.42 knows Unicode 14, Oniguruma
//    in HF a later version (characters assigned since, e.g. CJK Extension H, are not \p{L} here);
//    ICU's NFC and HF's older NFC tables order a few rare combining marks differently.
//  - Loading is strict: anything malformed or unsupported is a one-line UserError naming the
//    file and the field; nlohmann exceptions never escape.
#include "runtime/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <deque>
#include <fstream>
#include <mutex>
#include <queue>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_strict.h"
#include "core/utf8.h"

namespace rlkv {
namespace {

using json = nlohmann::json;

constexpr int32_t kMaxId = 1 << 24;     // refuse absurd ids (they size dense tables)
constexpr size_t kMaxCachedWord = 256;  // bytes
constexpr size_t kMaxCacheEntries = 1 << 16;

// ---- UTF-8 (sequences: core/utf8.h) --------------------------------------------------------
// Code point of the character ending at `end`, or -1 if none / not valid UTF-8.
int64_t prev_cp(std::string_view s, size_t end) {
  if (end == 0) return -1;
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  auto p = reinterpret_cast<const unsigned char*>(s.data()) + b;
  size_t len = utf8_sequence_length(p, s.size() - b);
  return len == end - b ? int64_t(utf8_decode(p, len)) : -1;
}
int64_t next_cp(std::string_view s, size_t pos, size_t* len_out) {
  auto p = reinterpret_cast<const unsigned char*>(s.data()) + pos;
  size_t len = utf8_sequence_length(p, s.size() - pos);
  *len_out = len ? len : 1;
  return len ? int64_t(utf8_decode(p, len)) : -1;
}

bool is_white(int64_t cp) { return cp >= 0 && u_isUWhiteSpace(UChar32(cp)); }
bool is_word(int64_t cp) {  // Rust regex \w (Unicode): Alphabetic, M, Nd, Pc, Join_Control
  if (cp < 0) return false;
  UChar32 c = UChar32(cp);
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL)) return true;
  int8_t t = u_charType(c);
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
         t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION;
}

// GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 upwards.
struct ByteTable {
  std::array<std::string, 256> to_utf8;
  std::array<int16_t, 0x144> cp_to_byte;
  ByteTable() {
    cp_to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      uint32_t cp = keep ? uint32_t(b) : uint32_t(256 + n++);
      to_utf8[b] = cp < 0x80 ? std::string(1, char(cp)) : std::string{char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
      cp_to_byte[cp] = int16_t(b);
    }
  }
};
const ByteTable& byte_table() {
  static const ByteTable t;
  return t;
}

std::string jquote(const std::string& s) {  // JSON-style escaping keeps messages on one line
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---- regex ---------------------------------------------------------------------------------
struct Seg {
  size_t b, e;
  bool m;  // matched the pattern
};

// Oniguruma's \s is [\t-\r\x85\p{Z}]; PCRE2's also has U+180E. Rewrite \s (and \S outside classes).
std::string onig_compat(const std::string& p) {
  const std::string set = "\\t-\\r\\x{85}\\p{Z}";
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char d = p[++i];
      if (d == 's')
        out += in_class ? set : "[" + set + "]";
      else if (d == 'S' && !in_class)
        out += "[^" + set + "]";
      else {
        out += c;
        out += d;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      size_t e = p.find(":]", i + 2);
      if (e != std::string::npos) {
        out.append(p, i, e + 2 - i);
        i = e + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

class Regex {
 public:
  Regex(const std::string& pattern, const std::string& where) {
    std::string pat = onig_compat(pattern);
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(), PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!code_) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(err, buf, sizeof buf);
      throw_user_error(
          str_cat(where, ": invalid regex ", jquote(pattern), ": ", reinterpret_cast<char*>(buf), " at offset ", off));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // failure is fine: the interpreter is used
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Splits s (valid UTF-8) into alternating unmatched / matched segments, like HF find_matches.
  void find(std::string_view s, std::vector<Seg>& out) const {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
    if (!md) {
      out.push_back({0, s.size(), false});
      return;
    }
    auto subj = reinterpret_cast<PCRE2_SPTR>(s.data());
    size_t pos = 0, prev = 0;
    while (pos <= s.size()) {
      int rc = pcre2_match(code_, subj, s.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(code_, subj, s.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md.get(), nullptr);
      if (rc < 0) break;  // no match, or a resource limit: the rest is unmatched
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      size_t ms = ov[0], me = ov[1];
      if (ms < pos || me < ms) break;  // \K tricks; not used by tokenizers
      if (ms > prev) out.push_back({prev, ms, false});
      out.push_back({ms, me, true});
      prev = me;
      if (me == ms) {  // empty match: step one character
        if (me >= s.size()) break;
        size_t len;
        next_cp(s, me, &len);
        pos = me + len;
      } else {
        pos = me;
      }
    }
    if (prev < s.size()) out.push_back({prev, s.size(), false});
  }

 private:
  pcre2_code* code_ = nullptr;
};

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---- added-token trie (leftmost-longest) ------------------------------------------------------
struct Trie {
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;
    int32_t tok = -1;  // index into Impl::added
  };
  std::vector<Node> nodes{1};
  std::array<bool, 256> first{};

  void insert(const std::string& s, int32_t tok) {
    int32_t n = 0;
    for (unsigned char c : s) {
      int32_t child = -1;
      for (auto& [k, v] : nodes[n].next)
        if (k == c) child = v;
      if (child < 0) {
        child = int32_t(nodes.size());
        nodes[n].next.push_back({c, child});
        nodes.emplace_back();
      }
      n = child;
    }
    if (nodes[n].tok < 0) nodes[n].tok = tok;
    first[static_cast<unsigned char>(s[0])] = true;
  }
  bool empty() const { return nodes.size() == 1; }
  // Longest token starting at i: (token index, length) or (-1, 0).
  std::pair<int32_t, size_t> longest(std::string_view s, size_t i) const {
    std::pair<int32_t, size_t> best{-1, 0};
    int32_t n = 0;
    for (size_t j = i; j < s.size(); ++j) {
      int32_t child = -1;
      for (auto& [k, v] : nodes[n].next)
        if (k == static_cast<unsigned char>(s[j])) {
          child = v;
          break;
        }
      if (child < 0) break;
      n = child;
      if (nodes[n].tok >= 0) best = {nodes[n].tok, j + 1 - i};
    }
    return best;
  }
};

struct AddedToken {
  std::string content;
  int32_t id;
  bool special, lstrip, rstrip, single_word, normalized;
};

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Step {  // one pre-tokenizer
  bool byte_level = false;
  bool add_prefix_space = false;  // ByteLevel
  std::unique_ptr<Regex> re;      // Split / Digits (regex), ByteLevel with use_regex
  std::string literal;            // Split with a String pattern
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
};

struct TemplateItem {
  bool is_sequence;
  std::vector<int32_t> ids;
};

enum : uint8_t { kRaw = 1, kMapped = 2 };
struct Piece {
  std::string_view text;
  int32_t id;     // >= 0: already a token (added token)
  uint8_t flags;  // kRaw: one invalid byte; kMapped: ByteLevel mapping still to apply
};

struct Merge {
  int32_t rank, pos, new_id;
  bool operator<(const Merge& o) const {  // priority_queue top = lowest rank, then leftmost
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

}  // namespace

struct Tokenizer::Impl {
  // model
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<int32_t> bmp_id;  // single-character tokens below U+10000, by code point
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (a,b) -> (rank, new id)
  bool ignore_merges = false, fuse_unk = false, byte_fallback = false;
  int32_t unk_id = -1;
  std::array<int32_t, 256> fallback_id;
  // added tokens
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int32_t> added_by_content;
  Trie raw_trie, norm_trie;
  // pipeline
  std::vector<const icu::Normalizer2*> normalizers;
  std::vector<Step> steps;
  std::vector<std::vector<TemplateItem>> templates;
  bool dec_byte_level = false, dec_byte_fallback = false;
  // id tables
  int64_t vocab_size = 0;
  std::vector<std::string> id_bytes;
  std::vector<uint8_t> id_kind;  // 0 none, 1 vocab, 2 added, 3 added+special
  // cache
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  std::string normalize(std::string_view s) const;
  void split_added(std::string_view s, const Trie& trie, std::vector<Piece>& out) const;
  void apply_step(const Step& st, Piece p, std::deque<std::string>& arena, std::vector<Piece>& out,
                  std::vector<Seg>& segs) const;
  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  int32_t char_id(std::string_view ch) const;
};

namespace {

// ---- loading ---------------------------------------------------------------------------------
template <class Impl>  // a template so that it may name the private Tokenizer::Impl
struct Loader {
  Impl& t;
  const std::string& o;

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw_user_error(str_cat(o, ": ", field, ": ", what));
  }
  const json* member(const json& j, const char* key) const {
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  }
  const json& need(const json& j, const char* key, const std::string& f) const {
    const json* v = member(j, key);
    if (!v) fail(f, str_cat("missing \"", key, "\""));
    return *v;
  }
  bool flag(const json& j, const char* key, const std::string& f, bool dflt) const {
    const json* v = member(j, key);
    if (!v || v->is_null()) return dflt;
    if (!v->is_boolean()) fail(f + "." + key, "expected true or false");
    return v->get<bool>();
  }
  std::string str(const json& j, const std::string& f) const {
    if (!j.is_string()) fail(f, "expected a string");
    return j.get<std::string>();
  }
  int32_t id(const json& j, const std::string& f) const {
    if (!j.is_number_integer()) fail(f, "expected an integer id, got " + j.dump().substr(0, 40));
    if (j.is_number_unsigned() ? j.get<uint64_t>() >= uint64_t(kMaxId)
                               : (j.get<int64_t>() < 0 || j.get<int64_t>() >= kMaxId))
      fail(f, str_cat("id ", j.dump(), " out of range [0, ", kMaxId, ")"));
    return j.get<int32_t>();
  }
  const json& array(const json& j, const char* key, const std::string& f) const {
    const json& a = need(j, key, f);
    if (!a.is_array()) fail(f + "." + key, "expected an array");
    return a;
  }
  std::string type(const json& j, const std::string& f) const {
    if (!j.is_object()) fail(f, "expected an object or null");
    return str(need(j, "type", f), f + ".type");
  }
  void nonempty_unsupported(const json& j, const char* key, const std::string& f) const {
    const json* v = member(j, key);
    if (v && !v->is_null() && !(v->is_string() && v->get<std::string>().empty()))
      fail(f + "." + key, "unsupported (only null or \"\")");
  }

  void normalizer(const json& j, const std::string& f) {
    if (j.is_null()) return;
    std::string ty = type(j, f);
    UErrorCode st = U_ZERO_ERROR;
    const icu::Normalizer2* n = nullptr;
    if (ty == "Sequence") {
      const json& a = array(j, "normalizers", f);
      for (size_t i = 0; i < a.size(); ++i) normalizer(a[i], str_cat(f, ".normalizers[", i, "]"));
      return;
    } else if (ty == "NFC") {
      n = icu::Normalizer2::getNFCInstance(st);
    } else if (ty == "NFD") {
      n = icu::Normalizer2::getNFDInstance(st);
    } else if (ty == "NFKC") {
      n = icu::Normalizer2::getNFKCInstance(st);
    } else if (ty == "NFKD") {
      n = icu::Normalizer2::getNFKDInstance(st);
    } else {
      fail(f, "unsupported normalizer " + ty);
    }
    RLKV_ASSERT(U_SUCCESS(st) && n, "ICU normalizer ", ty, ": ", u_errorName(st));
    t.normalizers.push_back(n);
  }

  void pre_tokenizer(const json& j, const std::string& f) {
    if (j.is_null()) return;
    std::string ty = type(j, f);
    Step s;
    if (ty == "Sequence") {
      const json& a = array(j, "pretokenizers", f);
      for (size_t i = 0; i < a.size(); ++i) pre_tokenizer(a[i], str_cat(f, ".pretokenizers[", i, "]"));
      return;
    } else if (ty == "ByteLevel") {
      s.byte_level = true;
      s.add_prefix_space = flag(j, "add_prefix_space", f, true);
      if (flag(j, "use_regex", f, true)) s.re = std::make_unique<Regex>(kGpt2Pattern, o + ": " + f);
    } else if (ty == "Split") {
      const json& p = need(j, "pattern", f);
      if (p.is_object() && p.size() == 1 && p.contains("Regex"))
        s.re = std::make_unique<Regex>(str(p["Regex"], f + ".pattern.Regex"), o + ": " + f + ".pattern.Regex");
      else if (p.is_object() && p.size() == 1 && p.contains("String"))
        s.literal = str(p["String"], f + ".pattern.String");
      else
        fail(f + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
      std::string b = str(need(j, "behavior", f), f + ".behavior");
      if (b == "Removed")
        s.behavior = Behavior::Removed;
      else if (b == "Isolated")
        s.behavior = Behavior::Isolated;
      else if (b == "MergedWithPrevious")
        s.behavior = Behavior::MergedWithPrevious;
      else if (b == "MergedWithNext")
        s.behavior = Behavior::MergedWithNext;
      else if (b == "Contiguous")
        s.behavior = Behavior::Contiguous;
      else
        fail(f + ".behavior", "unsupported behavior " + jquote(b));
      s.invert = flag(j, "invert", f, false);
    } else if (ty == "Digits") {
      s.re = std::make_unique<Regex>(flag(j, "individual_digits", f, false) ? "\\p{N}" : "\\p{N}+", o + ": " + f);
    } else {
      fail(f, "unsupported pre_tokenizer type " + ty);
    }
    t.steps.push_back(std::move(s));
  }

  void model(const json& j, const std::string& f) {
    if (!j.is_object()) fail(f, "expected an object");
    if (const json* ty = member(j, "type"); ty && !ty->is_null() && str(*ty, f + ".type") != "BPE")
      fail(f + ".type", "unsupported model type " + ty->get<std::string>() + " (only BPE)");
    const json& vocab = need(j, "vocab", f);
    if (!vocab.is_object()) fail(f + ".vocab", "expected an object {token: id}");
    std::vector<const std::string*> by_id;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      std::string field = f + ".vocab[" + jquote(it.key()) + "]";
      int32_t v = id(it.value(), field);
      if (size_t(v) >= by_id.size()) by_id.resize(size_t(v) + 1, nullptr);
      if (by_id[v]) fail(field, str_cat("duplicate id ", v, " (also ", jquote(*by_id[v]), ")"));
      by_id[v] = &it.key();
      t.vocab.emplace(it.key(), v);
    }
    t.id_bytes.assign(by_id.size(), std::string());
    t.id_kind.assign(by_id.size(), 0);
    for (size_t i = 0; i < by_id.size(); ++i)
      if (by_id[i]) {
        t.id_bytes[i] = *by_id[i];
        t.id_kind[i] = 1;
      }
    t.bmp_id.assign(0x10000, -1);
    for (auto& [tok, v] : t.vocab) {
      auto p = reinterpret_cast<const unsigned char*>(tok.data());
      size_t len = tok.empty() ? 0 : utf8_sequence_length(p, tok.size());
      if (len && len == tok.size()) {
        uint32_t cp = utf8_decode(p, len);
        if (cp < 0x10000) t.bmp_id[cp] = v;
      }
    }
    const json& merges = array(j, "merges", f);
    for (size_t i = 0; i < merges.size(); ++i) {
      std::string field = str_cat(f, ".merges[", i, "]");
      const json& m = merges[i];
      std::string a, b;
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          fail(field, "expected \"a b\" or [\"a\",\"b\"], got " + jquote(s));
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        fail(field, "expected \"a b\" or [\"a\",\"b\"]");
      }
      auto find = [&](const std::string& tok) {
        auto it = t.vocab.find(tok);
        if (it == t.vocab.end()) fail(field, "token " + jquote(tok) + " is not in the vocab");
        return it->second;
      };
      int32_t ia = find(a), ib = find(b), inew = find(a + b);
      t.merges[(uint64_t(uint32_t(ia)) << 32) | uint32_t(ib)] = {int32_t(i), inew};  // later wins, as in HF
    }
    t.ignore_merges = flag(j, "ignore_merges", f, false);
    t.fuse_unk = flag(j, "fuse_unk", f, false);
    t.byte_fallback = flag(j, "byte_fallback", f, false);
    if (const json* u = member(j, "unk_token"); u && !u->is_null()) {
      auto it = t.vocab.find(str(*u, f + ".unk_token"));
      if (it == t.vocab.end()) fail(f + ".unk_token", jquote(u->get<std::string>()) + " is not in the vocab");
      t.unk_id = it->second;
    }
    t.fallback_id.fill(-1);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      if (auto it = t.vocab.find(name); it != t.vocab.end()) t.fallback_id[b] = it->second;
    }
    nonempty_unsupported(j, "continuing_subword_prefix", f);
    nonempty_unsupported(j, "end_of_word_suffix", f);
    if (const json* d = member(j, "dropout"); d && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0))
      fail(f + ".dropout", "unsupported (only null)");
  }

  // HF ignores the ids written in added_tokens (it only warns when they differ): a content that is
  // in the vocab (or already added) keeps that id, a new one gets max(vocab entries, largest added
  // id + 1). A repeated content updates the flags; an empty content is skipped. We do the same.
  void added_tokens(const json& a) {
    if (!a.is_array()) fail("added_tokens", "expected an array");
    std::unordered_map<std::string, size_t> index;
    std::vector<bool> special;
    int64_t max_added = -1;
    for (size_t i = 0; i < a.size(); ++i) {
      std::string f = str_cat("added_tokens[", i, "]");
      const json& j = a[i];
      if (!j.is_object()) fail(f, "expected an object");
      AddedToken tok;
      tok.id = id(need(j, "id", f), f + ".id");
      tok.content = str(need(j, "content", f), f + ".content");
      tok.special = flag(j, "special", f, false);
      tok.lstrip = flag(j, "lstrip", f, false);
      tok.rstrip = flag(j, "rstrip", f, false);
      tok.single_word = flag(j, "single_word", f, false);
      tok.normalized = flag(j, "normalized", f, !tok.special);
      if (tok.content.empty()) continue;
      if (auto it = index.find(tok.content); it != index.end()) {
        tok.id = t.added[it->second].id;
        special[it->second] = special[it->second] || tok.special;
        t.added[it->second] = std::move(tok);
        continue;
      }
      if (auto it = t.vocab.find(tok.content); it != t.vocab.end())
        tok.id = it->second;
      else
        tok.id = int32_t(max_added >= int64_t(t.vocab.size()) ? max_added + 1 : int64_t(t.vocab.size()));
      if (tok.id >= kMaxId) fail(f + ".id", "too many ids");
      max_added = std::max<int64_t>(max_added, tok.id);
      index.emplace(tok.content, t.added.size());
      special.push_back(tok.special);
      t.added.push_back(std::move(tok));
    }
    for (size_t k = 0; k < t.added.size(); ++k) {
      AddedToken& tok = t.added[k];
      tok.special = special[k];
      t.added_by_content.emplace(tok.content, tok.id);
      if (size_t(tok.id) >= t.id_bytes.size()) {
        t.id_bytes.resize(size_t(tok.id) + 1);
        t.id_kind.resize(size_t(tok.id) + 1, 0);
      }
      t.id_bytes[tok.id] = tok.content;
      t.id_kind[tok.id] = tok.special ? 3 : 2;
    }
  }

  void post_processor(const json& j, const std::string& f) {
    if (j.is_null()) return;
    std::string ty = type(j, f);
    if (ty == "Sequence") {
      const json& a = array(j, "processors", f);
      for (size_t i = 0; i < a.size(); ++i) post_processor(a[i], str_cat(f, ".processors[", i, "]"));
    } else if (ty == "ByteLevel") {
    } else if (ty == "TemplateProcessing") {
      const json& single = array(j, "single", f);
      const json& specials = need(j, "special_tokens", f);
      std::vector<TemplateItem> items;
      for (size_t i = 0; i < single.size(); ++i) {
        std::string fi = str_cat(f, ".single[", i, "]");
        const json& it = single[i];
        if (it.is_object() && it.contains("Sequence")) {
          std::string which = str(need(it["Sequence"], "id", fi + ".Sequence"), fi + ".Sequence.id");
          if (which != "A") fail(fi, "single template may only use sequence A");
          items.push_back({true, {}});
        } else if (it.is_object() && it.contains("SpecialToken")) {
          std::string name = str(need(it["SpecialToken"], "id", fi + ".SpecialToken"), fi + ".SpecialToken.id");
          std::string fs = f + ".special_tokens[" + jquote(name) + "]";
          if (!specials.is_object() || !specials.contains(name)) fail(fs, "missing");
          const json& ids = array(specials[name], "ids", fs);
          TemplateItem ti{false, {}};
          for (size_t k = 0; k < ids.size(); ++k) ti.ids.push_back(id(ids[k], str_cat(fs, ".ids[", k, "]")));
          items.push_back(std::move(ti));
        } else {
          fail(fi, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
        }
      }
      t.templates.push_back(std::move(items));
    } else if (ty == "RobertaProcessing" || ty == "BertProcessing") {
      auto tok = [&](const char* key) {
        const json& p = need(j, key, f);
        if (!p.is_array() || p.size() != 2) fail(f + "." + key, "expected [\"token\", id]");
        return id(p[1], f + "." + key + "[1]");
      };
      t.templates.push_back({{false, {tok("cls")}}, {true, {}}, {false, {tok("sep")}}});
    } else {
      fail(f, "unsupported post_processor " + ty);
    }
  }

  void decoder(const json& j, const std::string& f) {
    if (j.is_null()) return;
    std::string ty = type(j, f);
    if (ty == "Sequence") {
      const json& a = array(j, "decoders", f);
      for (size_t i = 0; i < a.size(); ++i) decoder(a[i], str_cat(f, ".decoders[", i, "]"));
    } else if (ty == "ByteLevel") {
      t.dec_byte_level = true;
    } else if (ty == "ByteFallback") {
      t.dec_byte_fallback = true;
    } else if (ty == "Fuse") {
    } else {
      fail(f, "unsupported decoder " + ty);
    }
  }

  void load(const json& root) {
    if (!root.is_object()) fail("(top level)", "expected a JSON object");
    model(need(root, "model", "(top level)"), "model");
    if (const json* a = member(root, "added_tokens"); a && !a->is_null()) added_tokens(*a);
    const json null;
    auto get = [&](const char* k) -> const json& {
      const json* v = member(root, k);
      return v ? *v : null;
    };
    normalizer(get("normalizer"), "normalizer");
    pre_tokenizer(get("pre_tokenizer"), "pre_tokenizer");
    post_processor(get("post_processor"), "post_processor");
    decoder(get("decoder"), "decoder");

    for (auto& items : t.templates)
      for (auto& it : items)
        for (int32_t v : it.ids)
          if (size_t(v) >= t.id_kind.size() || !t.id_kind[v])
            fail("post_processor", str_cat("special token id ", v, " is not in the vocab"));
    // Decoded bytes per id: every token string (added tokens too, as in HF) through the decoder.
    const ByteTable& bt = byte_table();
    for (size_t i = 0; i < t.id_bytes.size(); ++i) {
      std::string& s = t.id_bytes[i];
      if (t.dec_byte_fallback && s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' &&
          std::isxdigit(static_cast<unsigned char>(s[3])) && std::isxdigit(static_cast<unsigned char>(s[4]))) {
        s = std::string(1, char(std::stoi(s.substr(3, 2), nullptr, 16)));
      } else if (t.dec_byte_level) {  // all characters map to bytes, or the token stays as it is
        std::string out;
        bool all = true;
        for (size_t p = 0; p < s.size() && all;) {
          size_t len;
          int64_t cp = next_cp(s, p, &len);
          all = cp >= 0 && cp < int64_t(bt.cp_to_byte.size()) && bt.cp_to_byte[cp] >= 0;
          if (all) out += char(bt.cp_to_byte[cp]);
          p += len;
        }
        if (all) s = std::move(out);
      }
    }
    for (size_t k = 0; k < t.added.size(); ++k) {
      const AddedToken& a = t.added[k];
      if (!a.normalized || t.normalizers.empty()) {
        (a.normalized ? t.norm_trie : t.raw_trie).insert(a.content, int32_t(k));
      } else {
        std::string n = t.normalize(a.content);
        if (!n.empty()) t.norm_trie.insert(n, int32_t(k));
      }
    }
    t.vocab_size = int64_t(t.id_bytes.size());
  }
};

}  // namespace

// ---- encoding --------------------------------------------------------------------------------
std::string Tokenizer::Impl::normalize(std::string_view s) const {
  std::string cur(s), next;
  for (const icu::Normalizer2* n : normalizers) {
    bool ascii = std::all_of(cur.begin(), cur.end(), [](char c) { return (c & 0x80) == 0; });
    UErrorCode st = U_ZERO_ERROR;
    if (ascii || n->isNormalizedUTF8(icu::StringPiece(cur.data(), int32_t(cur.size())), st)) continue;
    next.clear();
    icu::StringByteSink<std::string> sink(&next);
    st = U_ZERO_ERROR;
    n->normalizeUTF8(0, icu::StringPiece(cur.data(), int32_t(cur.size())), sink, nullptr, st);
    if (U_SUCCESS(st)) cur.swap(next);  // on failure keep the text as it is
  }
  return cur;
}

// HF AddedVocabulary::find_matches, edge cases included: the search resumes at the end of the
// match itself, so a match may start inside the whitespace an rstrip token took (its id is
// emitted, the text is not repeated).
void Tokenizer::Impl::split_added(std::string_view s, const Trie& trie, std::vector<Piece>& out) const {
  size_t start_offset = 0, i = 0;
  size_t ws_from = 1, ws_end = 0;  // memo: [ws_from, ws_end) is whitespace up to a non-space
  while (!trie.empty() && i < s.size()) {
    if (!trie.first[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    auto [k, len] = trie.longest(s, i);
    if (k < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = added[k];
    size_t start = i, stop = i + len;
    i = stop;
    if (tok.single_word) {
      bool start_ok = start == 0 || !is_word(prev_cp(s, start));
      size_t l;
      bool stop_ok = stop == s.size() || !is_word(next_cp(s, stop, &l));
      if (!start_ok || !stop_ok) continue;
    }
    if (tok.lstrip) {
      size_t b = start;
      while (b > start_offset && is_white(prev_cp(s, b))) {
        --b;
        while (b > start_offset && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
      }
      start = std::max(b, start_offset);
    }
    if (tok.rstrip) {
      if (stop < ws_from || stop > ws_end) {
        ws_from = ws_end = stop;
        for (size_t l; ws_end < s.size() && is_white(next_cp(s, ws_end, &l));) ws_end += l;
      }
      stop = ws_end;
    }
    if (start_offset < start) out.push_back({s.substr(start_offset, start - start_offset), -1, 0});
    out.push_back({std::string_view(), tok.id, 0});
    start_offset = stop;
  }
  if (start_offset < s.size()) out.push_back({s.substr(start_offset), -1, 0});
}

void Tokenizer::Impl::apply_step(const Step& st, Piece p, std::deque<std::string>& arena, std::vector<Piece>& out,
                                 std::vector<Seg>& segs) const {
  if (p.id >= 0 || (p.flags & kRaw)) {  // tokens and invalid bytes only get the byte mapping
    if (st.byte_level) p.flags |= kMapped;
    out.push_back(p);
    return;
  }
  if (p.flags & kMapped) {  // a previous ByteLevel: later steps see the mapped text
    std::string m;
    for (unsigned char c : p.text) m += byte_table().to_utf8[c];
    arena.push_back(std::move(m));
    p = {arena.back(), -1, 0};
  }
  std::string_view s = p.text;
  if (st.byte_level && st.add_prefix_space && (s.empty() || s[0] != ' ')) {
    arena.push_back(" ");
    arena.back().append(s);
    s = arena.back();
  }
  uint8_t flags = st.byte_level ? kMapped : 0;
  if (st.byte_level && !st.re) {
    out.push_back({s, -1, flags});
    return;
  }
  segs.clear();
  if (st.re) {
    st.re->find(s, segs);
  } else if (!st.literal.empty()) {
    size_t prev = 0;
    for (size_t at; (at = s.find(st.literal, prev)) != std::string_view::npos; prev = at + st.literal.size()) {
      if (at > prev) segs.push_back({prev, at, false});
      segs.push_back({at, at + st.literal.size(), true});
    }
    if (prev < s.size()) segs.push_back({prev, s.size(), false});
  } else {
    segs.push_back({0, s.size(), false});
  }
  if (st.invert)
    for (Seg& g : segs) g.m = !g.m;
  // HF SplitDelimiterBehavior; afterwards `m` means "remove". Removed and Isolated keep the
  // segments as they are (Isolated removes nothing); the merging behaviours build new ones.
  std::vector<Seg> merged;
  const std::vector<Seg>* res = &merged;
  bool prev_match = false;
  switch (st.byte_level ? Behavior::Isolated : st.behavior) {
    case Behavior::Removed:
      res = &segs;
      break;
    case Behavior::Isolated:
      for (Seg& g : segs) g.m = false;
      res = &segs;
      break;
    case Behavior::MergedWithPrevious:
      for (const Seg& g : segs) {
        if (g.m && !prev_match && !merged.empty())
          merged.back().e = g.e;
        else
          merged.push_back({g.b, g.e, false});
        prev_match = g.m;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->m && !prev_match && !merged.empty())
          merged.back().b = it->b;
        else
          merged.push_back({it->b, it->e, false});
        prev_match = it->m;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    case Behavior::Contiguous:
      for (const Seg& g : segs) {
        if (g.m == prev_match && !merged.empty())
          merged.back().e = g.e;
        else
          merged.push_back({g.b, g.e, false});
        prev_match = g.m;
      }
      break;
  }
  for (const Seg& g : *res)
    if (!g.m && g.e > g.b) out.push_back({s.substr(g.b, g.e - g.b), -1, flags});
}

int32_t Tokenizer::Impl::char_id(std::string_view ch) const {
  auto p = reinterpret_cast<const unsigned char*>(ch.data());
  if (utf8_sequence_length(p, ch.size()) == ch.size()) {
    uint32_t cp = utf8_decode(p, ch.size());
    if (cp < 0x10000) return bmp_id[cp];
  }
  auto it = vocab.find(std::string(ch));
  return it == vocab.end() ? -1 : it->second;
}

// HF BPE::merge_word + Word::merge_all (no dropout).
void Tokenizer::Impl::bpe(std::string_view w, std::vector<int32_t>& out) const {
  if (w.empty()) return;
  std::string key(w);
  if (ignore_merges)
    if (auto it = vocab.find(key); it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  bool cacheable = w.size() <= kMaxCachedWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    if (auto it = cache.find(key); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  struct Sym {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Sym> sy;
  sy.reserve(w.size());
  auto add = [&](int32_t id) {
    int32_t n = int32_t(sy.size());
    if (n) sy.back().next = n;
    sy.push_back({id, n - 1, -1, true});
  };
  int32_t pending_unk = 0;  // unk symbols waiting (fuse_unk folds them into one)
  for (size_t i = 0; i < w.size();) {
    size_t len;
    next_cp(w, i, &len);
    int32_t id = char_id(w.substr(i, len));
    if (id >= 0) {
      if (pending_unk) {
        add(unk_id);
        pending_unk = 0;
      }
      add(id);
    } else if (byte_fallback && std::all_of(w.begin() + i, w.begin() + i + len,
                                            [&](char c) { return fallback_id[static_cast<unsigned char>(c)] >= 0; })) {
      for (size_t b = i; b < i + len; ++b) add(fallback_id[static_cast<unsigned char>(w[b])]);
    } else if (unk_id >= 0) {
      if (pending_unk && !fuse_unk) add(unk_id);
      pending_unk = 1;
    }  // else: HF drops the character
    i += len;
  }
  if (pending_unk) add(unk_id);

  auto lookup = [&](int32_t a, int32_t b) {
    auto it = merges.find((uint64_t(uint32_t(a)) << 32) | uint32_t(b));
    return it == merges.end() ? nullptr : &it->second;
  };
  std::vector<Merge> heap_storage;
  heap_storage.reserve(sy.size());
  std::priority_queue<Merge> q(std::less<Merge>(), std::move(heap_storage));
  for (size_t i = 0; i + 1 < sy.size(); ++i)
    if (auto m = lookup(sy[i].id, sy[i + 1].id)) q.push({m->first, int32_t(i), m->second});
  while (!q.empty()) {
    Merge top = q.top();
    q.pop();
    Sym& cur = sy[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    Sym& right = sy[cur.next];
    auto m = lookup(cur.id, right.id);
    if (!m || m->second != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    right.alive = false;
    cur.next = right.next;
    if (cur.next >= 0) sy[cur.next].prev = top.pos;
    if (cur.prev >= 0)
      if (auto pm = lookup(sy[cur.prev].id, cur.id)) q.push({pm->first, cur.prev, pm->second});
    if (cur.next >= 0)
      if (auto nm = lookup(cur.id, sy[cur.next].id)) q.push({nm->first, top.pos, nm->second});
  }
  size_t first = out.size();
  for (int32_t i = sy.empty() ? -1 : 0; i >= 0; i = sy[i].next) out.push_back(sy[i].id);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() >= kMaxCacheEntries) cache.clear();
    cache.emplace(std::move(key), std::vector<int32_t>(out.begin() + first, out.end()));
  }
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool add_special_tokens) const {
  const Impl& t = *impl_;
  std::deque<std::string> arena;
  std::vector<Piece> pieces, first, tmp;
  t.split_added(text, t.raw_trie, first);
  for (const Piece& p : first) {
    if (p.id >= 0) {
      pieces.push_back(p);
      continue;
    }
    // Valid UTF-8 runs go through the normalizer; each invalid byte is a piece of its own.
    std::string_view s = p.text;
    auto u = reinterpret_cast<const unsigned char*>(s.data());
    for (size_t i = 0; i < s.size();) {
      size_t j = i, len;
      while (j < s.size() && (len = utf8_sequence_length(u + j, s.size() - j)) != 0) j += len;
      if (j > i) {
        std::string_view run = s.substr(i, j - i);
        if (!t.normalizers.empty()) {
          arena.push_back(t.normalize(run));
          run = arena.back();
        }
        t.split_added(run, t.norm_trie, pieces);
      }
      if (j < s.size()) pieces.push_back({s.substr(j, 1), -1, kRaw});
      i = j + 1;
    }
  }
  std::vector<Seg> segs;
  for (const Step& st : t.steps) {
    tmp.clear();
    for (const Piece& p : pieces) t.apply_step(st, p, arena, tmp, segs);
    pieces.swap(tmp);
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  std::string mapped;
  for (const Piece& p : pieces) {
    if (p.id >= 0) {
      ids.push_back(p.id);
      continue;
    }
    if (p.flags & kMapped) {
      mapped.clear();
      for (unsigned char c : p.text) mapped += byte_table().to_utf8[c];
      t.bpe(mapped, ids);
    } else {
      t.bpe(p.text, ids);
    }
  }
  if (add_special_tokens) {
    for (const auto& items : t.templates) {
      std::vector<int32_t> res;
      for (const TemplateItem& it : items)
        res.insert(res.end(), it.is_sequence ? ids.begin() : it.ids.begin(), it.is_sequence ? ids.end() : it.ids.end());
      ids.swap(res);
    }
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= impl_->vocab_size) continue;  // unknown ids are skipped, as in HF
    if (skip_special_tokens && impl_->id_kind[id] == 3) continue;
    out += impl_->id_bytes[id];
  }
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size ? impl_->id_bytes[id] : std::string();
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(const std::string& token) const {
  if (auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) return it->second;
  if (auto it = impl_->vocab.find(token); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < impl_->vocab_size && impl_->id_kind[id] == 3; }

// ---- construction ------------------------------------------------------------------------------
Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json(const std::string& json_text, const std::string& origin) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw_user_error(str_cat(origin, ": not valid JSON: ", json_error_text(e.what())));
  }
  auto impl = std::make_unique<Impl>();
  try {
    Loader<Impl>{*impl, origin}.load(root);
  } catch (const json::exception& e) {
    throw_user_error(str_cat(origin, ": unexpected JSON structure: ", json_error_text(e.what())));
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  check_input_file(path, "a tokenizer file");
  std::ifstream f(path, std::ios::binary);
  RLKV_CHECK(f.is_open(), path, ": cannot open tokenizer file");
  std::ostringstream ss;
  ss << f.rdbuf();
  RLKV_CHECK(!f.bad(), path, ": read error");
  return from_json(ss.str(), path);
}

}  // namespace rlkv
