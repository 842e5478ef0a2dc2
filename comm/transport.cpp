// ZeroMQ transports (see transport.h for the guarantees and why each socket option is set).
#include "comm/transport.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/log.h"

namespace rlkv {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Context::Impl {
  zmq::context_t ctx;
  // inproc endpoints bound now by sockets of this context; connect() requires the endpoint here
  // (see transport.h: libzmq 4.3.4 aborts at context end on a never-bound inproc connection).
  std::mutex mu;
  std::multiset<std::string> inproc_bound;
  explicit Impl(int io_threads) : ctx(io_threads) {}
};

Context::Context(int io_threads) {
  RLKV_CHECK(io_threads >= 1, "transport: io_threads must be >= 1, got ", io_threads);
  impl_ = std::make_unique<Impl>(io_threads);
}

Context::~Context() = default;  // zmq_ctx_term: waits until every socket is closed

void Context::shutdown() { impl_->ctx.shutdown(); }

void* Context::native_handle() { return impl_->ctx.handle(); }

std::string tcp_endpoint(const std::string& host, int port) {
  RLKV_CHECK(!host.empty(), "transport: empty host for a tcp endpoint");
  RLKV_CHECK(port >= 0 && port <= 65535, "transport: port ", port, " out of range 0..65535");
  // An IPv6 literal goes in brackets (tcp://[::1]:PORT), as ZeroMQ parses it.
  const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + (port == 0 ? std::string("*") : std::to_string(port));
}

std::string advertised_endpoint(const std::string& bound) {
  for (const char* wildcard : {"tcp://0.0.0.0:", "tcp://[::]:", "tcp://*:"}) {
    const std::string w = wildcard;
    if (bound.compare(0, w.size(), w) != 0) continue;
    char host[256] = {};
    RLKV_CHECK(::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0', "transport: ", bound,
               " binds every interface, and this machine's host name, which its peers would connect to, is "
               "unknown: set placement.bind_address to a routable address");
    return "tcp://" + std::string(host) + ":" + bound.substr(w.size());
  }
  return bound;
}

struct Socket::Impl {
  Context::Impl& ctx;
  zmq::socket_t sock;
  bool closed = false;
  bool terminated = false;                // the context was shut down: every call fails fast from now on
  std::vector<std::string> inproc_bound;  // ours, removed from ctx.inproc_bound at close
  std::shared_ptr<const RunKey> key;      // frame authentication, when set
  FrameOrigin origin;                     // this socket's sender id and frames sealed so far (with a key)
  ReplayGuard replays;                    // the frames accepted per sender (with a key)
  std::atomic<int64_t> refused{0}, replayed{0};
  std::set<std::string> refused_peers, replayed_peers, multipart_peers;  // peers already named in the log
  Impl(Context::Impl& c, int type) : ctx(c), sock(c.ctx, type) {}
  bool usable() const { return !closed && !terminated; }
  // Counts a refused frame and names its peer in the log, once per peer and kind: without this run's
  // key, with it but a counter this socket already took from its sender (or 0), or in several parts.
  enum class Refusal { kKey, kReplay, kMultipart };
  void refuse(const std::string& peer, Refusal why, uint64_t counter = 0) {
    refused.fetch_add(1);
    if (why == Refusal::kMultipart) {
      if (multipart_peers.insert(peer).second)
        log_warn(str_cat("transport: refused a multipart message from ", peer,
                         " (rlkv sends every frame as one part); further ones from that peer are only counted"));
      return;
    }
    if (why == Refusal::kKey) {
      if (refused_peers.insert(peer).second)
        log_warn(str_cat("transport: refused a frame from ", peer,
                         " that does not carry this run's key (placement.key_file / rlkv actor --key-file); "
                         "further frames from that peer are only counted"));
      return;
    }
    replayed.fetch_add(1);
    if (replayed_peers.insert(peer).second)
      log_warn(str_cat("transport: refused a frame from ", peer, " that carries this run's key but a counter (",
                       counter,
                       ") this socket already accepted from its sender, or one older than its window (or 0, which "
                       "no sender uses): a replayed frame; further such frames from that peer are only counted"));
  }
};

namespace {

bool is_inproc(const std::string& endpoint) { return endpoint.rfind("inproc://", 0) == 0; }

// ZeroMQ takes IPv6 addresses only with ZMQ_IPV6 set, and with it set resolves host names to IPv6
// first ("localhost" to ::1, where a peer bound 127.0.0.1 listens on IPv4 only): so it is set for
// endpoints that name an IPv6 literal (tcp://[::1]:PORT) and for no other.
void set_ipv6_for(zmq::socket_t& s, const std::string& endpoint) {
  s.set(zmq::sockopt::ipv6, endpoint.rfind("tcp://[", 0) == 0);
}

// The host a tcp:// endpoint names, as written ("tcp://[::1]:5555" -> "[::1]"; ZeroMQ's "SOURCE;"
// prefix skipped), or "" for other transports.
std::string tcp_host(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return "";
  std::string rest = endpoint.substr(6);
  const size_t semi = rest.rfind(';');
  if (semi != std::string::npos) rest.erase(0, semi + 1);
  const size_t colon = rest.rfind(':');
  return colon == std::string::npos ? "" : rest.substr(0, colon);
}

// ZeroMQ accepts a connection to a host name that does not resolve and retries it forever in the
// background, so a mistyped host would look like a peer that never answers: resolved here first,
// as ZeroMQ will (IPv4 only unless the host is bracketed, which turns ZMQ_IPV6 on: set_ipv6_for).
// Any failure is an error, a temporary one of the resolver too: the message names it.
void check_resolves(const std::string& endpoint) {
  std::string host = tcp_host(endpoint);
  if (host.empty() || host == "*") return;
  const bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = v6 ? AF_UNSPEC : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (found != nullptr) ::freeaddrinfo(found);
  if (rc != 0)
    throw_user_error(str_cat("transport: cannot connect to ", endpoint, ": host '", host, "' does not resolve",
                             v6 ? " (" : " to an IPv4 address (", ::gai_strerror(rc), ")"));
}

milliseconds remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? left : milliseconds(0);
}

// Errors that send/receive absorb: EAGAIN (not ready), EINTR (signal: retry), ETERM (shut down).
// Anything else on a socket we own and never closed under the caller is our bug.
[[noreturn]] void unexpected(const zmq::error_t& e, const char* what) {
  throw_internal_error(__FILE__, __LINE__, what, e.what());
}

}  // namespace

