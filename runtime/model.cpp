// The decoder's math follows transformers' modeling_llama / modeling_qwen2 / modeling_qwen3 (eager
// attention) operation for operation, including where it rounds: RMSNorm in fp32 then back to the
// weight dtype, RoPE tables in fp32 cast to the model dtype, softmax in fp32. That is what makes fp32
// logits agree to ~1e-5 and bf16 logits to bf16 rounding.
#include "runtime/model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "runtime/kv_cache.h"
#include "runtime/layer_ops.h"
#include "runtime/safetensors.h"
#include "runtime/torch_attention.h"

namespace rlkv {

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16") return at::kHalf;
  throw UserError(str_cat("unknown dtype '", name, "' (expected float32, bfloat16 or float16)"));
}

const char* dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kBFloat16:
      return "bfloat16";
    case at::kHalf:
      return "float16";
    default:
      return "other";
  }
}

namespace {

at::ScalarType torch_dtype_of(SafetensorsDtype d, const std::string& origin, const std::string& name) {
  switch (d) {
    case SAFETENSORS_DTYPE_F32:
      return at::kFloat;
    case SAFETENSORS_DTYPE_BF16:
      return at::kBFloat16;
    case SAFETENSORS_DTYPE_F16:
      return at::kHalf;
    default:
      throw UserError(str_cat(origin, ": tensor '", name, "' has dtype ", safetensors_dtype_name(d),
                              " (expected F32, BF16 or F16)"));
  }
}

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

Model Model::load(const std::string& dir, at::ScalarType dtype, at::Device device) {
  LoadOptions o;
  o.device = device;
  return load(dir, dtype, o);
}

namespace {

// Reads (a share of) one tensor: rows [begin, begin + count) along `dim` (0 or 1; -1 = whole), in
// the file's dtype on the CPU. shard mode copies only the share's bytes out of the mapping; broadcast
// mode has rank 0 of the reader group read the whole tensor and send it to the others.
struct ShareReader {
  const std::string& dir;
  SafetensorsModelFiles& files;
  TensorComm* readers;  // null: shard mode
  LoadStats& stats;

