// Transports (comm/transport.h), gloo-style: peers run as threads of this process, over inproc://
// (one shared Context) and over tcp:// on 127.0.0.1 with ephemeral ports; peers are stopped to test
// timeouts. Catch2 assertions are not thread safe, so threads only record what happened and the
// main thread checks it after join(). A last test runs a real Python client (pyzmq + msgpack).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "comm/messages.h"
#include "comm/transport.h"
#include "core/error.h"
#include "test_util.h"

using namespace rlkv;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Clock = std::chrono::steady_clock;

namespace {

std::string bind_endpoint(const std::string& kind) {
  static std::atomic<int> n{0};
  return kind == "inproc" ? "inproc://test-transport-" + std::to_string(n++) : tcp_endpoint("127.0.0.1", 0);
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

PolicyMsg policy(int64_t version) {
  PolicyMsg m;
  m.run_id = "run-A";
  m.policy_version = version;
  m.step = version;
  m.num_layers = 2;
  m.num_kv_heads = 2;
  m.theta = {0.5f * static_cast<float>(version), -1.25f, 3.0e-8f, 2.1972246f};
  return m;
}

RolloutGroupMsg group(const std::string& actor, int64_t index, const std::string& run = "run-A", int64_t L = 2) {
  RolloutGroupMsg g;
  g.run_id = run;
  g.actor_id = actor;
  g.prompt_id = "p" + std::to_string(index);
  g.prompt_index = index;
  g.policy_version = 3;
  g.answer = "12";
  g.ref_len = 40;
  g.num_layers = L;
  g.num_kv_heads = 2;
  g.behaviour_keep_prob.assign(static_cast<size_t>(L * 2), 0.9f);
  for (int r = 0; r < 4; ++r) {
    Rollout ro;
    ro.mask.assign(static_cast<size_t>(L * 2), 1);
    ro.mask[static_cast<size_t>(r) % ro.mask.size()] = 0;
    ro.tokens.assign(16, 7 + r);
    ro.length = 16;
    ro.text = "A: 12";
    ro.prompt_tokens = 9;
    g.rollouts.push_back(ro);
  }
  return g;
}

}  // namespace

TEST_CASE("PUB/SUB: a subscriber ends on the latest policy, not on a queue of old ones") {
  const std::string kind = GENERATE(as<std::string>{}, "inproc", "tcp");
  INFO(kind);
  Context ctx;
  Publisher pub(ctx);
  const std::string ep = pub.bind(bind_endpoint(kind));
  std::atomic<bool> joined{false}, published{false};
  std::vector<int64_t> seen;
  int64_t drops_total = -1;
  std::thread actor([&] {
    Subscriber sub(ctx);
    sub.connect(ep);
    DropCounter drops("test subscriber");
    const ReceiveExpect expect{"run-A", 2, 2};
    // The first policy proves the subscription is live (PUB/SUB drops what it sends before that).
    if (!receive_policy(sub, 120s, expect, drops)) return;
    joined = true;
    const auto deadline = Clock::now() + 120s;
    while (!published && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    while (Clock::now() < deadline) {
      auto p = receive_policy(sub, 100ms, expect, drops);
      if (!p) continue;
      seen.push_back(p->policy_version);
      if (p->policy_version == 100) break;
    }
    drops_total = drops.total();
  });
  const auto t0 = Clock::now();
  while (!joined && seconds_since(t0) < 120) {
    pub.send(encode(policy(0)), 0ms);
    std::this_thread::sleep_for(5ms);
  }
  int sent = 0;
  for (int64_t v = 1; v <= 100; ++v) sent += pub.send(encode(policy(v)), 0ms);
  published = true;
  // The latest policy is republished until the subscriber has it, as the learner does
  // (comm/transport.h: a burst's last frame is not guaranteed to arrive).
  std::atomic<bool> done{false};
  std::thread republish([&] {
    while (!done) {
      pub.send(encode(policy(100)), 0ms);
      std::this_thread::sleep_for(50ms);
    }
  });
  actor.join();
  done = true;
  republish.join();
  REQUIRE(joined);
  REQUIRE(sent == 100);  // PUB never waits
  REQUIRE(!seen.empty());
  REQUIRE(seen.back() == 100);
  REQUIRE(seen.size() < 100);  // conflated: the subscriber did not wade through old versions
  REQUIRE(std::is_sorted(seen.begin(), seen.end()));
  REQUIRE(drops_total == 0);
}

TEST_CASE("PUSH/PULL: 1000 groups from 2 pushers all arrive, in order per pusher") {
  const std::string kind = GENERATE(as<std::string>{}, "inproc", "tcp");
  INFO(kind);
  Context ctx;
  Puller pull(ctx);
  const std::string ep = pull.bind(bind_endpoint(kind));
  constexpr int kPerPusher = 500;
  std::atomic<int> send_failures{0};
  std::atomic<bool> all_received{false};
  std::vector<std::thread> actors;
  for (int a = 0; a < 2; ++a)
    actors.emplace_back([&, a] {
      Pusher push(ctx);
      push.connect(ep);
      for (int i = 0; i < kPerPusher; ++i)
        if (!push.send(encode(group("actor-" + std::to_string(a), i)), 120s)) ++send_failures;
      // Stay connected until everything arrived: close() drops what linger_ms did not flush.
      const auto t0 = Clock::now();
      while (!all_received && seconds_since(t0) < 300) std::this_thread::sleep_for(1ms);
    });
  std::map<std::string, std::vector<int64_t>> got;
  DropCounter drops("test puller");
  const ReceiveExpect expect{"run-A", 2, 2};
  int received = 0;
  const auto t0 = Clock::now();
  while (received < 2 * kPerPusher && seconds_since(t0) < 300) {
    auto g = receive_rollout_group(pull, 1s, expect, drops);
    if (!g) continue;
    got[g->actor_id].push_back(g->prompt_index);
    ++received;
  }
  all_received = true;
  for (auto& t : actors) t.join();
  REQUIRE(send_failures == 0);
  REQUIRE(drops.total() == 0);
  REQUIRE(received == 2 * kPerPusher);
  REQUIRE(got.size() == 2);
  for (const auto& [actor, idx] : got) {
    INFO(actor);
    REQUIRE(idx.size() == static_cast<size_t>(kPerPusher));
    for (int i = 0; i < kPerPusher; ++i) REQUIRE(idx[static_cast<size_t>(i)] == i);  // FIFO per pipe
  }
}

// placement.bind_address = ::1 (or another IPv6 address) binds and connects; host names and IPv4
// addresses keep resolving to IPv4 (a socket with ZeroMQ's IPv6 option would take "localhost" as ::1).
TEST_CASE("an IPv6 endpoint binds and carries a group, and localhost still reaches an IPv4 bind") {
  Context ctx;
  {
    Puller pull(ctx);
    const std::string ep = pull.bind(tcp_endpoint("127.0.0.1"));
    Pusher push(ctx);
    push.connect("tcp://localhost:" + ep.substr(ep.rfind(':') + 1));
    REQUIRE(push.send(encode(group("actor-4", 1)), 30s));
    DropCounter drops("test puller");
    REQUIRE(receive_rollout_group(pull, 30s, ReceiveExpect{"run-A", 2, 2}, drops).has_value());
  }
  const int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool have_v6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (probe >= 0) ::close(probe);
  if (!have_v6) {
    WARN("this machine has no IPv6 loopback: the IPv6 half is not run");
    return;
  }
  Puller pull(ctx);
  const std::string ep = pull.bind(tcp_endpoint("::1"));
  REQUIRE(ep.rfind("tcp://[::1]:", 0) == 0);
  Pusher push(ctx);
  push.connect(ep);
  REQUIRE(push.send(encode(group("actor-6", 2)), 30s));
  DropCounter drops("test puller");
  auto g = receive_rollout_group(pull, 30s, ReceiveExpect{"run-A", 2, 2}, drops);
  REQUIRE(g.has_value());
  REQUIRE(g->actor_id == "actor-6");
}

TEST_CASE("receive with a timeout returns nullopt in about that time") {
  const std::string kind = GENERATE(as<std::string>{}, "inproc", "tcp");
  INFO(kind);
  Context ctx;
  Puller pull(ctx);
  const std::string ep = pull.bind(bind_endpoint(kind));
  Publisher silent(ctx);  // bound, never sends
  Subscriber sub(ctx);
  sub.connect(silent.bind(bind_endpoint(kind)));
  auto t0 = Clock::now();
  REQUIRE_FALSE(pull.receive(80ms).has_value());
  const double waited = seconds_since(t0);
  REQUIRE(waited >= 0.07);
  REQUIRE(waited < 30.0);  // bounded by the timeout (generous: a loaded machine is slow, never stuck)
  t0 = Clock::now();
  REQUIRE_FALSE(sub.receive(0ms).has_value());
  REQUIRE_FALSE(pull.receive(0ms).has_value());
  DropCounter drops("t");
  REQUIRE_FALSE(receive_rollout_group(pull, 30ms, {}, drops).has_value());
  REQUIRE_FALSE(receive_policy(sub, 30ms, {}, drops).has_value());
  REQUIRE(seconds_since(t0) < 30.0);
}

TEST_CASE("a pusher whose puller died times out instead of hanging, and closes promptly") {
  const std::string kind = GENERATE(as<std::string>{}, "inproc", "tcp");
  INFO(kind);
  const std::string frame = encode(group("actor-0", 0));
  const auto t_all = Clock::now();
  {
    Context ctx;
    Pusher push(ctx);
    std::string ep;
    std::atomic<bool> bound{false};
    bool got_one = false;
    // The puller is a peer thread that takes one frame and stops (its socket closes with it).
    std::thread reward_worker([&] {
      Puller pull(ctx);
      ep = pull.bind(bind_endpoint(kind));
      bound = true;
      got_one = pull.receive(120s).has_value();
    });
    while (!bound) std::this_thread::sleep_for(1ms);
    push.connect(ep);
    const bool first_sent = push.send(frame, 120s);
    reward_worker.join();
    REQUIRE(first_sent);
    REQUIRE(got_one);

    // Frames sent before the pusher notices the dead peer are lost (at-most-once); then sends wait
    // their timeout and fail.
    int accepted = 0;
    double failed_call_s = -1;
    const auto t0 = Clock::now();
    while (seconds_since(t0) < 120) {
      const auto t = Clock::now();
      if (!push.send(frame, 100ms)) {
        failed_call_s = seconds_since(t);
        break;
      }
      ++accepted;
    }
    INFO("accepted " << accepted << " frames after the puller died");
    REQUIRE(failed_call_s >= 0.09);
    // Upper bounds tell "bounded by its timeout" from "blocked": generous, so that a loaded machine
    // cannot fail them, and far below the 120 s the loop would take if sends never failed.
    REQUIRE(failed_call_s < 30.0);
    REQUIRE(seconds_since(t0) < 60);
    // A pusher that never had a peer fails the same way (tcp: inproc requires a bound endpoint).
    Pusher lonely(ctx);
    lonely.connect(tcp_endpoint("127.0.0.1", 1));
    REQUIRE_FALSE(lonely.send(frame, 50ms));
    REQUIRE_FALSE(lonely.send(frame, 0ms));
    const auto tc = Clock::now();
    push.close();
    lonely.close();
    REQUIRE(push.closed());
    REQUIRE_FALSE(push.send(frame, 1s));  // closed: fails at once
    REQUIRE(seconds_since(tc) < 30.0);
  }  // Context destroyed here: must not wait on the dead peer
  REQUIRE(seconds_since(t_all) < 300);
}

TEST_CASE("closing with frames queued for a peer that does not read is bounded by linger") {
  const std::string kind = GENERATE(as<std::string>{}, "inproc", "tcp");
  INFO(kind);
  int queued = 0;
  Clock::time_point tc;
  {
    SocketOptions small;
    small.send_hwm = 4;
    small.receive_hwm = 4;
    small.linger_ms = 100;
    Context ctx;
    Puller slow(ctx, small);  // never reads
    const std::string ep = slow.bind(bind_endpoint(kind));
    Pusher push(ctx, small);
    push.connect(ep);
    const std::string big(1 << 20, 'x');  // not a valid frame; the transport does not care
    const auto t0 = Clock::now();
    while (seconds_since(t0) < 10 && push.send(big, queued == 0 ? 5000ms : 200ms)) ++queued;
    tc = Clock::now();
    push.close();
    slow.close();
  }  // and the Context: zmq_ctx_term waits for queued frames at most linger_ms
  const double close_s = seconds_since(tc);
  INFO("queued " << queued << " MiB before the queues were full");
  REQUIRE(queued >= 1);
  REQUIRE(close_s < 30.0);  // linger 100 ms; without a linger bound zmq_ctx_term would wait forever
}

TEST_CASE("Context::shutdown releases a blocked receive and later calls fail fast") {
  Context ctx;
  std::atomic<bool> started{false};
  double blocked_s = -1;
  bool got = true;
  bool send_after = true;
  std::thread learner([&] {
    Puller pull(ctx);
    pull.bind(bind_endpoint("inproc"));
    started = true;
    const auto t0 = Clock::now();
    got = pull.receive(600s).has_value();
    blocked_s = seconds_since(t0);
  });
  std::thread actor([&] {
    Pusher push(ctx);
    push.connect(tcp_endpoint("127.0.0.1", 1));  // nobody listens: send would wait
    while (!started) std::this_thread::sleep_for(1ms);
    send_after = push.send("x", 600s);
  });
  while (!started) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(100ms);
  ctx.shutdown();
  learner.join();
  actor.join();
  REQUIRE_FALSE(got);
  REQUIRE_FALSE(send_after);
  REQUIRE(blocked_s < 300);  // woken by the shutdown, not by the 600 s timeout
}

TEST_CASE("receivers drop and count bad frames, logging each kind once, and keep the good ones") {
  Context ctx;
  Puller pull(ctx);
  const std::string ep = pull.bind(bind_endpoint("inproc"));
  Pusher push(ctx);
  push.connect(ep);
  const std::vector<std::string> frames = {
      "not a frame",                            // framing
      encode(policy(1)),                        // type: a policy on the group channel
      encode(group("actor-0", 1, "run-B")),     // foreign run
      encode(group("actor-0", 2, "run-A", 3)),  // shape: 3 layers, the model has 2
      std::string("not a frame either"),        // framing again: counted, not logged
      encode(group("actor-0", 3)),              // good
  };
  for (const auto& f : frames) REQUIRE(push.send(f, 5s));
  DropCounter drops("learner scored-group puller");
  auto g = receive_rollout_group(pull, 5s, ReceiveExpect{"run-A", 2, 2}, drops);
  REQUIRE(g.has_value());
  REQUIRE(g->prompt_index == 3);
  REQUIRE(drops.count(MessageErrorKind::kFraming) == 2);
  REQUIRE(drops.count(MessageErrorKind::kType) == 1);
  REQUIRE(drops.count(MessageErrorKind::kForeignRun) == 1);
  REQUIRE(drops.count(MessageErrorKind::kShape) == 1);
  REQUIRE(drops.total() == 5);
  REQUIRE_THAT(drops.summary(), Contains("framing=2") && Contains("foreign_run=1"));

  // The generic receiver takes any type (a Hello on the rollout channel, say).
  HelloMsg hello{"run-A", "elastic-1", 77, "host"};
  REQUIRE(push.send(encode(hello), 5s));
  auto m = receive_message(pull, 5s, ReceiveExpect{"run-A", 2, 2}, drops);
  REQUIRE(m.has_value());
  REQUIRE(std::get<HelloMsg>(*m) == hello);
}

TEST_CASE("bind and connect errors are user errors naming the endpoint") {
  Context ctx;
  Puller a(ctx), b(ctx);
  const std::string ep = a.bind(tcp_endpoint());
  REQUIRE(ep.rfind("tcp://127.0.0.1:", 0) == 0);
  REQUIRE(ep.find('*') == std::string::npos);
  REQUIRE_THROWS_WITH(b.bind(ep), Contains(ep));
  REQUIRE_THROWS_AS(b.bind("nonsense"), UserError);
  REQUIRE_THROWS_AS(b.connect("tcp://"), UserError);
  // A host that does not resolve (.invalid never does, RFC 6761): ZeroMQ alone would retry it forever.
  REQUIRE_THROWS_WITH(b.connect("tcp://no-such-host.invalid:5555"),
                      Contains("tcp://no-such-host.invalid:5555") && Contains("does not resolve"));
  REQUIRE_THROWS_WITH(b.connect("tcp://[no-such-host.invalid]:5555"), Contains("does not resolve"));
  Pusher to_name(ctx);
  REQUIRE_NOTHROW(to_name.connect("tcp://localhost:" + ep.substr(ep.rfind(':') + 1)));  // names that resolve still do
  // inproc: bind first (libzmq 4.3.4 aborts at context end on a never-bound inproc connection).
  const std::string name = bind_endpoint("inproc");
  REQUIRE_THROWS_WITH(b.connect(name), Contains(name) && Contains("bind inproc endpoints before"));
  {
    Publisher p(ctx);
    p.bind(name);
    Subscriber s(ctx);
    REQUIRE_NOTHROW(s.connect(name));
  }
  REQUIRE_THROWS_AS(b.connect(name), UserError);  // unbound again once its socket closed
  REQUIRE(tcp_endpoint("0.0.0.0", 5555) == "tcp://0.0.0.0:5555");
  REQUIRE(tcp_endpoint("::1", 5555) == "tcp://[::1]:5555");
  REQUIRE(tcp_endpoint("[::1]") == "tcp://[::1]:*");
  REQUIRE_THROWS_AS(tcp_endpoint("h", 70000), UserError);
  // A wildcard names no machine to a peer: the endpoint handed out names this host.
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  CHECK(advertised_endpoint("tcp://0.0.0.0:5555") == "tcp://" + std::string(host) + ":5555");
  CHECK(advertised_endpoint("tcp://[::]:6") == "tcp://" + std::string(host) + ":6");
  CHECK(advertised_endpoint("tcp://127.0.0.1:5555") == "tcp://127.0.0.1:5555");
  CHECK(advertised_endpoint("tcp://[::1]:5555") == "tcp://[::1]:5555");
  CHECK(advertised_endpoint("inproc://x") == "inproc://x");
}

// ---- frame authentication (comm/frame_auth.h) ------------------------------------------------

TEST_CASE("a run key's seal: opened for the frame and origin it seals, refused for any other") {
  const RunKey key = RunKey::generate(), other = RunKey::generate();
  REQUIRE(key.hex() != other.hex());
  REQUIRE(RunKey::from_hex(key.hex(), "test").hex() == key.hex());
  REQUIRE(RunKey::from_hex("  " + key.hex() + "\n", "test").hex() == key.hex());
  const std::string frame = encode(group("actor-0", 1));
  FrameOrigin origin = FrameOrigin::fresh();
  REQUIRE(origin.sender != FrameOrigin::fresh().sender);
  origin.counter = 0x0102030405060708ull;
  const std::string sealed = key.sealed(frame, origin);
  REQUIRE(sealed.size() == frame.size() + kFrameTrailerBytes);
  // The trailer as docs/messages.md lays it out: sender, counter (u64 little-endian), tag.
  REQUIRE(sealed.compare(frame.size(), kSenderIdBytes,
                         std::string(reinterpret_cast<const char*>(origin.sender.data()), kSenderIdBytes)) == 0);
  REQUIRE(sealed.substr(frame.size() + kSenderIdBytes, kFrameCounterBytes) == "\x08\x07\x06\x05\x04\x03\x02\x01");
  std::string_view body;
  FrameOrigin got;
  REQUIRE(key.open(sealed, &body, &got));
  REQUIRE(body == frame);
  REQUIRE(got.sender == origin.sender);
  REQUIRE(got.counter == origin.counter);
  REQUIRE_FALSE(other.open(sealed, &body, &got));  // another run's key: a replay from that run
  REQUIRE_FALSE(key.open(frame, &body, &got));     // no trailer
  REQUIRE_FALSE(key.open(sealed.substr(0, kFrameTrailerBytes - 1), &body, &got));
  // One bit anywhere: in the frame, the sender, the counter, the tag.
  for (size_t i : {size_t(0), frame.size() / 2, frame.size(), frame.size() + kSenderIdBytes, sealed.size() - 1}) {
    std::string altered = sealed;
    altered[i] = static_cast<char>(altered[i] ^ 1);
    REQUIRE_FALSE(key.open(altered, &body, &got));
  }
  REQUIRE_THROWS_AS(RunKey::from_hex("abc", "key"), UserError);
  REQUIRE_THROWS_WITH(RunKey::from_hex(std::string(64, 'g'), "the key"), Contains("the key") && Contains("64 hex"));
}

TEST_CASE("a replay guard accepts each sender's counters once, in any order within its window") {
  ReplayGuard guard;
  FrameOrigin a = FrameOrigin::fresh(), b = FrameOrigin::fresh();
  auto accept = [&guard](FrameOrigin o, uint64_t counter) {
    o.counter = counter;
    return guard.accept(o);
  };
  REQUIRE(accept(a, 1));
  REQUIRE_FALSE(accept(a, 1));  // the same frame again
  REQUIRE(accept(b, 1));        // another sender's counters are its own
  REQUIRE(accept(a, 5));        // a gap: frames 2-4 went elsewhere, were lost or are late
  REQUIRE(accept(a, 3));        // late (a reconnect's old queue), once
  REQUIRE_FALSE(accept(a, 3));
  REQUIRE_FALSE(accept(a, 5));
  REQUIRE(accept(a, 2));
  REQUIRE(accept(a, 4));
  for (uint64_t c = 1; c <= 5; ++c) REQUIRE_FALSE(accept(a, c));
  // The window: counters up to kReplayWindow - 1 below the highest are remembered; older ones are
  // refused whether seen or not.
  const uint64_t top = 5 + kReplayWindow;
  REQUIRE(accept(a, top));
  REQUIRE_FALSE(accept(a, 5));                    // seen, and now out of the window
  REQUIRE_FALSE(accept(a, top - kReplayWindow));  // never seen, but too old to tell
  REQUIRE(accept(a, top - kReplayWindow + 1));    // never seen, the oldest the window holds
  REQUIRE_FALSE(accept(a, top - kReplayWindow + 1));
  REQUIRE(accept(a, top + 3 * kReplayWindow));  // a jump past the whole window forgets it
  REQUIRE_FALSE(accept(a, top + 3 * kReplayWindow));
  REQUIRE_FALSE(accept(a, top));                          // too old now
  REQUIRE_FALSE(accept(a, top + 2 * kReplayWindow - 5));  // never seen, one window and 5 too old
  REQUIRE(accept(a, top + 3 * kReplayWindow - 1));
  REQUIRE_FALSE(accept(FrameOrigin::fresh(), 0));  // counter 0 is never sealed by a socket
  REQUIRE(guard.senders() == 2);                   // and its sender is not remembered
}

TEST_CASE("key files are written with mode 0600, and one that others may read is refused") {
  rlkv_test::TempDir dir;
  const std::string path = dir / "run.key";
  const RunKey key = RunKey::generate();
  write_key_file(path, key);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 0777) == 0600);
  REQUIRE(read_key_file(path).hex() == key.hex());
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  REQUIRE_THROWS_WITH(read_key_file(path), Contains(path) && Contains("644") && Contains("chmod 600"));
  for (const mode_t mode : {0640, 0660, 0602, 0620, 0604, 0610}) {  // any bit for the group or others
    INFO("mode " << std::oct << mode);
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    REQUIRE_THROWS_WITH(read_key_file(path), Contains("chmod 600"));
  }
  REQUIRE(::chmod(path.c_str(), 0400) == 0);  // the owner alone, read-only: fine
  REQUIRE(read_key_file(path).hex() == key.hex());
  REQUIRE_THROWS_AS(read_key_file(dir / "absent.key"), UserError);
  rlkv_test::write_text(dir / "short.key", "abcd\n");
  REQUIRE(::chmod((dir / "short.key").c_str(), 0600) == 0);
  REQUIRE_THROWS_WITH(read_key_file(dir / "short.key"), Contains("short.key"));
}

