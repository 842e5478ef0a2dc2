// The roles of a training run (learner, actors, reward worker) as threads of this test process over
// inproc:// endpoints, the way `rlkv train` places them alone (launch/cmd_train.cpp), on a tiny toy
// model trained in-process: a sync run and its reproducibility, an async run that loses an actor
// and goes on, and a learner that fails with the step timeout instead of hanging.
//
// Every wait is for an event (a file, a metrics line, a thread's end) with a deadline far beyond
// its cost, never a fixed sleep that decides the outcome. Every case joins all its threads and
// leaves the process-global run_stop_flag() lowered, whether it passes or fails (RoleRun's
// destructor).
// LibTorch (through the toy trainer's header) before Catch2: glog's CHECK must not replace Catch2's.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "actors/actor_role.h"
#include "checkpoint/checkpoint.h"
#include "comm/collectives.h"
#include "comm/transport.h"
#include "core/error.h"
#include "core/run_context.h"
#include "learner/learner_role.h"
#include "problems/dataset.h"
#include "rewards/reward_role.h"
#include "runtime/tokenizer.h"
#include "test_util.h"
#include "toy/toy_task.h"
#include "toy/toy_trainer.h"

namespace fs = std::filesystem;
using namespace rlkv;
using Catch::Matchers::Contains;
using rlkv_test::TempDir;

namespace {

using Clock = std::chrono::steady_clock;

// A tiny toy model (2 layers, 2 KV heads: 4 gates), its tokenizer and 64 problems, made once per
// test binary run.
struct Fixture {
  ToyTrainResult trained;
  Tokenizer tok;
  std::vector<Problem> problems;
  RunIdentity shape;
};

const Fixture& fixture() {
  static const std::unique_ptr<Fixture> f = [] {
    ToyTrainOptions o;
    o.task.k_min = 3;
    o.task.k_max = 4;
    o.layers = 2;
    o.hidden = 32;
    o.q_heads = 4;
    o.kv_heads = 2;
    o.head_dim = 8;
    o.intermediate = 32;
    o.steps = 2;
    o.eval_every = 0;
    o.log_every = 1000;
    ToyTrainResult trained = train_toy_model(o, [](const std::string&) {});
    TempDir d;
    rlkv_test::write_text(d / "data.jsonl", toy_dataset_jsonl(64, 3, o.task));
    std::vector<Problem> problems = load_problems(d / "data.jsonl");
    Tokenizer tok = Tokenizer::from_json(toy_tokenizer_json(), "toy tokenizer");
    RunIdentity shape;
    shape.num_layers = trained.model.config().num_layers;
    shape.num_kv_heads = trained.model.config().num_kv_heads;
    return std::unique_ptr<Fixture>(new Fixture{std::move(trained), std::move(tok), std::move(problems), shape});
  }();
  return *f;
}

// What a case varies; the rest is fixed (seeds included, so two runs of one spec are the same run).
struct RunSpec {
  bool sync = true;
  int64_t steps = 3, prompts_per_step = 4, group_size = 4, max_staleness = 2;
  int actors = 2;
  double step_timeout = 120, actor_timeout = 30;
  int halted_actor = -1;  // index of an actor given halt_after_groups (fault injection)
  int64_t halt_after_groups = -1;
  std::string halt_marker;
  bool reward_worker = true;
  std::string output_dir;
  int64_t checkpoint_every = 0;
  std::string resume;  // a checkpoint to resume from
};

std::string error_text(std::exception_ptr e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "a non-standard exception";
  }
}

