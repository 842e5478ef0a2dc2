// The reward worker with real threads: producers pushing concurrently, sink and pop
// delivery, payload pass-through, back-pressure, budget-hit counting, a throwing sink, cancellation.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/error.h"
#include "rewards/reward_worker.h"

using namespace rlkv;

namespace {

struct Masks {  // what a trainer might put in the payload
  int64_t policy_version = 0;
  std::vector<uint8_t> keep;
};

RolloutGroup make_group(int i, int g = 4) {
  RolloutGroup group;
  group.prompt_id = "p" + std::to_string(i);
  group.answer = (i % 3 == 0) ? "Work.\n#### " + std::to_string(i) : std::to_string(i);
  group.ref_len = 100;
  group.payload = Masks{i, {}};
  for (int k = 0; k < g; ++k) {
    RolloutGroup::Rollout r;
    // Rollout k answers i when k is even, i + 1 otherwise; lengths grow with k.
    r.response = "Reasoning... so the answer is $\\boxed{" + std::to_string(k % 2 == 0 ? i : i + 1) + "}$.";
    r.length = 100 + 50 * k;
    r.finish_reason = k == 3 ? "length" : "eos";
    r.payload = Masks{i, std::vector<uint8_t>(8, uint8_t(k))};
    group.rollouts.push_back(std::move(r));
  }
  return group;
}

void check_scored(const ScoredGroup& s) {
  const int i = std::stoi(s.group.prompt_id.substr(1));
  REQUIRE(s.scores.size() == s.group.rollouts.size());
  CHECK(std::any_cast<Masks>(s.group.payload).policy_version == i);
  for (size_t k = 0; k < s.scores.size(); ++k) {
    const auto& m = std::any_cast<const Masks&>(s.group.rollouts[k].payload);
    CHECK(m.keep == std::vector<uint8_t>(8, uint8_t(k)));  // untouched
    const bool expect_correct = k % 2 == 0 && k != 3;
    CHECK(s.scores[k].correct == expect_correct);
    const double e = k == 3 ? 1.0 : length_excess(100 + 50 * int64_t(k), 100, 0.5);
    CHECK(s.scores[k].excess == Approx(e));
    CHECK(s.scores[k].reward == Approx((expect_correct ? 1.0 : 0.0) - 0.25 * e));
  }
}

}  // namespace

TEST_CASE("score_group scores every rollout and passes payloads through") {
  const ScoredGroup s = score_group(make_group(6), RewardOptions());
  check_scored(s);
  CHECK(s.reference_why == "####");
}

TEST_CASE("worker with a sink: two producers, every group delivered exactly once") {
  RewardWorkerOptions o;
  o.num_threads = 3;
  o.max_pending = 4;  // small, so producers feel back-pressure
  std::mutex mu;
  std::multiset<std::string> seen;
  std::vector<ScoredGroup> got;
  {
    RewardWorker worker(o, [&](ScoredGroup&& s) {
      // Calls are serialised by the worker: no lock is needed for `got`; the mutex guards `seen`
      // against the test thread only.
      got.push_back(std::move(s));
      std::lock_guard<std::mutex> lock(mu);
      seen.insert(got.back().group.prompt_id);
    });
    const int n = 200;
    std::atomic<int> accepted{0};  // Catch2 assertions are not thread-safe: count, check after join
    std::thread a([&] {
      for (int i = 0; i < n; i += 2) accepted += worker.push(make_group(i)) ? 1 : 0;
    });
    std::thread b([&] {
      for (int i = 1; i < n; i += 2) accepted += worker.push(make_group(i)) ? 1 : 0;
    });
    a.join();
    b.join();
    CHECK(accepted == n);
    worker.drain();
    CHECK_FALSE(worker.push(make_group(999)));  // closed
    const RewardWorkerStats st = worker.stats();
    CHECK(st.groups_in == n);
    CHECK(st.groups_out == n);
    CHECK(st.rollouts == 4 * n);
    CHECK(st.correct == 2 * n);
    CHECK(st.budget_hits == 0);
    CHECK(st.work_steps > 0);
    CHECK(st.sink_errors == 0);
  }
  REQUIRE(got.size() == 200);
  for (const auto& s : got) check_scored(s);
  CHECK(seen.size() == 200);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 200);
}

