// `rlkv prepare --config FILE --input IN.jsonl --output OUT.jsonl`: the paper's self-distillation
// sampling (docs/design.md section 4). The full-cache model answers every candidate problem K times
// (prepare.samples, at the config's sampling settings, batched); problems whose pass rate lies in
// [prepare.min_pass_rate, prepare.max_pass_rate] are kept with ref_len (mean length of the correct
// answers, tokens), pass_rate and the correct answers' lengths. The rest are dropped and counted by
// reason: never solved, always truncated, pass rate outside the band, unparseable reference, bad line.
//
// Under mpirun the chunks are shared among the ranks (every rank runs the full-cache model).
// Resumable: problems are processed in chunks of prepare.chunk; each finished chunk is appended to
// the rank's OUT.journal.<rank> and flushed before the next starts. A rerun (after SIGTERM, a crash or a power cut)
// skips the chunks the journal holds. Sampling streams depend only on (seed, problem, sample) and
// chunks are the same on every run, so an interrupted and resumed run writes the same OUT as an
// uninterrupted one. OUT itself is written at the end, atomically (temporary name, rename).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/dataset.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/run_context.h"
#include "launch/cli.h"
#include "launch/tp_setup.h"
#include "core/collectives.h"
#include "rewards/reward.h"
#include "runtime/generator.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

extern "C" void on_prepare_signal(int) { run_stop_flag().store(true); }

// One problem's verdict, as the journal stores it.
nlohmann::json verdict(int64_t index, const Problem& p, const std::vector<GenerationResult>& results,
                       const Reference& ref, const RewardOptions& ro, double min_pass, double max_pass) {
  nlohmann::json j = {{"index", index}, {"id", p.id}};
  if (!ref.usable) {
    j["kept"] = false;
    j["reason"] = "unparseable reference";
    return j;
  }
  std::vector<int64_t> lengths;
  int64_t truncated = 0, extracted = 0;
  for (const auto& r : results) {
    const int64_t len = int64_t(r.tokens.size());
    truncated += r.finish == FinishReason::kLength ? 1 : 0;
    const RewardScore s = score_response(r.text, len, finish_reason_name(r.finish), ref, 0, ro);
    extracted += s.extracted.empty() ? 0 : 1;
    if (s.correct) lengths.push_back(len);
  }
  j["extracted"] = extracted;  // samples with an answer the task's checker could find
  const double pass = double(lengths.size()) / double(results.size());
  j["pass_rate"] = pass;
  j["lengths"] = lengths;
  if (lengths.empty()) {
    j["kept"] = false;
    j["reason"] = truncated == int64_t(results.size()) ? "always truncated" : "never solved";
  } else if (pass < min_pass || pass > max_pass) {
    j["kept"] = false;
    j["reason"] = "pass rate outside the band";
  } else {
    double sum = 0;
    for (int64_t l : lengths) sum += double(l);
    j["kept"] = true;
    j["ref_len"] = sum / double(lengths.size());
  }
  return j;
}

}  // namespace