// Waits (with a deadline far beyond the cost) until `pull` has refused `n` frames, receiving meanwhile.
void drain_until_refused(Puller& pull, int64_t n) {
  const auto t0 = Clock::now();
  while (pull.refused() < n && seconds_since(t0) < 30) {
    auto f = pull.receive(50ms);
    REQUIRE_FALSE(f.has_value());  // nothing but the refused frames is in flight
  }
}

TEST_CASE("with a run key, frames without the right tag are refused and counted before any decoding") {
  const std::string kind = GENERATE(std::string("inproc"), std::string("tcp"));
  INFO(kind);
  Context ctx;
  const auto key = std::make_shared<const RunKey>(RunKey::generate());
  const auto other = std::make_shared<const RunKey>(RunKey::generate());
  Puller pull(ctx);
  pull.set_key(key);
  const std::string ep = pull.bind(bind_endpoint(kind));
  Pusher stranger(ctx), wrong(ctx), good(ctx);
  wrong.set_key(other);
  good.set_key(key);
  for (Pusher* p : {&stranger, &wrong, &good}) p->connect(ep);
  DropCounter drops("test puller");
  const ReceiveExpect expect{"run-A", 2, 2};
  // A stranger that read the run id off the wire, a peer with another run's key, a frame recorded in
  // a run with another key and replayed, a frame of this run altered on the way: all refused.
  REQUIRE(stranger.send(encode(group("stranger", 1)), 5s));
  REQUIRE(wrong.send(encode(group("wrong-key", 2)), 5s));
  FrameOrigin origin = FrameOrigin::fresh();
  origin.counter = 1;
  REQUIRE(stranger.send(other->sealed(encode(group("replayed", 3)), origin), 5s));
  std::string altered = key->sealed(encode(group("altered", 4)), origin);
  altered[altered.size() / 2] = static_cast<char>(altered[altered.size() / 2] ^ 0x10);
  REQUIRE(stranger.send(altered, 5s));
  drain_until_refused(pull, 4);
  REQUIRE(pull.refused() == 4);
  REQUIRE(good.send(encode(group("good", 5)), 5s));
  auto g = receive_rollout_group(pull, 5s, expect, drops);
  REQUIRE(g.has_value());
  REQUIRE(g->actor_id == "good");
  REQUIRE(g->prompt_index == 5);
  REQUIRE(drops.total() == 0);  // refused at the socket: nothing reached the decoder
  REQUIRE(pull.refused() == 4);
  REQUIRE(pull.replayed() == 0);
}