Socket::Socket(Context& ctx, int zmq_type, const SocketOptions& opts) {
  RLKV_CHECK(opts.linger_ms >= 0, "transport: linger_ms must be >= 0");
  RLKV_CHECK(opts.send_hwm >= 1 && opts.receive_hwm >= 1, "transport: high-water marks must be >= 1");
  RLKV_CHECK(opts.heartbeat_ms >= 0, "transport: heartbeat_ms must be >= 0");
  impl_ = std::make_unique<Impl>(*ctx.impl_, zmq_type);
  zmq::socket_t& s = impl_->sock;
  s.set(zmq::sockopt::linger, opts.linger_ms);
  s.set(zmq::sockopt::sndhwm, opts.send_hwm);
  s.set(zmq::sockopt::rcvhwm, opts.receive_hwm);
  if (opts.max_message_bytes > 0) s.set(zmq::sockopt::maxmsgsize, opts.max_message_bytes);
  if (opts.heartbeat_ms > 0) {
    s.set(zmq::sockopt::heartbeat_ivl, opts.heartbeat_ms);
    s.set(zmq::sockopt::heartbeat_timeout, 3 * opts.heartbeat_ms);
  }
  // Options that must precede bind/connect.
  if (zmq_type == ZMQ_PUB || zmq_type == ZMQ_SUB) s.set(zmq::sockopt::conflate, true);
  if (zmq_type == ZMQ_PUSH) s.set(zmq::sockopt::immediate, true);
  if (zmq_type == ZMQ_SUB) s.set(zmq::sockopt::subscribe, "");
}

