// `rlkv train`: places the roles of docs/design.md section 2 and runs them.
//   - alone: every role as threads of this process over inproc:// (placement.actors actor threads,
//     one reward worker, the learner on the main thread); the policy and rollout sockets also bind
//     tcp:// on placement.bind_address so elastic actors (`rlkv actor`) can join;
//   - under mpirun -np N: ranks [0, placement.learners) are learners, the last
//     placement.reward_workers ranks reward workers, the ranks between them actors; every rank binds
//     tcp:// endpoints on ephemeral ports and the endpoints are exchanged with MPI_Allgather;
//     with actor.tensor_parallel = N, consecutive actor ranks form groups of N that run one actor
//     on a model shared Megatron-style.
// SIGINT / SIGTERM stop the run cleanly (the checkpoint of the last completed interval remains).
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "actors/actor_role.h"
#include "comm/collectives.h"
#include "core/config.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/log.h"
#include "launch/cli.h"
#include "launch/failure.h"
#include "launch/tp_setup.h"
#include "launch/train_setup.h"
#include "learner/learner_role.h"
#include "problems/dataset.h"
#include "rewards/reward_role.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {

// A word the printed join command can be pasted with: quoted when the shell would split or expand it
// (an IPv6 endpoint's brackets are a glob).
std::string shell_word(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || (c != 0 && std::strchr("_./:=@%+-,", c) != nullptr);
  });
  if (plain) return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

extern "C" void on_stop_signal(int) { run_stop_flag().store(true); }

enum class Role { kLearner, kActor, kReward };

Role role_of(int rank, int size, const PlacementOptions& p) {
  if (rank < p.learners) return Role::kLearner;
  if (rank >= size - p.reward_workers) return Role::kReward;
  return Role::kActor;
}

// Joins every thread, then rethrows the first thread's error (in start order), if any.
void join_all(std::deque<RoleThread>& threads) {
  for (auto& t : threads) t.join();
  for (auto& t : threads)
    if (t.error()) std::rethrow_exception(t.error());
}

// The single-process layout's sockets bound: inproc:// for the role threads, and tcp:// on
// placement.bind_address for elastic actors (OUTPUT_DIR/endpoints.json and a log line say where).
RunEndpoints bind_single_process(Publisher& pub, Puller& scored, Puller& rollouts, const Config& cfg,
                                 const std::string& config_path, TrainSetup& setup) {
  RunEndpoints ep;
  ep.key = setup.key;  // with a key, the role threads' inproc frames carry tags too (one socket, both transports)
  pub.set_key(ep.key);
  scored.set_key(ep.key);
  rollouts.set_key(ep.key);
  ep.policy = pub.bind("inproc://rlkv-policy");
  ep.scored = scored.bind("inproc://rlkv-scored");
  ep.rollouts = {rollouts.bind("inproc://rlkv-rollouts")};
  // Elastic actors (`rlkv actor --connect`) join over tcp.
  const std::string tcp_policy = advertised_endpoint(pub.bind(tcp_endpoint(cfg.placement.bind_address)));
  const std::string tcp_rollouts = advertised_endpoint(rollouts.bind(tcp_endpoint(cfg.placement.bind_address)));
  setup.learner.rollouts_endpoint = tcp_rollouts;
  write_endpoints_file(cfg.train.output_dir, tcp_policy, {tcp_rollouts});
  log_info("run " + setup.id.run_id + ": elastic actors may join with: rlkv actor --config " + shell_word(config_path) +
           " --connect " + shell_word(tcp_policy));
  return ep;
}

// Every role as threads of this process: one reward worker, placement.actors actor threads, the
// learner on this thread. Returns the exit status (1 when interrupted by a signal).
int run_single_process(const Config& cfg, const std::string& config_path, Collectives& world, TrainSetup& setup) {
  RLKV_CHECK(cfg.actor.tensor_parallel == 1, "actor.tensor_parallel = ", cfg.actor.tensor_parallel,
             " needs mpirun (launch/mpirun.sh -np learners + reward workers + a multiple of it)");
  Context ctx;
  Publisher pub(ctx);
  Puller scored(ctx), rollouts(ctx);
  const RunEndpoints ep = bind_single_process(pub, scored, rollouts, cfg, config_path, setup);
  const Model model = Model::load(cfg.model.path, parse_dtype(cfg.model.dtype), resolve_device(cfg));
  const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
  std::deque<RoleThread> threads;
  threads.emplace_back([&] { run_reward_role(ctx, rollouts, ep, setup.id, setup.reward); });
  for (int64_t a = 0; a < cfg.placement.actors; ++a) {
    threads.emplace_back([&, a] {
      ActorRoleOptions ao = setup.actor;
      ao.actor.generation.num_threads = actor_thread_share(cfg, 1);
      ao.index = a;
      ao.num_actors = cfg.placement.actors;
      ao.actor_id = "actor-" + std::to_string(a);
      run_actor_role(ctx, ep, model, tok, setup.problems, ao);
    });
  }
  std::exception_ptr learner_error;
  LearnerRoleResult res;
  try {
    res = run_learner_role(&pub, &scored, world, setup.learner);
  } catch (...) {
    learner_error = std::current_exception();
  }
  run_stop_flag().store(true);  // roles that missed the stop policy (e.g. after an error) stop too
  for (auto& t : threads) t.join();
  if (learner_error) std::rethrow_exception(learner_error);
  join_all(threads);
  report_train_result(res, setup);
  return res.interrupted ? 1 : 0;
}