TEST_CASE("a receive refuses queued frames only until its deadline: with a timeout of 0, one per call") {
  Context ctx;
  const auto key = std::make_shared<const RunKey>(RunKey::generate());
  Puller pull(ctx);
  pull.set_key(key);
  const std::string ep = pull.bind("inproc://refusal-deadline");
  Pusher stranger(ctx);
  stranger.connect(ep);
  for (int i = 0; i < 10; ++i) REQUIRE(stranger.send(encode(group("stranger", i)), 5s));  // queued on return
  // A stream of refused frames held receive() until none was left, whatever its timeout.
  REQUIRE_FALSE(pull.receive(0ms).has_value());
  CHECK(pull.refused() == 1);
  REQUIRE_FALSE(pull.receive(0ms).has_value());
  CHECK(pull.refused() == 2);
  drain_until_refused(pull, 10);
  CHECK(pull.refused() == 10);
}

TEST_CASE("a multipart message is refused at the socket, its parts never joined, and frames after it pass") {
  Context ctx;
  Puller pull(ctx);
  const std::string ep = pull.bind("tcp://127.0.0.1:*");
  zmq::context_t raw;
  zmq::socket_t two_parts(raw, zmq::socket_type::push);
  two_parts.set(zmq::sockopt::linger, 0);
  two_parts.connect(ep);
  const std::string part = encode(group("half", 1));
  REQUIRE(two_parts.send(zmq::buffer(part), zmq::send_flags::sndmore));
  REQUIRE(two_parts.send(zmq::buffer(part), zmq::send_flags::none));
  Pusher good(ctx);
  good.connect(ep);
  REQUIRE(good.send(encode(group("good", 5)), 5s));
  DropCounter drops("test puller");
  const ReceiveExpect expect{"run-A", 2, 2};
  auto g = receive_rollout_group(pull, 10s, expect, drops);
  REQUIRE(g.has_value());
  CHECK(g->actor_id == "good");
  drain_until_refused(pull, 1);
  CHECK(pull.refused() == 1);
  CHECK(drops.total() == 0);  // joined, the two parts reached the decoder as one bad frame
  two_parts.close();
}