Socket::~Socket() { close(); }

std::string Socket::bind(const std::string& endpoint) {
  RLKV_CHECK(!impl_->closed, "transport: bind on a closed socket (", endpoint, ")");
  std::string resolved;
  try {
    set_ipv6_for(impl_->sock, endpoint);
    impl_->sock.bind(endpoint);
    resolved = impl_->sock.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    throw_user_error(str_cat("transport: cannot bind ", endpoint, ": ", e.what()));
  }
  if (is_inproc(resolved)) {
    std::lock_guard<std::mutex> lock(impl_->ctx.mu);
    impl_->ctx.inproc_bound.insert(resolved);
    impl_->inproc_bound.push_back(resolved);
  }
  return resolved;
}

void Socket::connect(const std::string& endpoint) {
  RLKV_CHECK(!impl_->closed, "transport: connect on a closed socket (", endpoint, ")");
  if (is_inproc(endpoint)) {
    std::lock_guard<std::mutex> lock(impl_->ctx.mu);
    RLKV_CHECK(impl_->ctx.inproc_bound.count(endpoint) > 0, "transport: cannot connect to ", endpoint,
               ": nothing is bound there in this Context (bind inproc endpoints before connecting to them)");
  }
  check_resolves(endpoint);
  try {
    set_ipv6_for(impl_->sock, endpoint);
    impl_->sock.connect(endpoint);
  } catch (const zmq::error_t& e) {
    throw_user_error(str_cat("transport: cannot connect to ", endpoint, ": ", e.what()));
  }
}

void Socket::close() {
  if (!impl_ || impl_->closed) return;
  impl_->closed = true;
  impl_->sock.close();  // returns at once; the context keeps queued frames for up to linger_ms
  std::lock_guard<std::mutex> lock(impl_->ctx.mu);
  for (const std::string& e : impl_->inproc_bound) impl_->ctx.inproc_bound.erase(impl_->ctx.inproc_bound.find(e));
  impl_->inproc_bound.clear();
}

bool Socket::closed() const { return impl_->closed; }

void Socket::set_key(std::shared_ptr<const RunKey> key) {
  impl_->key = std::move(key);
  if (impl_->key) impl_->origin = FrameOrigin::fresh();
}

int64_t Socket::refused() const { return impl_->refused.load(); }

int64_t Socket::replayed() const { return impl_->replayed.load(); }

