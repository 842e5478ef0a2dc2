// `rlkv eval`: accuracy, generated length, runaway (length-capped) and repetition rates, and KV bytes
// of a model on a problem set under head masks: full, rlkv (a mask from scores), random (several
// seeds: mean and spread), streaming (every head compressed) and single-head (each head compressed
// alone, one row per head). Greedy by default. A table on stdout, JSON with --output.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/config.h"
#include "core/dataset.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "rewards/reward.h"
#include "launch/cli.h"
#include "launch/tp_setup.h"
#include "runtime/generator.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

struct Row {
  std::string method;
  double sparsity = 0;       // fraction of KV heads compressed
  std::string detail;        // seed list, head, mask source
  int64_t n = 0;
  double accuracy = 0, accuracy_std = 0;
  double mean_length = 0, truncated = 0, repetition = 0;
  double kv_bytes = 0, kv_fraction = 0;  // mean per sequence at its final length, and vs all heads full
  int64_t layer = -1, head = -1;
  double drop = 0;  // single-head: accuracy drop against full
};


std::vector<double> parse_list(const std::string& s, const char* what) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    RLKV_CHECK(end && *end == '\0' && !item.empty() && v >= 0 && v <= 1, what, ": '", item, "' is not a number in [0, 1]");
    out.push_back(v);
  }
  RLKV_CHECK(!out.empty(), what, ": empty list");
  return out;
}

class Evaluator {
 public:
  Evaluator(const Model& m, const Tokenizer& tok, GeneratorOptions go, std::vector<std::vector<int32_t>> prompts,
            std::vector<Problem> problems, const RewardOptions& reward, int64_t total_runs)
      : model_(m), tok_(tok), go_(std::move(go)), prompts_(std::move(prompts)), problems_(std::move(problems)),
        reward_(reward), total_(total_runs * int64_t(problems_.size())), tty_(isatty(2)) {
    // References are read once; correctness uses the same verifier as training (rewards/).
    for (const auto& p : problems_) refs_.push_back(prepare_reference(p.answer, reward_));
  }

  Row run(const std::vector<uint8_t>& keep) {
    Generator gen(model_, &tok_, go_);
    std::vector<GenerationRequest> reqs;
    for (size_t i = 0; i < prompts_.size(); ++i) reqs.push_back({int64_t(i), prompts_[i], keep, uint64_t(i)});
    const auto results = gen.run(reqs, [&](const GenerationResult&) { tick(); });
    const ModelConfig& c = model_.config();
    const int64_t ring = go_.sink + go_.window;
    const double row_bytes = 2.0 * double(kv_dtype_size(to_kv_dtype(model_.dtype()))) * double(c.head_dim);
    int64_t full_heads = 0;
    for (uint8_t k : keep) full_heads += k;
    const int64_t comp_heads = int64_t(keep.size()) - full_heads;
    Row r;
    r.n = int64_t(results.size());
    double correct = 0, len = 0, trunc = 0, rep = 0, kv = 0, kv_full = 0;
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
      kv += row_bytes * double(tokens * full_heads + std::min(tokens, ring) * comp_heads);
      kv_full += row_bytes * double(tokens) * double(keep.size());
    }
    const double n = std::max<double>(1, double(r.n));
    r.accuracy = correct / n;
    r.mean_length = len / n;
    r.truncated = trunc / n;
    r.repetition = rep / n;
    r.kv_bytes = kv / n;
    r.kv_fraction = kv_full > 0 ? kv / kv_full : 0;
    r.sparsity = keep.empty() ? 0 : double(comp_heads) / double(keep.size());
    return r;
  }

  void finish_progress() {
    if (tty_) std::fprintf(stderr, "\n");
  }

  // Not one response with an answer the task's checker can find: the accuracies are not results.
  void warn_if_nothing_extracted(const std::string& declared) const {
    if (scored_ == 0 || extracted_ > 0) return;
    std::fprintf(stderr,
                 "rlkv eval: warning: none of the %lld responses has an answer the '%s' checker can extract, so "
                 "every accuracy above is 0 by construction; is the task right? (--task toy|math; the model "
                 "directory %s)\n",
                 (long long)scored_, reward_task_name(reward_.task),
                 declared.empty() ? "declares none" : ("declares " + declared).c_str());
  }

 private:
  void tick() {
    ++done_;
    if (!tty_ || (done_ % 16 != 0 && done_ != total_)) return;
    const int width = 40;
    const int fill = total_ ? int(double(done_) / double(total_) * width) : width;
    std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld", fill, "========================================", width - fill, "",
                 (long long)done_, (long long)total_);
  }

  const Model& model_;
  const Tokenizer& tok_;
  GeneratorOptions go_;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<Problem> problems_;
  RewardOptions reward_;
  std::vector<Reference> refs_;
  int64_t total_, done_ = 0;
  int64_t scored_ = 0, extracted_ = 0;  // responses scored, and those with an extractable answer
  bool tty_;
};