TEST_CASE("with a run key, a frame of this run sent again is refused, and its sender's other frames still pass") {
  const std::string kind = GENERATE(std::string("inproc"), std::string("tcp"));
  INFO(kind);
  Context ctx;
  const auto key = std::make_shared<const RunKey>(RunKey::generate());
  Puller pull(ctx);
  pull.set_key(key);
  const std::string ep = pull.bind(bind_endpoint(kind));
  Pusher relay(ctx);  // no key: it forwards recorded frames as they are, as someone on the path would
  relay.connect(ep);
  DropCounter drops("test puller");
  const ReceiveExpect expect{"run-A", 2, 2};
  // Frames sealed as a keyed socket seals them (one sender, counters 1, 2, 3), delivered by the relay.
  FrameOrigin sender = FrameOrigin::fresh();
  std::vector<std::string> recorded;
  for (int i = 1; i <= 3; ++i) {
    ++sender.counter;
    recorded.push_back(key->sealed(encode(group("actor-0", i)), sender));
  }
  REQUIRE(relay.send(recorded[0], 5s));
  REQUIRE(relay.send(recorded[2], 5s));  // frame 2 delayed: the gap is allowed
  REQUIRE(relay.send(recorded[1], 5s));  // and frame 2 late (a reconnect's old queue), once
  for (int want : {1, 3, 2}) {
    auto g = receive_rollout_group(pull, 5s, expect, drops);
    REQUIRE(g.has_value());
    REQUIRE(g->prompt_index == want);
  }
  REQUIRE(pull.refused() == 0);
  // The same frames again, in any order: all refused, none decoded.
  for (int i : {0, 2, 1}) REQUIRE(relay.send(recorded[size_t(i)], 5s));
  drain_until_refused(pull, 3);
  REQUIRE(pull.refused() == 3);
  REQUIRE(pull.replayed() == 3);
  // The sender's next frame, and a second sender's first, still pass.
  ++sender.counter;
  REQUIRE(relay.send(key->sealed(encode(group("actor-0", 4)), sender), 5s));
  Pusher other(ctx);
  other.set_key(key);
  other.connect(ep);
  REQUIRE(other.send(encode(group("actor-1", 5)), 5s));
  std::set<int64_t> got;
  for (int i = 0; i < 2; ++i) {
    auto g = receive_rollout_group(pull, 5s, expect, drops);
    REQUIRE(g.has_value());
    got.insert(g->prompt_index);
  }
  REQUIRE(got == std::set<int64_t>{4, 5});
  REQUIRE(drops.total() == 0);
  REQUIRE(pull.replayed() == 3);
}

