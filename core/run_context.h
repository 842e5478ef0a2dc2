// What every role of a training run shares: the run's identity, the endpoints the roles found each
// other on, and a stop flag. Roles are plain functions that run until the learner publishes a stop
// policy (or the flag is raised), so the same code runs as threads of one process (inproc://) and as
// ranks of an mpirun job (tcp://, endpoints exchanged with MPI at start-up).
#pragma once

#include <atomic>
#include <string>
#include <vector>

namespace rlkv {

struct RunEndpoints {
  std::string policy;                 // learner's PUB
  std::vector<std::string> rollouts;  // reward workers' PULLs (actors push to all; ZeroMQ round-robins)
  std::string scored;                 // learner's PULL
};

struct RunIdentity {
  std::string run_id;
  int64_t num_layers = 0, num_kv_heads = 0;
};

// Raised by the launcher on SIGINT / SIGTERM or when a role fails; every role loop polls it.
std::atomic<bool>& run_stop_flag();

}  // namespace rlkv