  at::Tensor operator()(const std::string& name, const std::vector<int64_t>& shape, int dim = -1, int64_t begin = 0,
                        int64_t count = 0) {
    RLKV_CHECK(files.contains(name), dir, ": tensor '", name, "' is missing from the safetensors files");
    const SafetensorsFile& f = files.file_of(name);
    const SafetensorsTensorInfo& info = f.info(name);
    RLKV_CHECK(info.shape == shape, f.path(), ": tensor '", name, "' has shape ", shape_str(info.shape),
               ", config.json implies ", shape_str(shape));
    const at::ScalarType src = torch_dtype_of(info.dtype, f.path(), name);
    const auto cpu = at::TensorOptions().dtype(src);
    const int64_t esz = int64_t(safetensors_dtype_size(info.dtype));
    if (readers && readers->size() > 1) {
      at::Tensor whole = at::empty(shape, cpu);
      if (readers->rank() == 0) {
        std::memcpy(whole.data_ptr(), f.data(name), size_t(info.end - info.begin));
        stats.bytes_read += int64_t(info.end - info.begin);
      } else {
        stats.bytes_received += int64_t(info.end - info.begin);
      }
      readers->broadcast(whole, 0);
      return dim < 0 ? whole : whole.narrow(dim, begin, count).contiguous();
    }
    // Copy out of the mapping (its data may be unaligned) before converting.
    const uint8_t* base = f.data(name);
    if (dim < 0) {
      at::Tensor t = at::empty(shape, cpu);
      std::memcpy(t.data_ptr(), base, size_t(info.end - info.begin));
      stats.bytes_read += int64_t(info.end - info.begin);
      return t;
    }
    std::vector<int64_t> out_shape = shape;
    out_shape[size_t(dim)] = count;
    at::Tensor t = at::empty(out_shape, cpu);
    auto* dst = static_cast<uint8_t*>(t.data_ptr());
    if (dim == 0) {  // rows: one contiguous byte range
      int64_t row = esz;
      for (size_t i = 1; i < shape.size(); ++i) row *= shape[i];
      std::memcpy(dst, base + begin * row, size_t(count * row));
      stats.bytes_read += count * row;
    } else {  // columns of a matrix: one range per row
      RLKV_ASSERT(shape.size() == 2 && dim == 1, "column shares of matrices only");
      const int64_t cols = shape[1];
      for (int64_t r = 0; r < shape[0]; ++r)
        std::memcpy(dst + r * count * esz, base + (r * cols + begin) * esz, size_t(count * esz));
      stats.bytes_read += shape[0] * count * esz;
    }
    return t;
  }
};

// Some CPU builds of LibTorch (Debian's among them) have no float16 matrix product: a model would
// load and then fail at its first layer with an internal message. Tried once on a 1x1 product.
void check_dtype_on_device(at::ScalarType dtype, const at::Device& device) {
  if (dtype != at::kHalf || !device.is_cpu()) return;
  static const bool works = [] {
    try {
      const at::Tensor a = at::ones({1, 1}, at::kHalf);
      return at::mm(a, a).item<float>() == 1.0f;
    } catch (const std::exception&) {
      return false;
    }
  }();
  RLKV_CHECK(works, "model.dtype float16 needs a CUDA device: this LibTorch has no float16 matrix product on the ",
             "CPU (use bfloat16 or float32 there)");
}

}  // namespace

Model Model::load(const std::string& dir, at::ScalarType dtype, const LoadOptions& lo, LoadStats* stats_out) {
  const auto t0 = std::chrono::steady_clock::now();
  check_dtype_on_device(dtype, lo.device);
  Model m;
  m.cfg_ = load_model_config(dir);
  m.dtype_ = dtype;
  m.device_ = lo.device;
  const ModelConfig& c = m.cfg_;
  const int tp_rank = lo.tp ? lo.tp->rank() : 0, tp_size = lo.tp ? lo.tp->size() : 1;
  m.shard_ = tp_shard(c, tp_rank, tp_size);
  m.local_ = rlkv::local_config(c, m.shard_);
  m.tp_ = lo.tp;  // even a group of one runs its collectives (the NCCL op test does)
  const TpShard& s = m.shard_;
  SafetensorsModelFiles files(dir);
  LoadStats stats;
  ShareReader get{dir, files, lo.reader_group.get(), stats};
  auto opts = at::TensorOptions().dtype(dtype).device(lo.device);
  auto dev = [&](const at::Tensor& t) { return t.to(opts); };

  const int64_t d = c.hidden_size, hd = c.head_dim, hq = c.num_q_heads, hkv = c.num_kv_heads;
  const int64_t I = c.intermediate_size, V = c.vocab_size;
  // Vocabulary rows of this rank, zero-padded to the same count on every rank.
  auto vocab_rows = [&](const std::string& name) {
    at::Tensor rows = get(name, {V, d}, 0, s.v_begin, s.v_count);
    if (s.whole()) return dev(rows);
    at::Tensor padded = at::zeros({s.vocab_padded, d}, rows.options());
    padded.narrow(0, 0, s.v_count).copy_(rows);
    return dev(padded);
  };
  m.w_.embed = vocab_rows("model.embed_tokens.weight");
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.input_norm = dev(get(p + "input_layernorm.weight", {d}));
    lw.post_norm = dev(get(p + "post_attention_layernorm.weight", {d}));
    const int64_t q0 = s.q_begin * hd, nq = s.num_q_heads * hd, k0 = s.kv_begin * hd, nk = s.num_kv_heads * hd;
    lw.wqkv = dev(at::cat({get(p + "self_attn.q_proj.weight", {hq * hd, d}, 0, q0, nq),
                           get(p + "self_attn.k_proj.weight", {hkv * hd, d}, 0, k0, nk),
                           get(p + "self_attn.v_proj.weight", {hkv * hd, d}, 0, k0, nk)}));
    if (c.attention_bias)
      lw.bqkv = dev(at::cat({get(p + "self_attn.q_proj.bias", {hq * hd}, 0, q0, nq),
                             get(p + "self_attn.k_proj.bias", {hkv * hd}, 0, k0, nk),
                             get(p + "self_attn.v_proj.bias", {hkv * hd}, 0, k0, nk)}));
    if (c.qk_norm) {
      lw.q_norm = dev(get(p + "self_attn.q_norm.weight", {hd}));
      lw.k_norm = dev(get(p + "self_attn.k_norm.weight", {hd}));
    }
    lw.wo = dev(get(p + "self_attn.o_proj.weight", {d, hq * hd}, 1, q0, nq));
    lw.w_gate_up = dev(at::cat({get(p + "mlp.gate_proj.weight", {I, d}, 0, s.i_begin, s.intermediate),
                                get(p + "mlp.up_proj.weight", {I, d}, 0, s.i_begin, s.intermediate)}));
    lw.w_down = dev(get(p + "mlp.down_proj.weight", {d, I}, 1, s.i_begin, s.intermediate));
    m.w_.layers.push_back(std::move(lw));
  }
  m.w_.final_norm = dev(get("model.norm.weight", {d}));
  m.w_.lm_head = c.tie_word_embeddings ? m.w_.embed : vocab_rows("lm_head.weight");
  std::vector<double> inv = rope_inv_freq(c);
  m.inv_freq_ = at::tensor(std::vector<float>(inv.begin(), inv.end())).to(lo.device);
  stats.weight_bytes = m.parameter_bytes();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats_out) *stats_out = stats;
  return m;
}