// One training run: its sockets bound on inproc:// in a fresh Context, a reward worker and the
// actors on threads, and the learner on a thread of its own. The destructor raises the stop flag,
// joins every thread, then lowers the flag again, so a failed REQUIRE never leaves threads running
// or a raised flag for the next case.
class RoleRun {
 public:
  explicit RoleRun(const RunSpec& spec) {
    run_stop_flag().store(false);
    const Fixture& f = fixture();
    ep_.policy = pub_.bind("inproc://test-policy");
    ep_.scored = scored_.bind("inproc://test-scored");
    ep_.rollouts = {rollouts_.bind("inproc://test-rollouts")};
    id_ = f.shape;
    id_.run_id = "roles-test";

    LearnerRoleOptions l;
    l.id = id_;
    l.model = "toy (in-process)";
    l.sink = 2;
    l.window = 4;
    l.config_text = "[train]\nmode = " + std::string(spec.sync ? "sync" : "async") + "\n";
    l.steps = spec.steps;
    l.prompts_per_step = spec.prompts_per_step;
    l.group_size = spec.group_size;
    l.sync = spec.sync;
    l.max_staleness = spec.max_staleness;
    l.output_dir = spec.output_dir;
    l.checkpoint_every = spec.checkpoint_every;
    l.resume = spec.resume;
    l.keep_checkpoints = 0;
    l.step_timeout = spec.step_timeout;
    l.actor_timeout = spec.actor_timeout;
    l.data_seed = 5;
    l.policy.lr = 0.05;
    l.policy.target_sparsity = 0.5;

    ActorRoleOptions a;
    a.id = id_;
    a.num_actors = spec.actors;
    a.sync = spec.sync;
    a.prompts_per_step = spec.prompts_per_step;
    a.data_seed = 5;
    a.actor.group_size = spec.group_size;
    a.actor.generation.sampling.temperature = 1.0;
    a.actor.generation.max_new_tokens = 24;
    a.actor.generation.sink = 2;
    a.actor.generation.window = 4;
    a.actor.generation.seed = 7;
    a.actor.generation.num_threads = 1;  // each actor thread its own core share, as the launcher gives
    a.actor.seed = 5;

    RewardWorkerOptions r;
    r.reward.task = RewardTask::kToy;
    r.num_threads = 2;

    // Bound before anything connects (inproc:// needs it), so the roles may start in any order.
    if (spec.reward_worker)
      roles_.push_back(std::make_unique<RoleThread>([this, r] { run_reward_role(ctx_, rollouts_, ep_, id_, r); }));
    for (int k = 0; k < spec.actors; ++k) {
      ActorRoleOptions ak = a;
      ak.index = k;
      ak.actor_id = "actor-" + std::to_string(k);
      if (k == spec.halted_actor) {
        ak.halt_after_groups = spec.halt_after_groups;
        ak.halt_marker = spec.halt_marker;
      }
      roles_.push_back(std::make_unique<RoleThread>(
          [this, ak] { run_actor_role(ctx_, ep_, fixture().trained.model, fixture().tok, fixture().problems, ak); }));
    }
    learner_ = std::make_unique<RoleThread>([this, l] {
      auto world = local_collectives();
      result_ = run_learner_role(&pub_, &scored_, *world, l);
    });
  }

  RoleRun(const RoleRun&) = delete;
  RoleRun& operator=(const RoleRun&) = delete;

  ~RoleRun() {
    stop_and_join();
    run_stop_flag().store(false);
  }

