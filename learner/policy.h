// The head-gate policy and its gradient (docs/design.md section 3), torch-free: the policy has one logit
// per (layer, KV head), L * H_kv numbers, so plain loops beat any tensor library here.
//
//   p = sigmoid(theta): probability that a head keeps its full cache; each rollout samples its own
//   mask m ~ Bernoulli(p).
//   Advantages: A_i = (r_i - mean r) / (std r + eps) over a prompt's G rollouts (group) or over the
//   step's batch (batch).
//   Per-head ratio rho = pi_theta(m) / pi_behaviour(m), pi(1) = p, pi(0) = 1 - p; surrogate per
//   rollout sum_h min(rho A, clip(rho, 1 - eps, 1 + eps) A) (PPO-style clipping per head, exact because
//   the policy factorises). With rho = 1 (sync mode) its gradient is A (m - p), plain REINFORCE.
//   Sparsity penalty: beta' * sum_h p_h (penalty = sum, the default) or the paper's beta' * mean_h p_h
//   (penalty = mean). The sum puts the penalty's gradient per head, beta' p (1 - p), on the same scale
//   as the policy-gradient signal of one head, A (m - p) ~ p (1 - p) * (advantage gap), whatever the
//   model's head count, so beta is O(0.1-1) for any model; the mean divides that gradient by the
//   head count L * H, so a mean run with beta equals a sum run with beta / (L * H). The real-model
//   recipes use the mean with the paper's beta. beta' is either the paper's adaptive weight [rbar > tau] beta
//   (exp(rbar) - 1) with rbar the step's mean correctness, or, with a target sparsity, a dual-ascent controller that
//   moves beta (PI control) until the expected sparsity 1 - mean(p) reaches the target. The controller's weight
//   may go negative (a bonus for keeping heads when the policy is sparser than the target); positive
//   pressure is gated by rbar > tau like the paper's.
//   Optimiser: AdamW on theta with gradient-norm clipping.
//
// The objective is maximised; gradients returned are of the LOSS (= -objective + penalty), the
// quantity the optimizer descends. Deterministic: sums run in a fixed order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlkv {

struct PolicyOptions {
  double init_keep_prob = 0.9;  // p0
  double lr = 1e-2;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8, weight_decay = 0.0;
  double grad_clip = 1.0;          // max L2 norm of the gradient (0 = off)
  double clip_eps = 0.2;           // PPO ratio clip
  std::string adv_norm = "group";  // group | batch
  double adv_eps = 1e-6;
  double beta = 1.0;            // penalty weight of the adaptive form (the target form's integral starts at 0)
  double tau = 0.5;             // correctness gate of the penalty
  double target_sparsity = 0;   // > 0: dual-ascent controller on beta towards this expected sparsity
  std::string penalty = "sum";  // sum: beta' * sum_h p_h | mean: beta' * mean_h p_h (the paper's form)
  double dual_lr = 0.02;        // controller integral step: beta += dual_lr * (target - sparsity_expected)
  double target_gain = 4.0;     // controller proportional gain
};

// One scored rollout as the estimator sees it.
struct PolicyRollout {
  std::vector<uint8_t> keep;  // [L * H] the sampled mask, 1 = full
  double reward = 0;
  double correct = 0;
};

// A prompt's group: its rollouts and the behaviour probabilities they were sampled with.
struct PolicyGroup {
  std::vector<float> behaviour_p;  // [L * H] sigmoid(theta_behaviour)
  std::vector<PolicyRollout> rollouts;
};

struct StepStats {
  double reward_mean = 0, correct_mean = 0, sparsity_expected = 0, penalty_weight = 0, grad_norm = 0;
  double clipped_fraction = 0;  // share of (rollout, head) terms whose ratio was clipped
  int64_t rollouts = 0;
};

class HeadPolicy {
 public:
  HeadPolicy(int64_t num_layers, int64_t num_kv_heads, PolicyOptions opts);

  int64_t size() const { return int64_t(theta_.size()); }
  int64_t num_layers() const { return layers_; }
  int64_t num_kv_heads() const { return heads_; }
  const std::vector<float>& theta() const { return theta_; }
  std::vector<float> keep_probs() const;  // sigmoid(theta)
  double sparsity_expected() const;       // 1 - mean(p)

  // Gradient of the loss over `groups` (already gathered for this step), summed as sums over
  // rollouts and heads so that ranks can add partial sums (MPI all-reduce) before apply().
  // Returns the partial sums: grad [L * H] of the surrogate (to be divided by the global rollout
  // count), and fills the partial statistics (sums, not means) of `partial`.
  struct Partial {
    std::vector<double> grad_sum;  // [L * H] sum over rollouts of d(-surrogate)/d theta
    double rollouts = 0, reward_sum = 0, correct_sum = 0, clipped = 0, terms = 0;
  };
  Partial partial_gradient(const std::vector<PolicyGroup>& groups, const std::vector<double>* batch_stats) const;
  // Batch advantage normalisation needs the step's reward mean and std over all ranks: the sums
  // (count, sum, sum of squares) of the rewards in `groups`.
  static std::vector<double> reward_moments(const std::vector<PolicyGroup>& groups);

  // Completes the step from (globally summed) partials: mean gradient + penalty, clipping, AdamW,
  // controller update. Returns the step's statistics.
  StepStats apply(const Partial& total);

  // State for checkpoints / resume.
  std::vector<float>& mutable_theta() { return theta_; }
  std::vector<float>& adam_m() { return m_; }
  std::vector<float>& adam_v() { return v_; }
  int64_t adam_step() const { return t_; }
  void set_adam_step(int64_t t) { t_ = t; }
  double penalty_beta() const { return beta_; }
  void set_penalty_beta(double b) { beta_ = b; }
  const PolicyOptions& options() const { return opts_; }

 private:
  int64_t layers_, heads_;
  PolicyOptions opts_;
  std::vector<float> theta_, m_, v_;
  int64_t t_ = 0;
  double beta_;  // controller state (target form) or the fixed beta (adaptive form)
};

double sigmoid(double x);

struct PolicyConfig;
// The estimator's options from the run's [policy] section (the one place that maps those keys).
PolicyOptions policy_options(const PolicyConfig& c);

}  // namespace rlkv
