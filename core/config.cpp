// Boost.Program_options binding of the Options structs: the only place that knows key names.
#include "core/config.h"

#include <boost/program_options.hpp>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

void describe(po::options_description& d, Config& c) {
  auto& m = c.model;
  auto& k = c.cache;
  auto& r = c.rollout;
  auto& t = c.runtime;
  d.add_options()("model.path", po::value(&m.path), "Hugging Face model directory")(
      "model.dtype", po::value(&m.dtype)->default_value(m.dtype), "float32 | bfloat16 | float16")(
      "model.prompt_template", po::value(&m.prompt_template)->default_value(m.prompt_template),
      "text wrapped around each prompt; contains {prompt}")(
      "model.add_special_tokens", po::value(&m.add_special_tokens)->default_value(m.add_special_tokens),
      "let the tokenizer add its special tokens (e.g. BOS)")(
      "model.load", po::value(&m.load)->default_value(m.load),
      "tensor-parallel weight loading: shard (each rank reads its share) | broadcast (one reader per node)")(
      "actor.tensor_parallel", po::value(&c.actor.tensor_parallel)->default_value(c.actor.tensor_parallel),
      "ranks per tensor-parallel actor group (under mpirun)")("cache.sink", po::value(&k.sink)->default_value(k.sink),
                                                              "sink tokens S of a compressed head")(
      "cache.window", po::value(&k.window)->default_value(k.window), "recent tokens W of a compressed head")(
      "cache.page_size", po::value(&k.page_size)->default_value(k.page_size), "slots per full-pool page")(
      "rollout.temperature", po::value(&r.temperature)->default_value(r.temperature), "0 = greedy")(
      "rollout.top_p", po::value(&r.top_p)->default_value(r.top_p), "nucleus sampling mass")(
      "rollout.top_k", po::value(&r.top_k)->default_value(r.top_k), "top-k sampling, 0 = off")(
      "rollout.max_new_tokens", po::value(&r.max_new_tokens)->default_value(r.max_new_tokens), "length cap")(
      "rollout.seed", po::value(&r.seed)->default_value(r.seed), "sampling seed")(
      "rollout.repetition_every", po::value(&r.repetition_every)->default_value(r.repetition_every),
      "repetition detector period K (0 = off)")(
      "rollout.repetition_min_distinct",
      po::value(&r.repetition_min_distinct)->default_value(r.repetition_min_distinct),
      "stop when the last K tokens hold fewer distinct tokens")("rollout.stop", po::value(&r.stop)->composing(),
                                                                "stop string (repeatable)")(
      "runtime.threads", po::value(&t.threads)->default_value(t.threads), "CPU threads, 0 = all cores")(
      "runtime.max_batch", po::value(&t.max_batch)->default_value(t.max_batch), "sequences per decode batch")(
      "runtime.device", po::value(&t.device)->default_value(t.device),
      "cpu | cuda (the GPU of the rank's local rank) | cuda:N")(
      "runtime.cuda_graphs", po::value(&t.cuda_graphs)->default_value(t.cuda_graphs),
      "decode steps through device-resident tables, captured as CUDA graphs on a GPU (auto: on a GPU without "
      "tensor parallelism or token dropping | true | false)")(
      "rollout.group_size", po::value(&r.group_size)->default_value(r.group_size), "rollouts per prompt (G)")(
      "rollout.prompts_per_step", po::value(&r.prompts_per_step)->default_value(r.prompts_per_step),
      "prompts per learner step (B)");
  auto& dt = c.data;
  auto& tr = c.train;
  auto& pl = c.policy;
  auto& rw = c.reward;
  auto& pc = c.placement;
  d.add_options()("data.path", po::value(&dt.path), "JSONL problems")(
      "data.format", po::value(&dt.format)->default_value(dt.format), "plain | gsm8k | math | deepscaler")(
      "data.id_field", po::value(&dt.id_field), "field holding the problem id (default from data.format)")(
      "data.prompt_field", po::value(&dt.prompt_field), "field holding the prompt (default from data.format)")(
      "data.answer_field", po::value(&dt.answer_field), "field holding the answer (default from data.format)")(
      "data.solution_field", po::value(&dt.solution_field),
      "field whose boxed answer is used when the answer field is absent (math: solution)")(
      "prepare.samples", po::value(&c.prepare.samples)->default_value(c.prepare.samples), "samples per problem")(
      "prepare.min_pass_rate", po::value(&c.prepare.min_pass_rate)->default_value(c.prepare.min_pass_rate),
      "lowest pass rate kept")("prepare.max_pass_rate",
                               po::value(&c.prepare.max_pass_rate)->default_value(c.prepare.max_pass_rate),
                               "highest pass rate kept")(
      "prepare.chunk", po::value(&c.prepare.chunk)->default_value(c.prepare.chunk), "problems per journal commit")(
      "dropping.snapkv_every", po::value(&c.dropping.snapkv_every)->default_value(c.dropping.snapkv_every),
      "SnapKV: generated tokens between compressions")(
      "dropping.snapkv_queries", po::value(&c.dropping.snapkv_queries)->default_value(c.dropping.snapkv_queries),
      "SnapKV: queries whose attention scores the tokens")(
      "dropping.rkv_buffer", po::value(&c.dropping.rkv_buffer)->default_value(c.dropping.rkv_buffer),
      "R-KV: new tokens let in before a compression")(
      "dropping.rkv_queries", po::value(&c.dropping.rkv_queries)->default_value(c.dropping.rkv_queries),
      "R-KV: observation window")("dropping.rkv_lambda",
                                  po::value(&c.dropping.rkv_lambda)->default_value(c.dropping.rkv_lambda),
                                  "R-KV: weight of importance against redundancy")(
      "train.steps", po::value(&tr.steps)->default_value(tr.steps), "learner steps")(
      "train.mode", po::value(&tr.mode)->default_value(tr.mode), "sync | async")(
      "train.seed", po::value(&tr.seed)->default_value(tr.seed), "seed of data order, masks and sampling")(
      "train.output_dir", po::value(&tr.output_dir)->default_value(tr.output_dir), "checkpoints and metrics")(
      "train.checkpoint_every", po::value(&tr.checkpoint_every)->default_value(tr.checkpoint_every),
      "steps between checkpoints")("train.keep_checkpoints",
                                   po::value(&tr.keep_checkpoints)->default_value(tr.keep_checkpoints),
                                   "checkpoints kept (0 = all)")(
      "train.max_staleness", po::value(&tr.max_staleness)->default_value(tr.max_staleness),
      "async: oldest usable policy version, relative")("train.step_timeout",
                                                       po::value(&tr.step_timeout)->default_value(tr.step_timeout),
                                                       "seconds to wait for a step's groups")(
      "train.actor_timeout", po::value(&tr.actor_timeout)->default_value(tr.actor_timeout),
      "seconds of silence after which an actor is presumed dead")(
      "train.run_id", po::value(&tr.run_id)->default_value(tr.run_id), "run id (empty: generated)")(
      "policy.init_keep_prob", po::value(&pl.init_keep_prob)->default_value(pl.init_keep_prob), "initial p")(
      "policy.lr", po::value(&pl.lr)->default_value(pl.lr), "Adam learning rate on the gate logits")(
      "policy.beta", po::value(&pl.beta)->default_value(pl.beta),
      "sparsity penalty weight of the adaptive form (target_sparsity = 0)")(
      "policy.tau", po::value(&pl.tau)->default_value(pl.tau), "correctness gate of the penalty")(
      "policy.target_sparsity", po::value(&pl.target_sparsity)->default_value(pl.target_sparsity),
      "expected sparsity the penalty controller aims at (0 = paper's adaptive penalty)")(
      "policy.penalty", po::value(&pl.penalty)->default_value(pl.penalty),
      "sum (beta' * sum of p over heads) | mean (the paper's beta' * mean of p)")(
      "policy.adv_norm", po::value(&pl.adv_norm)->default_value(pl.adv_norm), "group | batch")(
      "policy.clip_eps", po::value(&pl.clip_eps)->default_value(pl.clip_eps), "importance ratio clip")(
      "policy.grad_clip", po::value(&pl.grad_clip)->default_value(pl.grad_clip), "gradient norm clip")(
      "reward.task", po::value(&rw.task)->default_value(rw.task),
      "auto (the model directory's rlkv_task, else math) | math | toy")(
      "reward.slack", po::value(&rw.slack)->default_value(rw.slack), "free length beyond ref_len")(
      "reward.lambda_len", po::value(&rw.lambda_len)->default_value(rw.lambda_len), "excess length weight")(
      "reward.threads", po::value(&rw.threads)->default_value(rw.threads), "reward worker threads")(
      "placement.actors", po::value(&pc.actors)->default_value(pc.actors), "actor threads per actor process")(
      "placement.learners", po::value(&pc.learners)->default_value(pc.learners), "learner ranks under MPI")(
      "placement.reward_workers", po::value(&pc.reward_workers)->default_value(pc.reward_workers),
      "reward-worker ranks under MPI")("placement.bind_address",
                                       po::value(&pc.bind_address)->default_value(pc.bind_address),
                                       "address tcp:// endpoints bind to")(
      "placement.key_file", po::value(&pc.key_file)->default_value(pc.key_file),
      "run key file (64 hex digits, mode 0600) that authenticates every frame; empty: made for the run "
      "when bind_address is not loopback")("placement.insecure", po::value(&pc.insecure)->default_value(pc.insecure),
                                           "bind a non-loopback address without authenticating frames");
}