  // Waits (deadline `seconds`) until `ready`; fails at once, with its error, if the learner ended.
  void wait_for(const std::function<bool()>& ready, const std::string& what, double seconds = 180) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (!ready()) {
      INFO("waiting for " << what);
      if (learner_->done()) {
        learner_->join();
        FAIL("the learner ended first: " << (learner_->error() ? error_text(learner_->error()) : "no error"));
      }
      REQUIRE(Clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Waits for the learner to end by itself (train.steps done, or an error).
  void wait_for_learner(double seconds = 300) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (!learner_->done()) {
      INFO("waiting for the learner to end");
      REQUIRE(Clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Raises the stop flag (as SIGTERM does) and joins every thread, the learner first: the roles
  // that missed its stop policy stop on the flag.
  void stop_and_join() {
    run_stop_flag().store(true);
    if (learner_) learner_->join();
    for (auto& t : roles_) t->join();
  }

  // After stop_and_join(): the learner's exception, and those of the other roles.
  std::exception_ptr learner_error() const { return learner_->error(); }
  std::vector<std::string> role_errors() const {
    std::vector<std::string> out;
    for (const auto& t : roles_)
      if (t->error()) out.push_back(error_text(t->error()));
    return out;
  }
  const std::optional<LearnerRoleResult>& result() const { return result_; }

 private:
  Context ctx_;
  // Declared after ctx_: sockets go before their Context.
  Publisher pub_{ctx_};
  Puller scored_{ctx_}, rollouts_{ctx_};
  RunEndpoints ep_;
  RunIdentity id_;
  std::optional<LearnerRoleResult> result_;  // written by the learner thread, read after its join
  // Declared last: the threads, which use everything above, are joined before it goes.
  std::vector<std::unique_ptr<RoleThread>> roles_;
  std::unique_ptr<RoleThread> learner_;
};

// The complete lines of OUTPUT_DIR/metrics.jsonl (the learner may be writing the next one).
std::vector<nlohmann::json> metrics_lines(const std::string& output_dir) {
  const std::string text = rlkv_test::read_text(output_dir + "/metrics.jsonl");
  std::vector<nlohmann::json> out;
  size_t start = 0;
  for (size_t nl = text.find('\n'); nl != std::string::npos; start = nl + 1, nl = text.find('\n', start))
    if (nl > start) out.push_back(nlohmann::json::parse(text.substr(start, nl - start)));
  return out;
}

// A finished run: no role failed, and the learner returned a result.
const LearnerRoleResult& finished(RoleRun& run) {
  run.stop_and_join();
  INFO("learner: " << error_text(run.learner_error()));
  REQUIRE_FALSE(run.learner_error());
  const auto errors = run.role_errors();
  INFO("first role error: " << (errors.empty() ? "" : errors.front()));
  REQUIRE(errors.empty());
  REQUIRE(run.result().has_value());
  return *run.result();
}

// Runs the learner to its failure and returns the message of the UserError it threw.
std::string learner_failure(RoleRun& run) {
  run.wait_for_learner(120);
  run.stop_and_join();
  const auto errors = run.role_errors();
  INFO("first role error: " << (errors.empty() ? "" : errors.front()));
  CHECK(errors.empty());
  REQUIRE(run.learner_error());
  try {
    std::rethrow_exception(run.learner_error());
  } catch (const UserError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("the learner failed with another exception than UserError: " << e.what());
  }
  return "";
}

}  // namespace

TEST_CASE("roles as threads: a sync run uses B groups per step and two runs give identical theta histories") {
  TempDir d;
  RunSpec spec;  // sync, 3 steps, B = 4, G = 4, two actors
  std::vector<LearnerRoleResult> results;
  for (const char* name : {"a", "b"}) {
    spec.output_dir = d / name;
    RoleRun run(spec);
    run.wait_for_learner();
    results.push_back(finished(run));
    const LearnerRoleResult& r = results.back();
    CHECK_FALSE(r.interrupted);
    CHECK(r.first_step == 0);
    CHECK(r.last_step == 3);
    // Exactly B groups per step, all of the step's version: nothing late, repeated or foreign.
    CHECK(r.groups.used == 3 * 4);
    CHECK(r.groups.stale == 0);
    CHECK(r.groups.duplicate == 0);
    CHECK(r.groups.foreign == 0);
    CHECK(r.groups_lost == 0);
    CHECK(r.dropped_messages == 0);
    // Actor k generates the slots j with j % 2 == k: two of the four groups of every step.
    CHECK(r.actor_groups == std::map<std::string, int64_t>{{"actor-0", 6}, {"actor-1", 6}});
    const auto lines = metrics_lines(spec.output_dir);
    REQUIRE(lines.size() == 3);
    for (size_t i = 0; i < lines.size(); ++i) {
      INFO("metrics line " << i << ": " << lines[i].dump());
      CHECK(lines[i]["step"].get<int64_t>() == int64_t(i) + 1);
      CHECK(lines[i]["rollouts"].get<int64_t>() == 4 * 4);
      CHECK(lines[i]["staleness"] == nlohmann::json{{"0", 4}});
    }
    REQUIRE(r.history.logits.size() == 3 * 4);  // steps x L x H_kv
    REQUIRE(fs::exists(spec.output_dir + "/ckpt-3.h5"));
  }
  CHECK(results[0].history.logits == results[1].history.logits);
  CHECK(results[0].theta == results[1].theta);
  // The policy moved: a run that learns nothing would pass the equality trivially.
  const auto& h = results[0].history.logits;
  CHECK(std::vector<float>(h.begin(), h.begin() + 4) != std::vector<float>(h.end() - 4, h.end()));
}

TEST_CASE("roles as threads: an async run loses a halted actor's claimed groups and goes on with the other") {
  TempDir d;
  RunSpec spec;
  spec.sync = false;
  spec.steps = 1000000;  // runs until stopped
  spec.max_staleness = 4;
  spec.actor_timeout = 2;
  spec.output_dir = d / "async";
  // Actor 1 delivers its first batch (ceil(B / 2) = 2 groups), claims the next and goes silent.
  spec.halted_actor = 1;
  spec.halt_after_groups = 2;
  spec.halt_marker = d / "halted";
  RoleRun run(spec);

  run.wait_for([&] { return fs::exists(spec.halt_marker); }, "actor-1 to halt holding a claimed batch");
  // Once actor-1 has been silent for actor_timeout, a step's metrics count its claim as lost.
  int64_t lost_at = 0;
  run.wait_for(
      [&] {
        for (const auto& j : metrics_lines(spec.output_dir))
          if (j["groups_lost"].get<int64_t>() > 0) {
            lost_at = j["step"].get<int64_t>();
            return true;
          }
        return false;
      },
      "a step with groups_lost > 0");
  // Training goes on with actor-0 alone.
  run.wait_for([&] { return int64_t(metrics_lines(spec.output_dir).size()) >= lost_at + 2; },
               "two more steps after the loss");

  const LearnerRoleResult& r = finished(run);
  CHECK(r.interrupted);  // stopped by the flag, as by SIGTERM
  CHECK(r.last_step >= lost_at + 2);
  CHECK(r.groups.used == r.last_step * 4);  // every completed step took B groups
  // actor-1's two delivered groups, and at least its claimed batch of two lost (actor-0, stopped
  // with the run, may add its own last claim if it was silent that long).
  REQUIRE(r.actor_groups.count("actor-1"));
  CHECK(r.actor_groups.at("actor-1") == 2);
  REQUIRE(r.actor_groups.count("actor-0"));
  CHECK(r.actor_groups.at("actor-0") >= (r.last_step * 4) - 2);
  CHECK(r.groups_lost >= 2);
  for (const auto& j : metrics_lines(spec.output_dir)) {
    INFO(j.dump());
    const auto& s = j["staleness"];
    int64_t used = 0;
    for (auto it = s.begin(); it != s.end(); ++it) {
      CHECK(std::stoll(it.key()) <= 4);  // never beyond max_staleness
      used += it.value().get<int64_t>();
    }
    CHECK(used == 4);
  }
}

TEST_CASE("roles as threads: an async run resumed from its checkpoint draws prompts it has not used") {
  // Async actors number their batches from 0 in every process: a resumed run drew the checkpoint's
  // positions (prompts and mask draws) again. The learner now sends the base past them.
  TempDir d;
  RunSpec spec;
  spec.sync = false;
  spec.steps = 3;
  spec.checkpoint_every = 3;
  spec.output_dir = d / "async";
  std::vector<int64_t> first;
  {
    RoleRun run(spec);
    run.wait_for_learner();
    first = finished(run).positions;
  }
  REQUIRE(first.size() == 12);
  const int64_t past = *std::max_element(first.begin(), first.end()) + 1;
  CHECK(read_checkpoint(d / "async/ckpt-3.h5").data_position == past);
  spec.steps = 6;
  spec.resume = d / "async/ckpt-3.h5";
  RoleRun again(spec);
  again.wait_for_learner();
  const std::vector<int64_t> second = finished(again).positions;
  REQUIRE(second.size() == 12);
  for (int64_t p : second) {
    INFO("position " << p);
    CHECK(p >= past);
  }
}

TEST_CASE("roles as threads: with no actor the learner fails with the step timeout instead of hanging") {
  TempDir d;
  RunSpec spec;
  spec.actors = 0;
  spec.reward_worker = false;
  spec.step_timeout = 1.5;
  spec.output_dir = d / "alone";
  const auto t0 = Clock::now();
  RoleRun run(spec);
  const std::string what = learner_failure(run);
  CHECK(std::chrono::duration<double>(Clock::now() - t0).count() >= 1.5);
  CHECK_THAT(what, Contains("step 0") && Contains("still incomplete") && Contains("train.step_timeout"));
}

TEST_CASE("roles as threads: with every actor halted the learner fails with the step timeout") {
  TempDir d;
  RunSpec spec;
  spec.actors = 1;
  spec.halted_actor = 0;
  spec.halt_after_groups = 0;  // claims its first batch and never delivers it
  spec.step_timeout = 1.5;
  spec.output_dir = d / "halted-run";
  RoleRun run(spec);
  const std::string what = learner_failure(run);
  CHECK_THAT(what, Contains("step 0") && Contains("only 0 groups used") && Contains("train.step_timeout"));
}

TEST_CASE("roles as threads: a reward worker whose queue is full ends on the stop policy of a departed learner") {
  // The learner is gone (its scored endpoint has no listener), so every scored group's send fails;
  // the pool holds one group in its sink and the queue two more, and the role's next push would wait
  // for room forever: it must still see the stop policy and end.
  Context ctx;
  Puller rollouts(ctx);
  Publisher policy(ctx);
  RunEndpoints ep;
  ep.rollouts = {rollouts.bind("inproc://stall-rollouts")};
  ep.policy = policy.bind("inproc://stall-policy");
  ep.scored = "tcp://127.0.0.1:1";  // nobody listens
  RunIdentity id{"stall-run", 2, 2};
  RewardWorkerOptions r;
  r.reward.task = RewardTask::kToy;
  r.num_threads = 1;
  r.max_pending = 2;
  RewardRoleStats stats;
  RoleThread role([&] { stats = run_reward_role(ctx, rollouts, ep, id, r); });
  Pusher actor(ctx);
  actor.connect(ep.rollouts[0]);
  for (int i = 0; i < 8; ++i) {
    RolloutGroupMsg g;
    g.run_id = id.run_id;
    g.actor_id = "actor-0";
    g.prompt_id = "p" + std::to_string(i);
    g.prompt_index = i;
    g.policy_version = 1;
    g.answer = "1";
    g.ref_len = 4;
    g.num_layers = 2;
    g.num_kv_heads = 2;
    g.behaviour_keep_prob.assign(4, 0.5f);
    Rollout ro;
    ro.mask.assign(4, 1);
    ro.tokens.assign(4, 5);
    ro.length = 4;
    ro.text = "A: 1";
    ro.prompt_tokens = 4;
    g.rollouts.assign(2, ro);
    REQUIRE(actor.send(encode(g), std::chrono::milliseconds(5000)));
  }
  // Let the pool take a group and the queue fill (the role then waits on a full queue).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  PolicyMsg stop;
  stop.run_id = id.run_id;
  stop.policy_version = 2;
  stop.num_layers = 2;
  stop.num_kv_heads = 2;
  stop.theta.assign(4, 0.0f);
  stop.stop = true;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!role.done() && Clock::now() < deadline) {
    policy.send(encode(stop), std::chrono::milliseconds(0));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const bool ended = role.done();
  if (!ended) run_stop_flag().store(true);  // free the role so that the case can fail and join
  role.join();
  run_stop_flag().store(false);
  REQUIRE(ended);
  REQUIRE_FALSE(role.error());
  CHECK(stats.push_failures >= 1);
}