nlohmann::json row_json(const Row& r) {
  nlohmann::json j = {{"method", r.method},         {"sparsity", r.sparsity},       {"n", r.n},
                      {"accuracy", r.accuracy},     {"mean_length", r.mean_length}, {"truncated_rate", r.truncated},
                      {"repetition_rate", r.repetition}, {"kv_bytes_per_sequence", r.kv_bytes},
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

void print_table(const std::vector<Row>& rows) {
  std::printf("%-12s %8s %-14s %9s %8s %8s %8s %10s %7s\n", "method", "sparsity", "detail", "accuracy", "length",
              "capped", "repeat", "KV bytes", "KV/full");
  for (const Row& r : rows) {
    std::string acc = std::to_string(int(std::lround(r.accuracy * 1000)) / 10.0).substr(0, 5);
    char accs[32];
    if (r.method == "random")
      std::snprintf(accs, sizeof accs, "%.1f±%.1f", 100 * r.accuracy, 100 * r.accuracy_std);
    else
      std::snprintf(accs, sizeof accs, "%.1f", 100 * r.accuracy);
    std::printf("%-12s %8.3f %-14s %9s %8.1f %7.1f%% %7.1f%% %10.0f %6.1f%%\n", r.method.c_str(), r.sparsity,
                r.detail.substr(0, 14).c_str(), accs, r.mean_length, 100 * r.truncated, 100 * r.repetition,
                r.kv_bytes, 100 * r.kv_fraction);
  }
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  po::options_description desc("rlkv eval options");
  desc.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>(), "INI config file")
      ("model", po::value<std::string>(), "model directory (model.path)")
      ("data", po::value<std::string>(), "problems, JSONL {id, prompt, answer}")
      ("method", po::value<std::string>()->default_value("full"), "full | rlkv | random | streaming | single-head")
      ("mask", po::value<std::string>(), "rlkv: head scores (adapter_weights.tsv / full_attention_heads.tsv or a directory)")
      ("sparsity", po::value<std::string>(), "rlkv / random: fractions of KV heads compressed, e.g. 0.25,0.5,0.75")
      ("seeds", po::value<int64_t>()->default_value(5), "random: masks per sparsity")
      ("task", po::value<std::string>(), "answer checking: toy | math (default: the model directory's rlkv_task, else math)")
      ("limit", po::value<int64_t>()->default_value(0), "use the first N problems (0 = all)")
      ("output", po::value<std::string>(), "write results as JSON")
      ("scores-out", po::value<std::string>(), "single-head: write the accuracy drops as DIR/adapter_weights.tsv")
      ("sink", po::value<int64_t>(), "cache.sink")
      ("window", po::value<int64_t>(), "cache.window")
      ("max-new-tokens", po::value<int64_t>(), "rollout.max_new_tokens")
      ("max-batch", po::value<int64_t>(), "runtime.max_batch")
      ("threads", po::value<int64_t>(), "runtime.threads")
      ("raw", "do not apply model.prompt_template");
  ParsedArgs args = parse_args(argc, argv, desc);
  const auto& vm = args.vm;
  if (vm.count("help")) {
    std::cout << "usage: rlkv eval --model DIR --data FILE.jsonl --method M [options] [--section.key=value ...]\n" << desc;
    return 0;
  }
  auto flag = [&](const char* name, const char* key) {
    if (!vm.count(name)) return;
    const auto& v = vm[name].value();
    if (auto* p = boost::any_cast<std::string>(&v)) args.overrides.push_back(std::string(key) + "=" + *p);
    else if (auto* i = boost::any_cast<int64_t>(&v)) args.overrides.push_back(std::string(key) + "=" + std::to_string(*i));
  };
  flag("model", "model.path");
  flag("sink", "cache.sink");
  flag("window", "cache.window");
  flag("max-new-tokens", "rollout.max_new_tokens");
  flag("max-batch", "runtime.max_batch");
  flag("threads", "runtime.threads");
  // Evaluation is greedy unless the config or an override says otherwise.
  args.overrides.insert(args.overrides.begin(), "rollout.temperature=0");
  const Config cfg = load_config(vm.count("config") ? vm["config"].as<std::string>() : "", args.overrides);
  RLKV_CHECK(!cfg.model.path.empty(), "no model: give --model DIR");
  RLKV_CHECK(vm.count("data"), "no problems: give --data FILE.jsonl");
  const std::string method = vm["method"].as<std::string>();
  RLKV_CHECK(method == "full" || method == "rlkv" || method == "random" || method == "streaming" ||
                 method == "single-head",
             "--method must be full, rlkv, random, streaming or single-head, got '", method, "'");
  if (vm.count("task")) parse_reward_task(vm["task"].as<std::string>(), "--task");  // bad values fail early
  const int64_t seeds = vm["seeds"].as<int64_t>();
  RLKV_CHECK(seeds >= 1 && seeds <= 1000, "--seeds must be in 1..1000");
  std::vector<double> sparsities;
  if (method == "rlkv" || method == "random") {
    RLKV_CHECK(vm.count("sparsity"), "--method ", method, " needs --sparsity S[,S...]");
    sparsities = parse_list(vm["sparsity"].as<std::string>(), "--sparsity");
  }
  RLKV_CHECK(method != "rlkv" || vm.count("mask"), "--method rlkv needs --mask SCORES");
  RLKV_CHECK(!vm.count("scores-out") || method == "single-head", "--scores-out goes with --method single-head");

  const int threads = set_intra_op_threads(cfg);
  const Model model = Model::load(cfg.model.path, parse_dtype(cfg.model.dtype), resolve_device(cfg));
  const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
  const ModelConfig& mc = model.config();
  RewardOptions reward;
  reward.task = vm.count("task") ? parse_reward_task(vm["task"].as<std::string>(), "--task")
                                 : resolve_reward_task(cfg.reward.task, mc.task, "config key reward.task");
  std::vector<Problem> problems = load_problems(vm["data"].as<std::string>());
  const int64_t limit = vm["limit"].as<int64_t>();
  if (limit > 0 && int64_t(problems.size()) > limit) problems.resize(size_t(limit));
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : problems) {
    const std::string text = vm.count("raw") ? p.prompt : apply_prompt_template(cfg.model.prompt_template, p.prompt);
    prompts.push_back(tok.encode(text, cfg.model.add_special_tokens));
    RLKV_CHECK(!prompts.back().empty(), "problem ", p.id, ": prompt encodes to no tokens");
  }

  GeneratorOptions go = generator_options(cfg);
  go.num_threads = threads;

  const int64_t heads = mc.num_layers * mc.num_kv_heads;
  int64_t runs = 1;
  if (method == "rlkv") runs = int64_t(sparsities.size());
  if (method == "random") runs = int64_t(sparsities.size()) * seeds;
  if (method == "single-head") runs = heads + 1;
  Evaluator ev(model, tok, go, prompts, problems, reward, runs);

  std::vector<Row> rows;
  const std::vector<uint8_t> all_full(size_t(heads), 1);
  if (method == "full" || method == "streaming") {
    Row r = ev.run(method == "full" ? all_full : std::vector<uint8_t>(size_t(heads), 0));
    r.method = method;
    rows.push_back(r);
  } else if (method == "rlkv") {
    const std::string spec = vm["mask"].as<std::string>();
    const HeadScores scores = load_head_scores_for(spec, mc);
    for (double s : sparsities) {
      Row r = ev.run(mask_at_sparsity(scores, s));
      r.method = method;
      r.detail = std::filesystem::path(scores.source).parent_path().filename().string();
      rows.push_back(r);
    }
  } else if (method == "random") {
    for (double s : sparsities) {
      std::vector<Row> per;
      for (int64_t seed = 0; seed < seeds; ++seed) per.push_back(ev.run(random_mask(heads, s, uint64_t(seed))));
      Row m;
      m.method = method;
      m.detail = str_cat("seeds 0-", seeds - 1);
      const double k = double(per.size());
      for (const Row& r : per) {
        m.n += r.n;
        m.sparsity += r.sparsity / k;
        m.accuracy += r.accuracy / k;
        m.mean_length += r.mean_length / k;
        m.truncated += r.truncated / k;
        m.repetition += r.repetition / k;
        m.kv_bytes += r.kv_bytes / k;
        m.kv_fraction += r.kv_fraction / k;
      }
      double var = 0;
      for (const Row& r : per) var += (r.accuracy - m.accuracy) * (r.accuracy - m.accuracy);
      m.accuracy_std = per.size() > 1 ? std::sqrt(var / (k - 1)) : 0;  // sample standard deviation over seeds
      rows.push_back(m);
    }
  } else {  // single-head
    Row full = ev.run(all_full);
    full.method = "full";
    rows.push_back(full);
    for (int64_t i = 0; i < heads; ++i) {
      std::vector<uint8_t> keep = all_full;
      keep[size_t(i)] = 0;
      Row r = ev.run(keep);
      r.method = "single-head";
      r.layer = i / mc.num_kv_heads;
      r.head = i % mc.num_kv_heads;
      r.detail = str_cat("L", r.layer, " H", r.head);
      r.drop = full.accuracy - r.accuracy;
      rows.push_back(r);
    }
    if (vm.count("scores-out")) {
      // Scores for `--method rlkv --mask DIR`: the accuracy drop of each head, clipped to [0, 1].
      const std::string dir = vm["scores-out"].as<std::string>();
      std::filesystem::create_directories(dir);
      std::ofstream f(dir + "/adapter_weights.tsv", std::ios::trunc);
      RLKV_CHECK(f.good(), dir, "/adapter_weights.tsv: cannot open for writing");
      for (int64_t l = 0; l < mc.num_layers; ++l) {
        for (int64_t h = 0; h < mc.num_kv_heads; ++h) {
          const double d = std::clamp(rows[size_t(1 + l * mc.num_kv_heads + h)].drop, 0.0, 1.0);
          f << (h ? "\t" : "") << d;
        }
        f << "\n";
      }
    }
  }
  ev.finish_progress();
  print_table(rows);
  ev.warn_if_nothing_extracted(mc.task);
  if (method == "single-head") {
    std::printf("\naccuracy drop (points) when only this KV head is compressed; rows = layers, columns = KV heads\n");
    for (int64_t l = 0; l < mc.num_layers; ++l) {
      std::printf("L%-3lld", (long long)l);
      for (int64_t h = 0; h < mc.num_kv_heads; ++h)
        std::printf(" %6.1f", 100 * rows[size_t(1 + l * mc.num_kv_heads + h)].drop);
      std::printf("\n");
    }
  }
  if (vm.count("output")) {
    nlohmann::json j = {{"model", cfg.model.path}, {"data", vm["data"].as<std::string>()},
                        {"problems", int64_t(problems.size())}, {"sink", cfg.cache.sink}, {"window", cfg.cache.window},
                        {"max_new_tokens", cfg.rollout.max_new_tokens}, {"method", method},
                        {"rows", nlohmann::json::array()}};
    for (const Row& r : rows) j["rows"].push_back(row_json(r));
    const std::string out = vm["output"].as<std::string>();
    write_file_atomic(out, j.dump(2) + "\n");
  }
  return 0;
}

}  // namespace rlkv