Model Model::random(const ModelConfig& c, at::ScalarType dtype, uint64_t seed, double init_std, at::Device device) {
  check_dtype_on_device(dtype, device);
  Model m;
  m.cfg_ = c;
  m.local_ = c;
  m.shard_ = tp_shard(c, 0, 1);
  m.dtype_ = dtype;
  m.device_ = device;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  auto normal = [&](std::vector<int64_t> shape) {
    if (!device.is_cpu())
      return at::empty(shape, at::TensorOptions().dtype(dtype).device(device)).normal_(0.0, init_std);
    return at::normal(0.0, init_std, shape, gen, f32).to(dtype);
  };
  auto ones = [&](int64_t n) { return at::ones({n}, f32.device(device)).to(dtype); };
  const int64_t d = c.hidden_size, hd = c.head_dim, hq = c.num_q_heads, hkv = c.num_kv_heads;
  m.w_.embed = normal({c.vocab_size, d});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights lw;
    lw.input_norm = ones(d);
    lw.post_norm = ones(d);
    lw.wqkv = normal({(hq + 2 * hkv) * hd, d});
    if (c.attention_bias) lw.bqkv = at::zeros({(hq + 2 * hkv) * hd}, f32.device(device)).to(dtype);
    if (c.qk_norm) {
      lw.q_norm = ones(hd);
      lw.k_norm = ones(hd);
    }
    lw.wo = normal({d, hq * hd});
    lw.w_gate_up = normal({2 * c.intermediate_size, d});
    lw.w_down = normal({d, c.intermediate_size});
    m.w_.layers.push_back(std::move(lw));
  }
  m.w_.final_norm = ones(d);
  m.w_.lm_head = c.tie_word_embeddings ? m.w_.embed : normal({c.vocab_size, d});
  std::vector<double> inv = rope_inv_freq(c);
  m.inv_freq_ = at::tensor(std::vector<float>(inv.begin(), inv.end())).to(device);
  return m;
}

Model::Rope Model::rope_tables(const at::Tensor& positions, at::ScalarType dtype) const {
  at::Tensor ang = at::outer(positions.to(at::kFloat), inv_freq_);  // [N, hd / 2]
  // sin / cos of the duplicated angles, not duplicates of sin / cos: on the CPU an element's value
  // may depend on its place (vectorised body or scalar tail), and these are the reference's values.
  at::Tensor emb = at::cat({ang, ang}, -1);
  at::Tensor sn = emb.sin();
  const int64_t h = sn.size(-1) / 2;
  return {emb.cos().to(dtype).unsqueeze(-2),
          at::cat({-sn.narrow(-1, 0, h), sn.narrow(-1, h, h)}, -1).to(dtype).unsqueeze(-2)};
}

at::Tensor Model::embed(const at::Tensor& tokens) const {
  if (!tp_) return at::embedding(w_.embed, tokens);
  // Vocabulary-parallel: each rank looks up the tokens in its rows, zeros elsewhere; the sum is exact.
  at::Tensor local = tokens - shard_.v_begin;
  at::Tensor mine = at::logical_and(local >= 0, local < shard_.v_count);
  at::Tensor x = at::embedding(w_.embed, at::where(mine, local, at::zeros_like(local)));
  x = x * mine.unsqueeze(-1).to(x.scalar_type());
  tp_->allreduce_sum(x);
  return x;
}

at::Tensor Model::reduce(at::Tensor partial) const {
  if (tp_) tp_->allreduce_sum(partial);
  return partial;
}

at::Tensor Model::block(int64_t layer, const at::Tensor& x_in, const at::Tensor& attn_out) const {
  const LayerWeights& lw = w_.layers[size_t(layer)];
  const int64_t I = local_.intermediate_size;
  at::Tensor x = x_in + reduce(at::linear(attn_out, lw.wo));
  at::Tensor gu = at::linear(rms_norm(x, lw.post_norm, cfg_.rms_norm_eps), lw.w_gate_up);
  return x + reduce(at::linear(silu_mul(gu, I, /*fused=*/false), lw.w_down));
}