TEST_CASE("with a run key, a keyed socket's frames carry increasing counters under one sender id") {
  Context ctx;
  const auto key = std::make_shared<const RunKey>(RunKey::generate());
  Puller tap(ctx);  // no key: sees the sealed frames as they travel
  const std::string ep = tap.bind(bind_endpoint("inproc"));
  Pusher push(ctx);
  push.set_key(key);
  push.connect(ep);
  std::vector<FrameOrigin> seen;
  for (int i = 0; i < 3; ++i) {
    const std::string frame = encode(group("actor-0", i));
    REQUIRE(push.send(frame, 5s));
    auto raw = tap.receive(5s);
    REQUIRE(raw.has_value());
    std::string_view body;
    FrameOrigin o;
    REQUIRE(key->open(*raw, &body, &o));
    REQUIRE(body == frame);
    seen.push_back(o);
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    REQUIRE(seen[i].sender == seen[0].sender);
    REQUIRE(seen[i].counter == i + 1);
  }
  Pusher second(ctx);
  second.set_key(key);
  second.connect(ep);
  REQUIRE(second.send(encode(group("actor-1", 9)), 5s));
  auto raw = tap.receive(5s);
  REQUIRE(raw.has_value());
  FrameOrigin o;
  REQUIRE(key->open(*raw, nullptr, &o));
  REQUIRE(o.sender != seen[0].sender);  // each socket is a sender of its own
  REQUIRE(o.counter == 1);
}

