#include "toy/toy_task.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rlkv {
namespace {
const std::string kChars = "0123456789+=;QA:";  // ids 3.. in this order
}

std::string ToyProblem::prompt() const {
  std::string s = "Q:";
  for (size_t i = 0; i < numbers.size(); ++i) s += (i ? "+" : "") + std::to_string(numbers[i]);
  return s + "=";
}

ToyChain parse_toy_chain(const std::string& name) {
  if (name == "running") return ToyChain::kRunning;
  if (name == "pairs") return ToyChain::kPairs;
  throw UserError(str_cat("toy task: chain must be running or pairs, got '", name, "'"));
}

const char* toy_chain_name(ToyChain c) { return c == ToyChain::kPairs ? "pairs" : "running"; }

std::string ToyProblem::response() const {
  std::string s;
  if (chain == ToyChain::kPairs) {
    std::deque<int64_t> queue(numbers.begin(), numbers.end());
    while (queue.size() > 1) {
      const int64_t a = queue.front();
      queue.pop_front();
      const int64_t b = queue.front();
      queue.pop_front();
      s += std::to_string(a) + "+" + std::to_string(b) + "=" + std::to_string(a + b) + ";";
      queue.push_back(a + b);
    }
    return s + "A:" + std::to_string(queue.empty() ? 0 : queue.front());
  }
  int64_t sum = numbers.empty() ? 0 : numbers[0];
  for (size_t i = 1; i < numbers.size(); ++i) {
    const int64_t next = sum + numbers[i];
    s += std::to_string(sum) + "+" + std::to_string(numbers[i]) + "=" + std::to_string(next) + ";";
    sum = next;
  }
  return s + "A:" + std::to_string(sum);
}

int64_t ToyProblem::answer() const {
  int64_t sum = 0;
  for (int64_t x : numbers) sum += x;
  return sum;
}

void validate_toy_options(const ToyTaskOptions& o) {
  RLKV_CHECK(o.k_min >= 2 && o.k_max >= o.k_min && o.k_max <= 1000, "toy task: need 2 <= k_min <= k_max <= 1000, got ",
             o.k_min, "..", o.k_max);
  RLKV_CHECK(o.num_min >= 0 && o.num_max >= o.num_min && o.num_max <= 1000000000,
             "toy task: need 0 <= num_min <= num_max <= 1e9, got ", o.num_min, "..", o.num_max);
  RLKV_CHECK(o.num_max - o.num_min + 1 >= o.k_max, "toy task: ", o.k_max, " distinct operands do not fit in [",
             o.num_min, ", ", o.num_max, "]");
}

namespace {
int64_t digits(int64_t v) {
  int64_t d = 1;
  for (; v >= 10; v /= 10) ++d;
  return d;
}
}  // namespace

int64_t toy_max_response_tokens(const ToyTaskOptions& o) {
  const int64_t d = digits(o.k_max * o.num_max);  // any operand, partial sum or result
  return (o.k_max - 1) * (3 * d + 3) + 2 + d;     // "a+b=c;" per step, then "A:" and the total
}

int64_t toy_max_sequence_tokens(const ToyTaskOptions& o) {
  const int64_t prompt = 2 + o.k_max * (digits(o.num_max) + 1);  // "Q:" and "x+" ... "x="
  return 1 + prompt + toy_max_response_tokens(o) + 1;            // BOS and EOS
}

ToyProblem toy_problem(std::mt19937_64& rng, const ToyTaskOptions& o) {
  validate_toy_options(o);
  ToyProblem p;
  p.chain = o.chain;
  const int64_t k = std::uniform_int_distribution<int64_t>(o.k_min, o.k_max)(rng);
  std::uniform_int_distribution<int64_t> num(o.num_min, o.num_max);
  while (int64_t(p.numbers.size()) < k) {
    const int64_t x = num(rng);
    if (std::find(p.numbers.begin(), p.numbers.end(), x) == p.numbers.end()) p.numbers.push_back(x);
  }
  return p;
}

std::string toy_tokenizer_json() {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  vocab["<pad>"] = kToyPad;
  vocab["<s>"] = kToyBos;
  vocab["</s>"] = kToyEos;
  for (size_t i = 0; i < kChars.size(); ++i) vocab[std::string(1, kChars[i])] = int(3 + i);
  auto added = [](int id, const char* content) {
    return nlohmann::ordered_json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                                  {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  nlohmann::ordered_json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {added(kToyPad, "<pad>"), added(kToyBos, "<s>"), added(kToyEos, "</s>")}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {kToyBos}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", nlohmann::ordered_json::array()}}}};
  return j.dump(2) + "\n";
}

bool toy_extract_answer(const std::string& response, int64_t& value) {
  const size_t at = response.rfind("A:");
  if (at == std::string::npos) return false;
  size_t i = at + 2, digits = 0;
  int64_t v = 0;
  while (i < response.size() && response[i] >= '0' && response[i] <= '9' && digits < 18) {
    v = v * 10 + (response[i] - '0');
    ++i;
    ++digits;
  }
  if (digits == 0 || (i < response.size() && response[i] >= '0' && response[i] <= '9')) return false;
  value = v;
  return true;
}

std::vector<int32_t> toy_encode(const std::string& text) {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (char ch : text) {
    const size_t at = kChars.find(ch);
    RLKV_CHECK(at != std::string::npos && ch != '\0', "toy task: character '", std::string(1, ch),
               "' is not in the toy vocabulary");
    ids.push_back(int32_t(3 + at));
  }
  return ids;
}

void toy_dataset_lines(int64_t n, uint64_t seed, const ToyTaskOptions& opts,
                       const std::function<void(const std::string&)>& line) {
  validate_toy_options(opts);
  std::mt19937_64 rng{seed};
  for (int64_t i = 0; i < n; ++i) {
    const ToyProblem p = toy_problem(rng, opts);
    nlohmann::json j = {{"id", "toy-" + std::to_string(seed) + "-" + std::to_string(i)},
                        {"prompt", p.prompt()},
                        {"answer", std::to_string(p.answer())},
                        {"ref_len", int64_t(p.response().size()) + 1}};
    line(j.dump() + "\n");
  }
}

std::string toy_dataset_jsonl(int64_t n, uint64_t seed, const ToyTaskOptions& opts) {
  std::string text;
  toy_dataset_lines(n, seed, opts, [&](const std::string& l) { text += l; });
  return text;
}

}  // namespace rlkv
