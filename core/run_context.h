// What every role of a training run shares: the run's identity, the endpoints the roles found each
// other on, and a stop flag. Roles are plain functions that run until the learner publishes a stop
// policy (or the flag is raised), so the same code runs as threads of one process (inproc://) and as
// ranks of an mpirun job (tcp://, endpoints exchanged with MPI at start-up).
#pragma once

#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace rlkv {

class RunKey;  // comm/frame_auth.h

struct RunEndpoints {
  std::string policy;                 // learner's PUB
  std::vector<std::string> rollouts;  // reward workers' PULLs (actors push to all; ZeroMQ round-robins)
  std::string scored;                 // learner's PULL
  std::shared_ptr<const RunKey> key;  // every socket of the run authenticates its frames with it; null: none
};

struct RunIdentity {
  std::string run_id;
  int64_t num_layers = 0, num_kv_heads = 0;
};

// Raised by the launcher on SIGINT / SIGTERM or when a role fails; every role loop polls it.
std::atomic<bool>& run_stop_flag();

// A role on a thread of its own: runs `f`, keeps its exception and raises the run's stop flag when
// it throws, so that one failing role stops the others. Neither copied nor moved (the thread writes
// into this object: keep them in a std::deque); destruction joins.
class RoleThread {
 public:
  template <typename F>
  explicit RoleThread(F f) {
    t_ = std::thread([this, f]() mutable {
      try {
        f();
      } catch (...) {
        error_ = std::current_exception();
        run_stop_flag().store(true);
      }
      done_.store(true);
    });
  }
  RoleThread(const RoleThread&) = delete;
  RoleThread& operator=(const RoleThread&) = delete;
  ~RoleThread() { join(); }
  void join() {
    if (t_.joinable()) t_.join();
  }
  bool done() const { return done_.load(); }           // `f` has returned or thrown
  std::exception_ptr error() const { return error_; }  // valid once joined

 private:
  std::thread t_;
  std::exception_ptr error_;
  std::atomic<bool> done_{false};
};

}  // namespace rlkv