void validate(const Config& c) {
  auto one_of = [](const std::string& v, std::initializer_list<const char*> ok) {
    for (auto* o : ok)
      if (v == o) return true;
    return false;
  };
  RLKV_CHECK(one_of(c.model.dtype, {"float32", "bfloat16", "float16"}),
             "config key model.dtype: expected float32, bfloat16 or float16, got '", c.model.dtype, "'");
  RLKV_CHECK(c.model.prompt_template.find("{prompt}") != std::string::npos,
             "config key model.prompt_template: must contain {prompt}");
  RLKV_CHECK(c.cache.sink >= 0 && c.cache.sink <= kMaxCacheSlots, "config key cache.sink: expected 0..", kMaxCacheSlots,
             ", got ", c.cache.sink);
  RLKV_CHECK(c.cache.window >= 1 && c.cache.window <= kMaxCacheSlots, "config key cache.window: expected 1..",
             kMaxCacheSlots, ", got ", c.cache.window);
  RLKV_CHECK(c.cache.page_size >= 1 && c.cache.page_size <= 4096, "config key cache.page_size: expected 1..4096, got ",
             c.cache.page_size);
  RLKV_CHECK(c.rollout.temperature >= 0 && c.rollout.temperature < 1e6,
             "config key rollout.temperature: expected a number in [0, 1e6) (0 = greedy), got ", c.rollout.temperature);
  RLKV_CHECK(c.rollout.top_p > 0 && c.rollout.top_p <= 1, "config key rollout.top_p: expected in (0, 1], got ",
             c.rollout.top_p);
  // Seeds are counts of a random stream, as rlkv toy data --seed is: a negative one is a typo.
  RLKV_CHECK(c.rollout.seed >= 0, "config key rollout.seed: expected >= 0, got ", c.rollout.seed);
  RLKV_CHECK(c.train.seed >= 0, "config key train.seed: expected >= 0, got ", c.train.seed);
  RLKV_CHECK(c.rollout.top_k >= 0, "config key rollout.top_k: expected >= 0, got ", c.rollout.top_k);
  RLKV_CHECK(c.rollout.max_new_tokens >= 1 && c.rollout.max_new_tokens <= (int64_t(1) << 24),
             "config key rollout.max_new_tokens: expected 1..16777216, got ", c.rollout.max_new_tokens);
  RLKV_CHECK(c.rollout.repetition_every >= 0, "config key rollout.repetition_every: expected >= 0, got ",
             c.rollout.repetition_every);
  RLKV_CHECK(c.rollout.repetition_min_distinct >= 0 &&
                 (c.rollout.repetition_every == 0 || c.rollout.repetition_min_distinct <= c.rollout.repetition_every),
             "config key rollout.repetition_min_distinct: expected 0..rollout.repetition_every, got ",
             c.rollout.repetition_min_distinct);
  for (const auto& s : c.rollout.stop) RLKV_CHECK(!s.empty(), "config key rollout.stop: empty stop string");
  {
    const std::string& d = c.runtime.device;
    const bool indexed = d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.size() <= 8 &&
                         d.find_first_not_of("0123456789", 5) == std::string::npos;
    RLKV_CHECK(d == "cpu" || d == "cuda" || indexed, "config key runtime.device: expected cpu, cuda or cuda:N, got '",
               d, "'");
  }
  RLKV_CHECK(c.runtime.cuda_graphs == "auto" || c.runtime.cuda_graphs == "true" || c.runtime.cuda_graphs == "false",
             "config key runtime.cuda_graphs: expected auto, true or false, got '", c.runtime.cuda_graphs, "'");
  RLKV_CHECK(c.runtime.threads >= 0 && c.runtime.threads <= 1024, "config key runtime.threads: expected 0..1024, got ",
             c.runtime.threads);
  RLKV_CHECK(c.rollout.group_size >= 1 && c.rollout.group_size <= 4096,
             "config key rollout.group_size: expected 1..4096, got ", c.rollout.group_size);
  RLKV_CHECK(c.rollout.prompts_per_step >= 1 && c.rollout.prompts_per_step <= 1000000,
             "config key rollout.prompts_per_step: expected >= 1, got ", c.rollout.prompts_per_step);
  RLKV_CHECK(one_of(c.train.mode, {"sync", "async"}), "config key train.mode: expected sync or async, got '",
             c.train.mode, "'");
  RLKV_CHECK(c.train.steps >= 0, "config key train.steps: expected >= 0, got ", c.train.steps);
  RLKV_CHECK(c.train.checkpoint_every >= 0, "config key train.checkpoint_every: expected >= 0");
  RLKV_CHECK(c.train.keep_checkpoints >= 0, "config key train.keep_checkpoints: expected >= 0");
  RLKV_CHECK(c.train.max_staleness >= 0, "config key train.max_staleness: expected >= 0");
  RLKV_CHECK(c.train.step_timeout > 0, "config key train.step_timeout: expected > 0");
  RLKV_CHECK(c.train.actor_timeout > 0, "config key train.actor_timeout: expected > 0");
  RLKV_CHECK(c.policy.init_keep_prob > 0 && c.policy.init_keep_prob < 1,
             "config key policy.init_keep_prob: expected in (0, 1), got ", c.policy.init_keep_prob);
  RLKV_CHECK(c.policy.lr > 0 && c.policy.lr < 10, "config key policy.lr: expected in (0, 10), got ", c.policy.lr);
  RLKV_CHECK(std::isfinite(c.policy.beta) && c.policy.beta >= 0, "config key policy.beta: expected a number >= 0, got ",
             c.policy.beta);
  RLKV_CHECK(c.policy.tau >= 0 && c.policy.tau <= 1, "config key policy.tau: expected in [0, 1], got ", c.policy.tau);
  RLKV_CHECK(c.policy.target_sparsity >= 0 && c.policy.target_sparsity < 1,
             "config key policy.target_sparsity: expected in [0, 1), got ", c.policy.target_sparsity);
  RLKV_CHECK(one_of(c.policy.penalty, {"sum", "mean"}), "config key policy.penalty: expected sum or mean, got '",
             c.policy.penalty, "'");
  RLKV_CHECK(one_of(c.policy.adv_norm, {"group", "batch"}), "config key policy.adv_norm: expected group or batch");
  RLKV_CHECK(c.policy.clip_eps > 0 && c.policy.clip_eps < 1, "config key policy.clip_eps: expected in (0, 1)");
  RLKV_CHECK(std::isfinite(c.policy.grad_clip) && c.policy.grad_clip >= 0,
             "config key policy.grad_clip: expected a number >= 0");
  RLKV_CHECK(one_of(c.reward.task, {"auto", "math", "toy"}),
             "config key reward.task: expected auto, math or toy, got '", c.reward.task, "'");
  RLKV_CHECK(std::isfinite(c.reward.slack) && c.reward.slack >= 0, "config key reward.slack: expected a number >= 0");
  RLKV_CHECK(std::isfinite(c.reward.lambda_len) && c.reward.lambda_len >= 0 && c.reward.lambda_len <= 1000,
             "config key reward.lambda_len: expected a number in [0, 1000]");
  RLKV_CHECK(c.reward.threads >= 1 && c.reward.threads <= 256, "config key reward.threads: expected 1..256");
  RLKV_CHECK(c.placement.actors >= 1 && c.placement.actors <= 256, "config key placement.actors: expected 1..256");
  RLKV_CHECK(c.placement.learners >= 1, "config key placement.learners: expected >= 1");
  RLKV_CHECK(c.model.load == "shard" || c.model.load == "broadcast",
             "config key model.load: expected shard or broadcast, got '", c.model.load, "'");
  RLKV_CHECK(c.actor.tensor_parallel >= 1 && c.actor.tensor_parallel <= 1024,
             "config key actor.tensor_parallel: expected 1..1024, got ", c.actor.tensor_parallel);
  RLKV_CHECK(c.placement.reward_workers >= 1, "config key placement.reward_workers: expected >= 1");
  RLKV_CHECK(!c.placement.bind_address.empty(), "config key placement.bind_address: empty");
  RLKV_CHECK(c.prepare.samples >= 1 && c.prepare.samples <= 4096, "config key prepare.samples: expected 1..4096");
  RLKV_CHECK(c.prepare.min_pass_rate >= 0 && c.prepare.min_pass_rate <= c.prepare.max_pass_rate &&
                 c.prepare.max_pass_rate <= 1,
             "config keys prepare.min_pass_rate / max_pass_rate: expected 0 <= min <= max <= 1");
  RLKV_CHECK(c.prepare.chunk >= 1, "config key prepare.chunk: expected >= 1");
  for (const auto& [key, n] : {std::pair<const char*, int64_t>{"snapkv_every", c.dropping.snapkv_every},
                               {"snapkv_queries", c.dropping.snapkv_queries},
                               {"rkv_buffer", c.dropping.rkv_buffer},
                               {"rkv_queries", c.dropping.rkv_queries}})
    RLKV_CHECK(n >= 1 && n <= kMaxCacheSlots, "config key dropping.", key, ": expected 1..", kMaxCacheSlots, ", got ",
               n);
  RLKV_CHECK(c.dropping.rkv_lambda >= 0 && c.dropping.rkv_lambda <= 1,
             "config key dropping.rkv_lambda: expected in [0, 1]");
  RLKV_CHECK(c.runtime.max_batch >= 1 && c.runtime.max_batch <= 65536,
             "config key runtime.max_batch: expected 1..65536, got ", c.runtime.max_batch);
}

