// `rlkv actor --config FILE --connect ENDPOINT`: an elastic actor joining a running job from outside
// the MPI world. ENDPOINT is the learner's policy endpoint (printed by `rlkv train` and written to
// OUTPUT_DIR/endpoints.json); the policy messages name the endpoint rollout groups go to. The actor
// generates asynchronously with the newest policy it has until the learner's stop policy; killing
// it costs its in-flight groups, never the job (the learner counts groups, not actors). A run that
// authenticates its frames (OUTPUT_DIR/run.key) admits an actor only with --key-file: without it,
// the actor decodes no policy and its groups are refused before anything decodes them. An actor
// that hears no policy for train.step_timeout seconds fails with a one-line error.
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <iostream>

#include "actors/actor_role.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "launch/cli.h"
#include "launch/tp_setup.h"
#include "launch/train_setup.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace po = boost::program_options;

namespace rlkv {
namespace {
extern "C" void on_actor_signal(int) { run_stop_flag().store(true); }
}  // namespace

int cmd_actor(int argc, char** argv) {
  po::options_description desc("rlkv actor options");
  desc.add_options()("help,h", "show this help")("config", po::value<std::string>(), "the run's INI config")(
      "connect", po::value<std::string>(), "the learner's policy endpoint, e.g. tcp://127.0.0.1:40123")(
      "id", po::value<std::string>(), "actor id (default: elastic-<host>-<pid>)")(
      "key-file", po::value<std::string>(),
      "the run's key (OUTPUT_DIR/run.key of a run bound to a non-loopback address; default: "
      "placement.key_file, else $RLKV_KEY_FILE)")(
      "halt-after-groups", po::value<int64_t>(),
      "fault injection (tests): after N delivered groups, claim a batch and never deliver it")(
      "halt-marker", po::value<std::string>(), "fault injection: file written when the actor halts");
  ParsedArgs args = parse_args(argc, argv, desc);
  if (args.vm.count("help")) {
    std::cout << "usage: rlkv actor --config FILE --connect ENDPOINT [--key-file FILE] [--section.key=value ...]\n"
              << desc;
    return 0;
  }
  RLKV_CHECK(args.vm.count("config"), "rlkv actor needs --config FILE (the run's config)");
  RLKV_CHECK(args.vm.count("connect"), "rlkv actor needs --connect ENDPOINT (the learner's policy endpoint)");
  const Config cfg = load_config(args.vm["config"].as<std::string>(), args.overrides);
  const std::string endpoint = args.vm["connect"].as<std::string>();
  RLKV_CHECK(endpoint.rfind("tcp://", 0) == 0 || endpoint.rfind("ipc://", 0) == 0,
             "--connect: expected a tcp:// or ipc:// endpoint, got '", endpoint, "'");
  if (endpoint.rfind("tcp://", 0) == 0) {
    const size_t colon = endpoint.rfind(':');
    const std::string port = colon > 5 ? endpoint.substr(colon + 1) : "";
    RLKV_CHECK(!port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos &&
                   std::stoi(port) >= 1 && std::stoi(port) <= 65535,
               "--connect: expected tcp://HOST:PORT with a port in 1..65535, got '", endpoint, "'");
    const std::string host = endpoint.substr(6, colon - 6);
    const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    RLKV_CHECK(!host.empty() && (bracketed || host.find_first_of(":[]") == std::string::npos),
               "--connect: expected tcp://HOST:PORT (an IPv6 address in brackets: tcp://[::1]:PORT), got '", endpoint,
               "'");
  }
  // Read before the model loads: a bad key file fails at once.
  const std::shared_ptr<const RunKey> key =
      actor_run_key(args.vm.count("key-file") ? args.vm["key-file"].as<std::string>() : "", cfg);
  std::signal(SIGINT, on_actor_signal);
  std::signal(SIGTERM, on_actor_signal);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  const std::string actor_id = args.vm.count("id") ? args.vm["id"].as<std::string>()
                                                   : "elastic-" + std::string(host) + "-" + std::to_string(getpid());
  // The id goes into every log line and the learner's accounting: one printable word.
  RLKV_CHECK(!actor_id.empty() && actor_id.size() <= 128 &&
                 std::all_of(actor_id.begin(), actor_id.end(), [](char c) { return c > ' ' && c < 0x7f; }),
             "--id: expected 1-128 printable ASCII characters without spaces, got '",
             one_line(actor_id, 140, OneLine::kEscapeBytes), "'");

  auto local = local_collectives();
  TrainSetup setup = make_train_setup(cfg, *local, /*check_prompts=*/false);
  ActorRoleOptions o = setup.actor;
  o.id.run_id.clear();  // join whatever run publishes on the endpoint
  o.actor_id = actor_id;
  o.sync = false;  // elastic actors never wait for a version
  o.elastic = true;
  o.policy_timeout_s = cfg.train.step_timeout;  // the learner's own limit on a silent step
  if (args.vm.count("halt-after-groups")) o.halt_after_groups = args.vm["halt-after-groups"].as<int64_t>();
  if (args.vm.count("halt-marker")) o.halt_marker = args.vm["halt-marker"].as<std::string>();
  const Model model = Model::load(cfg.model.path, parse_dtype(cfg.model.dtype), resolve_device(cfg));
  const Tokenizer tok = Tokenizer::from_file(cfg.model.path + "/tokenizer.json");
  Context ctx;
  RunEndpoints ep;
  ep.policy = endpoint;  // the rollout endpoint arrives with the first policy message
  ep.key = key;
  log_info("actor " + actor_id + " connecting to " + endpoint);
  if (!key)
    log_info("actor " + actor_id +
             ": no run key; a run that authenticates its frames (bound beyond loopback, OUTPUT_DIR/run.key) "
             "admits it only with --key-file");
  const ActorRoleStats st = run_actor_role(ctx, ep, model, tok, setup.problems, o);
  // Stopped by SIGINT / SIGTERM rather than by the run's stop policy: exit 1, as a stopped training.
  const bool interrupted = run_stop_flag().load();
  log_info("actor " + actor_id + (interrupted ? " stopped by a signal: " : " done: ") + std::to_string(st.groups) +
           " groups, " + std::to_string(st.tokens) + " tokens");
  return interrupted ? 1 : 0;
}

}  // namespace rlkv