// The sockets a rank binds under mpirun: learner rank 0 the policy publisher and the scored-group
// puller, a reward worker its rollout puller; every rank then learns every endpoint (allgather).
RunEndpoints exchange_endpoints(Collectives& world, Role role, const Config& cfg, Context& ctx,
                                const std::shared_ptr<const RunKey>& key, std::unique_ptr<Publisher>& pub,
                                std::unique_ptr<Puller>& pull) {
  const int rank = world.rank();
  nlohmann::json mine = {{"rank", rank}, {"role", int(role)}};
  if (role == Role::kLearner && rank == 0) {
    pub = std::make_unique<Publisher>(ctx);
    pull = std::make_unique<Puller>(ctx);
    pub->set_key(key);
    pull->set_key(key);
    mine["policy"] = advertised_endpoint(pub->bind(tcp_endpoint(cfg.placement.bind_address)));
    mine["scored"] = advertised_endpoint(pull->bind(tcp_endpoint(cfg.placement.bind_address)));
  } else if (role == Role::kReward) {
    pull = std::make_unique<Puller>(ctx);
    pull->set_key(key);
    mine["rollouts"] = advertised_endpoint(pull->bind(tcp_endpoint(cfg.placement.bind_address)));
  }
  RunEndpoints ep;
  ep.key = key;
  for (const auto& s : world.allgather(mine.dump())) {
    auto j = nlohmann::json::parse(s);
    if (j.contains("policy")) ep.policy = j["policy"];
    if (j.contains("scored")) ep.scored = j["scored"];
    if (j.contains("rollouts")) ep.rollouts.push_back(j["rollouts"]);
  }
  return ep;
}

// The actor ranks cut into tensor-parallel groups (every rank takes part in the collectives).
struct ActorGroups {
  std::shared_ptr<Collectives> ranks;  // all actor ranks (color 1) or all others (color 0)
  std::shared_ptr<Collectives> node;   // this node's ranks of `ranks`
  std::shared_ptr<Collectives> group;  // this rank's group (actor ranks), or all non-actor ranks
  int num_groups = 0, group_index = 0;
};

// Actor groups: the actor ranks of each node, in rank order, form groups of actor.tensor_parallel
// ranks (a group never spans nodes: its collectives run after every layer). The node's actor ranks
// also share one reader with model.load = broadcast.
ActorGroups form_actor_groups(Collectives& world, bool is_actor, int tp) {
  const int rank = world.rank();
  ActorGroups g;
  g.ranks = world.split(is_actor ? 1 : 0);
  g.node = g.ranks->split_node();
  // This rank's group leader (the node's actor ranks in rank order, cut into runs of tp), shared
  // with every rank so that every rank refuses a bad layout alike and numbers the groups alike.
  const std::vector<std::string> members = g.node->allgather(std::to_string(rank));
  const int node_rank = g.node->rank(), node_size = g.node->size();
  const int leader = std::stoi(members[size_t(node_rank / tp * tp)]);
  const std::vector<std::string> seen =
      world.allgather(is_actor ? std::to_string(leader) + " " + std::to_string(node_size) : std::string("-"));
  std::vector<int> leaders;
  for (const auto& e : seen) {
    if (e == "-") continue;
    const int n = std::stoi(e.substr(e.find(' ') + 1));
    RLKV_CHECK(n % tp == 0, "a node has ", n,
               " actor rank(s), which cannot form groups of "
               "actor.tensor_parallel = ",
               tp,
               " (groups never span nodes; on one node, mpirun -np must be "
               "learners + reward workers + a multiple of ",
               tp, ")");
    leaders.push_back(std::stoi(e.substr(0, e.find(' '))));
  }
  std::sort(leaders.begin(), leaders.end());
  leaders.erase(std::unique(leaders.begin(), leaders.end()), leaders.end());
  g.num_groups = int(leaders.size());
  g.group_index = int(std::lower_bound(leaders.begin(), leaders.end(), leader) - leaders.begin());
  g.group = world.split(is_actor ? 1 + leader : 0);
  return g;
}

