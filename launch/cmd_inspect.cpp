// `rlkv inspect CKPT.h5 [--json]`: what a checkpoint holds, for people and scripts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "core/json_strict.h"
#include "launch/cli.h"
#include "masks/head_mask.h"

namespace po = boost::program_options;

namespace rlkv {

int cmd_inspect(int argc, char** argv) {
  po::options_description desc("rlkv inspect options");
  std::string path;
  int64_t top = 5;
  desc.add_options()("help,h", "show this help")("checkpoint", po::value(&path), "ckpt-<step>.h5")(
      "json", "print JSON")("top", po::value(&top)->default_value(5), "heads listed at each end");
  po::positional_options_description pos;
  pos.add("checkpoint", 1);
  ParsedArgs args = parse_args(argc, argv, desc, &pos);
  if (args.vm.count("help")) {
    std::cout << "usage: rlkv inspect CKPT.h5 [--json]\n" << desc;
    return 0;
  }
  RLKV_CHECK(!path.empty(), "rlkv inspect needs a checkpoint path");
  RLKV_CHECK(top >= 0, "--top must be >= 0");
  const CheckpointState s = read_checkpoint(path);
  const size_t n = s.logits.size();
  std::vector<double> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = 1.0 / (1.0 + std::exp(-double(s.logits[i])));
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  // Ranked as the masks rank heads (masks/head_mask.h): among tied heads the later one first.
  HeadScores hs;
  hs.values = p;
  const std::vector<double> ranked = ranked_scores(hs);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return ranked[a] != ranked[b] ? ranked[a] > ranked[b] : a > b; });
  const double sparsity = 1.0 - std::accumulate(p.begin(), p.end(), 0.0) / double(std::max<size_t>(1, n));
  const auto& h = s.history;
  auto mean_of = [](const std::vector<double>& v, size_t from, size_t to) {
    if (to <= from) return std::nan("");
    return std::accumulate(v.begin() + int64_t(from), v.begin() + int64_t(to), 0.0) / double(to - from);
  };
  const size_t steps = h.step.size(), k = std::min<size_t>(10, steps);
  const double reward_first = mean_of(h.reward_mean, 0, k), reward_last = mean_of(h.reward_mean, steps - k, steps);
  auto head_json = [&](size_t i) {
    return nlohmann::json{
        {"layer", int64_t(i) / s.num_kv_heads}, {"kv_head", int64_t(i) % s.num_kv_heads}, {"keep_prob", p[i]}};
  };
  nlohmann::json top_heads = nlohmann::json::array(), bottom_heads = nlohmann::json::array();
  for (size_t i = 0; i < std::min<size_t>(size_t(top), n); ++i) top_heads.push_back(head_json(order[i]));
  for (size_t i = 0; i < std::min<size_t>(size_t(top), n); ++i) bottom_heads.push_back(head_json(order[n - 1 - i]));
  if (args.vm.count("json")) {
    nlohmann::json j = {{"path", path},
                        {"run_id", s.run_id},
                        {"model", s.model},
                        {"num_layers", s.num_layers},
                        {"num_kv_heads", s.num_kv_heads},
                        {"sink", s.sink},
                        {"window", s.window},
                        {"step", s.step},
                        {"policy_version", s.policy_version},
                        {"sparsity_expected", sparsity},
                        {"penalty_beta", s.penalty_beta},
                        {"history_steps", int64_t(steps)},
                        {"reward_mean_first10", steps ? nlohmann::json(reward_first) : nlohmann::json(nullptr)},
                        {"reward_mean_last10", steps ? nlohmann::json(reward_last) : nlohmann::json(nullptr)},
                        {"top_heads", top_heads},
                        {"bottom_heads", bottom_heads},
                        {"keep_prob", p},
                        {"config", s.config}};
    std::cout << dump_json(j, 2) << "\n";
    return 0;
  }
  std::printf("checkpoint   %s\nrun          %s\nmodel        %s (%lld layers x %lld KV heads)\n", path.c_str(),
              s.run_id.c_str(), s.model.c_str(), (long long)s.num_layers, (long long)s.num_kv_heads);
  std::printf("cache        sink %lld, window %lld\nstep         %lld (policy version %lld)\n", (long long)s.sink,
              (long long)s.window, (long long)s.step, (long long)s.policy_version);
  std::printf("sparsity     %.3f expected (1 - mean keep probability); penalty weight %.4f\n", sparsity,
              s.penalty_beta);
  if (steps)
    std::printf("reward       %.3f over the first %zu steps -> %.3f over the last %zu\n", reward_first, k, reward_last,
                k);
  std::printf("top heads    ");
  for (const auto& t : top_heads)
    std::printf(" L%lld.H%lld=%.3f", (long long)t["layer"], (long long)t["kv_head"], double(t["keep_prob"]));
  std::printf("\nbottom heads ");
  for (const auto& t : bottom_heads)
    std::printf(" L%lld.H%lld=%.3f", (long long)t["layer"], (long long)t["kv_head"], double(t["keep_prob"]));
  std::printf("\n\nkeep probability, layers x KV heads:\n");
  for (int64_t l = 0; l < s.num_layers; ++l) {
    std::printf("  L%-3lld", (long long)l);
    for (int64_t hh = 0; hh < s.num_kv_heads; ++hh) std::printf(" %.3f", p[size_t(l * s.num_kv_heads + hh)]);
    std::printf("\n");
  }
  std::printf("\nconfig:\n%s", s.config.c_str());
  if (!s.config.empty() && s.config.back() != '\n') std::printf("\n");
  return 0;
}

}  // namespace rlkv