TEST_CASE("worker without a sink: pop until closed and drained, scores equal single-threaded ones") {
  RewardWorkerOptions o;
  o.num_threads = 2;
  RewardWorker worker(o);
  std::thread producer([&] {
    for (int i = 0; i < 50; ++i) worker.push(make_group(i, 6));
    worker.close();
  });
  std::map<std::string, ScoredGroup> out;
  while (auto s = worker.pop()) out.emplace(s->group.prompt_id, std::move(*s));
  producer.join();
  CHECK_FALSE(worker.try_pop().has_value());
  REQUIRE(out.size() == 50);
  for (int i = 0; i < 50; ++i) {
    const ScoredGroup ref = score_group(make_group(i, 6), o.reward);
    const ScoredGroup& got = out.at("p" + std::to_string(i));
    for (size_t k = 0; k < ref.scores.size(); ++k) {
      CHECK(got.scores[k].correct == ref.scores[k].correct);
      CHECK(got.scores[k].reward == ref.scores[k].reward);
      CHECK(got.scores[k].work == ref.scores[k].work);  // deterministic work, whatever the thread
    }
  }
}

TEST_CASE("a slow (pathological) item costs its budget and is counted, never blocks the others") {
  RewardWorkerOptions o;
  o.num_threads = 2;
  o.reward.work_budget = 20000;
  RewardWorker worker(o);
  RolloutGroup slow = make_group(1, 2);
  std::string boxes;
  for (int i = 0; i < 5000; ++i) boxes += "\\boxed{";  // quadratic without a budget
  slow.rollouts[0].response = boxes;
  worker.push(std::move(slow));
  RolloutGroup bad_ref = make_group(2, 2);
  bad_ref.answer = std::string(100000, ' ') + "5";  // the reference alone exceeds the budget
  worker.push(std::move(bad_ref));
  for (int i = 3; i < 10; ++i) worker.push(make_group(i, 2));
  worker.drain();
  int groups = 0;
  while (auto s = worker.pop()) {
    ++groups;
    for (const auto& sc : s->scores) CHECK(sc.work <= o.reward.work_budget);
    if (s->group.prompt_id == "p1") {
      CHECK(s->scores[0].budget_hit);
      CHECK_FALSE(s->scores[0].correct);
      CHECK(s->scores[1].correct == false);  // answers 2: wrong, but scored normally
      CHECK_FALSE(s->scores[1].budget_hit);
    }
    if (s->group.prompt_id == "p2") {
      CHECK(s->reference_budget_hit);
      for (const auto& sc : s->scores) CHECK_FALSE(sc.correct);
    }
  }
  CHECK(groups == 9);
  CHECK(worker.stats().budget_hits == 2);  // one rollout + one reference
}

TEST_CASE("a throwing sink loses its group only, drain() rethrows the first error") {
  RewardWorkerOptions o;
  o.num_threads = 2;
  std::atomic<int> delivered{0};
  RewardWorker worker(o, [&](ScoredGroup&& s) {
    if (s.group.prompt_id == "p5") throw std::runtime_error("downstream is full");
    ++delivered;
  });
  for (int i = 0; i < 20; ++i) worker.push(make_group(i, 1));
  CHECK_THROWS_WITH(worker.drain(), "downstream is full");
  CHECK(delivered == 19);
  CHECK(worker.stats().sink_errors == 1);
  CHECK_NOTHROW(worker.drain());  // reported once
}

TEST_CASE("destruction with queued groups cancels without hanging, bad options are user errors") {
  {
    RewardWorkerOptions o;
    o.num_threads = 1;
    o.max_pending = 1000;
    RewardWorker worker(o);
    for (int i = 0; i < 500; ++i) worker.push(make_group(i, 8));
  }  // destructor: drops what waits, joins
  RewardWorkerOptions bad;
  bad.num_threads = 0;
  CHECK_THROWS_AS(RewardWorker(bad), UserError);
  bad = RewardWorkerOptions();
  bad.reward.slack = -1;
  CHECK_THROWS_WITH(RewardWorker(bad), Catch::Matchers::Contains("slack"));
}