at::Tensor Model::forward_dense(const at::Tensor& tokens, const KvSink& kv_sink) const {
  const float scale = 1.0f / std::sqrt(float(cfg_.head_dim));
  return forward_dense_with(tokens, [&](int64_t l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    if (kv_sink) kv_sink(l, k, v);
    return dense_causal_attention(q, k, v, scale);
  });
}

at::Tensor Model::forward_dense_with(const at::Tensor& tokens, const AttentionFn& attend) const {
  RLKV_ASSERT(tokens.dim() == 2, "forward_dense: tokens must be [B, T]");
  const ModelConfig& c = cfg_;
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const int64_t hq = local_.num_q_heads, hkv = local_.num_kv_heads, hd = c.head_dim;
  at::Tensor pos = at::arange(T, at::TensorOptions().dtype(at::kLong).device(device_));
  at::Tensor x = embed(tokens);
  const Rope rot = rope_tables(pos, x.scalar_type());
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w_.layers[size_t(l)];
    at::Tensor h = rms_norm(x, lw.input_norm, c.rms_norm_eps);
    at::Tensor qkv = at::linear(h, lw.wqkv, lw.bqkv);
    at::Tensor q = qkv.narrow(-1, 0, hq * hd).view({B, T, hq, hd});
    at::Tensor k = qkv.narrow(-1, hq * hd, hkv * hd).view({B, T, hkv, hd});
    at::Tensor v = qkv.narrow(-1, (hq + hkv) * hd, hkv * hd).view({B, T, hkv, hd});
    if (c.qk_norm) {
      q = rms_norm(q, lw.q_norm, c.rms_norm_eps);
      k = rms_norm(k, lw.k_norm, c.rms_norm_eps);
    }
    q = apply_rope(q, rot.cos, rot.sin);
    k = apply_rope(k, rot.cos, rot.sin);
    x = block(l, x, attend(l, q, k, v).reshape({B, T, hq * hd}));
  }
  return rms_norm(x, w_.final_norm, c.rms_norm_eps);
}

at::Tensor Model::forward_decode(const at::Tensor& tokens, KvCache& cache, const std::vector<int64_t>& seqs,
                                 int num_threads) const {
  const ModelConfig& c = cfg_;
  const int64_t B = tokens.size(0);
  RLKV_ASSERT(tokens.dim() == 1 && B == int64_t(seqs.size()), "forward_decode: tokens [B] for B sequences");
  at::Tensor pos = at::tensor(cache.begin_step(seqs));
  // From pinned memory the upload is asynchronous (see runtime/torch_attention.cpp).
  if (!device_.is_cpu()) pos = pos.pin_memory().to(device_, /*non_blocking=*/true);
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  const int64_t hkv = local_.num_kv_heads;
  at::Tensor x =
      forward_decode_with(tokens, pos, [&](int64_t l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        cache.write_decode(seqs, l, k, v, num_threads);
        at::Tensor out = decode_attention(q, cache.spans(seqs, l, /*extra_tokens=*/1), hkv, scale, num_threads,
                                          cache.pages_on_device());
        cache.note_decode_attention(seqs, l, q);  // token-dropping heads keep their evidence
        return out;
      });
  cache.end_step(seqs);
  return x;
}

bool Model::fused_kv_write() const {
  return fused_decode_ && fused_layer_ops_available(device_) && (!tp_ || tp_->size() == 1);
}

at::Tensor Model::forward_decode_with(const at::Tensor& tokens, const at::Tensor& pos, const DecodeAttention& attend,
                                      const rlkv_kv_write_item* kv_items) const {
  const ModelConfig& c = cfg_;
  const int64_t B = tokens.size(0);
  const int64_t hq = local_.num_q_heads, hkv = local_.num_kv_heads, hd = c.head_dim, I = local_.intermediate_size;
  const bool fused = fused_decode_ && fused_layer_ops_available(device_);
  if (!fused_kv_write()) kv_items = nullptr;
  // The layers of block() with each residual addition fused into the RMSNorm that follows it (the
  // same values as forward_dense_with's order of operations).
  at::Tensor x = embed(tokens);  // [B, d]
  const Rope rot = rope_tables(pos, x.scalar_type());
  at::Tensor h = add_rms_norm(x, at::Tensor(), w_.layers[0].input_norm, c.rms_norm_eps, fused);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w_.layers[size_t(l)];
    const QkvHeads qkv = qkv_rope(at::linear(h, lw.wqkv, lw.bqkv), hq, hkv, hd, c.qk_norm ? lw.q_norm : at::Tensor(),
                                  c.qk_norm ? lw.k_norm : at::Tensor(), c.rms_norm_eps, rot.cos, rot.sin, fused,
                                  kv_items != nullptr ? kv_items + l * B * hkv : nullptr);
    at::Tensor attn = attend(l, qkv.q, qkv.k, qkv.v).view({B, hq * hd});
    h = add_rms_norm(x, reduce(at::linear(attn, lw.wo)), lw.post_norm, cfg_.rms_norm_eps, fused);
    at::Tensor down = reduce(at::linear(silu_mul(at::linear(h, lw.w_gate_up), I, fused), lw.w_down));
    const at::Tensor& next_norm = l + 1 < c.num_layers ? w_.layers[size_t(l + 1)].input_norm : w_.final_norm;
    h = add_rms_norm(x, down, next_norm, c.rms_norm_eps, fused);
  }
  return h;
}

