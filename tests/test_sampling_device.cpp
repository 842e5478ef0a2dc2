// Batch sampling with tensor ops (runtime/sampling_device.h), run on CPU tensors here, against the
// per-row host sampler it replaces on GPUs: the same tokens for the same uniforms.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <limits>
#include <set>
#include <vector>

#include "runtime/sampling.h"
#include "runtime/sampling_device.h"

using namespace rlkv;

namespace {
std::vector<int32_t> ids(const at::Tensor& t) {  // [B] int32 tokens, wherever they are
  at::Tensor h = t.to(at::kCPU).contiguous();
  return std::vector<int32_t>(h.data_ptr<int32_t>(), h.data_ptr<int32_t>() + h.numel());
}
}  // namespace

TEST_CASE("device sampling picks what sample_token picks, for every sampling rule") {
  const int64_t B = 64, V = 3000;
  at::manual_seed(11);
  at::Tensor logits = at::randn({B, V}) * 3.0;
  // Degenerate rows: NaNs among finite logits, a single finite logit, one +inf among finite logits.
  logits[1].index_fill_(0, at::arange(0, V, 7), std::numeric_limits<float>::quiet_NaN());
  logits[2].fill_(-std::numeric_limits<float>::infinity());
  logits[2][1234] = 0.5f;
  logits[3][777] = std::numeric_limits<float>::infinity();
  struct Rule {
    double t, top_p;
    int64_t top_k;
  };
  for (const Rule r : {Rule{0, 1, 0}, Rule{1, 1, 0}, Rule{0.7, 1, 20}, Rule{1, 0.9, 0}, Rule{0.6, 0.95, 20},
                       Rule{1.3, 0.5, 300}, Rule{1, 1, V}, Rule{1, 1, 1}, Rule{1e-310, 1, 0}, Rule{1e-310, 0.9, 20}}) {
    SamplingParams p;
    p.temperature = r.t;
    p.top_p = r.top_p;
    p.top_k = r.top_k;
    std::vector<double> u(static_cast<size_t>(B));
    std::vector<int32_t> want(static_cast<size_t>(B));
    SamplingScratch scratch;
    for (int64_t b = 0; b < B; ++b) {
      Rng a(5, uint64_t(b)), c(5, uint64_t(b));
      want[size_t(b)] = sample_token(logits[b].contiguous().data_ptr<float>(), V, p, a, scratch);
      u[size_t(b)] = c.uniform();  // the uniform sample_token drew
    }
    const std::vector<int32_t> got = ids(sample_rows_on_device(logits, p, u));
    INFO("temperature " << r.t << " top_p " << r.top_p << " top_k " << r.top_k);
    REQUIRE(got == want);
    REQUIRE(got[3] == 777);  // the +inf logit wins under every rule
  }
}

TEST_CASE("device sampling keeps every token tied with a row's k-th logit") {
  // Row 0: ids 1-3 tie at the 2nd logit; row 1 has no tie: its 3rd-5th candidates must not be drawn.
  at::Tensor logits = at::tensor({2.0f, 1.0f, 1.0f, 1.0f, 0.0f, 5.0f, 4.0f, 3.0f, 2.0f, 1.0f}).view({2, 5});
  SamplingParams p;
  p.top_k = 2;
  std::set<int32_t> row0, row1;
  for (int i = 0; i < 200; ++i) {
    const double u = (i + 0.5) / 200;
    const std::vector<int32_t> got = ids(sample_rows_on_device(logits, p, {u, u}));
    row0.insert(got[0]);
    row1.insert(got[1]);
  }
  CHECK(row0 == std::set<int32_t>{0, 1, 2, 3});
  CHECK(row1 == std::set<int32_t>{0, 1});
}

TEST_CASE("device sampling draws by the inverse CDF: frequencies follow the softmax") {
  // Two rows, 4 tokens: the empirical frequencies over many uniforms match the probabilities.
  at::Tensor logits = at::tensor({0.0f, 1.0f, 2.0f, -1.0f}).unsqueeze(0).repeat({2000, 1});
  std::vector<double> u(2000);
  for (size_t i = 0; i < u.size(); ++i) u[i] = (double(i) + 0.5) / double(u.size());
  SamplingParams p;
  const std::vector<int32_t> got = ids(sample_rows_on_device(logits, p, u));
  at::Tensor probs = at::softmax(logits[0].to(at::kDouble), 0);
  for (int64_t j = 0; j < 4; ++j) {
    const double f = double(std::count(got.begin(), got.end(), int32_t(j))) / double(got.size());
    REQUIRE(std::abs(f - probs[j].item<double>()) < 2e-3);
  }
}
