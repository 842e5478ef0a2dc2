#include "runtime/static_decode.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

#include "core/error.h"
#include "runtime/torch_attention.h"

#ifdef RLKV_TORCH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace rlkv {

#ifdef RLKV_TORCH_CUDA
namespace {
// LibTorch's graph bookkeeping is shared by the whole process and takes no lock (torch 2.11): each
// CUDAGraph registers with its device's default CUDA generator state at capture_begin (an
// unordered_set of graphs, and two device tensors that capture_begin and every replay fill, in
// CUDAGeneratorState::register_graph, capture_prologue and replay_prologue) and unregisters when it
// is destroyed. Actor threads sharing a GPU capture, replay and destroy graphs at the same time, so
// those calls are serialized here. Recursive: a capture retires (destroys) a graph while it holds
// the lock. Leaked: graphs may be destroyed while the process exits. A rule that follows from the
// same shared state: while one thread captures on a device, another must not draw eager random
// numbers from that device's default generator (LibTorch refuses an offset increment outside the
// capture); generation therefore draws its uniforms on the host (runtime/sampling_device.h).
std::recursive_mutex& graph_registry_mutex() {
  static auto* m = new std::recursive_mutex;
  return *m;
}

// The nodes of the graph being captured on `stream` so far: {kernels, all}; {-1, -1} when the CUDA
// runtime does not say (a measurement: it never fails the capture).
std::pair<int64_t, int64_t> captured_nodes(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaGraph_t graph = nullptr;
  size_t n = 0;
  if (cudaStreamGetCaptureInfo(stream, &status, nullptr, &graph) != cudaSuccess ||
      status != cudaStreamCaptureStatusActive || graph == nullptr ||
      cudaGraphGetNodes(graph, nullptr, &n) != cudaSuccess) {
    (void)cudaGetLastError();
    return {-1, -1};
  }
  std::vector<cudaGraphNode_t> nodes(n);
  if (n > 0 && cudaGraphGetNodes(graph, nodes.data(), &n) != cudaSuccess) {
    (void)cudaGetLastError();
    return {-1, -1};
  }
  int64_t kernels = 0;
  for (size_t i = 0; i < n; ++i) {
    cudaGraphNodeType type;
    if (cudaGraphNodeGetType(nodes[i], &type) != cudaSuccess) {
      (void)cudaGetLastError();
      return {-1, -1};
    }
    kernels += type == cudaGraphNodeTypeKernel ? 1 : 0;
  }
  return {kernels, int64_t(n)};
}
}  // namespace
#endif

