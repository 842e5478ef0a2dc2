#include "eval/prepare.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "comm/collectives.h"
#include "core/crc32.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/run_context.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace rlkv {
namespace fs = std::filesystem;
using Verdicts = std::map<int64_t, nlohmann::json>;  // problem index -> its verdict

namespace {

// The problem's text as a journal records it (CRC-32 of prompt, a zero byte, answer): a journal of
// another input with the same ids is not taken for this one's.
int64_t problem_crc(const Problem& p) {
  uint32_t c = crc32_update(0, p.prompt.data(), p.prompt.size());
  c = crc32_update(c, "", 1);
  return int64_t(crc32_update(c, p.answer.data(), p.answer.size()));
}

// The settings a verdict depends on (the model, the samples and how they are drawn and judged, the
// pass-rate band) as a CRC-32: a journal made under others is not resumed into this run's output,
// which would then mix two runs' ref_len and pass_rate. The chunk size is not among them.
int64_t settings_crc(const PrepareOptions& o) {
  const GeneratorOptions& g = o.generation;
  char nums[512];
  std::snprintf(nums, sizeof nums, "%lld %.17g %.17g %.17g %lld %.17g %lld %llu %lld %lld %lld %d %.17g %.17g",
                (long long)o.samples, o.min_pass_rate, o.max_pass_rate, g.sampling.temperature,
                (long long)g.sampling.top_k, g.sampling.top_p, (long long)g.max_new_tokens, (unsigned long long)g.seed,
                (long long)g.repetition_every, (long long)g.repetition_min_distinct, (long long)o.add_special_tokens,
                int(o.reward.task), o.reward.slack, o.reward.lambda_len);
  std::string text = o.model + '\0' + o.prompt_template + '\0' + nums;
  for (const std::string& stop : g.stop) text += '\0' + stop;
  for (int64_t eos : g.eos_ids) text += str_cat('\0', eos);
  return int64_t(crc32_update(0, text.data(), text.size()));
}

// The fields every verdict starts with: which problem, its text's CRC, the settings' CRC.
nlohmann::json verdict_head(int64_t index, const Problem& p, const PrepareOptions& o) {
  return {{"index", index}, {"id", p.id}, {"crc", problem_crc(p)}, {"settings", settings_crc(o)}};
}

// One problem's verdict, as the journal stores it.
nlohmann::json verdict(int64_t index, const Problem& p, const std::vector<GenerationResult>& results,
                       const Reference& ref, const PrepareOptions& o) {
  nlohmann::json j = verdict_head(index, p, o);
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
    const RewardScore s = score_response(r.text, len, finish_reason_name(r.finish), ref, 0, o.reward);
    extracted += s.extracted.empty() ? 0 : 1;
    if (s.correct) lengths.push_back(len);
  }
  const double pass = double(lengths.size()) / double(results.size());
  j["pass_rate"] = pass;
  j["lengths"] = lengths;
  j["extracted"] = extracted;  // samples with an answer the task's checker could find
  if (lengths.empty()) {
    j["kept"] = false;
    j["reason"] = truncated == int64_t(results.size()) ? "always truncated" : "never solved";
  } else if (pass < o.min_pass_rate || pass > o.max_pass_rate) {
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

// What is wrong with a journal's verdict for problem `i` of `problems` ("" when nothing): written by
// verdict() above for the same input under the same settings, so its id is the problem's and its
// fields have their types.
std::string verdict_problem(const nlohmann::json& j, int64_t i, const std::vector<Problem>& problems,
                            int64_t settings) {
  if (!j.contains("id") || !j["id"].is_string()) return "no string field 'id'";
  if (j["id"].get<std::string>() != problems[size_t(i)].id)
    return str_cat("problem ", i, " has id '", j["id"].get<std::string>(), "' here and '", problems[size_t(i)].id,
                   "' in the input: the journal is from another input");
  if (!j.contains("crc") || !j["crc"].is_number_integer() ||
      j["crc"].get<int64_t>() != problem_crc(problems[size_t(i)]))
    return str_cat("problem ", i, " ('", problems[size_t(i)].id,
                   "') has another prompt or answer here than in the input: the journal is from another input");
  if (!j.contains("settings") || !j["settings"].is_number_integer() || j["settings"].get<int64_t>() != settings)
    return "the journal was made under other settings (model, samples, sampling, pass-rate band or reward): "
           "continue it with those";
  if (!j.contains("kept") || !j["kept"].is_boolean()) return "no boolean field 'kept'";
  if (j.contains("extracted") && !j["extracted"].is_number_integer()) return "field 'extracted' is not an integer";
  if (j.contains("pass_rate") &&
      (!j["pass_rate"].is_number() || !(j["pass_rate"].get<double>() >= 0 && j["pass_rate"].get<double>() <= 1)))
    return "field 'pass_rate' is not a number in [0, 1]";
  if (!j["kept"].get<bool>()) return j.contains("reason") && j["reason"].is_string() ? "" : "no string field 'reason'";
  if (!j.contains("ref_len") || !j["ref_len"].is_number() || !(j["ref_len"].get<double>() >= 0))
    return "no field 'ref_len' >= 0";
  if (!j.contains("pass_rate")) return "no field 'pass_rate'";
  if (!j.contains("lengths") || !j["lengths"].is_array()) return "no array field 'lengths'";
  for (const auto& l : j["lengths"])
    if (!l.is_number_integer() || l.get<int64_t>() < 0) return "field 'lengths' holds a value that is not a length";
  return "";
}

// The journals of one output: OUT.journal.<rank>, one verdict per line, appended a chunk at a time.
class Journals {
 public:
  Journals(const std::string& output, const std::vector<Problem>& problems, int64_t chunk, int64_t settings)
      : output_(output), problems_(problems), n_(int64_t(problems.size())), chunk_(chunk), settings_(settings) {
    const fs::path out(output);
    prefix_ = out.filename().string() + ".journal.";
    dir_ = out.has_parent_path() ? out.parent_path() : ".";
  }

  std::string path(int rank) const { return output_ + ".journal." + std::to_string(rank); }

  // Every rank's journal (of this run or an interrupted one, whatever its rank count), complete
  // chunks only: a chunk is appended in one write, but a kill can tear it.
  Verdicts read() const {
    Verdicts got;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      const std::string name = e.path().filename().string();
      if (!is_journal(name)) continue;  // another file, or a journal's temporary (".journal.0.tmp-...")
      std::ifstream in(e.path());
      std::vector<std::string> lines;
      for (std::string line; std::getline(in, line);) lines.push_back(line);
      for (size_t k = 0; k < lines.size(); ++k) {
        const int64_t line_no = int64_t(k) + 1;
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(lines[k]);
        } catch (const std::exception&) {
          // A kill can tear only the last line; one before others is damage.
          RLKV_CHECK(k + 1 == lines.size(), e.path().string(), ":", line_no, ": not JSON, and lines follow: the ",
                     "journal is damaged; remove ", output_, ".journal.* to prepare from the start");
          break;
        }
        // A whole line that is not this input's verdict: another input's journal, or a damaged one.
        const bool indexed = j.is_object() && j.contains("index") && j["index"].is_number_integer() &&
                             j["index"].get<int64_t>() >= 0 && j["index"].get<int64_t>() < n_;
        const std::string why = indexed ? verdict_problem(j, j["index"].get<int64_t>(), problems_, settings_)
                                        : str_cat("no field 'index' in [0, ", n_, ")");
        RLKV_CHECK(why.empty(), e.path().string(), ":", line_no, ": ", why, "; remove ", output_,
                   ".journal.* to prepare from the start");
        got[j["index"].get<int64_t>()] = j;
      }
    }
    for (int64_t c0 = 0; c0 < n_; c0 += chunk_) {
      const int64_t c1 = std::min(n_, c0 + chunk_);
      bool complete = true;
      for (int64_t i = c0; i < c1; ++i) complete &= got.count(i) > 0;
      if (!complete)
        for (int64_t i = c0; i < c1; ++i) got.erase(i);
    }
    return got;
  }

