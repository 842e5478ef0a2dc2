#include "eval/evaluate.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/log.h"
#include "masks/head_mask.h"
#include "masks/mask_spec.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace rlkv {

bool is_token_dropping(const std::string& method) { return method == "h2o" || method == "snapkv" || method == "rkv"; }

void check_eval_request(const EvalRequest& r) {
  const std::string& m = r.method;
  const bool dropping = is_token_dropping(m);
  RLKV_CHECK(m == "full" || m == "rlkv" || m == "random" || m == "streaming" || m == "single-head" || dropping,
             "--method must be full, rlkv, random, streaming, single-head, h2o, snapkv or rkv, got '", m, "'");
  RLKV_CHECK(!dropping || !r.sparsities.empty() || r.budget > 0, "--method ", m,
             " needs --sparsity S[,S...] (budgets matched to head masks) or --budget N (N >= 1 tokens)");
  RLKV_CHECK(r.budget >= 0, "--budget must be >= 1 tokens, got ", r.budget);
  RLKV_CHECK(r.budget == 0 || dropping, "--budget goes with --method h2o, snapkv or rkv");
  RLKV_CHECK(r.budget == 0 || r.sparsities.empty(), "--budget and --sparsity both size the cache of --method ", m,
             ": give one of them");
  RLKV_CHECK(r.seeds >= 1 && r.seeds <= 1000, "--seeds must be in 1..1000");
  if (m == "rlkv" || m == "random") RLKV_CHECK(!r.sparsities.empty(), "--method ", m, " needs --sparsity S[,S...]");
  RLKV_CHECK(m != "rlkv" || !r.mask.empty(), "--method rlkv needs --mask SCORES");
  RLKV_CHECK(m == "rlkv" || r.mask.empty(), "--mask goes with --method rlkv (--method ", m, " takes no mask)");
}

int64_t eval_passes(const EvalRequest& r, int64_t heads) {
  if (is_token_dropping(r.method)) return r.budget > 0 ? 1 : 1 + int64_t(r.sparsities.size());
  if (r.method == "rlkv") return int64_t(r.sparsities.size());
  if (r.method == "random") return int64_t(r.sparsities.size()) * r.seeds;
  if (r.method == "single-head") return heads + 1;
  return 1;
}

Evaluator::Evaluator(const Model& m, const Tokenizer& tok, GeneratorOptions go,
                     std::vector<std::vector<int32_t>> prompts, std::vector<Problem> problems,
                     const RewardOptions& reward, int64_t total_passes)
    : model_(m),
      tok_(tok),
      go_(std::move(go)),
      prompts_(std::move(prompts)),
      problems_(std::move(problems)),
      reward_(reward),
      total_(total_passes * int64_t(problems_.size())),
      tty_(isatty(2)) {
  // References are read once; correctness uses the same verifier as training (rewards/).
  for (const auto& p : problems_) refs_.push_back(prepare_reference(p.answer, reward_));
  // A reference the checker cannot read makes its problem wrong in every row: said before the passes.
  int64_t unusable = 0;
  std::string first;
  for (size_t i = 0; i < refs_.size(); ++i)
    if (!refs_[i].usable && unusable++ == 0)
      first = str_cat(problems_[i].where.empty() ? problems_[i].id : problems_[i].where, " (", refs_[i].why, ")");
  if (unusable > 0)
    log_warn(one_line(str_cat(unusable, " of ", problems_.size(), " problems have an answer the '",
                              reward_task_name(reward_.task), "' checker cannot read, first ", first,
                              "; they count as wrong in every row (rlkv prepare drops such problems)")));
}

EvalRow Evaluator::run(const std::vector<uint8_t>& keep) {
  std::vector<GenerationRequest> reqs;
  for (size_t i = 0; i < prompts_.size(); ++i) reqs.push_back({int64_t(i), prompts_[i], keep, uint64_t(i)});
  int64_t full_heads = 0;
  for (uint8_t k : keep) full_heads += k;
  const int64_t comp_heads = int64_t(keep.size()) - full_heads, ring = go_.sink + go_.window;
  // A head mask's bytes at the final length: full heads hold every token, compressed ones S + W.
  EvalRow r = pass(go_, reqs, [&](const GenerationResult& res) {
    const int64_t tokens = res.prompt_len + int64_t(res.tokens.size());
    return tokens * full_heads + std::min(tokens, ring) * comp_heads;
  });
  r.sparsity = keep.empty() ? 0 : double(comp_heads) / double(keep.size());
  return r;
}

