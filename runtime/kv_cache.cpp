#include "runtime/kv_cache.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/torch_attention.h"

namespace rlkv {

rlkv_dtype to_kv_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return RLKV_DTYPE_F32;
    case at::kHalf:
      return RLKV_DTYPE_F16;
    case at::kBFloat16:
      return RLKV_DTYPE_BF16;
    default:
      RLKV_CHECK(false, "KV cache dtype must be float32, float16 or bfloat16");
  }
  return RLKV_DTYPE_F32;
}

KvCache::KvCache(const ModelConfig& cfg, at::ScalarType dtype, at::Device device, int64_t sink, int64_t window,
                 int64_t page_size, PageLists page_lists)
    : cfg_(cfg),
      dtype_(dtype),
      device_(device),
      kdtype_(to_kv_dtype(dtype)),
      sink_(sink),
      window_(window),
      page_size_(page_size),
      head_dim_(cfg.head_dim),
      heads_(cfg.num_kv_heads),
      layers_(cfg.num_layers) {
  use_table_ = page_lists == PageLists::table || (page_lists == PageLists::automatic && !device.is_cpu());
  RLKV_CHECK(sink >= 0 && window >= 1, "cache: sink must be >= 0 and window >= 1");
  RLKV_CHECK(page_size >= 1, "cache: page_size must be >= 1");
  esz_ = int64_t(rlkv_dtype_size(kdtype_));
  auto opts = at::TensorOptions().dtype(dtype).device(device);
  k_pages_ = at::empty({0, page_size_, head_dim_}, opts);
  v_pages_ = at::empty({0, page_size_, head_dim_}, opts);
  k_rings_ = at::empty({0, sink_ + window_, head_dim_}, opts);
  v_rings_ = at::empty({0, sink_ + window_, head_dim_}, opts);
}

int64_t KvCache::add_sequence(const std::vector<uint8_t>& keep, int64_t budget) {
  const size_t n = size_t(layers_ * heads_);
  RLKV_CHECK(keep.empty() || keep.size() == n, "head mask has ", keep.size(), " entries, the model has ", layers_,
             " x ", heads_, " = ", n, " KV heads");
  if (budget > 0) {
    RLKV_CHECK(dropping_.has_value(), "a token budget needs a token-dropping method");
    RLKV_CHECK(std::count(keep.begin(), keep.end(), 0) == 0, "token dropping applies to every head: no head mask");
    EvictionParams p = dropping_params_;
    p.budget = budget;
    check_eviction_params(*dropping_, p, "token budget");
  }
  int64_t id;
  if (!free_seq_ids_.empty()) {
    id = free_seq_ids_.back();
    free_seq_ids_.pop_back();
  } else {
    id = int64_t(seqs_.size());
    seqs_.emplace_back();
  }
  Seq& s = seqs_[size_t(id)];
  s.live = true;
  s.len = 0;
  s.keep = keep.empty() ? std::vector<uint8_t>(n, 1) : keep;
  s.budget = budget;
  s.pages.assign(n, {});
  s.ring.assign(n, -1);
  s.dropped.assign(budget > 0 ? n : 0, Dropped());
  for (size_t i = 0; i < n; ++i)
    if (!s.keep[i]) s.ring[i] = take_ring();
  return id;
}

void KvCache::release(int64_t seq) {
  Seq& s = seqs_.at(size_t(seq));
  RLKV_ASSERT(s.live, "release of a dead sequence");
  // Pending table entries of this slot must land before a new sequence in it notes its own (two
  // scatters to one entry in one flush have no defined winner on a GPU).
  table_flush();
  for (auto& p : s.pages) {
    for (int32_t id : p) free_pages_.push_back(id);
    pages_used_ -= int64_t(p.size());
    p.clear();
  }
  for (int32_t r : s.ring)
    if (r >= 0) {
      free_rings_.push_back(r);
      --rings_used_;
    }
  s = Seq();
  free_seq_ids_.push_back(seq);
}