struct StaticDecode::Graph {
#ifdef RLKV_TORCH_CUDA
  Graph() : graph(std::make_unique<at::cuda::CUDAGraph>()) {}
  ~Graph() {
    const std::lock_guard<std::recursive_mutex> lock(graph_registry_mutex());
    graph.reset();
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

#ifdef RLKV_TORCH_CUDA
// A CUDA stream created for one GraphShare's captures, at the device's highest priority, and
// destroyed with it. Not one of LibTorch's pool streams: those are handed out round-robin (32 per
// priority and device), so with enough generators alive a pool stream can be another thread's
// capture stream or its current stream, and work that another thread launches onto a stream while
// it captures is recorded into the graph (thread-local capture mode guards API calls, not launches).
// High priority: LibTorch instantiates graphs with their nodes' priorities, so replayed decode steps
// run at high priority wherever they are launched (eager work of other threads, a prefill, yields).
class CaptureStream {
 public:
  explicit CaptureStream(c10::DeviceIndex device) : device_(device) {
    const c10::cuda::CUDAGuard guard(device);
    int least = 0, greatest = 0;
    C10_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    C10_CUDA_CHECK(cudaStreamCreateWithPriority(&raw_, cudaStreamNonBlocking, greatest));
  }
  // Work still queued on the stream finishes first (the driver releases it after); captured graphs
  // do not refer to the stream they were captured on.
  ~CaptureStream() { (void)cudaStreamDestroy(raw_); }
  CaptureStream(const CaptureStream&) = delete;
  CaptureStream& operator=(const CaptureStream&) = delete;
  c10::cuda::CUDAStream get() const { return c10::cuda::getStreamFromExternal(raw_, device_); }

 private:
  c10::DeviceIndex device_;
  cudaStream_t raw_ = nullptr;
};
#endif

// Made by StaticDecodes for its StaticDecodes, and by a StaticDecode given none for itself.
class GraphShare {
 public:
#ifdef RLKV_TORCH_CUDA
  explicit GraphShare(c10::DeviceIndex device)
      : device_(device), pool_(at::cuda::graph_pool_handle()), stream_(device) {
    c10::cuda::CUDACachingAllocator::createOrIncrefPool(device_, pool_);
  }
  // After the last graph (each holds this object): what the pool keeps is freed at the allocator's
  // next emptyCache or out-of-memory retry.
  ~GraphShare() { c10::cuda::CUDACachingAllocator::releasePool(device_, pool_); }
  GraphShare(const GraphShare&) = delete;
  GraphShare& operator=(const GraphShare&) = delete;
  c10::MempoolId_t pool() const { return pool_; }
  c10::cuda::CUDAStream stream() const { return stream_.get(); }
  int users() const { return c10::cuda::CUDACachingAllocator::getPoolUseCount(device_, pool_); }

 private:
  c10::DeviceIndex device_;
  c10::MempoolId_t pool_;
  CaptureStream stream_;
#endif
};

#ifdef RLKV_TORCH_CUDA
namespace {
std::shared_ptr<GraphShare> graph_share_for(const at::Device& dev) {
  return std::make_shared<GraphShare>(dev.has_index() ? dev.index() : c10::cuda::current_device());
}
}  // namespace
#endif

int64_t device_reserved_bytes(const at::Device& device, bool release_unused) {
#ifdef RLKV_TORCH_CUDA
  if (!device.is_cuda()) return 0;
  const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
  c10::cuda::getCurrentCUDAStream(index).synchronize();
  if (release_unused) c10::cuda::CUDACachingAllocator::emptyCache();
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  return stats.reserved_bytes[size_t(c10::CachingDeviceAllocator::StatType::AGGREGATE)].current;
#else
  (void)device;
  (void)release_unused;
  return 0;
#endif
}

StaticDecode::StaticDecode(const Model& model, KvCache& cache, int64_t batch, StaticDecodeOptions opts)
    : model_(model), cache_(cache), batch_(batch), opts_(opts) {
  RLKV_ASSERT(batch >= 1, "StaticDecode: batch must be >= 1");
  RLKV_ASSERT(model.tp() == nullptr || model.tp()->size() == 1, "StaticDecode: not for tensor-parallel models");
  const at::Device dev = model.device();
  use_graph_ = opts.cuda_graph && dev.is_cuda();
#ifndef RLKV_TORCH_CUDA
  RLKV_CHECK(!use_graph_, "CUDA graphs need a CUDA LibTorch, which this build does not have");
#else
  if (use_graph_ && !opts_.graph_share) opts_.graph_share = graph_share_for(dev);
#endif
  const ModelConfig& c = model.local_config();
  const int64_t L = c.num_layers, H = c.num_kv_heads, D = c.head_dim;
  entries_ = L * batch * H;
  const int64_t bytes = entries_ * int64_t(sizeof(rlkv_kv_span) + sizeof(rlkv_kv_write_item));
  const bool gpu = !dev.is_cpu();
  auto host = [&](at::ScalarType t, int64_t n) {
    return at::empty({n}, at::TensorOptions().dtype(t).pinned_memory(gpu));
  };
  tables_host_ = host(at::kByte, bytes);
  pos_host_ = host(at::kLong, batch);
  tok_host_ = host(at::kLong, batch);
  if (gpu) {
    tables_dev_ = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).device(dev));
    pos_dev_ = at::empty({batch}, at::TensorOptions().dtype(at::kLong).device(dev));
    tok_dev_ = at::empty({batch}, at::TensorOptions().dtype(at::kLong).device(dev));
  } else {
    tables_dev_ = tables_host_;
    pos_dev_ = pos_host_;
    tok_dev_ = tok_host_;
  }
  const auto opt = at::TensorOptions().dtype(model.dtype()).device(dev);
  pad_kv_ = at::zeros({2, batch, H, D}, opt);
  out_ = at::empty({batch, model.config().hidden_size}, opt);
  max_len_ = opts.max_len;
}

StaticDecode::~StaticDecode() = default;

void StaticDecode::compute() {
  const ModelConfig& c = model_.local_config();
  const int64_t BH = batch_ * c.num_kv_heads;
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  const auto* spans = static_cast<const rlkv_kv_span*>(tables_dev_.data_ptr());
  const auto* items = reinterpret_cast<const rlkv_kv_write_item*>(static_cast<const char*>(tables_dev_.data_ptr()) +
                                                                  entries_ * int64_t(sizeof(rlkv_kv_span)));
  const rlkv_dtype kt = to_kv_dtype(model_.dtype());
  const at::Device dev = model_.device();
  // With the fused layer kernels the q / k / v kernel stores K / V through the items itself (their
  // sources in kv_new_ unread); else they are copied into kv_new_ and written by the KV-write kernel.
  const bool fused_write = model_.fused_kv_write();
  at::Tensor x = model_.forward_decode_with(
      tok_dev_, pos_dev_,
      [&](int64_t l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        if (!fused_write) {
          RLKV_ASSERT(kv_new_.defined(), "StaticDecode: no K / V buffer for the KV-write kernel");
          kv_new_[l][0].copy_(k);
          kv_new_[l][1].copy_(v);
          kv_write_resident(items + l * BH, BH, c.head_dim, kt, dev, opts_.num_threads);
        }
        return decode_attention_resident(q, spans + l * BH, c.num_kv_heads, scale, max_len_, opts_.num_threads);
      },
      fused_write ? items : nullptr);
  out_.copy_(x);
}