EvalRow Evaluator::run_dropping(EvictionMethod method, const std::vector<int64_t>& budgets) {
  RLKV_ASSERT(budgets.size() == prompts_.size(), "one token budget per problem");
  GeneratorOptions go = go_;
  go.dropping = method;
  std::vector<GenerationRequest> reqs;
  for (size_t i = 0; i < prompts_.size(); ++i) {
    reqs.push_back({int64_t(i), prompts_[i], {}, uint64_t(i)});
    reqs.back().budget = budgets[i];
  }
  // Token dropping holds up to its capacity between compressions: its bytes are what it held at
  // the peak.
  EvalRow r = pass(go, reqs, [](const GenerationResult& res) { return res.kv_rows_peak; });
  r.method = eviction_method_name(method);
  return r;
}

EvalRow Evaluator::pass(const GeneratorOptions& go, const std::vector<GenerationRequest>& reqs,
                        const std::function<int64_t(const GenerationResult&)>& rows_held) {
  Generator gen(model_, &tok_, go);
  const auto results = gen.run(reqs, [&](const GenerationResult&) { tick(); });
  const ModelConfig& c = model_.config();
  const int64_t heads = c.num_layers * c.num_kv_heads;
  const double row_bytes = 2.0 * double(rlkv_dtype_size(to_kv_dtype(model_.dtype()))) * double(c.head_dim);
  EvalRow r;
  r.n = int64_t(results.size());
  double correct = 0, len = 0, trunc = 0, rep = 0, kv = 0, kv_full = 0;
  last_lengths_.assign(results.size(), 0);
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& res = results[i];
    if (refs_[i].usable) {
      const RewardScore s = score_response(res.text, int64_t(res.tokens.size()), finish_reason_name(res.finish),
                                           refs_[i], /*ref_len=*/0, reward_);
      correct += s.correct ? 1 : 0;
      extracted_ += s.extracted.empty() ? 0 : 1;
    }
    ++scored_;
    len += double(res.tokens.size());
    trunc += res.finish == FinishReason::kLength ? 1 : 0;
    rep += res.finish == FinishReason::kRepetition ? 1 : 0;
    const int64_t tokens = res.prompt_len + int64_t(res.tokens.size());
    last_lengths_[i] = tokens;
    kv += row_bytes * double(rows_held(res));
    kv_full += row_bytes * double(tokens) * double(heads);
  }
  const double n = std::max<double>(1, double(r.n));
  r.accuracy = correct / n;
  r.mean_length = len / n;
  r.truncated = trunc / n;
  r.repetition = rep / n;
  r.kv_bytes = kv / n;
  r.kv_fraction = kv_full > 0 ? kv / kv_full : 0;
  return r;
}

namespace {

// Mean of the random masks' rows at one sparsity, with the sample standard deviation of accuracy.
EvalRow mean_row(const std::vector<EvalRow>& per, int64_t seeds) {
  EvalRow m;
  m.method = "random";
  m.detail = str_cat("seeds 0-", seeds - 1);
  const double k = double(per.size());
  m.n = per.empty() ? 0 : per.front().n;  // problems, as in every other row (each seed ran them all)
  for (const EvalRow& r : per) {
    m.sparsity += r.sparsity / k;
    m.accuracy += r.accuracy / k;
    m.mean_length += r.mean_length / k;
    m.truncated += r.truncated / k;
    m.repetition += r.repetition / k;
    m.kv_bytes += r.kv_bytes / k;
    m.kv_fraction += r.kv_fraction / k;
  }
  double var = 0;
  for (const EvalRow& r : per) var += (r.accuracy - m.accuracy) * (r.accuracy - m.accuracy);
  m.accuracy_std = per.size() > 1 ? std::sqrt(var / (k - 1)) : 0;
  return m;
}

}  // namespace

double mask_sparsity(int64_t heads, double s) { return double(heads_compressed(heads, s)) / double(heads); }

