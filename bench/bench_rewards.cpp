// Reward scoring throughput (not a test: it prints JSON lines). Scored rollouts per second, and per
// core, for 4 KB maths responses, on one thread (score_response in a loop) and on the RewardWorker's
// pool, for two response shapes: a plain chain of thought ending in \boxed{}, and an R1-style
// <think> block followed by "The final answer is $\boxed{...}$." The answers mix integers, fractions,
// decimals, tuples, sets and expressions; half of them are correct. Inputs come from a fixed seed.
//
// Usage: bench_rewards [ROLLOUTS=20000] [POOL_THREADS=hardware concurrency]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_args.h"
#include "rewards/reward_worker.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Answer {
  const char* reference;
  const char* right;
  const char* wrong;
};

const Answer kAnswers[] = {
    {"#### 1,234", "1234", "1243"},
    {"\\frac{3}{4}", "0.75", "\\frac{4}{3}"},
    {"\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", "\\frac{\\sqrt2}{2}"},
    {"(1, -2, 3)", "\\left(1,-2,3\\right)", "(1,2,3)"},
    {"\\{2, 5\\}", "5, 2", "\\{2, 6\\}"},
    {"[0, \\infty)", "[0,\\infty)", "(0,\\infty)"},
    {"x^2+2x+1", "(x+1)^2", "(x-1)^2"},
    {"12.5\\%", "0.125", "1.25"},
    {"2\\frac{1}{3}", "\\frac{7}{3}", "\\frac{2}{3}"},
    {"The area is $\\boxed{18\\text{ cm}^2}$.", "18", "81"},
};

// ~`bytes` of chain-of-thought text with numbers and LaTeX, from `rng`.
std::string reasoning(size_t bytes, std::mt19937& rng) {
  static const char* sentences[] = {
      "Let $x$ be the number of apples, so $3x + 7 = 25$ and $x = 6$. ",
      "We compute $\\frac{12}{16} = \\frac{3}{4}$, then multiply by $4$ to get $3$. ",
      "Wait, let me double-check: $2^{10} = 1024$ and $1024 - 24 = 1000$. ",
      "The discriminant is $b^2 - 4ac = 49 - 24 = 25$, so $\\sqrt{25} = 5$. ",
      "Summing the series gives $\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$ for $n = 20$, i.e. 210. ",
      "Hmm, that does not match; maybe I mis-copied a digit in step 3. ",
      "Therefore the interval is $\\left[ -2, 3 \\right)$ before the last constraint. ",
  };
  std::string s;
  while (s.size() < bytes) s += sentences[rng() % (sizeof(sentences) / sizeof(sentences[0]))];
  s.resize(bytes);
  return s;
}

std::vector<rlkv::RolloutGroup> make_groups(int64_t rollouts, int g, bool think, size_t bytes) {
  std::mt19937 rng(think ? 2 : 1);
  std::vector<rlkv::RolloutGroup> groups;
  for (int64_t n = 0; n < rollouts; n += g) {
    const Answer& a = kAnswers[rng() % (sizeof(kAnswers) / sizeof(kAnswers[0]))];
    rlkv::RolloutGroup group;
    group.prompt_id = std::to_string(groups.size());
    group.answer = a.reference;
    group.ref_len = 1000;
    for (int k = 0; k < g; ++k) {
      const std::string tail =
          std::string(think ? "</think>\n\nThe final answer is $\\boxed{" : "So the answer is $\\boxed{") +
          (rng() % 2 ? a.right : a.wrong) + "}$.";
      rlkv::RolloutGroup::Rollout r;
      r.response = (think ? "<think>\n" : "") + reasoning(bytes - tail.size() - (think ? 8 : 0), rng) + tail;
      r.length = 1000 + int64_t(rng() % 1000);
      r.finish_reason = "eos";
      group.rollouts.push_back(std::move(r));
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

void report(const char* mode, const char* shape, int threads, int64_t rollouts, double seconds, int64_t work,
            int64_t budget_hits, int64_t correct) {
  nlohmann::json j = {{"bench", "rewards"},
                      {"mode", mode},
                      {"shape", shape},
                      {"response_bytes", 4096},
                      {"threads", threads},
                      {"rollouts", rollouts},
                      {"seconds", seconds},
                      {"rollouts_per_s", double(rollouts) / seconds},
                      {"rollouts_per_s_per_core", double(rollouts) / seconds / threads},
                      {"mean_work_steps", double(work) / double(rollouts)},
                      {"correct_fraction", double(correct) / double(rollouts)},
                      {"budget_hits", budget_hits}};
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: bench_rewards [ROLLOUTS (20000)] [POOL_THREADS (one per core)]";
  rlkv_bench::help_or_run(argc, argv, usage);
  const int64_t rollouts = rlkv_bench::int_arg(argc, argv, 1, 20000, 1, int64_t(1) << 30, usage);
  const int hw = int(std::thread::hardware_concurrency());
  const int pool = int(rlkv_bench::int_arg(argc, argv, 2, hw > 0 ? hw : 2, 1, 1024, usage));
  const int g = 8;
  const size_t bytes = 4096;
  for (bool think : {false, true}) {
    const char* shape = think ? "think_then_final_answer" : "cot_then_boxed";
    const auto groups = make_groups(rollouts, g, think, bytes);
    const int64_t n = int64_t(groups.size()) * g;

    // One thread: what one reward worker thread does per group.
    rlkv::RewardOptions opts;
    int64_t work = 0, hits = 0, correct = 0;
    double t0 = now();
    for (const auto& group : groups) {
      const rlkv::Reference ref = rlkv::prepare_reference(group.answer, opts);
      work += ref.work;
      for (const auto& r : group.rollouts) {
        const rlkv::RewardScore s =
            rlkv::score_response(r.response, r.length, r.finish_reason, ref, group.ref_len, opts);
        work += s.work;
        hits += s.budget_hit ? 1 : 0;
        correct += s.correct ? 1 : 0;
      }
    }
    report("single_thread", shape, 1, n, now() - t0, work, hits, correct);

    // The worker's pool, fed by this thread (copies made before the clock starts).
    auto copies = groups;
    rlkv::RewardWorkerOptions wo;
    wo.num_threads = pool;
    wo.max_pending = 256;
    int64_t delivered = 0;
    rlkv::RewardWorker worker(wo, [&](rlkv::ScoredGroup&& s) { delivered += int64_t(s.scores.size()); });
    t0 = now();
    for (auto& group : copies) worker.push(std::move(group));
    worker.drain();
    const double secs = now() - t0;
    const rlkv::RewardWorkerStats st = worker.stats();
    report("worker_pool", shape, pool, delivered, secs, st.work_steps, st.budget_hits, st.correct);
  }
  return 0;
}
