// Training end to end through the rlkv binary on a tiny toy model (made by `rlkv toy train` for
// a few steps): sync determinism, resume equivalence, checkpoint fallback, elastic actors killed
// mid-run, and the same run under mpirun. Behaviour only; speed is measured by the benchmarks.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "comm/frame_auth.h"
#include "comm/transport.h"
#include "core/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using rlkv_test::sh;
using rlkv_test::TempDir;

namespace {

// A tiny toy model and 64 problems, made once per test binary run.
std::string fixture_dir() {
  static TempDir dir;
  static bool made = false;
  if (!made) {
    const std::string rlkv = RLKV_BINARY;
    REQUIRE(sh(rlkv + " toy train --output " + (dir / "model") +
               " --steps 2 --layers 2 --hidden 32 --heads 4 --kv-heads 2 --head-dim 8 --intermediate 32"
               " --eval-every 0 --k-min 3 --k-max 4 2>/dev/null") == 0);
    REQUIRE(sh(rlkv + " toy data --n 64 --seed 3 --k-min 3 --k-max 4 --output " + (dir / "data.jsonl") +
               " 2>/dev/null") == 0);
    made = true;
  }
  return dir.path.string();
}

std::string write_config(const TempDir& d, const std::string& extra = "") {
  const std::string f = fixture_dir();
  const std::string path = d / "run.ini";
  std::ofstream(path) << "[model]\npath = " << f << "/model\n[data]\npath = " << f
                      << "/data.jsonl\n[cache]\nsink = 2\nwindow = 4\n[rollout]\nmax_new_tokens = 24\n"
                         "temperature = 1.0\ngroup_size = 4\nprompts_per_step = 4\n[train]\nsteps = 6\nseed = 5\n"
                         "checkpoint_every = 3\nkeep_checkpoints = 0\nstep_timeout = 60\n[reward]\ntask = toy\n"
                         "[policy]\nlr = 0.05\ntarget_sparsity = 0.5\n"
                      << extra;
  return path;
}

std::string train(const std::string& config, const std::string& out, const std::string& extra = "") {
  return std::string(RLKV_BINARY) + " train --config " + config + " --train.output_dir=" + out + " " + extra + " >" +
         out + ".log 2>&1";
}

std::vector<float> history_logits(const std::string& ckpt) { return rlkv::read_checkpoint(ckpt).history.logits; }

// A well-formed rollout group for the fixture's shape (2 layers x 2 KV heads), every rollout correct.
rlkv::RolloutGroupMsg forged_group(const std::string& run_id, int64_t prompt_index, int64_t version) {
  rlkv::RolloutGroupMsg g;
  g.run_id = run_id;
  g.actor_id = "forger";
  g.prompt_id = "p" + std::to_string(prompt_index);
  g.prompt_index = prompt_index;
  g.policy_version = version;
  g.answer = "1";
  g.ref_len = 8;
  g.num_layers = 2;
  g.num_kv_heads = 2;
  g.behaviour_keep_prob.assign(4, 0.5f);
  for (int r = 0; r < 4; ++r) {
    rlkv::Rollout ro;
    ro.mask.assign(4, 0);
    ro.tokens.assign(8, 5);
    ro.length = 8;
    ro.text = "1";
    ro.prompt_tokens = 4;
    g.rollouts.push_back(ro);
  }
  return g;
}

}  // namespace

TEST_CASE("two sync runs with the same seeds give bit-identical logits histories") {
  TempDir d;
  const std::string cfg = write_config(d);
  REQUIRE(sh(train(cfg, d / "a")) == 0);
  REQUIRE(sh(train(cfg, d / "b")) == 0);
  const auto a = history_logits(d / "a/ckpt-6.h5"), b = history_logits(d / "b/ckpt-6.h5");
  REQUIRE(a.size() == 6 * 4);
  REQUIRE(a == b);
  // The policy moved: a run that learns nothing would pass the equality trivially.
  REQUIRE(rlkv::read_checkpoint(d / "a/ckpt-6.h5").logits != rlkv::read_checkpoint(d / "a/ckpt-3.h5").logits);
  std::ifstream m(d / "a/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(m, line)) {
    auto j = nlohmann::json::parse(line);
    REQUIRE(j.contains("reward_mean"));
    REQUIRE(j.contains("sparsity_expected"));
    REQUIRE(j.contains("tokens_per_s"));
    ++lines;
  }
  REQUIRE(lines == 6);
}

TEST_CASE("a run stopped and resumed from its checkpoint matches the uninterrupted run") {
  TempDir d;
  // A target below the starting sparsity (0.1): the controller's weight is negative, never gated, and
  // holds its integral from the first step, so a resume that lost the controller's state differs.
  const std::string cfg = write_config(d), low = " --policy.target_sparsity=0.05";
  REQUIRE(sh(train(cfg, d / "full", low)) == 0);
  REQUIRE(sh(train(cfg, d / "part", "--train.steps=3" + low)) == 0);
  REQUIRE(sh(train(cfg, d / "part", "--resume auto" + low)) == 0);
  {
    std::ifstream full(d / "full/metrics.jsonl");
    std::string line;
    int weighted = 0;
    while (std::getline(full, line)) weighted += nlohmann::json::parse(line)["penalty_weight"].get<double>() != 0;
    REQUIRE(weighted == 6);
  }
  REQUIRE(rlkv_test::read_text(d / "part.log").find("resumed from") != std::string::npos);
  REQUIRE(history_logits(d / "part/ckpt-6.h5") == history_logits(d / "full/ckpt-6.h5"));
  std::ifstream m(d / "part/metrics.jsonl");
  int lines = 0;
  std::string line;
  while (std::getline(m, line)) ++lines;
  REQUIRE(lines == 6);  // resumed metrics continue, without duplicated steps
}