const KvCache::Seq& KvCache::seq_ref(int64_t seq) const {
  RLKV_ASSERT(seq >= 0 && size_t(seq) < seqs_.size() && seqs_[size_t(seq)].live, "unknown sequence ", seq);
  return seqs_[size_t(seq)];
}

int64_t KvCache::length(int64_t seq) const { return seq_ref(seq).len; }
const std::vector<uint8_t>& KvCache::keep(int64_t seq) const { return seq_ref(seq).keep; }

void KvCache::reserve_capacity(int64_t pages, int64_t rings) {
  RLKV_CHECK(pages >= 0 && rings >= 0, "cache: capacity must be >= 0");
  if (pages > k_pages_.size(0)) grow(k_pages_, v_pages_, free_pages_, page_size_, pages);
  if (rings > k_rings_.size(0)) grow(k_rings_, v_rings_, free_rings_, sink_ + window_, rings);
}

void KvCache::grow(at::Tensor& k, at::Tensor& v, std::vector<int32_t>& free, int64_t rows_per_unit, int64_t at_least) {
  const int64_t old_cap = k.size(0);
  const int64_t new_cap = std::max<int64_t>({16, old_cap * 2, at_least});
  auto opts = k.options();
  at::Tensor nk = at::empty({new_cap, rows_per_unit, head_dim_}, opts);
  at::Tensor nv = at::empty({new_cap, rows_per_unit, head_dim_}, opts);
  if (old_cap > 0) {
    nk.narrow(0, 0, old_cap).copy_(k);
    nv.narrow(0, 0, old_cap).copy_(v);
  }
  k = nk;
  v = nv;
  // Hand out low ids first (the free list is a stack).
  for (int64_t i = new_cap - 1; i >= old_cap; --i) free.push_back(int32_t(i));
}

int32_t KvCache::take_page() {
  if (free_pages_.empty()) grow(k_pages_, v_pages_, free_pages_, page_size_);
  const int32_t id = free_pages_.back();
  free_pages_.pop_back();
  ++pages_used_;
  return id;
}

int32_t KvCache::take_ring() {
  if (free_rings_.empty()) grow(k_rings_, v_rings_, free_rings_, sink_ + window_);
  const int32_t id = free_rings_.back();
  free_rings_.pop_back();
  ++rings_used_;
  return id;
}

void KvCache::reserve(int64_t seq, int64_t new_len) {
  seq_ref(seq);
  Seq& s = seqs_[size_t(seq)];
  const int64_t rows = s.budget > 0 ? std::min(new_len, dropping_capacity(s)) : new_len;
  const int64_t pages_needed = (rows + page_size_ - 1) / page_size_;
  for (size_t i = 0; i < s.keep.size(); ++i) {
    if (!s.keep[i]) continue;
    while (int64_t(s.pages[i].size()) < pages_needed) {
      const int32_t p = take_page();
      s.pages[i].push_back(p);
      if (use_table_) table_note(seq, i);
    }
  }
}

void KvCache::table_note(int64_t seq, size_t i) {
  const std::vector<int32_t>& pages = seqs_[size_t(seq)].pages[i];
  const int64_t row = seq * layers_ * heads_ + int64_t(i), col = int64_t(pages.size()) - 1;
  dirty_at_.push_back(row * std::max<int64_t>(table_cols_, 1) + col);  // re-derived if the table grows
  dirty_page_.push_back(pages.back());
  if (row >= table_rows_ || col >= table_cols_) dirty_at_.back() = -1;  // forces a rebuild
}

