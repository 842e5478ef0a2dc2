#include "comm/collectives.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

#ifdef RLKV_WITH_DISTRIBUTED
#include <mpi.h>
#endif

namespace rlkv {
namespace {

class Local : public Collectives {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(std::vector<double>&) override {}
  void broadcast(std::string&, int) override {}
  std::vector<std::string> allgather(const std::string& mine) override { return {mine}; }
  void barrier() override {}
  std::unique_ptr<Collectives> split(int) override { return std::make_unique<Local>(); }
  std::unique_ptr<Collectives> split_node() override { return std::make_unique<Local>(); }
  void allreduce_sum(float*, size_t) override {}
  void broadcast(void*, size_t, int) override {}
  void allgather(const void* mine, size_t bytes, void* all) override {
    if (bytes) std::memcpy(all, mine, bytes);
  }
};

#ifdef RLKV_WITH_DISTRIBUTED
void mpi_check(int rc, const char* what) { RLKV_CHECK(rc == MPI_SUCCESS, "MPI ", what, " failed (error ", rc, ")"); }

class Mpi : public Collectives {
  static constexpr size_t kChunkElems = size_t(1) << 28, kChunkBytes = size_t(1) << 30;

 public:
  explicit Mpi(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~Mpi() override {
    if (owned_) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(std::vector<double>& v) override {
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_DOUBLE, MPI_SUM, comm_), "allreduce");
  }
  void broadcast(std::string& bytes, int root) override {
    long long n = (long long)bytes.size();
    mpi_check(MPI_Bcast(&n, 1, MPI_LONG_LONG, root, comm_), "broadcast");
    bytes.resize(size_t(n));
    // Chunks under 2^31 bytes: MPI counts are int.
    for (long long off = 0; off < n; off += (1LL << 30)) {
      const int len = int(std::min<long long>(1LL << 30, n - off));
      mpi_check(MPI_Bcast(bytes.data() + off, len, MPI_BYTE, root, comm_), "broadcast");
    }
  }
  std::vector<std::string> allgather(const std::string& mine) override {
    int len = int(mine.size());
    std::vector<int> lens(static_cast<size_t>(size_));
    mpi_check(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_), "allgather");
    std::vector<int> displs(size_t(size_), 0);
    int total = 0;
    for (int i = 0; i < size_; ++i) {
      displs[size_t(i)] = total;
      total += lens[size_t(i)];
    }
    std::string all(size_t(total), '\0');
    mpi_check(MPI_Allgatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), displs.data(), MPI_BYTE, comm_),
              "allgatherv");
    std::vector<std::string> out;
    for (int i = 0; i < size_; ++i) out.push_back(all.substr(size_t(displs[size_t(i)]), size_t(lens[size_t(i)])));
    return out;
  }
  void barrier() override { mpi_check(MPI_Barrier(comm_), "barrier"); }
  // MPI counts are int: raw buffers go in chunks of at most 2^28 elements / 2^30 bytes.
  void allreduce_sum(float* data, size_t n) override {
    for (size_t off = 0; off < n; off += kChunkElems) {
      const int len = int(std::min(kChunkElems, n - off));
      mpi_check(MPI_Allreduce(MPI_IN_PLACE, data + off, len, MPI_FLOAT, MPI_SUM, comm_), "allreduce");
    }
  }
  void broadcast(void* data, size_t bytes, int root) override {
    for (size_t off = 0; off < bytes; off += kChunkBytes) {
      const int len = int(std::min(kChunkBytes, bytes - off));
      mpi_check(MPI_Bcast(static_cast<char*>(data) + off, len, MPI_BYTE, root, comm_), "broadcast");
    }
  }
  void allgather(const void* mine, size_t bytes, void* all) override {
    RLKV_CHECK(bytes <= kChunkBytes, "allgather of ", bytes, " bytes per rank (at most 2^30)");
    mpi_check(MPI_Allgather(mine, int(bytes), MPI_BYTE, all, int(bytes), MPI_BYTE, comm_), "allgather");
  }
  std::unique_ptr<Collectives> split_node() override {
    MPI_Comm c;
    mpi_check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &c), "comm_split_type");
    return std::make_unique<Mpi>(c, true);
  }
  std::unique_ptr<Collectives> split(int color) override {
    MPI_Comm c;
    mpi_check(MPI_Comm_split(comm_, color, rank_, &c), "comm_split");
    return std::make_unique<Mpi>(c, true);
  }

 private:
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};
#endif

}  // namespace

std::unique_ptr<Collectives> local_collectives() { return std::make_unique<Local>(); }

std::unique_ptr<Collectives> mpi_world() {
#ifdef RLKV_WITH_DISTRIBUTED
  return std::make_unique<Mpi>(MPI_COMM_WORLD, false);
#else
  throw UserError("this build has no MPI (configured with RLKV_WITH_DISTRIBUTED=OFF)");
#endif
}

bool MpiSession::launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

MpiSession::MpiSession(int* argc, char*** argv) {
#ifdef RLKV_WITH_DISTRIBUTED
  if (!launched_by_mpirun()) return;
  // SERIALIZED, not FUNNELED: a tensor-parallel actor group calls MPI from its actor thread (one
  // thread of the rank at a time, the main thread waiting), which FUNNELED leaves undefined.
  int provided = 0;
  mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "init");
  active_ = true;
  serialized_ = provided >= MPI_THREAD_SERIALIZED;
#else
  (void)argc;
  (void)argv;
#endif
}

int MpiSession::world_rank() const {
  int rank = 0;
#ifdef RLKV_WITH_DISTRIBUTED
  if (active_) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
#endif
  return rank;
}

int MpiSession::world_size() const {
  int size = 1;
#ifdef RLKV_WITH_DISTRIBUTED
  if (active_) MPI_Comm_size(MPI_COMM_WORLD, &size);
#endif
  return size;
}

void MpiSession::abort(int code) const {
#ifdef RLKV_WITH_DISTRIBUTED
  if (active_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

MpiSession::~MpiSession() {
#ifdef RLKV_WITH_DISTRIBUTED
  if (active_) MPI_Finalize();
#endif
}

}  // namespace rlkv
