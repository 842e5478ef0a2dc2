// KvCache's token-dropping heads (runtime/kv_cache.h: "Token dropping"; the rules are in
// runtime/eviction.h). A token-dropping head's entries are rows 0..n-1 of its pages, in position
// order; the rules choose which entries stay, and the kept ones are compacted to the front.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "runtime/kv_cache.h"

namespace rlkv {

void KvCache::set_token_dropping(EvictionMethod method, const EvictionParams& params) {
  RLKV_CHECK(device_.is_cpu(), "token dropping runs on the CPU (the GPU kernels report no attention weights)");
  dropping_ = method;
  dropping_params_ = params;
  dropping_params_.sink = sink_;
  dropping_params_.window = window_;
}

std::vector<int64_t> KvCache::dropping_positions(int64_t seq, int64_t head_index) const {
  const Seq& s = seq_ref(seq);
  RLKV_ASSERT(s.budget > 0 && head_index >= 0 && head_index < int64_t(s.dropped.size()),
              "dropping_positions: not a token-dropping head");
  return s.dropped[size_t(head_index)].pos;
}

EvictionParams KvCache::dropping_params(const Seq& s) const {
  EvictionParams p = dropping_params_;
  p.budget = s.budget;
  return p;
}

int64_t KvCache::dropping_capacity(const Seq& s) const { return eviction_capacity(*dropping_, dropping_params(s)); }

char* KvCache::entry_row(const Seq& s, size_t i, int64_t entry, bool value) const {
  const int64_t page = s.pages[i][size_t(entry / page_size_)];
  const int64_t row = page * page_size_ + entry % page_size_;
  char* base = static_cast<char*>(value ? v_pages_.data_ptr() : k_pages_.data_ptr());
  return base + row * head_dim_ * esz_;
}

void KvCache::copy_entry(const Seq& s, size_t i, int64_t from, int64_t to) {
  if (from == to) return;
  std::memcpy(entry_row(s, i, to, false), entry_row(s, i, from, false), size_t(head_dim_ * esz_));
  std::memcpy(entry_row(s, i, to, true), entry_row(s, i, from, true), size_t(head_dim_ * esz_));
}

// The prompt's positions 0..T-1 as entries: all of them when they fit the head's capacity, else the
// sink and the most recent budget - sink (no query has been seen yet that could score them).
void KvCache::write_prefill_dropping(Seq& s, int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  const int64_t T = k.size(0), C = dropping_capacity(s);
  std::vector<int64_t> positions;
  for (int64_t p = 0; p < T; ++p)
    if (T <= C || p < sink_ || p >= T - (s.budget - sink_)) positions.push_back(p);
  const char* kb = static_cast<const char*>(k.data_ptr());
  const char* vb = static_cast<const char*>(v.data_ptr());
  for (int64_t h = 0; h < heads_; ++h) {
    const size_t i = size_t(layer * heads_ + h);
    Dropped& d = s.dropped[i];
    d = Dropped();
    for (size_t e = 0; e < positions.size(); ++e) {
      const int64_t src = (positions[e] * heads_ + h) * head_dim_ * esz_;
      std::memcpy(entry_row(s, i, int64_t(e), false), kb + src, size_t(head_dim_ * esz_));
      std::memcpy(entry_row(s, i, int64_t(e), true), vb + src, size_t(head_dim_ * esz_));
    }
    d.pos = positions;
    d.acc.assign(positions.size(), 0.0);
  }
}

int64_t KvCache::make_room(Seq& s, size_t i) {
  Dropped& d = s.dropped[i];
  const int64_t n = int64_t(d.pos.size());
  if (n < dropping_capacity(s)) return n;
  if (*dropping_ != EvictionMethod::kH2O) {
    compress(s, i);
    return int64_t(d.pos.size());
  }
  const int64_t victim = h2o_victim(d.acc, d.pos, dropping_params(s));
  for (int64_t e = victim; e + 1 < n; ++e) copy_entry(s, i, e + 1, e);
  d.pos.erase(d.pos.begin() + victim);
  d.acc.erase(d.acc.begin() + victim);
  return n - 1;
}

std::vector<std::vector<float>> KvCache::entry_keys(const Seq& s, size_t i) const {
  const int64_t n = int64_t(s.dropped[i].pos.size());
  std::vector<std::vector<float>> keys(static_cast<size_t>(n), std::vector<float>(static_cast<size_t>(head_dim_)));
  for (int64_t e = 0; e < n; ++e) {
    const char* row = entry_row(s, i, e, false);
    for (int64_t x = 0; x < head_dim_; ++x) {
      float& out = keys[size_t(e)][size_t(x)];
      if (kdtype_ == RLKV_DTYPE_F32)
        std::memcpy(&out, row + 4 * x, 4);
      else if (kdtype_ == RLKV_DTYPE_BF16)
        out = float(reinterpret_cast<const c10::BFloat16*>(row)[x]);
      else
        out = float(reinterpret_cast<const c10::Half*>(row)[x]);
    }
  }
  return keys;
}

// SnapKV / R-KV: scores from the kept queries over the entries' keys, the rule's choice, compaction.
void KvCache::compress(Seq& s, size_t i) {
  Dropped& d = s.dropped[i];
  const EvictionParams p = dropping_params(s);
  const std::vector<std::vector<float>> keys = entry_keys(s, i);
  const int64_t n = int64_t(keys.size()), G = cfg_.num_q_heads / cfg_.num_kv_heads;
  const int64_t stored = int64_t(d.query_pos.size());
  const bool snap = *dropping_ == EvictionMethod::kSnapKV;
  const int64_t use = std::min(stored, snap ? p.snap_queries : p.rkv_queries);
  const double scale = 1.0 / std::sqrt(double(head_dim_));
  std::vector<std::vector<double>> rows;  // SnapKV: probabilities; R-KV: logits
  for (int64_t qi = stored - use; qi < stored; ++qi) {
    std::vector<double> row(size_t(n), snap ? 0.0 : -INFINITY);
    for (int64_t g = 0; g < G; ++g) {
      const float* q = d.queries.data() + (qi * G + g) * head_dim_;
      std::vector<double> logit(static_cast<size_t>(n));
      for (int64_t e = 0; e < n; ++e) {
        double dot = 0;
        for (int64_t x = 0; x < head_dim_; ++x) dot += double(q[x]) * keys[size_t(e)][size_t(x)];
        logit[size_t(e)] = dot * scale;
      }
      if (!snap) {  // R-KV: the group's maximum logit
        for (int64_t e = 0; e < n; ++e) row[size_t(e)] = std::max(row[size_t(e)], logit[size_t(e)]);
        continue;
      }
      // SnapKV: the query's softmax over the entries it could see (causal), averaged over the group.
      double mx = -INFINITY, z = 0;
      for (int64_t e = 0; e < n; ++e)
        if (d.pos[size_t(e)] <= d.query_pos[size_t(qi)]) mx = std::max(mx, logit[size_t(e)]);
      for (int64_t e = 0; e < n; ++e)
        if (d.pos[size_t(e)] <= d.query_pos[size_t(qi)]) z += std::exp(logit[size_t(e)] - mx);
      for (int64_t e = 0; e < n; ++e)
        if (d.pos[size_t(e)] <= d.query_pos[size_t(qi)])
          row[size_t(e)] += std::exp(logit[size_t(e)] - mx) / z / double(G);
    }
    rows.push_back(std::move(row));
  }
  const std::vector<int64_t> kept = snap ? snapkv_keep(rows, d.pos, p) : rkv_keep(rows, keys, d.pos, p);
  for (size_t e = 0; e < kept.size(); ++e) {
    copy_entry(s, i, kept[e], int64_t(e));
    d.pos[e] = d.pos[size_t(kept[e])];
    d.acc[e] = d.acc[size_t(kept[e])];
  }
  d.pos.resize(kept.size());
  d.acc.resize(kept.size());
}

void KvCache::note_decode_attention(const std::vector<int64_t>& seqs, int64_t layer, const at::Tensor& q) {
  if (!dropping_) return;
  const bool h2o = *dropping_ == EvictionMethod::kH2O;
  const int64_t G = cfg_.num_q_heads / cfg_.num_kv_heads;
  const int64_t keep_queries =
      *dropping_ == EvictionMethod::kSnapKV ? dropping_params_.snap_queries : dropping_params_.rkv_queries;
  at::Tensor qf;
  for (size_t b = 0; b < seqs.size(); ++b) {
    seq_ref(seqs[b]);
    Seq& s = seqs_[size_t(seqs[b])];
    if (s.budget == 0) continue;
    if (!h2o && !qf.defined()) qf = q.to(at::kFloat).contiguous();
    for (int64_t h = 0; h < heads_; ++h) {
      Dropped& d = s.dropped[size_t(layer * heads_ + h)];
      if (h2o) {
        const std::vector<float>& w = weights_.at(b * size_t(heads_) + size_t(h));
        RLKV_ASSERT(w.size() == d.acc.size(), "attention weights of ", w.size(), " entries for ", d.acc.size());
        for (size_t e = 0; e < w.size(); ++e) d.acc[e] += w[e];
        continue;
      }
      const float* rows = qf.data_ptr<float>() + (int64_t(b) * cfg_.num_q_heads + h * G) * head_dim_;
      d.queries.insert(d.queries.end(), rows, rows + G * head_dim_);
      d.query_pos.push_back(s.len);  // the step's token: its position is the length before end_step
      if (int64_t(d.query_pos.size()) > keep_queries) {
        d.query_pos.erase(d.query_pos.begin());
        d.queries.erase(d.queries.begin(), d.queries.begin() + G * head_dim_);
      }
    }
  }
}

}  // namespace rlkv