void KvCache::table_rebuild(int64_t rows, int64_t cols) {
  at::Tensor host = at::zeros({rows, cols}, at::kInt);
  int32_t* t = host.data_ptr<int32_t>();
  for (size_t id = 0; id < seqs_.size(); ++id) {
    const Seq& s = seqs_[id];
    if (!s.live) continue;
    for (size_t i = 0; i < s.pages.size(); ++i)
      std::copy(s.pages[i].begin(), s.pages[i].end(), t + (int64_t(id) * layers_ * heads_ + int64_t(i)) * cols);
  }
  page_table_ = device_.is_cpu() ? host : host.pin_memory().to(device_, /*non_blocking=*/true);
  table_rows_ = rows;
  table_cols_ = cols;
}

void KvCache::table_flush() {
  if (!use_table_ || dirty_at_.empty()) return;
  // table_note marks an entry outside the table with -1: only then is the table sized again.
  if (std::find(dirty_at_.begin(), dirty_at_.end(), -1) != dirty_at_.end()) {
    const int64_t rows_needed = int64_t(seqs_.size()) * layers_ * heads_;
    int64_t cols_needed = 1;
    for (const Seq& s : seqs_)
      for (const auto& p : s.pages) cols_needed = std::max(cols_needed, int64_t(p.size()));
    // Doubling keeps rebuilds (a whole-table upload) rare as sequences are added and grow.
    table_rebuild(std::max(rows_needed, 2 * table_rows_), std::max(cols_needed, 2 * table_cols_));
  } else {
    at::Tensor at = at::tensor(dirty_at_, at::kLong), val = at::tensor(dirty_page_, at::kInt);
    if (!device_.is_cpu()) {
      at = at.pin_memory().to(device_, /*non_blocking=*/true);  // asynchronous from pinned memory
      val = val.pin_memory().to(device_, /*non_blocking=*/true);
    }
    page_table_.view({-1}).index_put_({at}, val);
  }
  dirty_at_.clear();
  dirty_page_.clear();
}

void KvCache::set_length(int64_t seq, int64_t len) {
  seq_ref(seq);
  Seq& s = seqs_[size_t(seq)];
  RLKV_ASSERT(len >= s.len, "a sequence cannot shrink");
  s.len = len;
}

std::vector<int64_t> KvCache::begin_step(const std::vector<int64_t>& seqs) {
  std::vector<int64_t> positions(seqs.size());
  for (size_t b = 0; b < seqs.size(); ++b) {
    positions[b] = length(seqs[b]);
    reserve(seqs[b], positions[b] + 1);
  }
  return positions;
}

void KvCache::end_step(const std::vector<int64_t>& seqs) {
  for (int64_t s : seqs) set_length(s, length(s) + 1);
}

void KvCache::write_prefill(int64_t seq, int64_t layer, const at::Tensor& k, const at::Tensor& v, int num_threads) {
  const Seq& s = seq_ref(seq);
  RLKV_ASSERT(k.dim() == 3 && k.size(1) == heads_ && k.size(2) == head_dim_ && k.is_contiguous() &&
                  v.sizes() == k.sizes() && v.is_contiguous() && k.scalar_type() == dtype_,
              "write_prefill: bad K/V");
  if (s.budget > 0) return write_prefill_dropping(seqs_[size_t(seq)], layer, k, v);
  const int64_t T = k.size(0);
  table_flush();
  std::vector<rlkv_kv_write_item> items;
  items.reserve(size_t(T * heads_));
  const char* kb = static_cast<const char*>(k.data_ptr());
  const char* vb = static_cast<const char*>(v.data_ptr());
  for (int64_t h = 0; h < heads_; ++h) {
    const size_t i = size_t(layer * heads_ + h);
    for (int64_t p = 0; p < T; ++p) {
      if (!s.keep[i] && p >= sink_ && p < T - window_) continue;  // neither sink nor recent: not kept
      const int64_t src = (p * heads_ + h) * head_dim_ * esz_;
      items.push_back(write_item(s, i, p, span_of(s, i, p + 1), kb + src, vb + src));
    }
  }
  kv_write(items, head_dim_, kdtype_, device_, num_threads, pages_on_device());
}

