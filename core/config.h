// rlkv configuration: plain Options structs with defaults. Boost.Program_options
// only fills them in, in config.cpp, from an INI file (docs/design.md section 7) and from command-line
// overrides of the form `--section.key=value`. Unknown keys and bad values are UserErrors that name
// the key (and the file).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace boost::program_options {
class error;
}  // namespace boost::program_options

namespace rlkv {

struct ModelOptions {
  std::string path;                          // Hugging Face model directory
  std::string dtype = "float32";             // compute / weight dtype: float32 | bfloat16 | float16
  std::string prompt_template = "{prompt}";  // text around the prompt; must contain {prompt};
                                             // \n, \t and \\ are unescaped (INI values are one line)
  bool add_special_tokens = true;            // tokenizer post-processor (e.g. Llama-3's BOS)
  std::string load = "shard";                // tensor-parallel groups: shard (each rank reads its byte
                                             // ranges) | broadcast (one rank per node reads, broadcasts)
};

// The most tokens any one count of a head's cache may name (cache.sink, cache.window, a token budget,
// the token-dropping counts): bounded so that no size computed from them can overflow.
constexpr int64_t kMaxCacheSlots = int64_t(1) << 24;

struct CacheOptions {
  int64_t sink = 4;        // S: first positions every compressed head keeps (tokens)
  int64_t window = 16;     // W: most recent positions every compressed head keeps (tokens)
  int64_t page_size = 16;  // slots per page of the full-head pool (tokens)
};

struct RolloutOptions {
  double temperature = 1.0;             // 0 = greedy
  double top_p = 1.0;                   // nucleus mass, (0, 1]
  int64_t top_k = 0;                    // 0 = off
  int64_t max_new_tokens = 256;         // length cap (tokens)
  int64_t group_size = 4;               // G rollouts per prompt
  int64_t prompts_per_step = 8;         // B prompts per learner step
  int64_t seed = 0;                     // base seed; sequence i samples with its own stream
  int64_t repetition_every = 0;         // K of the repetition detector (0 = off), docs/design.md section 4
  int64_t repetition_min_distinct = 0;  // U: stop when the last K tokens hold fewer than U distinct
  std::vector<std::string> stop;        // extra stop strings (EOS always stops)
};

struct DataOptions {
  std::string path;  // JSONL problems
  // Field names: set by `format` (plain: id/prompt/answer; gsm8k: question/answer; math:
  // problem/answer, else the boxed answer of `solution`; deepscaler: problem/answer); any field key
  // given explicitly wins.
  std::string format = "plain";  // plain | gsm8k | math | deepscaler
  std::string id_field, prompt_field, answer_field, solution_field;
};

struct PrepareConfig {
  int64_t samples = 4;          // K full-cache samples per problem
  double min_pass_rate = 0.25;  // keep problems solved at least this often (1 of 4 by default)
  double max_pass_rate = 1.0;   // and at most this often (lower it to drop problems too easy to teach)
  int64_t chunk = 64;           // problems per journal commit (resume granularity)
};

// The token-dropping baselines' parameters (runtime/eviction.h); defaults are the published ones,
// sized for reasoning traces of thousands of tokens.
struct DroppingConfig {
  int64_t snapkv_every = 128;   // generated tokens between SnapKV compressions
  int64_t snapkv_queries = 64;  // queries whose attention scores the tokens
  int64_t rkv_buffer = 128;     // new tokens R-KV lets in before it compresses
  int64_t rkv_queries = 8;      // R-KV's observation window
  double rkv_lambda = 0.1;      // R-KV's weight of importance against redundancy
};

struct TrainOptions {
  int64_t steps = 100;                   // learner steps (policy updates)
  std::string mode = "sync";             // sync | async
  int64_t seed = 0;                      // data order, masks, sampling
  std::string output_dir = "out/train";  // ckpt-<step>.h5 and metrics.jsonl
  int64_t checkpoint_every = 10;         // steps between checkpoints (0 = only at the end)
  int64_t keep_checkpoints = 3;          // newest checkpoints kept (0 = all)
  int64_t max_staleness = 2;             // async: oldest policy version (relative) a group may come from
  double step_timeout = 600;             // seconds the learner waits for a step's groups before failing
  double actor_timeout = 30;             // seconds of silence after which an actor is presumed dead
  std::string run_id;                    // empty: derived from the output directory and the start time
};

struct PolicyConfig {
  double init_keep_prob = 0.9;
  double lr = 1e-2;
  double beta = 1.0;
  double tau = 0.5;
  double target_sparsity = 0;      // > 0: PI controller on the penalty weight towards this sparsity
  std::string penalty = "sum";     // sum (beta' * sum_h p_h) | mean (the paper's beta' * mean_h p_h)
  std::string adv_norm = "group";  // group | batch
  double clip_eps = 0.2;
  double grad_clip = 1.0;
};

struct RewardConfig {
  std::string task = "auto";  // auto (the model directory's rlkv_task, else math) | math | toy
  double slack = 0.5;
  double lambda_len = 0.25;
  int64_t threads = 2;  // reward worker pool
};

struct PlacementOptions {
  int64_t actors = 1;                      // actor threads in a single process (per actor rank under MPI)
  int64_t learners = 1;                    // learner ranks under MPI (gradients all-reduced)
  int64_t reward_workers = 1;              // reward-worker ranks under MPI
  std::string bind_address = "127.0.0.1";  // interface for tcp:// endpoints (loopback by default)
  // Frame authentication (comm/frame_auth.h): a key file (64 hex digits, mode 0600) every process of
  // the run reads; empty: a key is made for the run when bind_address is not loopback.
  std::string key_file;
  bool insecure = false;  // a non-loopback bind_address without authentication (logged at start)
};

struct ActorOptionsConfig {
  int64_t tensor_parallel = 1;  // ranks per actor group (Megatron-style; under mpirun only)
};

struct RuntimeOptions {
  int64_t threads = 0;         // intra-op threads for LibTorch and the CPU kernels; 0 = all cores
  int64_t max_batch = 32;      // sequences decoded together (continuous batching)
  std::string device = "cpu";  // cpu | cuda (GPU of the rank's local rank) | cuda:N
  // Decode steps as replayed CUDA graphs (runtime/static_decode.h): auto (on a GPU, where the graph
  // step applies) | true | false.
  std::string cuda_graphs = "auto";
};

struct Config {
  ModelOptions model;
  CacheOptions cache;
  RolloutOptions rollout;
  RuntimeOptions runtime;
  DataOptions data;
  TrainOptions train;
  PolicyConfig policy;
  RewardConfig reward;
  PlacementOptions placement;
  ActorOptionsConfig actor;
  PrepareConfig prepare;
  DroppingConfig dropping;
  std::string source_text;             // the INI text it was read from (empty without a file)
  std::vector<std::string> overrides;  // the command-line overrides applied over it, "section.key=value"
};

// A Boost.Program_options error's message on one line (control bytes escaped), made without its
// what(), which never returns for a value that contains its own placeholder (the config value or
// option argument "x%value%").
std::string program_options_text(const boost::program_options::error& e);

// Reads `ini_path` (may be empty: defaults only), then applies `overrides` ("section.key=value",
// with or without leading "--"); an override wins over the file. Validates every value.
Config load_config(const std::string& ini_path, const std::vector<std::string>& overrides);

// The run's configuration as INI text: the file's text with each overridden key's value replaced in
// place, and overrides of keys the file does not set appended under their sections. What checkpoints
// record, so that a run started with overrides reads back as it ran. An override whose value INI
// text cannot hold (a line break, '#', white space at its ends) is a UserError here.
std::string effective_config_text(const Config& cfg);

// Every key that exists, "section.key", for help output and tests.
std::vector<std::string> config_keys();

}  // namespace rlkv