void StaticDecode::capture() {
#ifdef RLKV_TORCH_CUDA
  const at::Device dev = model_.device();
  c10::cuda::getCurrentCUDAStream(dev.index()).synchronize();  // this step's uploads have landed
  RLKV_ASSERT(opts_.graph_share, "StaticDecode: a graph step without its GraphShare");
  c10::cuda::CUDAStream side = opts_.graph_share->stream();
  {
    c10::cuda::CUDAStreamGuard guard(side);
    compute();  // warm-up outside the capture (cuBLAS handles and workspaces); also runs this step
    side.synchronize();
    const std::lock_guard<std::recursive_mutex> lock(graph_registry_mutex());
    graph_ = std::make_unique<Graph>();
    // The allocators hold on to a graph from capture_begin to capture_end (the filter that routes
    // allocations into the pool refers to it): when either call fails, the graph is never freed, and
    // the error ends the rollouts (graphs cannot be captured safely in this process any more).
    auto abandon = [&] { (void)graph_.release(); };
    // Thread-local capture mode: in `rlkv train`, actor and reward threads share the process, and
    // the default (global) mode would fail their unsafe CUDA calls (a blocking copy, a pinned
    // allocation) while this thread captures, and invalidate the capture.
    try {
      graph_->graph->capture_begin(opts_.graph_share->pool(), cudaStreamCaptureModeThreadLocal);
    } catch (...) {
      abandon();
      throw;
    }
    try {
      compute();
      std::tie(graph_kernels_, graph_nodes_) = captured_nodes(side.stream());
    } catch (...) {
      // End the capture (leaving the stream capturing would break every later launch on it); the
      // graph is retired, not freed (see retired_), and the next step captures again.
      try {
        graph_->graph->capture_end();
      } catch (...) {
        abandon();
        throw;
      }
      retired_ = std::move(graph_);
      throw;
    }
    try {
      graph_->graph->capture_end();
    } catch (...) {
      abandon();
      throw;
    }
    retired_.reset();
  }
  ++captures_;
#endif
}

at::Tensor StaticDecode::step(const at::Tensor& tokens, const std::vector<int64_t>& seqs) {
  const int64_t n = int64_t(seqs.size());
  RLKV_ASSERT(n >= 1 && n <= batch_ && tokens.dim() == 1 && tokens.size(0) == n, "StaticDecode::step: ", n,
              " sequences / ", tokens.numel(), " tokens for batch ", batch_);
  const at::Device dev = model_.device();
  const std::vector<int64_t> positions = cache_.begin_step(seqs);
  const int64_t longest = *std::max_element(positions.begin(), positions.end()) + 1;
  if (longest > max_len_) {
    max_len_ = 2 * longest;  // doubling: few re-captures as sequences lengthen
    // The attention launch shape depends on max_len: a new capture, the old graph kept until it ends.
    if (graph_) retired_ = std::move(graph_);
  }
#ifdef RLKV_TORCH_CUDA
  // The pinned mirrors are rewritten below: the previous step's copies out of them must have run.
  // (Single-buffered: this waits for the previous step, which the generator's sampling on the host
  // has waited for anyway; double buffering with events would let steps overlap.)
  if (dev.is_cuda()) c10::cuda::getCurrentCUDAStream(dev.index()).synchronize();
#endif
  auto* hs = static_cast<rlkv_kv_span*>(tables_host_.data_ptr());
  auto* hi = reinterpret_cast<rlkv_kv_write_item*>(static_cast<char*>(tables_host_.data_ptr()) +
                                                   entries_ * int64_t(sizeof(rlkv_kv_span)));
  // kv_new_ is made where the KV-write kernel reads it (not with the fused layer kernels), at the
  // first step that needs it.
  if (!model_.fused_kv_write() && !kv_new_.defined()) {
    const ModelConfig& c = model_.local_config();
    kv_new_ = at::zeros({c.num_layers, 2, batch_, c.num_kv_heads, c.head_dim},
                        at::TensorOptions().dtype(model_.dtype()).device(dev));
  }
  // The write items' sources: kv_new_'s rows, or none where the q / k / v kernel stores K / V itself.
  const bool sources = kv_new_.defined();
  const int64_t layer_stride = sources ? kv_new_[0].numel() * kv_new_.element_size() : 0;
  const char* k_new = sources ? static_cast<const char*>(kv_new_[0][0].data_ptr()) : nullptr;
  const char* v_new = sources ? static_cast<const char*>(kv_new_[0][1].data_ptr()) : nullptr;
  cache_.step_tables(seqs, hs, hi, k_new, v_new, layer_stride, batch_);
  if (n < batch_) pad_tables(n, hs, hi, k_new, v_new, layer_stride);
  int64_t* pos = pos_host_.data_ptr<int64_t>();
  std::copy(positions.begin(), positions.end(), pos);
  std::fill(pos + n, pos + batch_, 0);
  tok_host_.narrow(0, 0, n).copy_(tokens.to(at::kCPU).to(at::kLong));
  tok_host_.narrow(0, n, batch_ - n).zero_();
  if (!dev.is_cpu()) {
    tables_dev_.copy_(tables_host_, /*non_blocking=*/true);
    pos_dev_.copy_(pos_host_, /*non_blocking=*/true);
    tok_dev_.copy_(tok_host_, /*non_blocking=*/true);
  }
  if (use_graph_) {
#ifdef RLKV_TORCH_CUDA
    if (graph_) {
      const std::lock_guard<std::recursive_mutex> lock(graph_registry_mutex());
      graph_->graph->replay();
    } else {
      capture();  // its warm-up has run this step
    }
#endif
  } else {
    compute();
  }
  cache_.end_step(seqs);
  return n == batch_ ? out_ : out_.narrow(0, 0, n);
}