// An actor rank: a group's leader runs placement.actors actor threads (numbered across the job),
// the other ranks of its group follow it through the model's tensor collectives.
void run_actor_rank(Context& ctx, const RunEndpoints& ep, const Config& cfg, const TrainSetup& setup,
                    const ActorGroups& groups, int rank) {
  const int tp = int(cfg.actor.tensor_parallel);
  const Model model = load_group_model(cfg, groups.group, groups.node);
  const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
  ActorRoleOptions ao = setup.actor;
  ao.actor.generation.num_threads = actor_thread_share(cfg, groups.node->size());
  std::deque<RoleThread> threads;
  if (groups.group->rank() > 0) {
    threads.emplace_back([&] { run_actor_follower(*groups.group, model, tok, setup.problems, ao.actor); });
  } else {
    // Each actor group runs placement.actors actor threads; actor index across the job.
    for (int64_t a = 0; a < cfg.placement.actors; ++a) {
      threads.emplace_back([&, a] {
        ActorRoleOptions o = ao;
        o.num_actors = int64_t(groups.num_groups) * cfg.placement.actors;
        o.index = int64_t(groups.group_index) * cfg.placement.actors + a;
        o.actor_id = "rank" + std::to_string(rank) + "-actor" + std::to_string(a);
        if (tp > 1) o.group = groups.group;
        run_actor_role(ctx, ep, model, tok, setup.problems, o);
      });
    }
  }
  join_all(threads);
}

// Under mpirun: ranks [0, placement.learners) learners, the last placement.reward_workers ranks
// reward workers, the ranks between them actors. Returns 0, or 1 on the learners when a signal
// stopped the run (every rank stops in order); an error throws.
int run_under_mpirun(const Config& cfg, const std::string& config_path, Collectives& world, TrainSetup& setup) {
  const int rank = world.rank(), size = world.size();
  RLKV_CHECK(size >= cfg.placement.learners + cfg.placement.reward_workers + 1, "mpirun -np ", size,
             " is too few ranks for ", cfg.placement.learners, " learner(s), ", cfg.placement.reward_workers,
             " reward worker(s) and at least one actor");
  const Role role = role_of(rank, size, cfg.placement);
  Context ctx;
  std::unique_ptr<Publisher> pub;
  std::unique_ptr<Puller> pull;
  const RunEndpoints ep = exchange_endpoints(world, role, cfg, ctx, setup.key, pub, pull);
  setup.learner.rollouts_endpoint = ep.rollouts.empty() ? "" : ep.rollouts.front();
  auto learner_comm = world.split(role == Role::kLearner ? 0 : 1);
  const int tp = int(cfg.actor.tensor_parallel);
  RLKV_CHECK(tp == 1 || cfg.placement.actors == 1, "actor.tensor_parallel = ", tp,
             " needs placement.actors = 1 (a tensor-parallel group runs one actor)");
  const ActorGroups actor_groups = form_actor_groups(world, role == Role::kActor, tp);
  if (rank == 0) {
    write_endpoints_file(cfg.train.output_dir, ep.policy, ep.rollouts);
    log_info("run " + setup.id.run_id + " on " + std::to_string(size) + " ranks; elastic actors may join with: " +
             "rlkv actor --config " + shell_word(config_path) + " --connect " + shell_word(ep.policy));
  }
  std::exception_ptr error;
  bool interrupted = false;
  try {
    if (role == Role::kLearner) {
      LearnerRoleResult res = run_learner_role(pub.get(), pull.get(), *learner_comm, setup.learner);
      if (rank == 0) report_train_result(res, setup);
      interrupted = res.interrupted;
    } else if (role == Role::kReward) {
      run_reward_role(ctx, *pull, ep, setup.id, setup.reward);
    } else {
      run_actor_rank(ctx, ep, cfg, setup, actor_groups, rank);
    }
  } catch (...) {
    error = std::current_exception();
  }
  pub.reset();
  pull.reset();
  if (error) std::rethrow_exception(error);
  world.barrier();
  return interrupted ? 1 : 0;
}

// Whether `path`'s first line is a metrics line of rlkv train (duo-train's lines have no
// policy_version): --resume auto over a directory without checkpoints starts over and replaces it.
bool holds_train_metrics(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  char c;
  while (in.get(c) && c != '\n' && line.size() < (1u << 20)) line += c;
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("policy_version") && j.contains("step");
}

}  // namespace

