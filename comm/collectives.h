// The few collective operations the pipeline needs, behind an interface (as in gloo): a local
// implementation for one process, and MPI for ranks of an mpirun job. Used to exchange endpoints at
// start-up (allgather), to hand each learner rank its share of a step's groups (broadcast), to sum
// the learners' partial gradients (allreduce), and, through the raw-buffer operations, as the CPU
// backend of the tensor collectives of tensor-parallel actors (runtime/tensor_comm.h).
// Thread safety: one thread per communicator.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace rlkv {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void allreduce_sum(std::vector<double>& values) = 0;  // in place, every rank the same length
  virtual void broadcast(std::string& bytes, int root) = 0;
  virtual std::vector<std::string> allgather(const std::string& mine) = 0;
  virtual void barrier() = 0;
  // Raw buffers (host memory), for tensor collectives. Every rank passes the same n / bytes.
  virtual void allreduce_sum(float* data, size_t n) = 0;                  // in place
  virtual void broadcast(void* data, size_t bytes, int root) = 0;         // in place
  virtual void allgather(const void* mine, size_t bytes, void* all) = 0;  // all: size() * bytes, rank order
  // A communicator over the ranks that pass the same `color` (MPI_Comm_split); ordered by rank.
  virtual std::unique_ptr<Collectives> split(int color) = 0;
  // The ranks of this communicator that share a node (MPI_COMM_TYPE_SHARED); ordered by rank.
  virtual std::unique_ptr<Collectives> split_node() = 0;
};

// One process: every operation is the identity.
std::unique_ptr<Collectives> local_collectives();

// MPI_COMM_WORLD (MPI must be initialised, see MpiSession). Only in builds with MPI.
std::unique_ptr<Collectives> mpi_world();

// MPI_Init_thread / MPI_Finalize for the lifetime of the object; does nothing when the process was
// not started by mpirun (no OMPI_COMM_WORLD_SIZE / PMI_SIZE in the environment) or MPI is not built.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  bool active() const { return active_; }
  static bool launched_by_mpirun();
  // This process's rank in MPI_COMM_WORLD and its size (0 and 1 when not active).
  int world_rank() const;
  int world_size() const;
  // Ends every rank of the job with `code` (MPI_Abort): for an error on one rank, which the others
  // would otherwise wait for in a collective forever. Inactive: std::exit(code).
  [[noreturn]] void abort(int code) const;
  // Whether MPI granted MPI_THREAD_SERIALIZED (calls from any thread, one at a time), which a
  // tensor-parallel actor group needs; true when not active.
  bool threads_serialized() const { return serialized_; }

 private:
  bool active_ = false;
  bool serialized_ = true;
};

}  // namespace rlkv