TEST_CASE("with a run key, subscribers without it decode no policy") {
  Context ctx;
  const auto key = std::make_shared<const RunKey>(RunKey::generate());
  Publisher pub(ctx);
  pub.set_key(key);
  const std::string ep = pub.bind(bind_endpoint("tcp"));
  Subscriber right(ctx), wrong(ctx), none(ctx);
  right.set_key(key);
  wrong.set_key(std::make_shared<const RunKey>(RunKey::generate()));
  for (Subscriber* s : {&right, &wrong, &none}) s->connect(ep);
  DropCounter drops_right("right"), drops_wrong("wrong"), drops_none("none");
  const ReceiveExpect expect{"run-A", 2, 2};
  // Republish until every subscriber has had frames (each joins in its own time): the keyed one
  // decodes the policy, the wrong key's refuses them at the socket, and an unkeyed reader sees the
  // tag as trailing bytes and drops them; neither of the last two ever decodes one.
  std::optional<PolicyMsg> got;
  bool wrong_decoded = false, none_decoded = false;
  const auto t0 = Clock::now();
  while ((!got || wrong.refused() == 0 || drops_none.total() == 0) && seconds_since(t0) < 30) {
    pub.send(encode(policy(7)), 0ms);
    if (!got) got = receive_policy(right, 20ms, expect, drops_right);
    wrong_decoded |= receive_policy(wrong, 5ms, expect, drops_wrong).has_value();
    none_decoded |= receive_policy(none, 5ms, expect, drops_none).has_value();
  }
  REQUIRE(got.has_value());
  REQUIRE(got->policy_version == 7);
  REQUIRE(wrong.refused() > 0);
  REQUIRE(drops_none.total() > 0);
  // All connected now: more policies reach both, and still neither decodes one.
  for (int i = 0; i < 5; ++i) pub.send(encode(policy(8)), 0ms);
  wrong_decoded |= receive_policy(wrong, 500ms, expect, drops_wrong).has_value();
  none_decoded |= receive_policy(none, 500ms, expect, drops_none).has_value();
  REQUIRE_FALSE(wrong_decoded);
  REQUIRE_FALSE(none_decoded);
  REQUIRE(drops_right.total() == 0);
}

