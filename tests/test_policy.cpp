// The head-gate policy's estimator and optimiser (learner/policy.h).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/config.h"
#include "learner/policy.h"

using namespace rlkv;

namespace {
// Rollouts whose reward is 1 exactly when head `critical` is kept full.
std::vector<PolicyGroup> bandit(const HeadPolicy& pol, int64_t critical, std::mt19937_64& rng, int groups, int G) {
  std::vector<PolicyGroup> out;
  const auto p = pol.keep_probs();
  for (int gi = 0; gi < groups; ++gi) {
    PolicyGroup g;
    g.behaviour_p = p;
    for (int i = 0; i < G; ++i) {
      PolicyRollout r;
      for (float ph : p) r.keep.push_back(std::bernoulli_distribution(ph)(rng) ? 1 : 0);
      r.correct = r.keep[size_t(critical)];
      r.reward = r.correct;
      g.rollouts.push_back(r);
    }
    out.push_back(g);
  }
  return out;
}
}  // namespace

TEST_CASE("sync-mode gradient is the REINFORCE estimate A (m - p)") {
  PolicyOptions o;
  o.init_keep_prob = 0.7;
  HeadPolicy pol(1, 2, o);
  PolicyGroup g;
  g.behaviour_p = pol.keep_probs();
  g.rollouts = {{{1, 0}, 1.0, 1.0}, {{0, 1}, 0.0, 0.0}};
  auto part = pol.partial_gradient({g}, nullptr);
  // Group-normalised advantages are +1 and -1 (std 0.5, mean 0.5).
  const double p = 0.7;
  const double a0 = 0.5 / (0.5 + o.adv_eps), a1 = -a0;
  REQUIRE(part.grad_sum[0] == Approx(-(a0 * (1 - p) + a1 * (0 - p))));
  REQUIRE(part.grad_sum[1] == Approx(-(a0 * (0 - p) + a1 * (1 - p))));
  REQUIRE(part.rollouts == 2);
}

TEST_CASE("with p = 1/2 the gradient is A (m - p) exactly, the advantage's epsilon included") {
  PolicyOptions o;
  o.init_keep_prob = 0.5;  // theta = 0: p and the behaviour's float p are 1/2 exactly
  HeadPolicy pol(1, 1, o);
  PolicyGroup g;
  g.behaviour_p = pol.keep_probs();
  REQUIRE(g.behaviour_p[0] == 0.5f);
  g.rollouts = {{{1}, 1.0, 1.0}, {{0}, 0.0, 0.0}};
  const auto part = pol.partial_gradient({g}, nullptr);
  const double a = 0.5 / (0.5 + o.adv_eps);  // population std 0.5
  CHECK(part.grad_sum[0] == Approx(-(a * 0.5 + (-a) * (0 - 0.5))).epsilon(1e-12));
  CHECK(part.grad_sum[0] != Approx(-1.0).epsilon(1e-12));  // adv_eps is there
}

TEST_CASE("a saturated head's rare outcome drawn from the current policy has ratio 1, not clipped") {
  // sigmoid(16) in float is 1 - 1.19e-7 and clamps to 1 - 1e-6: the ratio of the current policy's
  // exact 1.1e-7 against it was 0.11, and with A < 0 the term was clipped as if off-policy.
  PolicyOptions o;
  HeadPolicy pol(1, 1, o);
  pol.mutable_theta()[0] = 16.0f;
  PolicyGroup g;
  g.behaviour_p = pol.keep_probs();
  g.rollouts = {{{1}, 1.0, 1.0}, {{0}, 0.0, 0.0}};  // the rare drop was the worse rollout: A < 0
  const auto part = pol.partial_gradient({g}, nullptr);
  CHECK(part.clipped == 0);
  const double p = 1.0 / (1.0 + std::exp(-16.0)), dp = p * (1 - p);
  const double pb = std::clamp(double(g.behaviour_p[0]), 1e-6, 1 - 1e-6);
  const double a = 0.5 / (0.5 + o.adv_eps);
  CHECK(part.grad_sum[0] == Approx(-(a * dp / pb + (-a) * (-dp / (1 - pb)))).epsilon(1e-9));
}