  // Starts this run's journals from what every journal holds (so torn tails go): rank 0's holds it
  // all, the others start empty, and journals of ranks this run does not have are removed.
  void restart(const Verdicts& done, Collectives& world) const {
    std::string text;
    if (world.rank() == 0)
      for (const auto& [i, j] : done) text += j.dump() + "\n";
    write_file_atomic(path(world.rank()), text);
    world.barrier();
    if (world.rank() != 0) return;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      const std::string name = e.path().filename().string();
      if (!is_journal(name)) continue;
      const std::string suffix = name.substr(prefix_.size());
      // A rank number this run does not have (so long a number is one too).
      if (suffix.size() > 9 || std::stoll(suffix) >= world.size()) fs::remove(e.path(), ec);
    }
  }

  void remove_all(int ranks) const {
    for (int r = 0; r < ranks; ++r) fs::remove(path(r));
  }

 private:
  // OUTPUT.journal.RANK: the rank's digits after the prefix (an output named p.tmp.jsonl has journals
  // too; a search for ".tmp" in the whole name skipped them all).
  bool is_journal(const std::string& name) const {
    return name.rfind(prefix_, 0) == 0 && name.size() > prefix_.size() &&
           name.find_first_not_of("0123456789", prefix_.size()) == std::string::npos;
  }

  std::string output_, prefix_;
  const std::vector<Problem>& problems_;
  fs::path dir_;
  int64_t n_, chunk_, settings_;
};