int cmd_prepare(int argc, char** argv) {
  po::options_description desc("rlkv prepare options");
  desc.add_options()("help,h", "show this help")("config", po::value<std::string>(), "INI config (model, data, rollout, prepare)")(
      "input", po::value<std::string>(), "candidate problems, JSONL")("output", po::value<std::string>(), "kept problems, JSONL");
  ParsedArgs args = parse_args(argc, argv, desc);
  if (args.vm.count("help")) {
    std::cout << "usage: rlkv prepare --config FILE --input IN.jsonl --output OUT.jsonl [--section.key=value ...]\n" << desc;
    return 0;
  }
  RLKV_CHECK(args.vm.count("config"), "rlkv prepare needs --config FILE");
  RLKV_CHECK(args.vm.count("input") && args.vm.count("output"), "rlkv prepare needs --input IN.jsonl and --output OUT.jsonl");
  const Config cfg = load_config(args.vm["config"].as<std::string>(), args.overrides);
  const std::string input = args.vm["input"].as<std::string>(), output = args.vm["output"].as<std::string>();
  RLKV_CHECK(!cfg.model.path.empty(), "config key model.path is not set");
  std::signal(SIGINT, on_prepare_signal);
  std::signal(SIGTERM, on_prepare_signal);

  LoadedProblems data = load_problems_lenient(input, dataset_fields(cfg));
  for (const auto& e : data.errors) std::fprintf(stderr, "skipped bad line: %s\n", e.c_str());
  RLKV_CHECK(!data.problems.empty(), input, ": no usable problems (", data.errors.size(), " bad lines)");

  // Under mpirun every rank takes every size-th chunk and keeps its own journal (OUT.journal.<rank>);
  // rank 0 merges them at the end. Alone, rank 0 of 1.
  MpiSession mpi(nullptr, nullptr);
  std::unique_ptr<Collectives> world = mpi.active() ? mpi_world() : local_collectives();
  const int rank = world->rank(), ranks = world->size();
  const std::filesystem::path out_path(output);
  const std::string journal_prefix = out_path.filename().string() + ".journal.";
  const std::filesystem::path out_dir = out_path.has_parent_path() ? out_path.parent_path() : ".";
  const std::string journal_path = output + ".journal." + std::to_string(rank);
  const int64_t n = int64_t(data.problems.size()), chunk = cfg.prepare.chunk;

  // Reads every rank's journal (of this run or an interrupted one, whatever its rank count) and
  // keeps complete chunks only: a chunk is appended in one write, but a kill can tear it.
  auto read_journals = [&]() {
    std::map<int64_t, nlohmann::json> got;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(out_dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(journal_prefix, 0) != 0 || (name.size() > 4 && name.substr(name.size() - 4) == ".tmp")) continue;
      std::ifstream jin(e.path());
      std::string line;
      while (std::getline(jin, line)) {
        try {
          auto j = nlohmann::json::parse(line);
          const int64_t i = j.at("index").get<int64_t>();
          if (i >= 0 && i < n) got[i] = j;
        } catch (const std::exception&) {
          break;  // a torn last line
        }
      }
    }
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
      bool complete = true;
      for (int64_t i = c0; i < std::min(n, c0 + chunk); ++i) complete &= got.count(i) > 0;
      if (!complete)
        for (int64_t i = c0; i < std::min(n, c0 + chunk); ++i) got.erase(i);
    }
    return got;
  };
  std::map<int64_t, nlohmann::json> done = read_journals();
  if (!done.empty() && rank == 0)
    log_info("prepare: resuming, " + std::to_string(done.size()) + " problems already in " + output + ".journal.*");
  world->barrier();
  // This rank's journal restarts with what every journal holds (so torn tails go), then grows.
  {
    std::string text;
    if (rank == 0)
      for (const auto& [i, j] : done) text += j.dump() + "\n";
    write_file_atomic(journal_path, text);
  }
  world->barrier();
  if (rank == 0) {  // journals of ranks that this run does not have are now merged into rank 0's
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(out_dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(journal_prefix, 0) != 0) continue;
      const std::string suffix = name.substr(journal_prefix.size());
      if (suffix.find_first_not_of("0123456789") == std::string::npos && !suffix.empty() && std::stoll(suffix) >= ranks)
        std::filesystem::remove(e.path(), ec);
    }
  }
  std::ofstream journal(journal_path, std::ios::app);
  RLKV_CHECK(journal.good(), journal_path, ": cannot open for writing");

  // Ranks on one node (mpirun) share its cores.
  const int threads = set_intra_op_threads(cfg, ranks > 1 ? world->split_node()->size() : 1);
  const Model model = Model::load(cfg.model.path, parse_dtype(cfg.model.dtype), resolve_device(cfg));
  const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
  GeneratorOptions go = generator_options(cfg);
  go.num_threads = threads;
  Generator gen(model, &tok, go);
  RewardOptions ro;
  ro.task = resolve_reward_task(cfg.reward.task, model.config().task, "config key reward.task");
  const int64_t K = cfg.prepare.samples;
  const bool tty = isatty(2) && rank == 0;
  bool interrupted = false;
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t c1 = std::min(n, c0 + chunk);
    if (done.count(c0) || (c0 / chunk) % ranks != rank) continue;
    if (run_stop_flag().load()) {
      interrupted = true;
      break;
    }
    std::vector<GenerationRequest> reqs;
    for (int64_t i = c0; i < c1; ++i) {
      const std::vector<int32_t> ids = tok.encode(
          apply_prompt_template(cfg.model.prompt_template, data.problems[size_t(i)].prompt), cfg.model.add_special_tokens);
      for (int64_t k = 0; k < K; ++k)
        reqs.push_back({i * K + k, ids, {}, uint64_t(i * K + k)});  // full cache; stream = (problem, sample)
    }
    const auto results = gen.run(reqs);
    std::string lines;
    for (int64_t i = c0; i < c1; ++i) {
      std::vector<GenerationResult> mine(results.begin() + (i - c0) * K, results.begin() + (i - c0 + 1) * K);
      const Reference ref = prepare_reference(data.problems[size_t(i)].answer, ro);
      auto v = verdict(i, data.problems[size_t(i)], mine, ref, ro, cfg.prepare.min_pass_rate, cfg.prepare.max_pass_rate);
      lines += v.dump() + "\n";
      done[i] = std::move(v);
    }
    journal << lines;
    journal.flush();
    RLKV_CHECK(journal.good(), journal_path, ": write failed");
    if (tty) std::fprintf(stderr, "\rprepare: %lld/%lld problems", (long long)c1, (long long)n);
  }
  if (tty) std::fprintf(stderr, "\n");
  journal.close();
  if (interrupted) {
    std::fprintf(stderr, "prepare: interrupted after %zu of %lld problems; rerun the same command to continue\n",
                 done.size(), (long long)n);
    return 1;
  }
  world->barrier();
  if (rank != 0) return 0;
  done = read_journals();
  RLKV_ASSERT(int64_t(done.size()) == n, "prepare: ", done.size(), " of ", n, " problems in the journals");

  // The output: kept problems in input order, their original fields plus the measurements.
  std::map<std::string, int64_t> reasons;
  int64_t kept = 0, extracted = 0, scored = 0;
  std::string out;
  for (int64_t i = 0; i < n; ++i) {
    const auto& v = done.at(i);
    extracted += v.value("extracted", int64_t(0));
    scored += v.contains("pass_rate") ? K : 0;
    if (!v.at("kept").get<bool>()) {
      ++reasons[v.at("reason").get<std::string>()];
      continue;
    }
    nlohmann::json row = nlohmann::json::parse(data.raw[size_t(i)]);
    row["id"] = data.problems[size_t(i)].id;
    row["ref_len"] = v.at("ref_len");
    row["pass_rate"] = v.at("pass_rate");
    row["lengths"] = v.at("lengths");
    out += row.dump() + "\n";
    ++kept;
  }
  write_file_atomic(output, out);
  for (int r = 0; r < ranks; ++r) std::filesystem::remove(output + ".journal." + std::to_string(r));
  std::string why;
  for (const auto& [r, c] : reasons) why += ", " + std::to_string(c) + " " + r;
  if (!data.errors.empty()) why += ", " + std::to_string(data.errors.size()) + " bad lines";
  std::fprintf(stderr, "prepare: kept %lld of %lld problems (%lld samples each)%s -> %s\n", (long long)kept,
               (long long)(n + int64_t(data.errors.size())), (long long)K, why.c_str(), output.c_str());
  if (scored > 0 && extracted == 0)
    std::fprintf(stderr,
                 "prepare: warning: none of the %lld samples has an answer the '%s' checker can extract; is the "
                 "task right? (config key reward.task = toy|math; the model directory %s)\n",
                 (long long)scored, reward_task_name(ro.task),
                 model.config().task.empty() ? "declares none" : ("declares " + model.config().task).c_str());
  return 0;
}

}  // namespace rlkv