// Boost's messages name the option as "--model.path"; we name keys without dashes.
std::string key_of(const po::error_with_option_name& e) {
  std::string k = e.get_option_name();
  while (!k.empty() && k.front() == '-') k.erase(k.begin());
  // "--a.b=1" names the key a.b; a binary file given as the config gives keys of any bytes, shown
  // escaped (a NUL would end the message, control bytes would reach the terminal).
  return one_line(k.substr(0, k.find('=')), 100, OneLine::kEscapeBytes);
}

// Boost.Program_options (1.74) makes what() by replacing each %token% of a template until none is
// left, so a value that contains its own token (a config value "x%value%") makes it loop forever.
// The same message, each placeholder of the template replaced once; the protected parts are read
// through pointers to members formed in a derived class, which C++ allows.
struct ProgramOptionsParts : po::error_with_option_name {
  static void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
      s.replace(at, from.size(), to);
  }
  static std::string message(const po::error_with_option_name& e) {
    std::map<std::string, std::string> subs = e.*(&ProgramOptionsParts::m_substitutions);
    subs["canonical_option"] = (e.*(&ProgramOptionsParts::get_canonical_option_name))();
    subs["prefix"] = (e.*(&ProgramOptionsParts::get_canonical_option_prefix))();
    std::string msg = e.m_error_template;
    for (const auto& [name, fallback] : e.*(&ProgramOptionsParts::m_substitution_defaults))
      if (subs[name].empty()) replace_all(msg, fallback.first, fallback.second);
    for (const auto& [name, value] : subs) replace_all(msg, "%" + name + "%", value);
    return msg;
  }
};

}  // namespace

