#include "launch/train_setup.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_strict.h"
#include "core/log.h"
#include "runtime/model_config.h"
#include "runtime/tokenizer.h"

namespace rlkv {

TrainSetup make_train_setup(const Config& cfg, Collectives& world, bool check_prompts) {
  RLKV_CHECK(!cfg.model.path.empty(), "config key model.path is not set");
  RLKV_CHECK(!cfg.data.path.empty(), "config key data.path is not set");
  TrainSetup s;
  const ModelConfig mc = load_model_config(cfg.model.path);
  s.id.num_layers = mc.num_layers;
  s.id.num_kv_heads = mc.num_kv_heads;
  std::string run_id = cfg.train.run_id;
  if (run_id.empty() && world.rank() == 0) {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    run_id = "rlkv-" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) + "-" +
             std::to_string(getpid());
  }
  world.broadcast(run_id, 0);
  s.id.run_id = run_id;
  s.problems = load_problems(cfg.data.path, dataset_fields(cfg));
  // Every prompt fits the model's context, checked before the run rather than at the step that
  // first samples it (rank 0 alone; an error there ends the job, see launch/failure.h).
  if (check_prompts && world.rank() == 0) {
    const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
    for (const Problem& p : s.problems)
      check_prompt_length(
          p,
          tok.encode(apply_prompt_template(cfg.model.prompt_template, p.prompt), cfg.model.add_special_tokens).size(),
          mc.max_position_embeddings);
  }

  LearnerRoleOptions& l = s.learner;
  l.id = s.id;
  l.model = cfg.model.path;
  l.sink = cfg.cache.sink;
  l.window = cfg.cache.window;
  l.config_text = effective_config_text(cfg);
  l.steps = cfg.train.steps;
  l.prompts_per_step = cfg.rollout.prompts_per_step;
  l.group_size = cfg.rollout.group_size;
  l.sync = cfg.train.mode == "sync";
  l.max_staleness = cfg.train.max_staleness;
  l.output_dir = cfg.train.output_dir;
  l.checkpoint_every = cfg.train.checkpoint_every;
  l.keep_checkpoints = cfg.train.keep_checkpoints;
  l.step_timeout = cfg.train.step_timeout;
  l.actor_timeout = cfg.train.actor_timeout;
  l.data_seed = cfg.train.seed;
  l.progress = isatty(2) != 0;
  l.policy = policy_options(cfg.policy);

  ActorRoleOptions& a = s.actor;
  a.id = s.id;
  a.sync = l.sync;
  a.prompts_per_step = cfg.rollout.prompts_per_step;
  a.data_seed = cfg.train.seed;
  a.actor.group_size = cfg.rollout.group_size;
  a.actor.generation = generator_options(cfg);
  a.actor.prompt_template = cfg.model.prompt_template;
  a.actor.add_special_tokens = cfg.model.add_special_tokens;
  a.actor.seed = uint64_t(cfg.train.seed);

  s.reward.reward.task = resolve_reward_task(cfg.reward.task, mc.task, "config key reward.task");
  s.reward.reward.slack = cfg.reward.slack;
  s.reward.reward.lambda_len = cfg.reward.lambda_len;
  s.reward.num_threads = int(cfg.reward.threads);
  return s;
}

bool is_loopback(const std::string& address) {
  return address.rfind("127.", 0) == 0 || address == "localhost" || address == "::1" || address == "[::1]";
}

namespace {

std::string key_file_from_env() {
  const char* e = std::getenv("RLKV_KEY_FILE");
  return e != nullptr ? std::string(e) : std::string();
}

}  // namespace

std::shared_ptr<const RunKey> resolve_run_key(const Config& cfg, Collectives& world) {
  const PlacementOptions& p = cfg.placement;
  const std::string file = !p.key_file.empty() ? p.key_file : key_file_from_env();
  const bool loopback = is_loopback(p.bind_address);
  std::string hex;  // empty: no key
  bool made = false;
  if (world.rank() == 0) {
    if (!file.empty()) {
      hex = read_key_file(file).hex();
    } else if (!loopback && !p.insecure) {
      hex = RunKey::generate().hex();
      made = true;
    }
  }
  world.broadcast(hex, 0);
  if (hex.empty()) {
    if (!loopback && world.rank() == 0)
      log_warn("placement.insecure = true: frames on " + p.bind_address +
               " are not authenticated; anyone who reaches its ports can read the policy and push rollouts");
    return nullptr;
  }
  auto key = std::make_shared<const RunKey>(RunKey::from_hex(hex, "run key"));
  if (world.rank() == 0) {
    if (made) {
      std::filesystem::create_directories(cfg.train.output_dir);
      const std::string path = cfg.train.output_dir + "/run.key";
      write_key_file(path, *key);
      log_info("frames authenticated with a key made for this run; elastic actors join with --key-file " + path);
    } else {
      log_info("frames authenticated with the key of " + file);
    }
  }
  return key;
}

std::shared_ptr<const RunKey> actor_run_key(const std::string& key_file_option, const Config& cfg) {
  const std::string file = !key_file_option.empty()          ? key_file_option
                           : !cfg.placement.key_file.empty() ? cfg.placement.key_file
                                                             : key_file_from_env();
  if (file.empty()) return nullptr;
  return std::make_shared<const RunKey>(read_key_file(file));
}

void write_endpoints_file(const std::string& output_dir, const std::string& policy,
                          const std::vector<std::string>& rollouts) {
  std::filesystem::create_directories(output_dir);
  nlohmann::json j = {{"policy", policy}, {"rollouts", rollouts}};
  const std::string path = output_dir + "/endpoints.json";
  write_file_atomic(path, dump_json(j, 2) + "\n");
}

void report_train_result(const LearnerRoleResult& r, const TrainSetup& s) {
  const double share = r.seconds > 0 ? 100.0 * r.learner_seconds / r.seconds : 0;
  std::fprintf(stderr,
               "trained steps %lld..%lld in %.1f s (learner update %.3f s, %.2f%% of the time); groups used %lld, "
               "dropped: stale %lld, duplicate %lld, foreign %lld; malformed messages %lld\n",
               (long long)r.first_step, (long long)r.last_step, r.seconds, r.learner_seconds, share,
               (long long)r.groups.used, (long long)r.groups.stale, (long long)r.groups.duplicate,
               (long long)r.groups.foreign, (long long)r.dropped_messages);
  if (!r.last_checkpoint.empty()) std::fprintf(stderr, "last checkpoint: %s\n", r.last_checkpoint.c_str());
  std::string per_actor;
  for (const auto& [id, n] : r.actor_groups) per_actor += " " + id + "=" + std::to_string(n);
  std::fprintf(stderr, "groups delivered per actor:%s; groups lost with actors presumed dead: %lld\n",
               per_actor.c_str(), (long long)r.groups_lost);
  // The policy as a head-by-head table of keep probabilities (rows = layers).
  std::fprintf(stderr, "keep probability sigmoid(theta), layers x KV heads:\n");
  for (int64_t l = 0; l < s.id.num_layers; ++l) {
    std::fprintf(stderr, "  L%-3lld", (long long)l);
    for (int64_t h = 0; h < s.id.num_kv_heads; ++h)
      std::fprintf(stderr, " %.3f", 1.0 / (1.0 + std::exp(-double(r.theta[size_t(l * s.id.num_kv_heads + h)]))));
    std::fprintf(stderr, "\n");
  }
}

}  // namespace rlkv