at::Tensor Model::logits(const at::Tensor& hidden) const {
  at::Tensor local = at::linear(hidden, w_.lm_head);
  if (!tp_) return local.to(at::kFloat);
  // Vocabulary-parallel head: gather every rank's rows, drop the padding.
  at::Tensor all = tp_->allgather(local, local.dim() - 1);
  return all.narrow(-1, 0, cfg_.vocab_size).to(at::kFloat);
}

std::vector<std::pair<std::string, at::Tensor>> Model::hf_tensors() const {
  RLKV_CHECK(shard_.whole(), "a tensor-parallel rank holds only its share of the model and cannot save it");
  const ModelConfig& c = cfg_;
  const int64_t hd = c.head_dim, hq = c.num_q_heads, hkv = c.num_kv_heads, I = c.intermediate_size;
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back("model.embed_tokens.weight", w_.embed);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w_.layers[size_t(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.emplace_back(p + "input_layernorm.weight", lw.input_norm);
    out.emplace_back(p + "self_attn.q_proj.weight", lw.wqkv.narrow(0, 0, hq * hd));
    out.emplace_back(p + "self_attn.k_proj.weight", lw.wqkv.narrow(0, hq * hd, hkv * hd));
    out.emplace_back(p + "self_attn.v_proj.weight", lw.wqkv.narrow(0, (hq + hkv) * hd, hkv * hd));
    if (lw.bqkv.defined()) {
      out.emplace_back(p + "self_attn.q_proj.bias", lw.bqkv.narrow(0, 0, hq * hd));
      out.emplace_back(p + "self_attn.k_proj.bias", lw.bqkv.narrow(0, hq * hd, hkv * hd));
      out.emplace_back(p + "self_attn.v_proj.bias", lw.bqkv.narrow(0, (hq + hkv) * hd, hkv * hd));
    }
    if (lw.q_norm.defined()) {
      out.emplace_back(p + "self_attn.q_norm.weight", lw.q_norm);
      out.emplace_back(p + "self_attn.k_norm.weight", lw.k_norm);
    }
    out.emplace_back(p + "self_attn.o_proj.weight", lw.wo);
    out.emplace_back(p + "post_attention_layernorm.weight", lw.post_norm);
    out.emplace_back(p + "mlp.gate_proj.weight", lw.w_gate_up.narrow(0, 0, I));
    out.emplace_back(p + "mlp.up_proj.weight", lw.w_gate_up.narrow(0, I, I));
    out.emplace_back(p + "mlp.down_proj.weight", lw.w_down);
  }
  out.emplace_back("model.norm.weight", w_.final_norm);
  if (!c.tie_word_embeddings) out.emplace_back("lm_head.weight", w_.lm_head);
  return out;
}

std::vector<at::Tensor> Model::parameters() const {
  std::vector<at::Tensor> ps{w_.embed};
  for (const auto& lw : w_.layers) {
    for (const at::Tensor* t :
         {&lw.input_norm, &lw.wqkv, &lw.bqkv, &lw.q_norm, &lw.k_norm, &lw.wo, &lw.post_norm, &lw.w_gate_up, &lw.w_down})
      if (t->defined()) ps.push_back(*t);
  }
  ps.push_back(w_.final_norm);
  if (!cfg_.tie_word_embeddings) ps.push_back(w_.lm_head);
  return ps;
}

int64_t Model::parameter_bytes() const {
  int64_t n = 0;
  for (const auto& t : parameters()) n += t.numel() * int64_t(t.element_size());
  return n;
}

}  // namespace rlkv
