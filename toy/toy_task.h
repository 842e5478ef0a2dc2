// The embedded toy reasoning task (docs/design.md section 6), in one place so that data
// generation, training, evaluation and scoring agree on the exact format:
//   prompt   "Q:" + K distinct integers from [lo, hi] joined by '+' + "="     e.g. Q:23+45+12=
//   response running sums "s+x=t" joined by ';', then ";A:" + total            23+45=68;68+12=80;A:80
// Each step copies its operand x from the prompt (long-range retrieval once the chain is longer than
// a small recent window) and s from the previous step (local), which is what makes heads
// heterogeneous. Vocabulary: "0-9 + = ; Q A :" plus <pad>, <s>, </s>, single-character tokens.
//
// A second chain over the same prompts and answers (`pairs`, rlkv toy train --chain pairs) adds the
// two oldest values not yet used, in a queue that holds the prompt's operands followed by each step's
// result: Q:23+45+12+67+30+18= -> 23+45=68;12+67=79;30+18=48;68+79=147;48+147=195;A:195.
// A step reads either two operands from the prompt, an operand and an earlier step's result, or two
// earlier results (each several steps back), so the chain needs more than one kind of long-range lookup.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace rlkv {

enum class ToyChain { kRunning, kPairs };
ToyChain parse_toy_chain(const std::string& name);  // "running" | "pairs"; UserError otherwise
const char* toy_chain_name(ToyChain c);

struct ToyTaskOptions {
  int64_t k_min = 6, k_max = 10;        // operands per problem
  int64_t num_min = 10, num_max = 99;   // operand range (distinct within a problem)
  ToyChain chain = ToyChain::kRunning;  // the response's chain of thought (the prompt and answer do not change)
};

struct ToyProblem {
  std::vector<int64_t> numbers;
  ToyChain chain = ToyChain::kRunning;
  std::string prompt() const;
  std::string response() const;  // the full chain of thought and answer, without EOS
  int64_t answer() const;
};

// Draws one problem; throws UserError when the options cannot be satisfied (e.g. more distinct
// operands than the range holds).
ToyProblem toy_problem(std::mt19937_64& rng, const ToyTaskOptions& opts);
void validate_toy_options(const ToyTaskOptions& opts);

// Upper bounds on the tokens of any problem these options draw: the response (without EOS), and the
// whole sequence a model sees (BOS, prompt, response, EOS). Every number of a chain is a sum of at
// most k_max operands, so it has at most the digits of k_max * num_max; a chain has k - 1 steps.
int64_t toy_max_response_tokens(const ToyTaskOptions& opts);
int64_t toy_max_sequence_tokens(const ToyTaskOptions& opts);

// `n` problems drawn with `seed`, as a dataset (JSONL: id toy-<seed>-<i>, prompt, answer, and ref_len,
// which this task knows exactly: the response's characters, one token each, plus EOS).
std::string toy_dataset_jsonl(int64_t n, uint64_t seed, const ToyTaskOptions& opts);
// The same lines one at a time, each with its newline (rlkv toy data streams them to its file).
void toy_dataset_lines(int64_t n, uint64_t seed, const ToyTaskOptions& opts,
                       const std::function<void(const std::string&)>& line);

// Token ids of the toy vocabulary.
constexpr int32_t kToyPad = 0, kToyBos = 1, kToyEos = 2;
constexpr int64_t kToyVocab = 19;  // <pad> <s> </s> 0-9 + = ; Q A :

// tokenizer.json text for the toy vocabulary: byte-level BPE without merges (each character is one
// token), BOS added by the post-processor; loads in HF tokenizers and in rlkv's Tokenizer.
std::string toy_tokenizer_json();

// The answer of a toy response: the integer after the last "A:" (digits only, at most 18); false when
// there is none. The reference answer is a bare integer.
bool toy_extract_answer(const std::string& response, int64_t& value);

// Token ids of a toy string (characters of the vocabulary only; UserError otherwise).
std::vector<int32_t> toy_encode(const std::string& text);

}  // namespace rlkv