int cmd_train(int argc, char** argv) {
  po::options_description desc("rlkv train options");
  desc.add_options()("help,h", "show this help")("config", po::value<std::string>(), "INI config file")(
      "resume", po::value<std::string>(), "a checkpoint to resume from, or 'auto' (newest valid in train.output_dir)");
  ParsedArgs args = parse_args(argc, argv, desc);
  if (args.vm.count("help")) {
    std::cout << "usage: rlkv train --config FILE [--resume CKPT|auto] [--section.key=value ...]\n" << desc;
    return 0;
  }
  RLKV_CHECK(args.vm.count("config"), "rlkv train needs --config FILE (e.g. configs/toy.ini)");
  const std::string config_path = args.vm["config"].as<std::string>();
  const Config cfg = load_config(config_path, args.overrides);
  RLKV_CHECK(!cfg.train.output_dir.empty(), "config key train.output_dir is empty: training writes its checkpoints ",
             "and metrics there");
  check_output_dir(cfg.train.output_dir, "config key train.output_dir");
  const std::string resume = args.vm.count("resume") ? args.vm["resume"].as<std::string>() : "";
  RLKV_CHECK(!args.vm.count("resume") || !resume.empty(), "--resume: give a checkpoint file or 'auto'");
  // A fresh run would overwrite an earlier run's checkpoints one by one and mix its metrics with them
  // (or with another command's: duo-train writes a metrics.jsonl too); so would a run resumed from a
  // checkpoint kept elsewhere, whose pruning (train.keep_checkpoints) also deletes the directory's own.
  std::error_code ec;
  const bool own = resume == "auto" ||
                   (!resume.empty() && std::filesystem::equivalent(std::filesystem::absolute(resume).parent_path(),
                                                                   cfg.train.output_dir, ec));
  if (own && resume != "auto") {
    // A rewind: later checkpoints of the directory's own run would stay beside the resumed timeline
    // (--resume auto would take them later), and its metrics.jsonl would lose their steps.
    const std::vector<std::string> all = checkpoint_files(cfg.train.output_dir);
    RLKV_CHECK(all.empty() || std::filesystem::equivalent(all.back(), resume, ec), "--resume ", resume,
               ": config key train.output_dir ", cfg.train.output_dir, " holds a later checkpoint (",
               std::filesystem::path(all.back()).filename().string(),
               "); continue the run with --resume auto, or copy the checkpoint into a new directory to branch "
               "from it");
  }
  const std::string metrics = cfg.train.output_dir + "/metrics.jsonl";
  if (resume == "auto" && checkpoint_files(cfg.train.output_dir).empty()) {
    // Nothing to continue: the run starts over and empties metrics.jsonl, which is right for a run
    // stopped before its first checkpoint and loses another command's metrics.
    RLKV_CHECK(!std::filesystem::exists(metrics, ec) || std::filesystem::file_size(metrics, ec) == 0 ||
                   holds_train_metrics(metrics),
               "--resume auto: config key train.output_dir ", cfg.train.output_dir,
               " holds no checkpoint and a metrics.jsonl that is not a training run's (rlkv duo-train writes "
               "one too); give a new directory");
  }
  if (!own) {
    const std::string how = resume.empty() ? "continue it with --resume auto, or give a new directory"
                                           : "resume into a new directory, or from one of its own checkpoints";
    const std::vector<std::string> earlier = checkpoint_files(cfg.train.output_dir);
    RLKV_CHECK(earlier.empty(), "config key train.output_dir ", cfg.train.output_dir, ": holds an earlier run (",
               std::filesystem::path(earlier.back()).filename().string(), "); ", how);
    RLKV_CHECK(!std::filesystem::exists(metrics, ec) || std::filesystem::file_size(metrics, ec) == 0,
               "config key train.output_dir ", cfg.train.output_dir,
               ": holds the metrics.jsonl of an earlier run or command (rlkv duo-train writes one too); ",
               resume.empty() && !holds_train_metrics(metrics) ? "give a new directory" : how);
  }

  MpiSession mpi(nullptr, nullptr);
  return run_on_ranks("train", mpi, [&] {
    std::unique_ptr<Collectives> world = mpi.active() ? mpi_world() : local_collectives();
    // A tensor-parallel group's collectives run on its actor threads, not the main thread.
    RLKV_CHECK(cfg.actor.tensor_parallel == 1 || mpi.threads_serialized(),
               "actor.tensor_parallel = ", cfg.actor.tensor_parallel,
               ": this MPI library does not grant MPI_THREAD_SERIALIZED, which the actor threads' collectives need");
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    TrainSetup setup = make_train_setup(cfg, *world);
    setup.key = resolve_run_key(cfg, *world);
    setup.learner.resume = resume;
    if (world->size() == 1) return run_single_process(cfg, config_path, *world, setup);
    return run_under_mpirun(cfg, config_path, *world, setup);
  });
}

}  // namespace rlkv