TEST_CASE("off-policy ratios inside the clip's rewarded side keep their gradient") {
  // p = 0.9 now, p_b = 0.5 at sampling. m = 0 with A > 0: rho = 0.2 (below 0.8, but the clip only
  // stops a ratio that has left the region in the rewarded direction); m = 1 with A < 0: rho = 1.8.
  PolicyOptions o;
  o.init_keep_prob = 0.9;
  HeadPolicy pol(1, 1, o);
  const double p = 1.0 / (1.0 + std::exp(-double(pol.theta()[0]))), dp = p * (1 - p);
  PolicyGroup g;
  g.behaviour_p = {0.5f};
  g.rollouts = {{{0}, 1.0, 1.0}, {{1}, 0.0, 0.0}};
  const auto part = pol.partial_gradient({g}, nullptr);
  CHECK(part.clipped == 0);
  const double a = 0.5 / (0.5 + o.adv_eps);
  // d(-rho A)/d theta: m = 0, rho = (1 - p) / (1 - p_b): -a * (-dp / 0.5); m = 1, rho = p / p_b: -(-a) * dp / 0.5.
  CHECK(part.grad_sum[0] == Approx(a * dp / 0.5 + a * dp / 0.5).epsilon(1e-9));
  CHECK(part.grad_sum[0] == Approx(4 * a * 0.09).epsilon(1e-6));  // 0.18 A from each rollout
}

TEST_CASE("ratios outside the clip range stop the gradient in the rewarded direction") {
  PolicyOptions o;
  o.init_keep_prob = 0.9;
  HeadPolicy pol(1, 1, o);
  PolicyGroup g;
  g.behaviour_p = {0.5f};  // behaviour kept the head with p = 0.5: rho = 0.9 / 0.5 = 1.8 for m = 1
  g.rollouts = {{{1}, 1.0, 1.0}, {{0}, 0.0, 0.0}};
  auto part = pol.partial_gradient({g}, nullptr);
  // m = 1 with A > 0 and rho 1.8 > 1.2: clipped. m = 0 with A < 0 and rho = 0.1 / 0.5 = 0.2 < 0.8: clipped.
  REQUIRE(part.clipped == 2);
  REQUIRE(part.grad_sum[0] == 0);
}

TEST_CASE("the policy learns to keep the head that decides correctness and drops the rest") {
  PolicyOptions o;
  o.init_keep_prob = 0.9;
  o.lr = 0.05;
  o.target_sparsity = 0.5;
  o.tau = 0.3;
  HeadPolicy pol(2, 4, o);
  std::mt19937_64 rng(3);
  for (int step = 0; step < 600; ++step) {
    auto groups = bandit(pol, 5, rng, 8, 4);
    pol.apply(pol.partial_gradient(groups, nullptr));
  }
  const auto p = pol.keep_probs();
  REQUIRE(p[5] > 0.9);
  // The rest carry the compression: each well below the critical head.
  for (size_t h = 0; h < p.size(); ++h) {
    INFO("head " << h << " p " << p[h]);
    if (h != 5) CHECK(p[h] < p[5] - 0.3);
  }
  // The critical head ranks first and the expected sparsity approaches the target.
  REQUIRE(std::max_element(p.begin(), p.end()) - p.begin() == 5);
  REQUIRE(std::abs(pol.sparsity_expected() - 0.5) < 0.1);
}

TEST_CASE("the adaptive penalty is off below the correctness gate and grows with correctness") {
  PolicyOptions o;
  o.beta = 1.0;
  o.tau = 0.5;
  HeadPolicy pol(1, 1, o);
  HeadPolicy::Partial part;
  part.grad_sum = {0.0};
  part.rollouts = 10;
  part.correct_sum = 4;  // rbar 0.4 <= tau
  REQUIRE(pol.apply(part).penalty_weight == 0);
  part.correct_sum = 9;
  REQUIRE(pol.apply(part).penalty_weight == Approx(std::exp(0.9) - 1));
}