// Rows n..batch-1 of a padded step (token 0 at position 0): each (row, KV head) writes its new K / V
// row into its own slot of pad_kv_ and attends over that one slot, a contiguous span of length 1. The
// cache is never touched, and what the rows compute is finite and discarded.
void StaticDecode::pad_tables(int64_t n, rlkv_kv_span* spans, rlkv_kv_write_item* items, const char* k_new,
                              const char* v_new, int64_t layer_stride) const {
  const ModelConfig& c = model_.local_config();
  const int64_t H = c.num_kv_heads, row_bytes = c.head_dim * int64_t(pad_kv_.element_size());
  char* k_pad = static_cast<char*>(pad_kv_[0].data_ptr());
  char* v_pad = static_cast<char*>(pad_kv_[1].data_ptr());
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int64_t b = n; b < batch_; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t row = b * H + h, at = l * batch_ * H + row;
        spans[at] = rlkv_kv_span{k_pad + row * row_bytes, v_pad + row * row_bytes, nullptr, 0, 1, nullptr};
        items[at] = rlkv_kv_write_item{k_pad + row * row_bytes,
                                       v_pad + row * row_bytes,
                                       nullptr,
                                       0,
                                       0,
                                       k_new ? k_new + l * layer_stride + row * row_bytes : nullptr,
                                       v_new ? v_new + l * layer_stride + row * row_bytes : nullptr};
      }
}

int64_t graph_batch_bucket(int64_t n) {
  RLKV_ASSERT(n >= 1, "graph_batch_bucket: batch ", n);
  if (n <= 2) return n;
  if (n <= 4) return 4;
  return (n + 7) / 8 * 8;
}

StaticDecodes::StaticDecodes(const Model& model, KvCache& cache, StaticDecodeOptions opts)
    : model_(model), cache_(cache), opts_(std::move(opts)) {
#ifdef RLKV_TORCH_CUDA
  const at::Device dev = model.device();
  if (opts_.cuda_graph && dev.is_cuda() && !opts_.graph_share) opts_.graph_share = graph_share_for(dev);
#endif
}

int64_t StaticDecodes::captures() const {
  int64_t n = 0;
  for (const auto& [size, sd] : by_batch_) n += sd->captures();
  return n;
}

int StaticDecodes::pool_users() const {
#ifdef RLKV_TORCH_CUDA
  if (opts_.graph_share) return opts_.graph_share->users();
#endif
  return -1;
}

at::Tensor StaticDecodes::step(const at::Tensor& tokens, const std::vector<int64_t>& seqs) {
  const int64_t n = int64_t(seqs.size());
  return batch(opts_.pad_batches ? graph_batch_bucket(n) : n).step(tokens, seqs);
}

StaticDecode& StaticDecodes::batch(int64_t size) {
  auto& sd = by_batch_[size];
  if (!sd) sd = std::make_unique<StaticDecode>(model_, cache_, size, opts_);
  return *sd;
}

}  // namespace rlkv