// A subscriber in another language: /usr/bin/python3 with pyzmq and msgpack receives one policy,
// checks the frame as docs/messages.md describes (with a run key: its HMAC-SHA256 tag first, with
// the standard library's hmac, then the sender id and counter), prints theta, and sends back (as hex)
// a frame it built itself (sealed with the key, if any), which the C++ side must open and decode.
TEST_CASE("a Python pyzmq + msgpack subscriber decodes the policy, with and without the run key") {
  if (std::system("/usr/bin/python3 -c 'import zmq, msgpack' >/dev/null 2>&1") != 0)
    FAIL("/usr/bin/python3 lacks zmq or msgpack (launch/install.sh installs python3-zmq python3-msgpack)");
  const bool keyed = GENERATE(false, true);
  const auto key = keyed ? std::make_shared<const RunKey>(RunKey::generate()) : nullptr;
  rlkv_test::TempDir dir;
  const std::string script = dir / "sub.py";
  rlkv_test::write_text(script, R"PY(import hashlib, hmac, os, struct, sys, zlib
import msgpack, zmq
key = bytes.fromhex(sys.argv[2]) if len(sys.argv) > 2 else None
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.setsockopt(zmq.RCVTIMEO, 20000)
sub.connect(sys.argv[1])
buf = sub.recv()
if key is not None:
    buf, tag = buf[:-32], buf[-32:]
    assert hmac.compare_digest(tag, hmac.new(key, buf, hashlib.sha256).digest()), "tag"
    buf, sender, counter = buf[:-24], buf[-24:-8], struct.unpack("<Q", buf[-8:])[0]
    assert counter >= 1, "counter"
magic, version, mtype, n = struct.unpack_from("<4sHHI", buf, 0)
assert magic == b"RLKV" and version == 1 and mtype == 1 and len(buf) == 16 + n, (magic, version, mtype, n, len(buf))
assert struct.unpack_from("<I", buf, 12 + n)[0] == zlib.crc32(buf[:12 + n]), "crc"
msg = msgpack.unpackb(buf[12:12 + n], raw=False)
L, H = msg["num_layers"], msg["num_kv_heads"]
theta = struct.unpack("<%df" % (L * H), msg["theta"])
print("version", msg["policy_version"], "stop", int(msg["stop"]), "run", msg["run_id"])
print("theta", " ".join(repr(t) for t in theta))
out = msgpack.packb(msg, use_bin_type=True)
head = struct.pack("<4sHHI", b"RLKV", 1, 1, len(out)) + out
frame = head + struct.pack("<I", zlib.crc32(head))
if key is not None:
    frame += os.urandom(16) + struct.pack("<Q", 1)   # this client's sender id, its first frame
    frame += hmac.new(key, frame, hashlib.sha256).digest()
print("frame", frame.hex())
)PY");
  Context ctx;
  Publisher pub(ctx);
  pub.set_key(key);
  const std::string ep = pub.bind(tcp_endpoint());
  PolicyMsg sent = policy(12);
  sent.run_id = "run-\xc3\xa9";  // non-ASCII survives as UTF-8
  const std::string frame = encode(sent);

  std::string out;
  int status = -1;
  std::atomic<bool> done{false};
  std::thread client([&] {
    const std::string cmd = "/usr/bin/python3 " + script + " " + ep + (key ? " " + key->hex() : "") + " 2>&1";
    FILE* f = popen(cmd.c_str(), "r");
    if (f) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
      status = pclose(f);
    }
    done = true;
  });
  // Republish until the client has it: it may connect after any given send (slow joiner).
  const auto t0 = Clock::now();
  while (!done && seconds_since(t0) < 60) {
    pub.send(frame, 0ms);
    std::this_thread::sleep_for(20ms);
  }
  client.join();
  INFO("python output:\n" << out);
  REQUIRE(status == 0);

  std::istringstream lines(out);
  std::string line, word;
  std::vector<float> theta;
  std::string hex;
  bool saw_version = false;
  while (std::getline(lines, line)) {
    std::istringstream ls(line);
    ls >> word;
    if (word == "version") {
      int64_t v = -1;
      ls >> v;
      REQUIRE(v == sent.policy_version);
      saw_version = true;
    } else if (word == "theta") {
      std::string t;
      while (ls >> t) theta.push_back(static_cast<float>(std::strtod(t.c_str(), nullptr)));
    } else if (word == "frame") {
      ls >> hex;
    }
  }
  REQUIRE(saw_version);
  REQUIRE(theta == sent.theta);  // bit-exact: repr() of a float32 widened to double round-trips

  std::string back;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) back += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  REQUIRE(!back.empty());
  std::string_view body = back;
  if (key) REQUIRE(key->open(back, &body, nullptr));
  REQUIRE(decode_policy(body.data(), body.size()) == sent);
}