std::string program_options_text(const po::error& e) {
  const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
  std::string msg = named == nullptr ? e.what() : ProgramOptionsParts::message(*named);  // what(): no placeholders
  if (const auto* ambiguous = dynamic_cast<const po::ambiguous_option*>(&e)) {
    msg += " and matches";
    for (const std::string& a : ambiguous->alternatives()) msg += " '" + a + "'";
  }
  // Escaped as key_of's keys are: a binary config file's bytes reach the message.
  return one_line(msg, 300, OneLine::kEscapeBytes);
}

Config load_config(const std::string& ini_path, const std::vector<std::string>& overrides) {
  Config c;
  po::options_description desc("rlkv configuration");
  describe(desc, c);
  po::variables_map vm;

  std::vector<std::string> args;
  for (const auto& o : overrides) {
    RLKV_CHECK(!o.empty(), "empty configuration override");
    const size_t eq = o.find('='), start = o.rfind("--", 0) == 0 ? 2 : 0;
    const std::string key = o.substr(start, eq == std::string::npos ? std::string::npos : eq - start);
    RLKV_CHECK(!key.empty() && key.find_first_of(" \t\r\n#[]") == std::string::npos, "config override '",
               one_line(o, 100, OneLine::kEscapeBytes), "': expected section.key=value");
    RLKV_CHECK(eq == std::string::npos || eq + 1 < o.size(), "config key '", key, "' (command line): an empty value");
    args.push_back(o.rfind("--", 0) == 0 ? o : "--" + o);
    c.overrides.push_back(args.back().substr(2));
  }
  try {
    // Overrides are stored first: Boost keeps the first value stored for a key.
    po::store(po::command_line_parser(args)
                  .options(desc)
                  .style(po::command_line_style::long_allow_adjacent | po::command_line_style::allow_long)
                  .run(),
              vm);
  } catch (const po::unknown_option& e) {
    throw UserError(str_cat("unknown config key '", key_of(e), "' (command line)"));
  } catch (const po::multiple_occurrences& e) {
    // Also a flag and the key it sets (--model and --model.path, --threads and --runtime.threads).
    throw UserError(str_cat("config key '", key_of(e), "' is given more than once on the command line (a flag ",
                            "such as --model, --threads or --seed sets its key too)"));
  } catch (const po::error_with_option_name& e) {
    throw UserError(str_cat("bad value for config key '", key_of(e), "' (command line): ", program_options_text(e)));
  } catch (const po::error& e) {
    throw UserError(str_cat("bad configuration override: ", program_options_text(e)));
  }

  if (!ini_path.empty()) {
    std::error_code ec;
    RLKV_CHECK(std::filesystem::exists(ini_path, ec), "config file '", ini_path, "' does not exist");
    RLKV_CHECK(std::filesystem::is_regular_file(ini_path, ec), "config file '", ini_path, "' is not a regular file");
    std::ifstream f(ini_path);
    RLKV_CHECK(f.good(), "cannot read config file '", ini_path, "'");
    std::stringstream buf;
    buf << f.rdbuf();
    RLKV_CHECK(!f.bad(), "cannot read config file '", ini_path, "' (read error)");
    c.source_text = buf.str();
    // A byte-order mark (some Windows editors write one) is not part of the first line.
    if (c.source_text.rfind("\xEF\xBB\xBF", 0) == 0) c.source_text.erase(0, 3);
    std::istringstream in(c.source_text);
    try {
      po::store(po::parse_config_file(in, desc, /*allow_unregistered=*/false), vm);
    } catch (const po::unknown_option& e) {
      throw UserError(str_cat(ini_path, ": unknown config key '", key_of(e), "'"));
    } catch (const po::error_with_option_name& e) {
      if (key_of(e).empty()) throw UserError(str_cat(ini_path, ": ", program_options_text(e)));  // a line with no key
      throw UserError(str_cat(ini_path, ": bad value for config key '", key_of(e), "': ", program_options_text(e)));
    } catch (const po::error& e) {
      throw UserError(str_cat(ini_path, ": ", program_options_text(e)));
    }
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw UserError(str_cat("configuration: ", program_options_text(e)));
  }
  // Field names from the dataset format, unless given.
  auto& dt = c.data;
  RLKV_CHECK(dt.format == "plain" || dt.format == "gsm8k" || dt.format == "math" || dt.format == "deepscaler",
             "config key data.format: expected plain, gsm8k, math or deepscaler, got '", dt.format, "'");
  const bool plain = dt.format == "plain", gsm = dt.format == "gsm8k";
  if (dt.id_field.empty()) dt.id_field = plain ? "id" : (gsm ? "id" : "unique_id");
  if (dt.prompt_field.empty()) dt.prompt_field = plain ? "prompt" : (gsm ? "question" : "problem");
  if (dt.answer_field.empty()) dt.answer_field = "answer";
  if (dt.solution_field.empty() && dt.format == "math") dt.solution_field = "solution";
  // INI values are single lines: chat templates spell their newlines \n.
  std::string t;
  const std::string& raw = c.model.prompt_template;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\\' && i + 1 < raw.size()) {
      const char n = raw[i + 1];
      if (n == 'n' || n == 't' || n == '\\') {
        t += n == 'n' ? '\n' : (n == 't' ? '\t' : '\\');
        ++i;
        continue;
      }
    }
    t += raw[i];
  }
  c.model.prompt_template = t;
  validate(c);
  return c;
}