TEST_CASE("a corrupted newest checkpoint is refused and resume falls back to the previous one") {
  TempDir d;
  const std::string cfg = write_config(d);
  REQUIRE(sh(train(cfg, d / "run", "--train.steps=6")) == 0);
  {  // flip a byte in the middle of the newest checkpoint
    std::fstream f(d / "run/ckpt-6.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2000);
    f.put('\x5a');
  }
  REQUIRE_THROWS_AS(rlkv::read_checkpoint(d / "run/ckpt-6.h5"), rlkv::UserError);
  REQUIRE(sh(train(cfg, d / "run", "--resume auto --train.steps=6")) == 0);
  const std::string log = rlkv_test::read_text(d / "run.log");
  CHECK(log.find("skipping a damaged checkpoint") != std::string::npos);
  CHECK(log.find("resumed from") != std::string::npos);
  CHECK(log.find("ckpt-3.h5") != std::string::npos);
  // metrics.jsonl held steps 1-6 when the run resumed at step 3: lines 4-6 were cut and written again,
  // so each step is there once, in order.
  {
    std::ifstream m(d / "run/metrics.jsonl");
    std::vector<int64_t> steps;
    for (std::string line; std::getline(m, line);) steps.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
    CHECK(steps == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
  }
  // An explicit damaged checkpoint is a one-line error, exit 2.
  std::ofstream(d / "bad.h5") << "not a checkpoint";
  REQUIRE(sh(train(cfg, d / "run2", "--resume " + (d / "bad.h5"))) == 2);
  // Only damaged checkpoints left: --resume auto refuses instead of starting over, which would
  // replace the earlier run's metrics and then its checkpoints.
  int damaged = 0;
  for (const auto& e : fs::directory_iterator(d / "run"))
    if (e.path().extension() == ".h5") {
      std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(2000);
      f.put('\x5a');
      ++damaged;
    }
  REQUIRE(damaged >= 2);
  const std::string metrics = rlkv_test::read_text(d / "run/metrics.jsonl");
  const rlkv_test::Run all_bad =
      rlkv_test::run_rlkv("train --config " + cfg + " --train.output_dir=" + (d / "run") + " --resume auto");
  CHECK(all_bad.status == 2);
  CHECK_THAT(all_bad.err, Catch::Matchers::Contains("every checkpoint in") &&
                              Catch::Matchers::Contains("is damaged (" + std::to_string(damaged)));
  CHECK(rlkv_test::read_text(d / "run/metrics.jsonl") == metrics);
}

TEST_CASE("a checkpoint that cannot be written fails the run with one line and exit 2, not a crash at exit") {
  // The process may write 4 KB per file (ulimit -f; SIGXFSZ ignored, so a write past it fails with
  // EFBIG as on a full disk): the metrics fit, the checkpoint does not. HDF5 keeps the file whose
  // close failed on its list, and its clean-up at exit used to crash on it (SIGSEGV, exit 139).
  TempDir d;
  const std::string cfg = write_config(d);
  const std::string cmd = "trap '' XFSZ; ulimit -f 4; exec " + std::string(RLKV_BINARY) + " train --config " + cfg +
                          " --train.output_dir=" + (d / "run") + " --train.steps=1 --train.checkpoint_every=1";
  // Through a pipe: the limit would cut a log file too.
  sh("{ bash -c " + rlkv_test::shell_quote(cmd) + "; echo $? > " + (d / "status") + "; } 2>&1 | cat > " + (d / "log"));
  const std::string log = rlkv_test::read_text(d / "log");
  INFO(log);
  CHECK(rlkv_test::read_text(d / "status") == "2\n");
  CHECK_THAT(log, Catch::Matchers::Contains("cannot write checkpoint") && Catch::Matchers::Contains("File too large"));
  CHECK_THAT(log, !Catch::Matchers::Contains("HDF5") && !Catch::Matchers::Contains("errno ="));
  // Timestamped log lines, then the one error line and nothing after it.
  std::istringstream lines(log);
  std::string line;
  int untimed = 0;
  while (std::getline(lines, line)) untimed += line.empty() || line[0] != '[';
  CHECK(untimed == 1);
  CHECK(rlkv_test::names_in(d / "run") == std::vector<std::string>{"endpoints.json", "metrics.jsonl"});
}

TEST_CASE("bad training configuration exits 2 naming the key") {
  TempDir d;
  const std::string cfg = write_config(d);
  REQUIRE(sh(train(cfg, d / "x", "--train.mode=sometimes")) == 2);
  CHECK(rlkv_test::read_text(d / "x.log").find("train.mode") != std::string::npos);
  REQUIRE(sh(train(cfg, d / "y", "--data.path=/nonexistent.jsonl")) == 2);
  CHECK(rlkv_test::read_text(d / "y.log").find("/nonexistent.jsonl") != std::string::npos);
}

TEST_CASE("an elastic actor that hears no learner fails with one line after train.step_timeout") {
  TempDir d;
  const std::string cfg = write_config(d);
  // Port 1 of the loopback: nothing listens there, and ZeroMQ retries a connection silently (a hang
  // before: the test's ctest timeout would end it).
  const rlkv_test::Run r =
      rlkv_test::run_rlkv("actor --config " + cfg + " --connect tcp://127.0.0.1:1 --train.step_timeout=2");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Matchers::Contains("no policy received in 2 s"));
  CHECK(rlkv_test::run_rlkv("actor --config " + cfg + " --connect tcp://127.0.0.1:99999").status == 2);
  const rlkv_test::Run v6 = rlkv_test::run_rlkv("actor --config " + cfg + " --connect tcp://::1:5000");
  CHECK(v6.status == 2);
  CHECK_THAT(v6.err, Catch::Matchers::Contains("an IPv6 address in brackets"));
  // The bracketed form passes the checks and waits for a policy like any other endpoint.
  const rlkv_test::Run bracketed =
      rlkv_test::run_rlkv("actor --config " + cfg + " --connect 'tcp://[::1]:1' --train.step_timeout=1");
  CHECK(bracketed.status == 2);
  CHECK_THAT(bracketed.err, Catch::Matchers::Contains("no policy received in 1 s"));
  // The id goes into every log line: one printable word.
  const rlkv_test::Run id =
      rlkv_test::run_rlkv("actor --config " + cfg + " --connect tcp://127.0.0.1:1 --id 'two words'");
  CHECK(id.status == 2);
  CHECK_THAT(id.err, Catch::Matchers::Contains("--id: expected 1-128 printable ASCII characters"));
  // A host that does not resolve (.invalid never does, RFC 6761) fails at once, not after the timeout.
  const rlkv_test::Run unknown = rlkv_test::run_rlkv(
      "actor --config " + cfg + " --connect tcp://no-such-host.invalid:5000 --train.step_timeout=5");
  CHECK(unknown.status == 2);
  CHECK_THAT(unknown.err, Catch::Matchers::Contains("host 'no-such-host.invalid' does not resolve"));
  // Stopped by a signal while it waits: exit 1, as a stopped training (it was 0, "done").
  // The signal goes once the actor says it is connecting (its handler is installed before that line);
  // the loop's 60 s cap only bounds a broken run.
  const int stopped = sh("(" + std::string(RLKV_BINARY) + " actor --config " + cfg +
                         " --connect tcp://127.0.0.1:1 --train.step_timeout=60 >" + (d / "sig.log") +
                         " 2>&1 & pid=$!; for i in $(seq 600); do grep -q 'connecting to' " + (d / "sig.log") +
                         " && break; sleep 0.1; done; kill -INT $pid; wait $pid)");
  INFO(rlkv_test::read_text(d / "sig.log"));
  CHECK(stopped == 1);
  CHECK_THAT(rlkv_test::read_text(d / "sig.log"), Catch::Matchers::Contains("stopped by a signal"));
}

TEST_CASE("async training goes on when an elastic actor is killed with SIGKILL") {
  TempDir d;
  const std::string cfg = write_config(d, "");
  const std::string out = d / "async";
  const std::string rlkv = RLKV_BINARY;
  pid_t trainer = fork();
  if (trainer == 0) {
    // Bound beyond loopback: the run makes a key (OUTPUT_DIR/run.key) and every frame carries its tag.
    execl("/bin/sh", "sh", "-c",
          ("exec " + train(cfg, out,
                           "--train.mode=async --train.steps=1000000 --train.max_staleness=4 "
                           "--train.actor_timeout=2 --train.checkpoint_every=50 --placement.bind_address=0.0.0.0"))
              .c_str(),
          (char*)nullptr);
    _exit(127);
  }
  // Every wait below is for an event, with a deadline far beyond its cost, never a fixed sleep.
  const auto wait_for = [](const std::function<bool()>& ready, const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    while (!ready()) {
      INFO("waiting for " << what);
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  wait_for([&] { return fs::exists(out + "/endpoints.json"); }, "the endpoints file");
  const std::string policy = nlohmann::json::parse(rlkv_test::read_text(out + "/endpoints.json"))["policy"];
  // The elastic actor delivers its first batch (4 groups: prompts_per_step), then claims the next
  // and halts before delivering it (its fault-injection option), so it dies holding claimed groups
  // whatever the machine's speed.
  const std::string key = out + "/run.key";
  struct stat key_st {};
  REQUIRE(::stat(key.c_str(), &key_st) == 0);
  REQUIRE((key_st.st_mode & 0777) == 0600);
  // An actor without the key joins the endpoint too: it decodes no policy, so it delivers nothing.
  pid_t stranger = fork();
  if (stranger == 0) {
    execl(rlkv.c_str(), rlkv.c_str(), "actor", "--config", cfg.c_str(), "--connect", policy.c_str(), "--id",
          "elastic-nokey", (char*)nullptr);
    _exit(127);
  }
  const std::string marker = d / "halted";
  pid_t actor = fork();
  if (actor == 0) {
    execl(rlkv.c_str(), rlkv.c_str(), "actor", "--config", cfg.c_str(), "--connect", policy.c_str(), "--key-file",
          key.c_str(), "--id", "elastic-test", "--halt-after-groups", "1", "--halt-marker", marker.c_str(),
          (char*)nullptr);
    _exit(127);
  }
  wait_for([&] { return fs::exists(marker); }, "the actor to halt with a claimed batch");
  kill(actor, SIGKILL);
  int st = 0;
  waitpid(actor, &st, 0);
  REQUIRE(WIFSIGNALED(st));
  // The learner presumes the silent actor dead (train.actor_timeout) and counts its claims as lost,
  // while training goes on: a later step's metrics say so.
  wait_for(
      [&] {
        std::ifstream m(out + "/metrics.jsonl");
        std::string line;
        int64_t lost = 0;
        while (std::getline(m, line))
          if (!line.empty()) lost = std::max<int64_t>(lost, nlohmann::json::parse(line)["groups_lost"].get<int64_t>());
        return lost > 0;
      },
      "a step with groups_lost > 0");
  REQUIRE(waitpid(trainer, &st, WNOHANG) == 0);  // still running
  kill(stranger, SIGKILL);
  waitpid(stranger, &st, 0);
  kill(trainer, SIGTERM);  // a clean stop: final checkpoint, exit 1
  waitpid(trainer, &st, 0);
  REQUIRE(WIFEXITED(st));
  const std::string log = rlkv_test::read_text(out + ".log");
  INFO(log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
  CHECK(WEXITSTATUS(st) == 1);
  CHECK(log.find("interrupted") != std::string::npos);
  // The elastic actor delivered its first batch before it died, and the batch it had claimed but
  // not delivered is counted as lost.
  const size_t at = log.find("elastic-test=");
  REQUIRE(at != std::string::npos);
  CHECK(std::stoll(log.substr(at + 13)) == 4);
  const size_t lost = log.find("groups lost with actors presumed dead: ");
  REQUIRE(lost != std::string::npos);
  CHECK(std::stoll(log.substr(lost + 39)) > 0);
  CHECK(log.find("elastic-nokey=") == std::string::npos);  // the keyless actor delivered nothing
  CHECK(log.find("frames authenticated with a key made for this run") != std::string::npos);
  CHECK(log.find(rlkv::read_key_file(key).hex()) == std::string::npos);  // the secret is never logged
  REQUIRE(rlkv::latest_checkpoint(out).has_value());
}

// The learner killed without its stop policy: an elastic actor hears no policy from then on (and its
// groups have no taker), and fails with one line after train.step_timeout, not generating or
// retrying forever.
TEST_CASE("an elastic actor whose learner dies fails with one line after train.step_timeout") {
  TempDir d;
  const std::string cfg = write_config(d, "");
  const std::string out = d / "run";
  const std::string rlkv = RLKV_BINARY;
  pid_t trainer = fork();
  if (trainer == 0) {
    execl("/bin/sh", "sh", "-c",
          ("exec " + train(cfg, out, "--train.mode=async --train.steps=1000000 --train.max_staleness=4")).c_str(),
          (char*)nullptr);
    _exit(127);
  }
  const auto wait_for = [](const std::function<bool()>& ready, const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    while (!ready()) {
      INFO("waiting for " << what);
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  wait_for([&] { return fs::exists(out + "/endpoints.json"); }, "the endpoints file");
  const std::string policy = nlohmann::json::parse(rlkv_test::read_text(out + "/endpoints.json"))["policy"];
  const std::string actor_log = d / "actor.log";
  pid_t actor = fork();
  if (actor == 0) {
    execl("/bin/sh", "sh", "-c",
          ("exec " + rlkv + " actor --config " + cfg + " --connect " + policy +
           " --id elastic-orphan --train.step_timeout=3 >" + actor_log + " 2>&1")
              .c_str(),
          (char*)nullptr);
    _exit(127);
  }
  // The elastic actor has a policy once the learner books it: two live actors (the run's own thread
  // and it) in a step's metrics.
  wait_for(
      [&] {
        std::ifstream m(out + "/metrics.jsonl");
        for (std::string line; std::getline(m, line);)
          if (!line.empty() && nlohmann::json::parse(line)["actors_live"].get<int64_t>() >= 2) return true;
        return false;
      },
      "the elastic actor's claims at the learner");
  kill(trainer, SIGKILL);
  int st = 0;
  waitpid(trainer, &st, 0);
  wait_for([&] { return waitpid(actor, &st, WNOHANG) == actor; }, "the orphaned actor to give up");
  INFO(rlkv_test::read_text(actor_log));
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 2);
  CHECK_THAT(rlkv_test::read_text(actor_log), Catch::Matchers::Contains("no policy heard for 3 s since version"));
}

TEST_CASE("a keyed run refuses a stranger's forged groups and trains bit-identically to a run without it") {
  TempDir d;
  const std::string cfg = write_config(d);
  const std::string key = d / "run.key";
  rlkv::write_key_file(key, rlkv::RunKey::generate());
  const std::string keyed = "--placement.key_file=" + key + " --train.run_id=auth-run";
  REQUIRE(sh(train(cfg, d / "plain", "--train.run_id=auth-run")) == 0);
  REQUIRE(sh(train(cfg, d / "alone", keyed)) == 0);
  REQUIRE(history_logits(d / "alone/ckpt-6.h5") == history_logits(d / "plain/ckpt-6.h5"));  // tags change nothing
  // The keyed run again, while a stranger who read the run id off the wire pushes forged groups for
  // every prompt and version to the rollout endpoint: bare, and tagged with another key.
  const std::string out = d / "attacked";
  pid_t trainer = fork();
  if (trainer == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + train(cfg, out, keyed)).c_str(), (char*)nullptr);
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (!fs::exists(out + "/endpoints.json")) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string rollouts =
      nlohmann::json::parse(rlkv_test::read_text(out + "/endpoints.json"))["rollouts"][0].get<std::string>();
  rlkv::Context ctx;
  rlkv::Pusher bare(ctx), wrong(ctx);
  wrong.set_key(std::make_shared<const rlkv::RunKey>(rlkv::RunKey::generate()));
  bare.connect(rollouts);
  wrong.connect(rollouts);
  int st = 0;
  int64_t sent = 0;
  for (int64_t i = 0; waitpid(trainer, &st, WNOHANG) == 0; ++i) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    rlkv::RolloutGroupMsg g = forged_group("auth-run", i % 64, i % 7);
    const std::string frame = rlkv::encode(g);
    sent += bare.send(frame, std::chrono::milliseconds(0)) + wrong.send(frame, std::chrono::milliseconds(0));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(WIFEXITED(st));
  REQUIRE(WEXITSTATUS(st) == 0);
  REQUIRE(sent > 0);
  const std::string log = rlkv_test::read_text(out + ".log");
  INFO(log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
  CHECK(log.find("refused a frame from 127.0.0.1") != std::string::npos);
  // The tally at the end: every forged frame that reached the socket, none of them a replay.
  const size_t tally = log.find("reward worker rollouts: refused ");
  REQUIRE(tally != std::string::npos);
  CHECK(std::stoll(log.substr(tally + 32)) > 0);
  CHECK(log.find("frames at the socket (0 replays of this run's frames", tally) != std::string::npos);
  REQUIRE(history_logits(out + "/ckpt-6.h5") == history_logits(d / "alone/ckpt-6.h5"));
}

TEST_CASE("a run bound beyond loopback without a key needs placement.insecure, and warns") {
  TempDir d;
  const std::string cfg = write_config(d);
  REQUIRE(
      sh(train(
          cfg, d / "open",
          "--train.steps=1 --train.checkpoint_every=1 --placement.bind_address=0.0.0.0 --placement.insecure=true")) ==
      0);
  CHECK(!fs::exists(d / "open/run.key"));
  // Bound on every interface, advertised by this host's name: 0.0.0.0 would send a peer on another
  // node to itself.
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  const std::string endpoints = rlkv_test::read_text(d / "open/endpoints.json");
  CHECK(endpoints.find("0.0.0.0") == std::string::npos);
  CHECK(endpoints.find("tcp://" + std::string(host) + ":") != std::string::npos);
  CHECK(
      rlkv_test::read_text(d / "open.log").find("placement.insecure = true: frames on 0.0.0.0 are not authenticated") !=
      std::string::npos);
  // A key file others may read is refused at start, naming it.
  const std::string loose = d / "loose.key";
  rlkv::write_key_file(loose, rlkv::RunKey::generate());
  REQUIRE(::chmod(loose.c_str(), 0640) == 0);
  CHECK(sh(train(cfg, d / "loose", "--train.steps=1 --placement.key_file=" + loose)) != 0);
  CHECK(rlkv_test::read_text(d / "loose.log").find("chmod 600") != std::string::npos);
}

TEST_CASE("the same sync run under mpirun -np 4 matches the single-process run") {
  // launch/install.sh installs mpirun: without it the feature is unchecked, which is a failure.
  if (!rlkv_test::have_mpirun()) FAIL("mpirun not found (launch/install.sh installs openmpi-bin)");
  TempDir d;
  const std::string cfg = write_config(d);
  REQUIRE(sh(train(cfg, d / "single", "--placement.actors=2")) == 0);
  const std::string mpirun = std::string(RLKV_SOURCE_DIR) + "/launch/mpirun.sh -np 4 ";
  REQUIRE(sh(mpirun + train(cfg, d / "mpi", "")) == 0);
  // -np 4: one learner, two actor ranks (one thread each), one reward worker: the same two actors.
  REQUIRE(history_logits(d / "mpi/ckpt-6.h5") == history_logits(d / "single/ckpt-6.h5"));
  // Two learner ranks: each takes every second group, their partial gradients (and counts) are
  // summed by an all-reduce, and both apply the same update. The sums' order differs from one
  // learner's, so the histories agree to rounding, not bit for bit.
  REQUIRE(sh(mpirun.substr(0, mpirun.size() - 2) + "5 " + train(cfg, d / "two", "--placement.learners=2")) == 0);
  const std::vector<float> one = history_logits(d / "single/ckpt-6.h5"), two = history_logits(d / "two/ckpt-6.h5");
  REQUIRE(one.size() == two.size());
  double diff = 0, moved = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    diff = std::max(diff, double(std::abs(one[i] - two[i])));
    moved = std::max(moved, double(std::abs(one[i] - one[i % 4])));  // the policy moved from its first logits
  }
  CHECK(diff < 1e-4);
  CHECK(moved > 0.01);
  // Batch advantages: the step's reward moments are all-reduced over the learner ranks first.
  const std::string batch = " --policy.adv_norm=batch";
  REQUIRE(sh(train(cfg, d / "single-batch", "--placement.actors=2" + batch)) == 0);
  REQUIRE(sh(mpirun.substr(0, mpirun.size() - 2) + "5 " +
             train(cfg, d / "two-batch", "--placement.learners=2" + batch)) == 0);
  const std::vector<float> b1 = history_logits(d / "single-batch/ckpt-6.h5"),
                           b2 = history_logits(d / "two-batch/ckpt-6.h5");
  REQUIRE(b1.size() == b2.size());
  double bdiff = 0, bapart = 0;
  for (size_t i = 0; i < b1.size(); ++i) {
    bdiff = std::max(bdiff, double(std::abs(b1[i] - b2[i])));
    bapart = std::max(bapart, double(std::abs(b1[i] - one[i])));  // batch and group advantages differ
  }
  CHECK(bdiff < 1e-4);
  CHECK(bapart > 1e-3);
}

// Async actors generate without waiting, so the run's end finds them mid-batch: the reward workers
// have gone on the stop policy, and an actor used to retry its next group's send forever (the other
// ranks waiting in MPI_Finalize). Several runs, as the end's timing varies.
TEST_CASE("an async run under mpirun ends when its steps are done, its actors mid-batch") {
  // launch/install.sh installs mpirun: without it the feature is unchecked, which is a failure.
  if (!rlkv_test::have_mpirun()) FAIL("mpirun not found (launch/install.sh installs openmpi-bin)");
  // The toy model: its batches take long enough that the stop always finds the actor generating
  // (the fixture model's are over in a millisecond).
  TempDir d;
  const std::string src = RLKV_SOURCE_DIR;
  const std::string mpirun = "timeout 90 " + src + "/launch/mpirun.sh -np 3 ";
  for (int i = 0; i < 2; ++i) {
    const std::string out = d / ("async" + std::to_string(i));
    const int status = sh(mpirun + std::string(RLKV_BINARY) + " train --config " + src + "/configs/toy.ini " +
                          "--model.path=" + src + "/models/toy-reasoner --data.path=" + src +
                          "/data/toy-train.jsonl --train.mode=async --train.steps=6 --train.checkpoint_every=3 " +
                          "--train.output_dir=" + out + " >" + out + ".log 2>&1");
    INFO(rlkv_test::read_text(out + ".log"));
    CHECK(status != 124);  // ended by the timeout: the hang
    REQUIRE(status == 0);
    CHECK(fs::exists(out + "/ckpt-6.h5"));
  }
}

// A prompt longer than the model's context is found before the first step, naming its line (not at
// the step that first samples it, which may be hours into a run).
TEST_CASE("a training set with a prompt longer than the model's context is refused before any step") {
  TempDir d;
  std::string terms;
  for (int i = 0; i < 3000; ++i) terms += "1+";
  rlkv_test::write_text(d / "long.jsonl", rlkv_test::read_text(fixture_dir() + "/data.jsonl") + "{\"prompt\": \"" +
                                              terms + "1\", \"answer\": \"3001\"}\n");
  const std::string cfg = write_config(d);
  CHECK(sh(train(cfg, d / "run", "--data.path=" + (d / "long.jsonl"))) == 2);
  const std::string log = rlkv_test::read_text(d / "run.log");
  INFO(log);
  CHECK_THAT(log, Catch::Matchers::Contains("long.jsonl:65: prompt of 6002 tokens, longer than the model's"));
  CHECK_FALSE(fs::exists(d / "run/metrics.jsonl"));
}

// An error on one rank (here an actor's: a model whose weights are NaN is refused at its first
// prompt) ends the whole job with that rank's one line: the learner would otherwise wait for its
// groups until train.step_timeout (set far beyond the test's time limit), and the other ranks in
// MPI_Finalize.
TEST_CASE("under mpirun an error on an actor rank ends every rank with its message, not a hang") {
  // launch/install.sh installs mpirun: without it the feature is unchecked, which is a failure.
  if (!rlkv_test::have_mpirun()) FAIL("mpirun not found (launch/install.sh installs openmpi-bin)");
  TempDir d;
  fs::copy(fixture_dir() + "/model", d / "nan-model", fs::copy_options::recursive);
  {  // every weight byte 0xFF: every float32 a NaN (the header, 8 bytes of length then JSON, is kept)
    const std::string weights = d / "nan-model/model.safetensors";
    std::string bytes = rlkv_test::read_text(weights);
    uint64_t header = 0;
    std::memcpy(&header, bytes.data(), 8);
    REQUIRE(8 + header < bytes.size());
    std::fill(bytes.begin() + long(8 + header), bytes.end(), '\xff');
    rlkv_test::write_text(weights, bytes);
  }
  const std::string cfg = write_config(d);
  const std::string mpirun = "timeout 120 " + std::string(RLKV_SOURCE_DIR) + "/launch/mpirun.sh -np 4 ";
  const int status =
      sh(mpirun + train(cfg, d / "mpi", "--model.path=" + (d / "nan-model") + " --train.step_timeout=600"));
  const std::string log = rlkv_test::read_text(d / "mpi.log");
  INFO(log);
  CHECK(status != 0);
  CHECK(status != 124);  // ended by the timeout: the hang
  CHECK_THAT(log, Catch::Matchers::Contains("rlkv train (rank ") &&
                      Catch::Matchers::Contains("the model computes NaN or Inf logits for a prompt"));
}

TEST_CASE("a tensor-parallel actor group trains like one whole-model actor") {
  // launch/install.sh installs mpirun: without it the feature is unchecked, which is a failure.
  if (!rlkv_test::have_mpirun()) FAIL("mpirun not found (launch/install.sh installs openmpi-bin)");
  TempDir d;
  const std::string cfg = write_config(d);
  REQUIRE(sh(train(cfg, d / "single", "--placement.actors=1")) == 0);
  const std::string mpirun = std::string(RLKV_SOURCE_DIR) + "/launch/mpirun.sh -np 4 ";
  // -np 4, tensor_parallel 2: one learner, one actor group of ranks 1-2 (each holding one of the
  // two KV heads), one reward worker. The group's logits differ from the whole model's only by the
  // order of the row-parallel sums (~1e-7), so the sampled rollouts and the history are the same.
  REQUIRE(sh(mpirun + train(cfg, d / "tp", "--actor.tensor_parallel=2 --model.load=broadcast")) == 0);
  CHECK(history_logits(d / "tp/ckpt-6.h5") == history_logits(d / "single/ckpt-6.h5"));
  const std::string log = rlkv_test::read_text(d / "tp.log");
  CHECK(log.find("rank 0/2: read") != std::string::npos);  // the group's reader
  CHECK(log.find("rank 1/2: read 0.00 MiB of weights from storage") != std::string::npos);
  // Three actor ranks cannot form groups of two; tensor parallelism needs mpirun.
  CHECK(sh(std::string(RLKV_SOURCE_DIR) + "/launch/mpirun.sh -np 5 " +
           train(cfg, d / "odd", "--actor.tensor_parallel=2")) == 2);
  CHECK(rlkv_test::read_text(d / "odd.log")
            .find("a node has 3 actor rank(s), which cannot form groups of actor.tensor_parallel = 2") !=
        std::string::npos);
  CHECK(sh(train(cfg, d / "alone", "--actor.tensor_parallel=2")) == 2);
  // The multi-node recipe (learner and reward worker on a head host, one group per GPU host) on
  // this one host: mpirun's MPMD form places the same ranks.
  CHECK(sh(std::string(RLKV_SOURCE_DIR) +
           "/launch/mpirun_tp.sh --head localhost --nodes localhost "
           "--gpus-per-node 2 -- " +
           train(cfg, d / "recipe", "")) == 0);
  CHECK(history_logits(d / "recipe/ckpt-6.h5") == history_logits(d / "single/ckpt-6.h5"));
  CHECK(rlkv_test::read_text(d / "alone.log").find("needs mpirun") != std::string::npos);
}

TEST_CASE("rlkv inspect and rlkv export on a training checkpoint, bad input exits 2") {
  TempDir d;
  const std::string cfg = write_config(d);
  REQUIRE(sh(train(cfg, d / "run", "--train.steps=3")) == 0);
  const std::string rlkv = RLKV_BINARY;
  // A fresh run into the same directory would overwrite its checkpoints: refused, the run is kept.
  const auto before = std::filesystem::last_write_time(d / "run/ckpt-3.h5");
  const rlkv_test::Run again = rlkv_test::run_rlkv("train --config " + cfg + " --train.output_dir=" + (d / "run"));
  CHECK(again.status == 2);
  CHECK_THAT(again.err,
             Catch::Matchers::Contains("holds an earlier run") && Catch::Matchers::Contains("--resume auto"));
  CHECK(std::filesystem::last_write_time(d / "run/ckpt-3.h5") == before);
  // Resuming a checkpoint kept elsewhere into it would splice two runs' metrics and prune its own
  // checkpoints; a fresh run into a directory whose only record is a metrics.jsonl (duo-train's)
  // would empty it. Both refused, the files kept.
  fs::create_directories(d / "other");
  fs::copy_file(d / "run/ckpt-3.h5", d / "other/ckpt-3.h5");
  const std::string metrics = rlkv_test::read_text(d / "run/metrics.jsonl");
  const rlkv_test::Run spliced = rlkv_test::run_rlkv("train --config " + cfg + " --train.output_dir=" + (d / "run") +
                                                     " --train.steps=4 --resume " + (d / "other/ckpt-3.h5"));
  CHECK(spliced.status == 2);
  CHECK_THAT(spliced.err, Catch::Matchers::Contains("holds an earlier run") &&
                              Catch::Matchers::Contains("resume into a new directory"));
  CHECK(rlkv_test::read_text(d / "run/metrics.jsonl") == metrics);
  fs::create_directories(d / "duo");
  rlkv_test::write_text(d / "duo/metrics.jsonl", "{\"step\": 1}\n");
  const rlkv_test::Run over = rlkv_test::run_rlkv("train --config " + cfg + " --train.output_dir=" + (d / "duo"));
  CHECK(over.status == 2);
  CHECK_THAT(over.err, Catch::Matchers::Contains("holds the metrics.jsonl of an earlier run or command") &&
                           !Catch::Matchers::Contains("--resume auto"));
  CHECK(rlkv_test::read_text(d / "duo/metrics.jsonl") == "{\"step\": 1}\n");
  // --resume auto finds no checkpoint there and would start over, emptying the other command's file.
  const rlkv_test::Run auto_over =
      rlkv_test::run_rlkv("train --config " + cfg + " --train.output_dir=" + (d / "duo") + " --resume auto");
  CHECK(auto_over.status == 2);
  CHECK_THAT(auto_over.err, Catch::Matchers::Contains("not a training run's"));
  CHECK(rlkv_test::read_text(d / "duo/metrics.jsonl") == "{\"step\": 1}\n");
  // A training run stopped before its first checkpoint left only its own metrics: it starts over.
  fs::create_directories(d / "early");
  rlkv_test::write_text(d / "early/metrics.jsonl", metrics.substr(0, metrics.find('\n') + 1));
  REQUIRE(sh(train(cfg, d / "early", "--train.steps=3 --resume auto")) == 0);
  CHECK(rlkv_test::read_text(d / "early.log").find("starting from scratch") != std::string::npos);
  const std::string fresh = rlkv_test::read_text(d / "early/metrics.jsonl");
  CHECK(std::count(fresh.begin(), fresh.end(), '\n') == 3);
  // Resuming one of the directory's own checkpoints by its path is allowed (here: nothing to train),
  // but not an older one: that rewind would cut the run's metrics back and leave its later
  // checkpoints for --resume auto to take.
  REQUIRE(sh(train(cfg, d / "run", "--train.steps=3 --resume " + (d / "run/ckpt-3.h5"))) == 0);
  fs::copy_file(d / "run/ckpt-3.h5", d / "run/ckpt-9.h5");  // a later checkpoint of the same run
  const std::string metrics_before = rlkv_test::read_text(d / "run/metrics.jsonl");
  const rlkv_test::Run rewind = rlkv_test::run_rlkv("train --config " + cfg + " --train.output_dir=" + (d / "run") +
                                                    " --train.steps=4 --resume " + (d / "run/ckpt-3.h5"));
  CHECK(rewind.status == 2);
  CHECK_THAT(rewind.err, Catch::Matchers::Contains("holds a later checkpoint (ckpt-9.h5)"));
  CHECK(rlkv_test::read_text(d / "run/metrics.jsonl") == metrics_before);
  fs::remove(d / "run/ckpt-9.h5");
  // Continuing it under other windows is allowed, with a warning (the mask was learned with S = 2, W = 4).
  REQUIRE(sh(train(cfg, d / "run", "--train.steps=3 --resume auto --cache.sink=3 --train.seed=9 --policy.lr=0.07")) ==
          0);
  CHECK_THAT(rlkv_test::read_text(d / "run.log"),
             Catch::Matchers::Contains("trained with S = 2, W = 4; this run uses S = 3, W = 4") &&
                 Catch::Matchers::Contains("prompt stream has seed=5; this run uses seed=9") &&
                 Catch::Matchers::Contains("trained with policy.lr = 0.05; this run uses 0.07") &&
                 Catch::Matchers::Contains("nothing to train"));
  const rlkv_test::Run ins = rlkv_test::run_rlkv("inspect --json " + (d / "run/ckpt-3.h5"));
  REQUIRE(ins.status == 0);
  auto j = nlohmann::json::parse(ins.out);
  REQUIRE(j["step"] == 3);
  REQUIRE(j["num_layers"] == 2);
  REQUIRE(j["num_kv_heads"] == 2);
  REQUIRE(j["keep_prob"].size() == 4);
  REQUIRE(j["top_heads"].size() == 4);
  REQUIRE(j["config"].get<std::string>().find("[model]") != std::string::npos);
  // Export from the checkpoint: the windows come from the checkpoint itself.
  REQUIRE(sh(rlkv + " export " + (d / "run/ckpt-3.h5") + " --format duo --output " + (d / "duo") + " 2>/dev/null") ==
          0);
  const auto duo_cfg = nlohmann::json::parse(rlkv_test::read_text(d / "duo/config.json"));
  const rlkv_test::Run other =
      rlkv_test::run_rlkv("export " + (d / "run/ckpt-3.h5") + " --format duo --sink 7 --output " + (d / "duo7"));
  CHECK(other.status == 0);
  CHECK_THAT(other.err, Catch::Matchers::Contains("--sink 7 replaces the S = 2 the source records"));
  REQUIRE(duo_cfg["sink_size"] == 2);
  REQUIRE(duo_cfg["recent_size"] == 4);
  REQUIRE(sh(rlkv + " export " + (d / "run/ckpt-3.h5") + " --format json --sparsity 0.5 --output " + (d / "m.json") +
             " 2>/dev/null") == 0);
  auto m = nlohmann::json::parse(rlkv_test::read_text(d / "m.json"));
  int full = 0;
  for (const auto& row : m["full_attention"])
    for (const auto& v : row) full += v.get<int>();
  REQUIRE(full == 2);  // half of the 4 heads kept
  // A hand edit of the binary mask changes nothing (masks come from the scores): named, not ignored.
  auto edited = m;
  for (auto& row : edited["full_attention"])
    for (auto& v : row) v = 1;
  rlkv_test::write_text(d / "edited.json", edited.dump());
  const rlkv_test::Run from_edited =
      rlkv_test::run_rlkv("export " + (d / "edited.json") + " --format json --output " + (d / "re.json"));
  CHECK(from_edited.status == 0);
  CHECK_THAT(from_edited.err, Catch::Matchers::Contains("'full_attention' is not the mask of its 'scores'"));
  const rlkv_test::Run clean =
      rlkv_test::run_rlkv("export " + (d / "m.json") + " --format json --output " + (d / "re.json"));
  CHECK(clean.status == 0);
  CHECK(clean.err.find("full_attention") == std::string::npos);
  // A mask used under other windows than it records is warned of (eval and generate; export above).
  const std::string gen = "generate --model " + fixture_dir() + "/model --prompt hi --max-new-tokens 2 --mask " +
                          (d / "run/ckpt-3.h5") + " --sparsity 0.5";
  CHECK_THAT(
      rlkv_test::run_rlkv(gen + " --sink 3 --window 4").err,
      Catch::Matchers::Contains("records S = 2, W = 4") && Catch::Matchers::Contains("this run uses S = 3, W = 4"));
  const rlkv_test::Run same = rlkv_test::run_rlkv(gen + " --sink 2 --window 4");
  CHECK(same.status == 0);
  CHECK(same.err.find("records S =") == std::string::npos);
  // inspect ranks tied heads as the masks do: the later head first.
  REQUIRE(sh(train(cfg, d / "flat", "--train.steps=1 --policy.lr=1e-12")) == 0);
  const auto flat = nlohmann::json::parse(rlkv_test::run_rlkv("inspect --json " + (d / "flat/ckpt-1.h5")).out);
  REQUIRE(flat["top_heads"].size() == 4);
  CHECK(flat["top_heads"][0]["layer"] == 1);
  CHECK(flat["top_heads"][0]["kv_head"] == 1);
  CHECK(flat["top_heads"][3]["layer"] == 0);
  CHECK(flat["top_heads"][3]["kv_head"] == 0);
  // Bad input: one line, exit 2.
  auto err_lines = [&](const std::string& args) {
    const rlkv_test::Run r = rlkv_test::run_rlkv(args);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    return r.status;
  };
  std::ofstream(d / "foreign.h5") << "HDF5? no";
  CHECK(err_lines("inspect " + (d / "foreign.h5")) == 2);
  CHECK(err_lines("inspect " + (d / "missing.h5")) == 2);
  // HDF5 metadata damaged behind a valid checksum (the root group's object header, resealed) reaches
  // HDF5's own checks: still one line, no dump of HDF5's identifiers at exit.
  std::string forged = rlkv_test::read_text(d / "run/ckpt-3.h5");
  const size_t root_header = forged.find("OHDR", 512);
  REQUIRE(root_header != std::string::npos);
  forged[root_header + 12] = char(forged[root_header + 12] ^ 0x10);
  rlkv_test::write_text(d / "forged.h5", forged);
  rlkv::reseal_checkpoint(d / "forged.h5");
  CHECK(err_lines("inspect " + (d / "forged.h5")) == 2);
  CHECK(err_lines("export " + (d / "forged.h5") + " --format duo --output " + (d / "duo-forged")) == 2);
  CHECK(err_lines("export " + (d / "run/ckpt-3.h5") + " --format onnx --output " + (d / "x")) == 2);
  CHECK(err_lines("export " + (d / "nothing") + " --format json --output " + (d / "x.json")) == 2);
  std::ofstream(d / "ragged.tsv") << "0.1\t0.2\n0.3\n";
  CHECK(err_lines("export " + (d / "ragged.tsv") + " --format json --output " + (d / "x.json")) == 2);
  CHECK(err_lines("export " + (d / "duo/full_attention_heads.tsv") + " --format layers --output " + (d / "l.json")) ==
        0);
  // Exporting again into the pattern directory is fine; into a model's directory, whose config.json
  // it would replace, it is refused and the model's config stays.
  CHECK(sh(rlkv + " export " + (d / "run/ckpt-3.h5") + " --format duo --output " + (d / "duo") + " 2>/dev/null") == 0);
  fs::create_directories(d / "model");
  rlkv_test::write_text(d / "model/config.json", "{\"model_type\": \"llama\"}");
  CHECK(err_lines("export " + (d / "run/ckpt-3.h5") + " --format duo --output " + (d / "model")) == 2);
  CHECK(rlkv_test::read_text(d / "model/config.json") == "{\"model_type\": \"llama\"}");
  // An export over its own source (the checkpoint, a mask file) is refused before anything is written.
  const auto ckpt_size = fs::file_size(d / "run/ckpt-3.h5");
  const rlkv_test::Run self =
      rlkv_test::run_rlkv("export " + (d / "run/ckpt-3.h5") + " --format json --output " + (d / "run/ckpt-3.h5"));
  CHECK(self.status == 2);
  CHECK_THAT(self.err, Catch::Matchers::Contains("is the input file"));
  CHECK(fs::file_size(d / "run/ckpt-3.h5") == ckpt_size);
  const std::string mask = rlkv_test::read_text(d / "m.json");
  CHECK(err_lines("export " + (d / "m.json") + " --format layers --output " + (d / "m.json")) == 2);
  CHECK(rlkv_test::read_text(d / "m.json") == mask);
  // rlkv-sglang holds every head's score: a sparsity or window given for it is refused, not reported
  // as applied.
  const rlkv_test::Run sg = rlkv_test::run_rlkv("export " + (d / "run/ckpt-3.h5") +
                                                " --format rlkv-sglang --sparsity 0.9 --output " + (d / "sg"));
  CHECK(sg.status == 2);
  CHECK_THAT(sg.err, Catch::Matchers::Contains("the engine chooses the sparsity"));
  CHECK_FALSE(fs::exists(d / "sg"));
  // A mask directory holds one format: writing the other's file beside it is refused.
  CHECK(err_lines("export " + (d / "duo") + " --format rlkv-sglang --output " + (d / "duo")) == 2);
  CHECK_FALSE(fs::exists(d / "duo/adapter_weights.tsv"));
  // A refused value is printed as given.
  const rlkv_test::Run high = rlkv_test::run_rlkv("export " + (d / "run/ckpt-3.h5") +
                                                  " --format json --sparsity 1.0000001 --output " + (d / "h.json"));
  CHECK(high.status == 2);
  CHECK_THAT(high.err, Catch::Matchers::Contains("got 1.0000001"));
  // A path that is not UTF-8 goes into the JSON with U+FFFD for its bad byte, as inspect --json prints it.
  const std::string latin = d / "ckpt-\xe9.h5";
  fs::copy_file(d / "run/ckpt-3.h5", latin);
  const rlkv_test::Run bad_utf8 =
      rlkv_test::run_rlkv("export '" + latin + "' --format duo --output " + (d / "duo-latin"));
  INFO("stderr: " << bad_utf8.err);
  CHECK(bad_utf8.status == 0);
  CHECK(rlkv_test::read_text(d / "duo-latin/config.json").find("ckpt-\xef\xbf\xbd.h5") != std::string::npos);
  CHECK(rlkv_test::run_rlkv("inspect '" + latin + "' --json").status == 0);
}