bool Socket::send_frame(std::string_view frame, milliseconds timeout) {
  RLKV_ASSERT(timeout.count() >= 0, "send timeout must be >= 0 (nothing blocks forever)");
  if (!impl_->usable()) return false;
  const auto deadline = Clock::now() + timeout;
  // Untouched by a send that fails with EAGAIN. With a key: the frame, then its trailer under the
  // socket's next counter (a frame that is never sent leaves a gap, which receivers allow).
  zmq::message_t msg(frame.size() + (impl_->key ? kFrameTrailerBytes : 0));
  std::memcpy(msg.data(), frame.data(), frame.size());
  if (impl_->key) {
    ++impl_->origin.counter;
    impl_->key->seal(frame, impl_->origin, static_cast<unsigned char*>(msg.data()) + frame.size());
  }
  try {
    for (;;) {
      try {
        if (impl_->sock.send(msg, zmq::send_flags::dontwait)) return true;
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      const milliseconds left = remaining(deadline);
      if (left.count() == 0) return false;
      zmq::pollitem_t item{impl_->sock.handle(), 0, ZMQ_POLLOUT, 0};
      try {
        zmq::poll(&item, 1, left);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      // Poll can report room that another pipe takes first; loop until the deadline either way.
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM) {
      impl_->terminated = true;
      return false;
    }
    unexpected(e, "zmq send");
  }
}

std::optional<std::string> Socket::receive_frame(milliseconds timeout, bool drain_to_latest) {
  RLKV_ASSERT(timeout.count() >= 0, "receive timeout must be >= 0 (nothing blocks forever)");
  if (!impl_->usable()) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  zmq::socket_t& s = impl_->sock;
  // One whole ZeroMQ message. A multipart message (never sent by us) is refused part by part without
  // being joined: ZMQ_MAXMSGSIZE bounds each part, not their sum. `first` keeps the first part
  // alive: its metadata names the peer when a frame is refused.
  zmq::message_t first;
  auto peer = [&first] {
    const char* addr = zmq_msg_gets(first.handle(), "Peer-Address");  // tcp only
    return std::string(addr != nullptr ? addr : "a peer without an address (ipc / inproc)");
  };
  // 1: a one-part message in `out`; 0: none queued; -1: a multipart message, dropped.
  auto take_any = [&s, &first](std::string& out) -> int {
    if (!s.recv(first, zmq::recv_flags::dontwait)) return 0;
    if (!first.more()) {
      out.assign(first.data<char>(), first.size());
      return 1;
    }
    for (bool more = true; more;) {
      zmq::message_t part;
      if (!s.recv(part, zmq::recv_flags::none)) break;  // the rest of a message arrives atomically
      more = part.more();
    }
    return -1;
  };
  // A frame that passed the key and replay checks (with a key): its trailer removed. Refused frames
  // are skipped until the deadline: a stream of them cannot hold a receive past its timeout.
  auto take = [&](std::string& out) -> bool {
    for (;;) {
      const int got = take_any(out);
      if (got == 0) return false;
      if (got < 0) {
        impl_->refuse(peer(), Impl::Refusal::kMultipart);
      } else {
        if (!impl_->key) return true;
        std::string_view body;
        FrameOrigin origin;
        const bool genuine = impl_->key->open(out, &body, &origin);
        if (genuine && impl_->replays.accept(origin)) {
          out.resize(body.size());
          return true;
        }
        impl_->refuse(peer(), genuine ? Impl::Refusal::kReplay : Impl::Refusal::kKey, origin.counter);
      }
      if (remaining(deadline).count() == 0) return false;
    }
  };
  try {
    std::string frame;
    for (;;) {
      bool got = false;
      try {
        got = take(frame);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      if (got) break;
      const milliseconds left = remaining(deadline);
      if (left.count() == 0) return std::nullopt;
      zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, left);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
    }
    if (drain_to_latest) {
      std::string newer;
      while (take(newer)) frame.swap(newer);
    }
    return frame;
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM) {
      impl_->terminated = true;
      return std::nullopt;
    }
    unexpected(e, "zmq receive");
  }
}

Publisher::Publisher(Context& ctx, const SocketOptions& opts) : Socket(ctx, ZMQ_PUB, opts) {}
bool Publisher::send(std::string_view frame, milliseconds timeout) { return send_frame(frame, timeout); }

Subscriber::Subscriber(Context& ctx, const SocketOptions& opts) : Socket(ctx, ZMQ_SUB, opts) {}
std::optional<std::string> Subscriber::receive(milliseconds timeout) { return receive_frame(timeout, true); }

Pusher::Pusher(Context& ctx, const SocketOptions& opts) : Socket(ctx, ZMQ_PUSH, opts) {}
bool Pusher::send(std::string_view frame, milliseconds timeout) { return send_frame(frame, timeout); }

Puller::Puller(Context& ctx, const SocketOptions& opts) : Socket(ctx, ZMQ_PULL, opts) {}
std::optional<std::string> Puller::receive(milliseconds timeout) { return receive_frame(timeout, false); }

void log_refusals(const Socket& s, const std::string& who) {
  const int64_t refused = s.refused(), replayed = s.replayed();
  if (refused == 0) return;
  log_warn(str_cat(who, ": refused ", refused, " frames at the socket (", replayed,
                   " replays of this run's frames, the rest without this run's key)"));
}

// ---- drop accounting and typed receive --------------------------------------------------------------

DropCounter::DropCounter(std::string receiver_name) : name_(std::move(receiver_name)) {
  for (auto& c : counts_) c.store(0);
}

void DropCounter::record(const MessageError& e) {
  const int k = static_cast<int>(e.kind);
  RLKV_ASSERT(k >= 0 && k < kNumMessageErrorKinds, "message error kind ", k);
  if (counts_[k].fetch_add(1) == 0)
    log_warn(str_cat(name_, ": dropped a message (", message_error_kind_name(e.kind), "): ", e.what(),
                     " [further drops of this kind are only counted]"));
}

int64_t DropCounter::count(MessageErrorKind kind) const { return counts_[static_cast<int>(kind)].load(); }

int64_t DropCounter::total() const {
  int64_t t = 0;
  for (const auto& c : counts_) t += c.load();
  return t;
}

std::string DropCounter::summary() const {
  std::string s;
  for (int k = 0; k < kNumMessageErrorKinds; ++k)
    s += str_cat(k ? " " : "", message_error_kind_name(static_cast<MessageErrorKind>(k)), "=", counts_[k].load());
  return s;
}

namespace {

void validate_message(const Message& m, const ReceiveExpect& e) {
  if (auto* p = std::get_if<PolicyMsg>(&m)) validate(*p, e.run_id, e.num_layers, e.num_kv_heads);
  if (auto* g = std::get_if<RolloutGroupMsg>(&m)) validate(*g, e.run_id, e.num_layers, e.num_kv_heads);
  if (auto* s = std::get_if<ScoredGroupMsg>(&m)) validate(*s, e.run_id, e.num_layers, e.num_kv_heads);
  if (auto* h = std::get_if<HelloMsg>(&m)) validate(*h, e.run_id);
}

// Receives until a frame of type `want` decodes and validates, or the time is up. Frames of another
// type are dropped from their header alone, without decoding the payload.
template <typename T, typename Decode>
std::optional<T> receive_typed(Receiver& r, milliseconds timeout, const ReceiveExpect& expect, DropCounter& drops,
                               MessageType want, Decode decode) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::optional<std::string> frame = r.receive(remaining(deadline));
    if (!frame) return std::nullopt;
    try {
      const MessageType got = peek_message_type(frame->data(), frame->size());
      if (got != want)
        throw MessageError(MessageErrorKind::kType,
                           str_cat("expected a ", message_type_name(want), " message, got ", message_type_name(got)));
      T m = decode(frame->data(), frame->size());
      validate(m, expect.run_id, expect.num_layers, expect.num_kv_heads);
      return m;
    } catch (const MessageError& e) {
      drops.record(e);
    }
  }
}

}  // namespace