std::vector<std::string> config_keys() {
  Config c;
  po::options_description desc;
  describe(desc, c);
  std::vector<std::string> keys;
  for (const auto& o : desc.options()) keys.push_back(o->long_name());
  return keys;
}

std::string effective_config_text(const Config& cfg) {
  if (cfg.overrides.empty()) return cfg.source_text;
  auto trim = [](const std::string& t) {
    const size_t a = t.find_first_not_of(" \t\r"), b = t.find_last_not_of(" \t\r");
    return a == std::string::npos ? std::string() : t.substr(a, b - a + 1);
  };
  std::vector<std::pair<std::string, std::string>> kv;  // (section.key, value)
  for (const auto& o : cfg.overrides) {
    const size_t eq = o.find('=');
    kv.emplace_back(o.substr(0, eq), eq == std::string::npos ? "" : o.substr(eq + 1));
    // The text holds only what an INI value can: one line, no '#' (a comment there), no white space
    // at its ends (trimmed there); otherwise a run resumed from it would read back another value.
    // (Commands that record no configuration, such as eval's --model, take such values.)
    const std::string& value = kv.back().second;
    RLKV_CHECK(value.empty() || (value.find_first_of("\r\n#") == std::string::npos &&
                                 !std::isspace(uint8_t(value.front())) && !std::isspace(uint8_t(value.back()))),
               "config key '", kv.back().first, "' (command line): the value '",
               one_line(value, 100, OneLine::kEscapeBytes),
               "' holds a line break or '#', or begins or ends with white space, which the INI text that "
               "checkpoints record cannot hold (prompt templates spell newlines \\n)");
  }
  std::vector<bool> placed(kv.size(), false);
  std::string out, section;
  std::istringstream in(cfg.source_text);
  for (std::string line; std::getline(in, line);) {
    const std::string t = trim(line.substr(0, line.find('#')));
    if (t.size() > 1 && t.front() == '[' && t.back() == ']') section = trim(t.substr(1, t.size() - 2));
    const size_t eq = t.find('=');
    if (eq != std::string::npos) {
      const std::string key = trim(t.substr(0, eq)), full = section.empty() ? key : section + "." + key;
      for (size_t i = 0; i < kv.size(); ++i)
        if (kv[i].first == full) {
          line = key + " = " + kv[i].second + "  # command-line override";
          placed[i] = true;
        }
    }
    out += line + "\n";
  }
  for (size_t i = 0; i < kv.size(); ++i) {
    if (placed[i]) continue;
    const size_t dot = kv[i].first.rfind('.');
    out += "\n[" + kv[i].first.substr(0, dot) + "]  # command-line override\n" + kv[i].first.substr(dot + 1) + " = " +
           kv[i].second + "\n";
  }
  return out;
}

}  // namespace rlkv