void KvCache::write_decode(const std::vector<int64_t>& seqs, int64_t layer, const at::Tensor& k, const at::Tensor& v,
                           int num_threads) {
  const int64_t B = int64_t(seqs.size());
  RLKV_ASSERT(k.dim() == 3 && k.size(0) == B && k.size(1) == heads_ && k.size(2) == head_dim_ && k.is_contiguous() &&
                  v.sizes() == k.sizes() && v.is_contiguous() && k.scalar_type() == dtype_,
              "write_decode: bad K/V");
  table_flush();
  std::vector<rlkv_kv_write_item> items(size_t(B * heads_));
  const char* kb = static_cast<const char*>(k.data_ptr());
  const char* vb = static_cast<const char*>(v.data_ptr());
  for (int64_t b = 0; b < B; ++b) {
    seq_ref(seqs[size_t(b)]);
    Seq& s = seqs_[size_t(seqs[size_t(b)])];
    for (int64_t h = 0; h < heads_; ++h) {
      const int64_t src = (b * heads_ + h) * head_dim_ * esz_;
      const size_t i = size_t(layer * heads_ + h);
      // A token-dropping head writes to the entry its rule frees (positions stay ascending).
      const int64_t entry = s.budget > 0 ? make_room(s, i) : s.len;
      rlkv_kv_write_item& it = items[size_t(b * heads_ + h)];
      it = write_item(s, i, s.len, span_of(s, i, s.len + 1), kb + src, vb + src);
      if (s.budget > 0) {
        it.slot = entry;
        s.dropped[i].pos.push_back(s.len);
        s.dropped[i].acc.push_back(0.0);
      }
    }
  }
  kv_write(items, head_dim_, kdtype_, device_, num_threads, pages_on_device());
}

rlkv_kv_span KvCache::span_of(const Seq& s, size_t i, int64_t n) const {
  rlkv_kv_span sp{};
  if (s.budget > 0) n = int64_t(s.dropped[i].pos.size());  // its entries (the new token's included)
  if (s.keep[i]) {
    sp.k = k_pages_.data_ptr();
    sp.v = v_pages_.data_ptr();
    if (use_table_) {
      RLKV_ASSERT(dirty_at_.empty(), "page table used before its flush");
      const int64_t row = int64_t(&s - seqs_.data()) * layers_ * heads_ + int64_t(i);
      RLKV_ASSERT(n <= int64_t(s.pages[i].size()) * page_size_ && (n == 0 || row < table_rows_), "span of ", n,
                  " tokens beyond the reserved pages");
      if (n == 0) return sp;
      sp.pages = page_table_.data_ptr<int32_t>() + row * table_cols_;
    } else {
      sp.pages = s.pages[i].data();
    }
    sp.page_size = page_size_;
    sp.len = n;
  } else {
    const int64_t ring_rows = sink_ + window_;
    const int64_t off = int64_t(s.ring[i]) * ring_rows * head_dim_ * esz_;
    sp.k = static_cast<const char*>(k_rings_.data_ptr()) + off;
    sp.v = static_cast<const char*>(v_rings_.data_ptr()) + off;
    sp.len = std::min(n, ring_rows);
  }
  return sp;
}

rlkv_kv_write_item KvCache::write_item(const Seq& s, size_t i, int64_t pos, const rlkv_kv_span& sp, const char* k_src,
                                       const char* v_src) const {
  RLKV_ASSERT(!s.keep[i] || s.budget > 0 || int64_t(s.pages[i].size()) * page_size_ > pos, "KV write before reserve");
  rlkv_kv_write_item it{};
  it.k = const_cast<void*>(sp.k);  // the pools are ours to write; spans are read-only views of them
  it.v = const_cast<void*>(sp.v);
  it.pages = sp.pages;
  it.page_size = sp.page_size;
  it.slot = s.keep[i] ? pos : rlkv_ring_slot(pos, sink_, window_);
  it.k_src = k_src;
  it.v_src = v_src;
  return it;
}

