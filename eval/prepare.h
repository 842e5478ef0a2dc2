// The paper's self-distillation sampling, behind `rlkv prepare` (docs/design.md section 4). The
// full-cache model answers every candidate problem K times (at the generator's sampling settings,
// batched); problems whose pass rate lies in [min_pass_rate, max_pass_rate] are kept with ref_len
// (mean length of the correct answers, tokens), pass_rate and the correct answers' lengths. The rest
// are dropped and counted by reason: never solved, always truncated, pass rate outside the band,
// unparseable reference (and the input's bad lines).
//
// Ranks: the chunks of `chunk` problems are shared among the ranks of `world` (every rank runs the
// full-cache model); rank 0 writes the output. Resumable: each finished chunk is appended to the
// rank's OUT.journal.<rank> and flushed before the next starts; a rerun (after SIGTERM, a crash or a
// power cut) skips the chunks the journals hold. Sampling streams depend only on (seed, problem,
// sample) and chunks are the same on every run, so an interrupted and resumed run writes the same
// OUT as an uninterrupted one. OUT itself is written at the end, durably (core/durable_file.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "problems/dataset.h"
#include "rewards/reward.h"
#include "runtime/generator.h"

namespace rlkv {

class Collectives;
class Model;
class Tokenizer;

struct PrepareOptions {
  std::string output;   // OUT.jsonl; journals are OUT.journal.<rank> beside it
  std::string model;    // the model (its path and dtype), for the journals' settings fingerprint
  int64_t samples = 4;  // K
  int64_t chunk = 64;   // problems per journal entry
  double min_pass_rate = 0.25, max_pass_rate = 1.0;
  std::string prompt_template = "{prompt}";
  bool add_special_tokens = true;
  GeneratorOptions generation;  // full cache for every sample
  RewardOptions reward;         // its task already resolved
};

struct PrepareResult {
  bool interrupted = false;  // the run stop flag was raised; the journals keep what is done
  int64_t problems = 0, done = 0, kept = 0;
  std::map<std::string, int64_t> dropped;             // reason -> count (rank 0)
  int64_t samples_scored = 0, samples_extracted = 0;  // rank 0: for the wrong-task warning
};

// Runs this rank's share of `data` and, on rank 0, writes the output once every chunk is done.
PrepareResult run_prepare(const PrepareOptions& o, const LoadedProblems& data, const Model& model, const Tokenizer& tok,
                          Collectives& world);

}  // namespace rlkv