// Generates and judges this rank's chunks, appending each to `journal`. Returns false when stopped.
bool run_chunks(const PrepareOptions& o, const LoadedProblems& data, const Model& model, const Tokenizer& tok, int rank,
                int ranks, Verdicts& done, std::ofstream& journal, const std::string& journal_path) {
  const int64_t n = int64_t(data.problems.size()), K = o.samples;
  Generator gen(model, &tok, o.generation);
  const bool tty = isatty(2) && rank == 0;
  for (int64_t c0 = 0; c0 < n; c0 += o.chunk) {
    const int64_t c1 = std::min(n, c0 + o.chunk);
    if (done.count(c0) || (c0 / o.chunk) % ranks != rank) continue;
    if (run_stop_flag().load()) return false;
    std::vector<GenerationRequest> reqs;
    std::vector<std::string> unusable(size_t(c1 - c0));  // why problem c0 + j cannot be generated from, or ""
    for (int64_t i = c0; i < c1; ++i) {
      const std::vector<int32_t> ids =
          tok.encode(apply_prompt_template(o.prompt_template, data.problems[size_t(i)].prompt), o.add_special_tokens);
      unusable[size_t(i - c0)] = prompt_length_problem(ids.size(), model.config().max_position_embeddings);
      if (!unusable[size_t(i - c0)].empty()) continue;
      for (int64_t k = 0; k < K; ++k)
        reqs.push_back({i * K + k, ids, {}, uint64_t(i * K + k)});  // full cache; stream = (problem, sample)
    }
    const auto results = gen.run(reqs);
    std::string lines;
    size_t next = 0;  // the first result of the next generated problem
    for (int64_t i = c0; i < c1; ++i) {
      const Problem& p = data.problems[size_t(i)];
      nlohmann::json v;
      if (!unusable[size_t(i - c0)].empty()) {
        v = verdict_head(i, p, o);
        v["kept"] = false;
        v["reason"] = "unusable prompt";
        std::fprintf(stderr, "skipped %s: %s\n", p.where.c_str(), unusable[size_t(i - c0)].c_str());
      } else {
        const std::vector<GenerationResult> mine(results.begin() + long(next), results.begin() + long(next) + K);
        next += size_t(K);
        v = verdict(i, p, mine, prepare_reference(p.answer, o.reward), o);
      }
      lines += v.dump() + "\n";
      done[i] = std::move(v);
    }
    journal << lines;
    journal.flush();
    RLKV_CHECK(journal.good(), journal_path, ": write failed");
    if (tty) std::fprintf(stderr, "\rprepare: %lld/%lld problems", (long long)c1, (long long)n);
  }
  if (tty) std::fprintf(stderr, "\n");
  return true;
}