TEST_CASE("the controller's integral unwinds below the correctness gate when the policy is too sparse") {
  PolicyOptions o;
  o.tau = 0.5;
  o.target_sparsity = 0.25;
  o.lr = 0;  // the gates stay where they are set
  HeadPolicy pol(1, 4, o);
  REQUIRE(pol.penalty_beta() == 0);               // the integral starts at zero
  pol.set_penalty_beta(0.8);                      // a weight built up earlier
  for (float& t : pol.mutable_theta()) t = 0.0f;  // p = 0.5: expected sparsity 0.5, past the target
  HeadPolicy::Partial part;
  part.grad_sum.assign(4, 0.0);
  part.rollouts = 10;
  part.correct_sum = 3;  // rbar 0.3 <= tau: the gate is closed
  const auto st = pol.apply(part);
  REQUIRE(st.penalty_weight == Approx(4.0 * (0.25 - 0.5) + 0.8));  // negative: a bonus, not gated
  REQUIRE(pol.penalty_beta() == Approx(0.8 + 0.02 * (0.25 - 0.5)));
  // Too dense with the gate closed: a positive integral does not wind up further.
  for (float& t : pol.mutable_theta()) t = 5.0f;  // p ~ 0.993: expected sparsity ~0.007
  const double before = pol.penalty_beta();
  REQUIRE(pol.apply(part).penalty_weight == 0);  // positive pressure waits for the gate
  REQUIRE(pol.penalty_beta() == before);
  part.correct_sum = 9;  // the gate opens: it winds up
  pol.apply(part);
  REQUIRE(pol.penalty_beta() > before);
}

TEST_CASE("the controller's integral moves with the expected sparsity after the update") {
  PolicyOptions o;
  o.tau = 0.5;
  o.target_sparsity = 0.25;
  o.lr = 0.1;
  HeadPolicy pol(1, 4, o);
  for (float& t : pol.mutable_theta()) t = 0.0f;  // expected sparsity 0.5 before the update
  HeadPolicy::Partial part;
  part.grad_sum.assign(4, 10.0);  // a loss gradient that lowers every theta: sparser after the step
  part.rollouts = 10;
  part.correct_sum = 9;
  pol.apply(part);
  const double after = pol.sparsity_expected();
  REQUIRE(after > 0.52);
  CHECK(pol.penalty_beta() == Approx(0.02 * (0.25 - after)).epsilon(1e-12));
}

TEST_CASE("batch advantage normalisation uses the step's global reward moments") {
  PolicyOptions o;
  o.adv_norm = "batch";
  HeadPolicy pol(1, 1, o);
  PolicyGroup a, b;
  a.behaviour_p = b.behaviour_p = pol.keep_probs();
  a.rollouts = {{{1}, 1.0, 1.0}, {{1}, 1.0, 1.0}};  // a group with no spread: group norm would give A = 0
  b.rollouts = {{{0}, 0.0, 0.0}, {{0}, 0.0, 0.0}};
  const auto moments = HeadPolicy::reward_moments({a, b});
  REQUIRE(moments == std::vector<double>{4, 2, 2});
  auto part = pol.partial_gradient({a, b}, &moments);
  REQUIRE(part.grad_sum[0] < 0);  // keeping the head was rewarded: the loss gradient is negative
  // Exactly: mean 0.5, population std 0.5 (a sample std would be 0.577), A = +-0.5 / (0.5 + eps);
  // each kept rollout adds -A (1 - p), each dropped one -A (0 - p): -2A in all, for any p.
  const double A = 0.5 / (0.5 + o.adv_eps);
  const double p = 1.0 / (1.0 + std::exp(-double(pol.theta()[0])));
  const double pb = double(a.behaviour_p[0]), dp = p * (1 - p);
  CHECK(part.grad_sum[0] == Approx(-2 * A * dp / pb - 2 * A * dp / (1 - pb)).epsilon(1e-12));
  CHECK(part.grad_sum[0] == Approx(-2 * A).epsilon(1e-6));
}

// The real-model recipes reproduce the paper's penalty: its loss carries beta' * mean over all
// L x H_kv heads of p, beta' = [rbar > tau] beta (exp(rbar) - 1), so the gradient on one head's
// logit is beta (e^rbar - 1) p (1 - p) / (L H). Each recipe goes through the config loader and the
// estimator; with no policy-gradient signal the gradient is the penalty's alone.
TEST_CASE("the real-model recipes weigh each head's penalty as the paper does") {
  struct Recipe {
    const char* file;
    int64_t layers, kv_heads;
    double paper_beta;  // the paper's beta for that model
  };
  const Recipe recipes[] = {{"llama-3.1-8b-r1.ini", 32, 8, 1e-3},
                            {"qwen-2.5-7b-r1.ini", 28, 4, 1e-3},
                            {"qwen3-4b-thinking.ini", 36, 8, 2.5e-3}};
  for (const Recipe& r : recipes) {
    INFO(r.file);
    const Config cfg = load_config(std::string(RLKV_SOURCE_DIR) + "/configs/" + r.file, {});
    REQUIRE(cfg.policy.target_sparsity == 0);  // the paper's adaptive weight, not the controller
    HeadPolicy pol(r.layers, r.kv_heads, policy_options(cfg.policy));
    const int64_t n = r.layers * r.kv_heads;
    HeadPolicy::Partial none;
    none.grad_sum.assign(size_t(n), 0.0);
    none.rollouts = 128;
    none.correct_sum = 128;  // rbar = 1 > tau: the penalty is on
    const double p = sigmoid(pol.theta()[0]);
    const StepStats st = pol.apply(none);
    const double paper_weight = r.paper_beta * (std::exp(1.0) - 1);
    CHECK(st.penalty_weight == Approx(paper_weight).epsilon(1e-12));
    // Every head's gradient is the same: the norm over n heads is sqrt(n) times one head's.
    const double per_head = st.grad_norm / std::sqrt(double(n));
    const double paper_per_head = paper_weight * p * (1 - p) / double(n);
    CHECK(per_head == Approx(paper_per_head).epsilon(1e-9));
  }
}