std::optional<Message> receive_message(Receiver& r, milliseconds timeout, const ReceiveExpect& expect,
                                       DropCounter& drops) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::optional<std::string> frame = r.receive(remaining(deadline));
    if (!frame) return std::nullopt;
    try {
      Message m = decode_message(*frame);
      validate_message(m, expect);
      return m;
    } catch (const MessageError& e) {
      drops.record(e);
    }
  }
}

std::optional<PolicyMsg> receive_policy(Receiver& r, milliseconds timeout, const ReceiveExpect& expect,
                                        DropCounter& drops) {
  return receive_typed<PolicyMsg>(r, timeout, expect, drops, MessageType::kPolicy,
                                  [](const void* d, size_t n) { return decode_policy(d, n); });
}

std::optional<RolloutGroupMsg> receive_rollout_group(Receiver& r, milliseconds timeout, const ReceiveExpect& expect,
                                                     DropCounter& drops) {
  return receive_typed<RolloutGroupMsg>(r, timeout, expect, drops, MessageType::kRolloutGroup,
                                        [](const void* d, size_t n) { return decode_rollout_group(d, n); });
}

std::optional<ScoredGroupMsg> receive_scored_group(Receiver& r, milliseconds timeout, const ReceiveExpect& expect,
                                                   DropCounter& drops) {
  return receive_typed<ScoredGroupMsg>(r, timeout, expect, drops, MessageType::kScoredGroup,
                                       [](const void* d, size_t n) { return decode_scored_group(d, n); });
}

}  // namespace rlkv
