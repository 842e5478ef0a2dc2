// Pipeline capacity (not a test: it prints numbers): synthetic actors emit realistic rollout groups
// as fast as they can (no model), and we measure how many groups per second the reward workers and
// the learner absorb end to end over inproc:// ZeroMQ, with the real messages, scoring and policy
// update. Shapes: the toy model (4 x 4 heads, ~100-token responses) and a Llama-3.1-8B-shaped policy
// (32 x 8 heads, 4 KB maths responses ending in \boxed{}). Each shape runs twice: frames without and
// with authentication (every socket sealing and checking each frame with a run key: HMAC-SHA256 over
// the frame, the sender id and its counter, and the replay check).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "bench/bench_args.h"
#include "comm/collectives.h"
#include "comm/transport.h"
#include "core/run_context.h"
#include "learner/learner_role.h"
#include "rewards/reward_role.h"

using namespace rlkv;
using std::chrono::milliseconds;

namespace {

struct Shape {
  const char* name;
  int64_t layers, heads, text_bytes;
  RewardTask task;
};

std::string response_text(const Shape& s, std::mt19937& rng) {
  std::string t;
  if (s.task == RewardTask::kToy) {
    t = "23+45=68;68+12=80;80+67=147;147+30=177;177+18=195;195+44=239;239+71=310;A:310";
  } else {
    const char* words[] = {"Let",   "us",  "compute",      "the", "sum", "of",
                           "$x^2$", "and", "\\frac{1}{2}", "so",  "we",  "get"};
    while (int64_t(t.size()) < s.text_bytes) t += std::string(words[rng() % 12]) + " ";
    t += "Therefore the answer is \\boxed{" + std::to_string(rng() % 100) + "}.";
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: bench_pipeline [STEPS (200)] [ACTORS (2)] [REWARD_THREADS (1)]";
  rlkv_bench::help_or_run(argc, argv, usage);
  const int64_t steps = rlkv_bench::int_arg(argc, argv, 1, 200, 1, int64_t(1) << 30, usage);
  const int actors = int(rlkv_bench::int_arg(argc, argv, 2, 2, 1, 256, usage));
  const int reward_threads = int(rlkv_bench::int_arg(argc, argv, 3, 1, 1, 256, usage));
  for (const Shape& shape :
       {Shape{"toy", 4, 4, 100, RewardTask::kToy}, Shape{"llama-8b", 32, 8, 4096, RewardTask::kMath}})
    for (const bool authenticated : {false, true}) {
      run_stop_flag().store(false);
      Context ctx;
      Publisher pub(ctx);
      Puller scored(ctx), rollouts(ctx);
      RunEndpoints ep;
      if (authenticated) ep.key = std::make_shared<const RunKey>(RunKey::generate());
      pub.set_key(ep.key);
      scored.set_key(ep.key);
      rollouts.set_key(ep.key);
      ep.policy = pub.bind("inproc://bench-policy");
      ep.scored = scored.bind("inproc://bench-scored");
      ep.rollouts = {rollouts.bind("inproc://bench-rollouts")};
      RunIdentity id{"bench", shape.layers, shape.heads};
      RewardWorkerOptions ro;
      ro.reward.task = shape.task;
      ro.num_threads = reward_threads;
      std::thread reward([&] { run_reward_role(ctx, rollouts, ep, id, ro); });
      std::atomic<int64_t> sent{0};
      std::vector<std::thread> gens;
      for (int a = 0; a < actors; ++a) {
        gens.emplace_back([&, a] {
          Subscriber sub(ctx);
          sub.set_key(ep.key);
          sub.connect(ep.policy);
          Pusher push(ctx);
          push.set_key(ep.key);
          push.connect(ep.rollouts.front());
          DropCounter drops("bench actor");
          std::mt19937 rng(a);
          int64_t version = 0;
          const int64_t n = shape.layers * shape.heads;
          int64_t k = 0;
          while (!run_stop_flag().load()) {
            if (auto p = receive_policy(sub, milliseconds(0), {}, drops)) {
              if (p->stop) break;
              version = p->policy_version;
            }
            RolloutGroupMsg g;
            g.run_id = id.run_id;
            g.actor_id = "synthetic-" + std::to_string(a);
            g.prompt_id = "p" + std::to_string(k);
            g.position = (k++) * actors + a;
            g.policy_version = version;
            g.answer = "42";
            g.ref_len = 1000;
            g.num_layers = shape.layers;
            g.num_kv_heads = shape.heads;
            g.behaviour_keep_prob.assign(size_t(n), 0.7f);
            for (int i = 0; i < 4; ++i) {
              Rollout r;
              for (int64_t h = 0; h < n; ++h) r.mask.push_back(rng() % 10 < 7 ? 1 : 0);
              r.text = response_text(shape, rng);
              r.length = int64_t(r.text.size() / 4);
              r.tokens.assign(size_t(r.length), 7);
              r.finish_reason = "eos";
              r.prompt_tokens = 100;
              g.rollouts.push_back(std::move(r));
            }
            if (push.send(encode(g), milliseconds(200))) ++sent;
          }
        });
      }
      LearnerRoleOptions lo;
      lo.id = id;
      lo.steps = steps;
      lo.prompts_per_step = 8;
      lo.sync = false;
      lo.max_staleness = 1000000;
      lo.output_dir = "/tmp/rlkv-bench-pipeline";
      lo.checkpoint_every = 0;
      lo.keep_checkpoints = 1;
      auto local = local_collectives();
      const auto t0 = std::chrono::steady_clock::now();
      LearnerRoleResult res = run_learner_role(&pub, &scored, *local, lo);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      run_stop_flag().store(true);
      for (auto& t : gens) t.join();
      reward.join();
      nlohmann::json j = {{"bench", "pipeline"},
                          {"shape", shape.name},
                          {"authenticated", authenticated},
                          {"heads", shape.layers * shape.heads},
                          {"response_bytes", shape.text_bytes},
                          {"synthetic_actors", actors},
                          {"reward_threads", reward_threads},
                          {"steps", steps},
                          {"groups_used", res.groups.used},
                          {"groups_per_s", double(res.groups.used) / secs},
                          {"rollouts_per_s", 4.0 * double(res.groups.used) / secs},
                          {"learner_update_share", res.learner_seconds / secs},
                          {"groups_sent", sent.load()}};
      std::cout << j.dump() << std::endl;
    }
  return 0;
}