// One textbook AdamW step with gradient-norm clipping and the sum penalty, computed here in double
// from the formulas of learner/policy.h, against HeadPolicy::apply over two steps (the first clipped,
// the second not), then the theta clamp at +-30.
TEST_CASE("apply is AdamW on the mean gradient plus the penalty, clipped to grad_clip, theta clamped to 30") {
  PolicyOptions o;
  o.init_keep_prob = 0.7;
  o.lr = 0.1;
  o.weight_decay = 0.01;
  o.grad_clip = 1.0;
  o.beta = 0.5;
  o.tau = 0.5;
  HeadPolicy pol(1, 2, o);
  std::vector<double> theta = {std::log(0.7 / 0.3), std::log(0.7 / 0.3)}, m(2, 0.0), v(2, 0.0);
  const std::vector<std::vector<double>> grads = {{3.0, -4.0}, {0.2, 0.1}};
  for (int t = 1; t <= 2; ++t) {
    HeadPolicy::Partial total;
    total.grad_sum = grads[size_t(t - 1)];
    total.rollouts = 2;
    total.correct_sum = 2;  // mean correctness 1 > tau: the penalty weight is beta (e^1 - 1)
    total.reward_sum = 2;
    const StepStats st = pol.apply(total);
    const double w = o.beta * (std::exp(1.0) - 1);
    std::vector<double> g(2);
    double norm2 = 0;
    for (size_t h = 0; h < 2; ++h) {
      const double p = 1 / (1 + std::exp(-theta[h]));
      g[h] = total.grad_sum[h] / 2 + w * p * (1 - p);
      norm2 += g[h] * g[h];
    }
    const double norm = std::sqrt(norm2), scale = norm > o.grad_clip ? o.grad_clip / norm : 1.0;
    CHECK(st.grad_norm == Approx(norm).epsilon(1e-6));  // reported before clipping (theta is stored as float)
    CHECK(st.penalty_weight == Approx(w));
    for (size_t h = 0; h < 2; ++h) {
      m[h] = o.beta1 * m[h] + (1 - o.beta1) * g[h] * scale;
      v[h] = o.beta2 * v[h] + (1 - o.beta2) * g[h] * scale * g[h] * scale;
      const double mhat = m[h] / (1 - std::pow(o.beta1, t)), vhat = v[h] / (1 - std::pow(o.beta2, t));
      theta[h] = theta[h] * (1 - o.lr * o.weight_decay) - o.lr * mhat / (std::sqrt(vhat) + o.adam_eps);
      INFO("step " << t << " head " << h);
      CHECK(pol.theta()[h] == Approx(theta[h]).epsilon(1e-5));
      CHECK(pol.adam_m()[h] == Approx(m[h]).epsilon(1e-5));
      CHECK(pol.adam_v()[h] == Approx(v[h]).epsilon(1e-5));
    }
    CHECK((scale < 1) == (t == 1));  // the first step was clipped, the second was not
  }
  // A step that would carry theta past 30 stops there.
  HeadPolicy far(1, 2, o);
  far.mutable_theta() = {29.99f, -29.99f};
  HeadPolicy::Partial push;
  push.grad_sum = {-1.0, 1.0};
  push.rollouts = 1;
  far.apply(push);
  CHECK(far.theta()[0] == 30.0f);
  CHECK(far.theta()[1] == -30.0f);
}