std::vector<int64_t> matched_budgets(const std::vector<int64_t>& full_lengths, double s, EvictionMethod m,
                                     const GeneratorOptions& go) {
  EvictionParams p = go.dropping_params;
  p.sink = go.sink;
  p.window = go.window;
  const int64_t least = min_eviction_budget(m, p);
  std::vector<int64_t> b;
  for (int64_t L : full_lengths)
    b.push_back(std::max(least, int64_t(std::llround((1 - s) * double(L))) + go.sink + go.window));
  return b;
}

EvalRow Evaluator::run_random(double sparsity, int64_t seeds) {
  const ModelConfig& mc = model_.config();
  const int64_t heads = mc.num_layers * mc.num_kv_heads;
  std::vector<EvalRow> per;
  for (int64_t seed = 0; seed < seeds; ++seed) per.push_back(run(random_mask(heads, sparsity, uint64_t(seed))));
  return mean_row(per, seeds);
}

std::vector<EvalRow> Evaluator::run_dropping(const EvalRequest& q) {
  const EvictionMethod method = parse_eviction_method(q.method, "--method");
  std::vector<EvalRow> rows;
  if (q.budget > 0) {
    EvictionParams p = go_.dropping_params;
    p.budget = q.budget;
    p.sink = go_.sink;
    p.window = go_.window;
    check_eviction_params(method, p, "--budget");
    EvalRow r = run_dropping(method, std::vector<int64_t>(prompts_.size(), q.budget));
    r.detail = str_cat("budget ", q.budget);
    rows.push_back(r);
    return rows;
  }
  const ModelConfig& mc = model_.config();
  EvalRow full = run(std::vector<uint8_t>(size_t(mc.num_layers * mc.num_kv_heads), 1));
  full.method = "full";
  rows.push_back(full);
  const std::vector<int64_t> lengths = last_lengths_;
  for (double s : q.sparsities) {
    // Matched to the mask a sparsity makes: its heads_compressed / n, the sparsity the mask rows report.
    const double real = mask_sparsity(mc.num_layers * mc.num_kv_heads, s);
    EvalRow r = run_dropping(method, matched_budgets(lengths, real, method, go_));
    r.sparsity = real;
    r.detail = "matched";
    rows.push_back(r);
  }
  return rows;
}

std::vector<EvalRow> Evaluator::run(const EvalRequest& q) {
  if (is_token_dropping(q.method)) return run_dropping(q);
  const ModelConfig& mc = model_.config();
  const int64_t heads = mc.num_layers * mc.num_kv_heads;
  const std::vector<uint8_t> all_full(size_t(heads), 1);
  std::vector<EvalRow> rows;
  if (q.method == "full" || q.method == "streaming") {
    EvalRow r = run(q.method == "full" ? all_full : std::vector<uint8_t>(size_t(heads), 0));
    r.method = q.method;
    rows.push_back(r);
  } else if (q.method == "rlkv") {
    const HeadScores scores = load_head_scores_for(q.mask, mc);
    for (double s : q.sparsities) {
      EvalRow r = run(mask_at_sparsity(scores, s));
      r.method = q.method;
      r.detail = std::filesystem::path(scores.source).parent_path().filename().string();
      rows.push_back(r);
    }
  } else if (q.method == "random") {
    for (double s : q.sparsities) rows.push_back(run_random(s, q.seeds));
  } else {  // single-head
    EvalRow full = run(all_full);
    full.method = "full";
    rows.push_back(full);
    for (int64_t i = 0; i < heads; ++i) {
      std::vector<uint8_t> keep = all_full;
      keep[size_t(i)] = 0;
      EvalRow r = run(keep);
      r.method = "single-head";
      r.layer = i / mc.num_kv_heads;
      r.head = i % mc.num_kv_heads;
      r.detail = str_cat("L", r.layer, " H", r.head);
      r.drop = full.accuracy - r.accuracy;
      rows.push_back(r);
    }
  }
  return rows;
}

void Evaluator::finish_progress() const {
  if (tty_) std::fprintf(stderr, "\n");
}

