// Transports of distributed training (docs/design.md section 2): ZeroMQ sockets behind
// two small interfaces, Sender and Receiver, that carry opaque frames (comm/messages.h encodes them).
//
//   policy broadcast         Publisher (learner, binds) -> Subscriber (actors, connect)  PUB/SUB
//   rollout / scored groups  Pusher (many, connect)     -> Puller (one, binds)           PUSH/PULL
//
// The same classes run with `inproc://name` (roles as threads of one process sharing one Context:
// the in-process implementation the unit tests use) and with `tcp://host:port` (ranks, nodes,
// elastic actors). Binding "tcp://127.0.0.1:*" picks a free port; bind() returns the resolved
// endpoint (ZMQ_LAST_ENDPOINT) to hand to the peers. Loopback is the default bind host because a
// training job should not listen on every interface unless the user asks (tcp_endpoint()).
//
// Guarantees and why:
//  - Nothing blocks forever: send() and receive() take a timeout (>= 0) and return false / nullopt
//    when it runs out; closing waits at most SocketOptions::linger_ms for queued frames to leave,
//    then drops them: a sender that must know its last frames arrived needs an answer from the
//    receiver (for instance the learner's stop policy) before it closes.
//  - The policy is latest-wins: Publisher and Subscriber both set ZMQ_CONFLATE (each queue keeps only
//    the newest frame, so a slow actor never reads an old policy and a publisher never drops the
//    newest one at a full queue), and Subscriber::receive() also drains to the newest frame it sees.
//    A subscriber that connects late misses what was sent before (PUB/SUB "slow joiner"), and a
//    burst's last frame is not guaranteed to arrive (the test suite once saw, under load, a
//    subscriber poll for 120 s without receiving it), so the learner republishes its current policy
//    periodically (every 0.5 s), not only when it changes.
//  - Pushers deliver only to live peers (ZMQ_IMMEDIATE): when every puller is gone, send() waits at
//    most its timeout and returns false, instead of queueing for a peer that will never read. A
//    puller that dies costs the frames in its queue and those sent before the pusher noticed
//    (at-most-once delivery, as docs/design.md section 2 accepts for actors: in-flight groups, never the job).
//  - ZMTP heartbeats notice a peer whose host vanished without closing the connection.
//  - A part larger than max_message_bytes makes libzmq drop that connection, and a message of several
//    parts (rlkv sends one) is read part by part and refused, never joined: a hostile or broken peer
//    cannot make a receiver allocate without bound beyond what libzmq buffers for one message.
//  - Refused frames (without the run's key, replayed, multipart) are skipped only until the
//    receive's deadline: a stream of them cannot hold a receive past its timeout.
//
// inproc:// must be bound before it is connected to: connect() throws UserError otherwise. The
// reason is a libzmq 4.3.4 bug (zeromq/libzmq#4544, still open): an inproc connection whose
// endpoint was never bound aborts the process inside zmq_ctx_term. Over tcp:// either order works.
//
// Thread safety: a socket is used by one thread at a time (ZeroMQ sockets are not thread safe); it
// may be created in one thread and handed to another. Context is thread safe. Every socket must be
// closed or destroyed before its Context is destroyed (zmq_ctx_term waits for them). Context::
// shutdown() makes blocked calls on all its sockets return at once (false / nullopt), to stop workers.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "comm/frame_auth.h"
#include "comm/messages.h"

namespace rlkv {

// Owns one zmq context. Share it between the threads of a process: inproc:// only connects sockets
// of the same Context.
class Context {
 public:
  explicit Context(int io_threads = 1);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  // Every blocking call on this context's sockets returns (send false, receive nullopt), now and
  // later; sockets must still be closed by their owners.
  void shutdown();
  void* native_handle();  // the zmq context (void*), for code that needs a raw socket

