#include "learner/policy.h"

#include <algorithm>
#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "core/keep_prob.h"

namespace rlkv {

namespace {
constexpr double kThetaLimit = 30.0;  // |theta| after every update: keep probabilities within 1e-13 of 0 or 1
}  // namespace

double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

PolicyOptions policy_options(const PolicyConfig& c) {
  PolicyOptions p;
  p.init_keep_prob = c.init_keep_prob;
  p.lr = c.lr;
  p.beta = c.beta;
  p.tau = c.tau;
  p.target_sparsity = c.target_sparsity;
  p.penalty = c.penalty;
  p.adv_norm = c.adv_norm;
  p.clip_eps = c.clip_eps;
  p.grad_clip = c.grad_clip;
  return p;
}

HeadPolicy::HeadPolicy(int64_t num_layers, int64_t num_kv_heads, PolicyOptions opts)
    : layers_(num_layers),
      heads_(num_kv_heads),
      opts_(std::move(opts)),
      // The controller's integral starts at zero: started at a positive weight it holds the policy
      // above the target until it has unwound (a weight of 1 is the proportional term of a quarter of
      // sparsity past the target, and unwinds at 0.005 a step at most).
      beta_(opts_.target_sparsity > 0 ? 0.0 : opts_.beta) {
  RLKV_CHECK(num_layers >= 1 && num_kv_heads >= 1, "policy: needs at least one layer and KV head");
  RLKV_CHECK(opts_.init_keep_prob > 0 && opts_.init_keep_prob < 1,
             "config key policy.init_keep_prob: expected in (0, 1), got ", opts_.init_keep_prob);
  RLKV_CHECK(opts_.penalty == "sum" || opts_.penalty == "mean",
             "config key policy.penalty: expected sum or mean, got '", opts_.penalty, "'");
  RLKV_CHECK(opts_.adv_norm == "group" || opts_.adv_norm == "batch",
             "config key policy.adv_norm: expected group or batch, got '", opts_.adv_norm, "'");
  const double p0 = opts_.init_keep_prob;
  // Within the +-30 every update clamps to (init_keep_prob = 1 - 2^-53 gave 36.7).
  theta_.assign(size_t(layers_ * heads_), float(std::clamp(std::log(p0 / (1 - p0)), -kThetaLimit, kThetaLimit)));
  m_.assign(theta_.size(), 0.f);
  v_.assign(theta_.size(), 0.f);
}

std::vector<float> HeadPolicy::keep_probs() const {
  std::vector<float> p(theta_.size());
  for (size_t i = 0; i < p.size(); ++i) p[i] = keep_prob(theta_[i]);
  return p;
}

double HeadPolicy::sparsity_expected() const {
  double s = 0;
  for (float t : theta_) s += sigmoid(t);
  return 1.0 - s / double(theta_.size());
}

std::vector<double> HeadPolicy::reward_moments(const std::vector<PolicyGroup>& groups) {
  std::vector<double> m(3, 0.0);
  for (const auto& g : groups)
    for (const auto& r : g.rollouts) {
      m[0] += 1;
      m[1] += r.reward;
      m[2] += r.reward * r.reward;
    }
  return m;
}

HeadPolicy::Partial HeadPolicy::partial_gradient(const std::vector<PolicyGroup>& groups,
                                                 const std::vector<double>* batch_stats) const {
  const size_t n = theta_.size();
  Partial out;
  out.grad_sum.assign(n, 0.0);
  // The ratio's numerator is the current keep probability as the actors compute and send it
  // (float, clamped as p_b is), so that on-policy rollouts have rho = 1 exactly: computed in double
  // here, a head at theta = 16 had rho = 0.11 on its rare outcome and was clipped. Its derivative
  // is the exact one.
  std::vector<double> p(n), dp(n);
  for (size_t h = 0; h < n; ++h) {
    const double exact = sigmoid(theta_[h]);
    p[h] = std::clamp(double(keep_prob(theta_[h])), 1e-6, 1 - 1e-6);
    dp[h] = exact * (1 - exact);
  }
  double batch_mean = 0, batch_std = 0;
  if (opts_.adv_norm == "batch") {
    RLKV_ASSERT(batch_stats && batch_stats->size() == 3, "batch advantage normalisation needs reward moments");
    const double cnt = std::max(1.0, (*batch_stats)[0]);
    batch_mean = (*batch_stats)[1] / cnt;
    batch_std = std::sqrt(std::max(0.0, (*batch_stats)[2] / cnt - batch_mean * batch_mean));
  }
  const double lo = 1 - opts_.clip_eps, hi = 1 + opts_.clip_eps;
  for (const auto& g : groups) {
    RLKV_ASSERT(g.behaviour_p.size() == n, "group behaviour probabilities of the wrong size");
    double mean = batch_mean, sd = batch_std;
    if (opts_.adv_norm == "group") {
      mean = 0;
      for (const auto& r : g.rollouts) mean += r.reward;
      mean /= std::max<double>(1, double(g.rollouts.size()));
      double var = 0;
      for (const auto& r : g.rollouts) var += (r.reward - mean) * (r.reward - mean);
      sd = std::sqrt(var / std::max<double>(1, double(g.rollouts.size())));
    }
    for (const auto& r : g.rollouts) {
      RLKV_ASSERT(r.keep.size() == n, "rollout mask of the wrong size");
      const double A = (r.reward - mean) / (sd + opts_.adv_eps);
      out.rollouts += 1;
      out.reward_sum += r.reward;
      out.correct_sum += r.correct;
      if (A == 0) continue;
      for (size_t h = 0; h < n; ++h) {
        const double pb = std::clamp(double(g.behaviour_p[h]), 1e-6, 1 - 1e-6);
        const bool full = r.keep[h] != 0;
        const double rho = full ? p[h] / pb : (1 - p[h]) / (1 - pb);
        const double drho = full ? dp[h] / pb : -dp[h] / (1 - pb);
        out.terms += 1;
        // min(rho A, clip(rho) A) takes the clipped branch (zero gradient) exactly when the ratio has
        // left the trust region in the direction the advantage rewards.
        if ((A > 0 && rho > hi) || (A < 0 && rho < lo)) {
          out.clipped += 1;
          continue;
        }
        out.grad_sum[h] -= A * drho;
      }
    }
  }
  return out;
}

StepStats HeadPolicy::apply(const Partial& total) {
  const size_t n = theta_.size();
  RLKV_ASSERT(total.grad_sum.size() == n, "gradient of the wrong size");
  StepStats st;
  st.rollouts = int64_t(total.rollouts);
  const double N = std::max(1.0, total.rollouts);
  st.reward_mean = total.reward_sum / N;
  st.correct_mean = total.correct_sum / N;
  st.clipped_fraction = total.terms > 0 ? total.clipped / total.terms : 0;
  const bool gate = st.correct_mean > opts_.tau;
  double w = 0;
  if (opts_.target_sparsity > 0) {
    // The controller's weight may turn negative (a bonus for keeping heads) when the policy is
    // sparser than the target; only the pressure towards sparsity waits for correctness.
    // PI control: the proportional term reacts at once, the integral (beta_) removes the offset that
    // heads resisting compression would otherwise leave; integral alone oscillates under Adam's momentum.
    const double wpi = opts_.target_gain * (opts_.target_sparsity - sparsity_expected()) + beta_;
    w = (wpi > 0 && !gate) ? 0 : wpi;
  } else {
    w = gate ? opts_.beta * (std::exp(st.correct_mean) - 1) : 0;
  }
  st.penalty_weight = w;
  std::vector<double> g(n);
  double norm2 = 0;
  // d/dtheta_h of w * sum_h p_h is w p_h (1 - p_h); of w * mean_h p_h, that over the head count.
  const double per_head = opts_.penalty == "mean" ? w / double(n) : w;
  for (size_t h = 0; h < n; ++h) {
    const double p = sigmoid(theta_[h]);
    g[h] = total.grad_sum[h] / N + per_head * p * (1 - p);
    norm2 += g[h] * g[h];
  }
  st.grad_norm = std::sqrt(norm2);
  const double scale = (opts_.grad_clip > 0 && st.grad_norm > opts_.grad_clip) ? opts_.grad_clip / st.grad_norm : 1.0;
  ++t_;
  const double bc1 = 1 - std::pow(opts_.beta1, double(t_)), bc2 = 1 - std::pow(opts_.beta2, double(t_));
  for (size_t h = 0; h < n; ++h) {
    const double gh = g[h] * scale;
    m_[h] = float(opts_.beta1 * m_[h] + (1 - opts_.beta1) * gh);
    v_[h] = float(opts_.beta2 * v_[h] + (1 - opts_.beta2) * gh * gh);
    double th = theta_[h] * (1 - opts_.lr * opts_.weight_decay);
    th -= opts_.lr * (double(m_[h]) / bc1) / (std::sqrt(double(v_[h]) / bc2) + opts_.adam_eps);
    theta_[h] = float(std::clamp(th, -kThetaLimit, kThetaLimit));
  }
  st.sparsity_expected = sparsity_expected();
  // The integral winds up (more pressure) only while the gate is open or while it is not positive;
  // it always unwinds when the policy is sparser than the target. Gated that way too, a weight built
  // up early stays frozen above zero through every failing step, and the policy settles far past the
  // target (toy-reasoner-2 with target 0.25: 36-40% expected sparsity after 600 steps).
  const double delta = opts_.dual_lr * (opts_.target_sparsity - st.sparsity_expected);
  if (opts_.target_sparsity > 0 && (gate || beta_ <= 0 || delta < 0)) beta_ += delta;
  return st;
}

}  // namespace rlkv