void Evaluator::warn_if_nothing_extracted(const std::string& declared_task) const {
  if (scored_ == 0 || extracted_ > 0) return;
  const std::string declared = declared_task.empty() ? "declares none" : "declares " + declared_task;
  std::fprintf(stderr,
               "warning: none of the %lld responses has an answer the '%s' checker can extract, so "
               "every accuracy above is 0 by construction; is the task right? (--task toy|math; the model "
               "directory %s)\n",
               (long long)scored_, reward_task_name(reward_.task), declared.c_str());
}

void Evaluator::tick() {
  ++done_;
  if (!tty_ || (done_ % 16 != 0 && done_ != total_)) return;
  const int width = 40;
  const int fill = total_ ? int(double(done_) / double(total_) * width) : width;
  std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld", fill, "========================================", width - fill, "",
               (long long)done_, (long long)total_);
}

nlohmann::json eval_row_json(const EvalRow& r) {
  nlohmann::json j = {{"method", r.method},
                      {"sparsity", r.sparsity},
                      {"n", r.n},
                      {"accuracy", r.accuracy},
                      {"mean_length", r.mean_length},
                      {"truncated_rate", r.truncated},
                      {"repetition_rate", r.repetition},
                      {"kv_bytes_per_sequence", r.kv_bytes},
                      {"kv_fraction_of_full", r.kv_fraction}};
  if (!r.detail.empty()) j["detail"] = r.detail;
  if (r.method == "random") j["accuracy_std"] = r.accuracy_std;
  if (r.layer >= 0) {
    j["layer"] = r.layer;
    j["kv_head"] = r.head;
    j["drop"] = r.drop;
  }
  return j;
}

namespace {

// The drop of head (l, h) in a single-head row list: rows[0] is full, then heads in order.
double head_drop(const std::vector<EvalRow>& rows, int64_t l, int64_t h, int64_t num_kv_heads) {
  return rows[size_t(1 + l * num_kv_heads + h)].drop;
}

}  // namespace

void print_eval_rows(const std::vector<EvalRow>& rows, int64_t num_layers, int64_t num_kv_heads) {
  std::printf("%-12s %8s %-14s %9s %8s %8s %8s %10s %7s\n", "method", "sparsity", "detail", "accuracy", "length",
              "capped", "repeat", "KV bytes", "KV/full");
  for (const EvalRow& r : rows) {
    char accs[32];
    if (r.method == "random")
      std::snprintf(accs, sizeof accs, "%.1f±%.1f", 100 * r.accuracy, 100 * r.accuracy_std);
    else
      std::snprintf(accs, sizeof accs, "%.1f", 100 * r.accuracy);
    std::printf("%-12s %8.3f %-14s %9s %8.1f %7.1f%% %7.1f%% %10.0f %6.1f%%\n", r.method.c_str(), r.sparsity,
                r.detail.substr(0, 14).c_str(), accs, r.mean_length, 100 * r.truncated, 100 * r.repetition, r.kv_bytes,
                100 * r.kv_fraction);
  }
  const bool single_head =
      rows.size() == size_t(1 + num_layers * num_kv_heads) && rows.size() > 1 && rows[1].method == "single-head";
  if (!single_head) return;
  std::printf("\naccuracy drop (points) when only this KV head is compressed; rows = layers, columns = KV heads\n");
  for (int64_t l = 0; l < num_layers; ++l) {
    std::printf("L%-3lld", (long long)l);
    for (int64_t h = 0; h < num_kv_heads; ++h) std::printf(" %6.1f", 100 * head_drop(rows, l, h, num_kv_heads));
    std::printf("\n");
  }
}

void write_single_head_scores(const std::string& dir, const std::vector<EvalRow>& rows, int64_t num_layers,
                              int64_t num_kv_heads) {
  RLKV_CHECK(rows.size() == size_t(1 + num_layers * num_kv_heads), "single-head scores need one row per head");
  std::string text;
  for (int64_t l = 0; l < num_layers; ++l) {
    for (int64_t h = 0; h < num_kv_heads; ++h)
      text += str_cat(h ? "\t" : "", std::clamp(head_drop(rows, l, h, num_kv_heads), 0.0, 1.0));
    text += "\n";
  }
  std::filesystem::create_directories(dir);
  write_file_atomic(dir + "/adapter_weights.tsv", text);
}

}  // namespace rlkv