 private:
  friend class Socket;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SocketOptions {
  int send_hwm = 64;        // frames queued per peer before send() waits (PUSH; PUB conflates)
  int receive_hwm = 64;     // frames queued for the reader (PULL; SUB conflates)
  int linger_ms = 200;      // closing: how long queued frames may still be flushed before they are dropped
  int heartbeat_ms = 2000;  // ZMTP heartbeat interval over tcp; a peer silent for 3 intervals is dropped; 0 = off
  // Incoming part cap (ZMQ_MAXMSGSIZE): the largest frame, sealed (a keyed frame carries its trailer).
  int64_t max_message_bytes = static_cast<int64_t>(kMaxMessageBytes + kFrameTrailerBytes);
};

// "tcp://host:port"; port 0 gives "tcp://host:*" (bind picks a free port). An IPv6 literal is
// bracketed ("tcp://[::1]:port"); bind and connect take such endpoints (host names resolve to IPv4).
std::string tcp_endpoint(const std::string& host = "127.0.0.1", int port = 0);

// The endpoint peers connect to for one bound at `bound` (bind()'s result): a wildcard host
// (0.0.0.0, [::] or *), which names no machine to a peer on another node, becomes this machine's
// host name; any other endpoint is returned as it is.
std::string advertised_endpoint(const std::string& bound);

class Sender {
 public:
  virtual ~Sender() = default;
  // Queues one frame. false: the timeout ran out (no live peer, or its queue stayed full), the
  // socket is closed, or the context was shut down. A timeout of 0 never waits.
  virtual bool send(std::string_view frame, std::chrono::milliseconds timeout) = 0;
};

class Receiver {
 public:
  virtual ~Receiver() = default;
  // One frame, or nullopt when the timeout ran out, the socket is closed, or the context was shut down.
  virtual std::optional<std::string> receive(std::chrono::milliseconds timeout) = 0;
};

// What Publisher, Subscriber, Pusher and Puller share: bind / connect / close.
class Socket {
 public:
  virtual ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  // Returns the resolved endpoint ("tcp://127.0.0.1:41233" for "tcp://127.0.0.1:*"). A socket may
  // bind and connect several endpoints. Bad or busy endpoints, tcp hosts that do not resolve
  // (connect: ZeroMQ would retry them silently forever) and inproc endpoints not bound yet (connect)
  // throw UserError naming the endpoint.
  std::string bind(const std::string& endpoint);
  void connect(const std::string& endpoint);
  void close();  // idempotent, returns at once; queued frames get linger_ms to leave (~Context waits for it)
  bool closed() const;
  // Frame authentication (comm/frame_auth.h), set before the first send or receive: every frame sent
  // is sealed (this socket's sender id, its next counter, the tag), and every frame received is
  // checked before it is returned. A frame without the right tag (no key, another key, altered, a
  // replay from a run with another key) or with a counter its sender already used at this socket (a
  // replay within the run) is refused: counted, logged once per peer address and kind, never
  // returned, and the wait goes on. The key is shared, not copied.
  void set_key(std::shared_ptr<const RunKey> key);
  int64_t refused() const;   // frames refused so far, replays included (thread safe)
  int64_t replayed() const;  // of those, the ones with the right tag and a used counter (thread safe)

 protected:
  Socket(Context& ctx, int zmq_type, const SocketOptions& opts);
  bool send_frame(std::string_view frame, std::chrono::milliseconds timeout);
  std::optional<std::string> receive_frame(std::chrono::milliseconds timeout, bool drain_to_latest);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Publisher final : public Socket, public Sender {
 public:
  explicit Publisher(Context& ctx, const SocketOptions& opts = {});
  // Never waits: PUB drops for absent subscribers; the conflated queue keeps the newest frame.
  bool send(std::string_view frame, std::chrono::milliseconds timeout) override;
};

// Subscribed to every frame; receive() returns the newest frame available.
class Subscriber final : public Socket, public Receiver {
 public:
  explicit Subscriber(Context& ctx, const SocketOptions& opts = {});
  std::optional<std::string> receive(std::chrono::milliseconds timeout) override;
};

class Pusher final : public Socket, public Sender {
 public:
  explicit Pusher(Context& ctx, const SocketOptions& opts = {});
  bool send(std::string_view frame, std::chrono::milliseconds timeout) override;
};

// Fair-queues frames from every connected pusher.
class Puller final : public Socket, public Receiver {
 public:
  explicit Puller(Context& ctx, const SocketOptions& opts = {});
  std::optional<std::string> receive(std::chrono::milliseconds timeout) override;
};

// At the end of a role: one warning line with the frames `s` refused (none: nothing is logged), e.g.
// "reward worker rollouts: refused 1204 frames at the socket (3 replays of this run's frames, the
// rest without this run's key)".
void log_refusals(const Socket& s, const std::string& who);

// Counts the frames a receiver dropped, per MessageErrorKind, and logs (rlkv::log_warn) the first
// one of each kind with its reason, so a misconfigured peer shows up once instead of flooding the
// log. Thread safe.
class DropCounter {
 public:
  explicit DropCounter(std::string receiver_name);
  void record(const MessageError& e);
  int64_t count(MessageErrorKind kind) const;
  int64_t total() const;
  std::string summary() const;  // "framing=0 version=0 type=1 payload=2 foreign_run=0 shape=0"

 private:
  std::string name_;
  std::array<std::atomic<int64_t>, kNumMessageErrorKinds> counts_{};
};

// What a receiver checks beyond the frame itself (messages.h validate()); empty / 0 = not checked.
struct ReceiveExpect {
  std::string run_id;
  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;
};

// Receive, decode and validate, within `timeout` in all: bad frames are recorded in `drops` and
// skipped, and waiting goes on for a good one.
std::optional<Message> receive_message(Receiver& r, std::chrono::milliseconds timeout, const ReceiveExpect& expect,
                                       DropCounter& drops);
// The same, taking only one type (others are dropped as MessageErrorKind::kType).
std::optional<PolicyMsg> receive_policy(Receiver& r, std::chrono::milliseconds timeout, const ReceiveExpect& expect,
                                        DropCounter& drops);
std::optional<RolloutGroupMsg> receive_rollout_group(Receiver& r, std::chrono::milliseconds timeout,
                                                     const ReceiveExpect& expect, DropCounter& drops);
std::optional<ScoredGroupMsg> receive_scored_group(Receiver& r, std::chrono::milliseconds timeout,
                                                   const ReceiveExpect& expect, DropCounter& drops);

}  // namespace rlkv