std::vector<rlkv_kv_span> KvCache::spans(const std::vector<int64_t>& seqs, int64_t layer, int64_t extra_tokens) const {
  std::vector<rlkv_kv_span> out(seqs.size() * size_t(heads_));
  const bool h2o = dropping_ == EvictionMethod::kH2O;
  if (h2o) weights_.assign(out.size(), {});
  for (size_t b = 0; b < seqs.size(); ++b) {
    const Seq& s = seq_ref(seqs[b]);
    for (int64_t h = 0; h < heads_; ++h) {
      const size_t at = b * size_t(heads_) + size_t(h);
      out[at] = span_of(s, size_t(layer * heads_ + h), s.len + extra_tokens);
      if (s.budget > 0 && h2o) {  // the kernel reports the attention each entry receives
        weights_[at].assign(size_t(out[at].len), 0.f);
        out[at].weights = weights_[at].data();
      }
    }
  }
  return out;
}

void KvCache::step_tables(const std::vector<int64_t>& seqs, rlkv_kv_span* spans, rlkv_kv_write_item* items,
                          const char* k_src, const char* v_src, int64_t src_layer_stride, int64_t rows_per_layer) {
  table_flush();
  const size_t B = seqs.size(), H = size_t(heads_);
  RLKV_ASSERT(rows_per_layer == 0 || size_t(rows_per_layer) >= B, "step_tables: ", B, " sequences in rows of ",
              rows_per_layer);
  const size_t R = rows_per_layer > 0 ? size_t(rows_per_layer) : B;
  for (int64_t seq : seqs) RLKV_CHECK(seq_ref(seq).budget == 0, "token dropping runs the eager decode step only");
  for (int64_t l = 0; l < layers_; ++l)
    for (size_t b = 0; b < B; ++b) {
      const Seq& s = seq_ref(seqs[b]);
      for (size_t h = 0; h < H; ++h) {
        const size_t i = size_t(l) * H + h, at = size_t(l) * R * H + b * H + h;
        const int64_t src = l * src_layer_stride + int64_t(b * H + h) * head_dim_ * esz_;
        spans[at] = span_of(s, i, s.len + 1);
        items[at] = write_item(s, i, s.len, spans[at], k_src ? k_src + src : nullptr, v_src ? v_src + src : nullptr);
      }
    }
}

int64_t KvCache::allocated_bytes() const {
  return 2 * esz_ * head_dim_ * (pages_used_ * page_size_ + rings_used_ * (sink_ + window_));
}

int64_t KvCache::formula_bytes() const {
  int64_t rows = 0;
  for (size_t id = 0; id < seqs_.size(); ++id)
    if (seqs_[id].live) rows += rows_held(int64_t(id));
  return 2 * esz_ * head_dim_ * rows;
}

int64_t KvCache::rows_held(int64_t seq) const {
  const Seq& s = seq_ref(seq);
  int64_t rows = 0;
  for (size_t i = 0; i < s.keep.size(); ++i) {
    if (s.budget > 0)
      rows += int64_t(s.dropped[i].pos.size());
    else
      rows += s.keep[i] ? s.len : std::min(s.len, sink_ + window_);
  }
  return rows;
}

int64_t KvCache::reserved_bytes() const {
  return 2 * esz_ * head_dim_ * (k_pages_.size(0) * page_size_ + k_rings_.size(0) * (sink_ + window_));
}

int64_t KvCache::live_sequences() const {
  return int64_t(std::count_if(seqs_.begin(), seqs_.end(), [](const Seq& s) { return s.live; }));
}

void KvCache::update_peak() {
  peak_allocated_ = std::max(peak_allocated_, allocated_bytes());
  peak_formula_ = std::max(peak_formula_, formula_bytes());
}

}  // namespace rlkv