// Rank 0: the kept problems in input order, their original fields plus the measurements.
void write_output(const PrepareOptions& o, const LoadedProblems& data, const Verdicts& done, PrepareResult& res) {
  std::string out;
  for (int64_t i = 0; i < res.problems; ++i) {
    const auto& v = done.at(i);
    res.samples_extracted += v.value("extracted", int64_t(0));
    res.samples_scored += v.contains("pass_rate") ? o.samples : 0;
    if (!v.at("kept").get<bool>()) {
      ++res.dropped[v.at("reason").get<std::string>()];
      continue;
    }
    nlohmann::json row = nlohmann::json::parse(data.raw[size_t(i)]);
    row["id"] = data.problems[size_t(i)].id;
    row["ref_len"] = v.at("ref_len");
    row["pass_rate"] = v.at("pass_rate");
    row["lengths"] = v.at("lengths");
    out += row.dump() + "\n";
    ++res.kept;
  }
  if (res.kept == 0) {
    // Nothing usable: the output stays as it was (an earlier prepared set is not replaced by an
    // empty file), and so do the journals (a rerun with the same settings reports the same at once).
    std::string why;
    for (const auto& [reason, count] : res.dropped) why += str_cat(why.empty() ? "" : ", ", count, " ", reason);
    throw UserError(
        str_cat("prepare: kept none of the ", res.problems, " problems (", why, "); ", o.output, " is left as it was"));
  }
  write_file_atomic(o.output, out);
}

}  // namespace

PrepareResult run_prepare(const PrepareOptions& o, const LoadedProblems& data, const Model& model, const Tokenizer& tok,
                          Collectives& world) {
  RLKV_CHECK(o.samples >= 1, "prepare: samples must be >= 1");
  RLKV_CHECK(o.chunk >= 1, "prepare: chunk must be >= 1");
  PrepareResult res;
  res.problems = int64_t(data.problems.size());
  const int rank = world.rank(), ranks = world.size();
  const Journals journals(o.output, data.problems, o.chunk, settings_crc(o));
  Verdicts done = journals.read();
  if (!done.empty() && rank == 0)
    log_info(str_cat("prepare: resuming, ", done.size(), " problems already in ", o.output, ".journal.*"));
  world.barrier();
  journals.restart(done, world);
  world.barrier();
  const std::string journal_path = journals.path(rank);
  std::ofstream journal(journal_path, std::ios::app);
  RLKV_CHECK(journal.good(), journal_path, ": cannot open for writing");
  res.interrupted = !run_chunks(o, data, model, tok, rank, ranks, done, journal, journal_path);
  journal.close();
  res.done = int64_t(done.size());
  // Every rank learns whether any stopped (a rank whose chunks were all done would otherwise wait
  // in the barrier below for one that left).
  std::vector<double> stopped{res.interrupted ? 1.0 : 0.0};
  world.allreduce_sum(stopped);
  res.interrupted = stopped[0] > 0;
  if (res.interrupted) {
    if (rank == 0) res.done = int64_t(journals.read().size());  // every rank's journal is closed
    return res;
  }
  world.barrier();
  if (rank != 0) return res;
  done = journals.read();
  RLKV_ASSERT(int64_t(done.size()) == res.problems, "prepare: ", done.size(), " of ", res.problems,
              " problems in the journals");
  write_output(o, data, done, res);
  journals.remove_all(ranks);
  return res;
}

}  // namespace rlkv
