// Which scored groups a learner step uses (learner/step_collector.h), on groups built by hand:
// sync steps take exactly the B groups of the step's positions and version, ordered by position,
// and drop late, duplicate and foreign groups with exact counts; async steps take groups up to
// max_staleness versions old (histogrammed by staleness), drop older ones as stale and copies of a
// group already taken as duplicates, and carry groups beyond B over to the next step while fresh.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "comm/messages.h"
#include "learner/step_collector.h"

using namespace rlkv;

namespace {

constexpr int64_t kLayers = 2, kKvHeads = 2;
const char* const kRun = "run-collector";

// A scored group as the learner receives it: encoded and decoded again, so the inputs are frames a
// reward worker could have sent. `tag` (the actor id) tells groups apart after take().
ScoredGroupMsg scored(int64_t position, int64_t version, const std::string& tag = "actor-0") {
  RolloutGroupMsg g;
  g.run_id = kRun;
  g.actor_id = tag;
  g.prompt_id = "p" + std::to_string(position);
  g.prompt_index = position;
  g.position = position;
  g.policy_version = version;
  g.answer = "42";
  g.num_layers = kLayers;
  g.num_kv_heads = kKvHeads;
  g.behaviour_keep_prob.assign(size_t(kLayers * kKvHeads), 0.5f);
  for (int r = 0; r < 2; ++r) {
    Rollout ro;
    ro.mask.assign(size_t(kLayers * kKvHeads), uint8_t(r & 1));
    ro.length = 3;
    ro.tokens = {5, 6, 7};
    ro.text = "A:42";
    RolloutScore s;
    s.correct = r;
    s.reward = double(r);
    ro.score = s;
    g.rollouts.push_back(ro);
  }
  return decode_scored_group(encode(ScoredGroupMsg(g)));
}

// Offers the group at its own position, as the learner does.
bool offer(StepCollector& c, ScoredGroupMsg g) {
  const int64_t pos = g.position;
  return c.offer(std::move(g), pos);
}

void require_counts(const StepCollector& c, int64_t used, int64_t stale, int64_t duplicate, int64_t foreign) {
  INFO("used " << c.counts().used << " stale " << c.counts().stale << " duplicate " << c.counts().duplicate
               << " foreign " << c.counts().foreign);
  CHECK(c.counts().used == used);
  CHECK(c.counts().stale == stale);
  CHECK(c.counts().duplicate == duplicate);
  CHECK(c.counts().foreign == foreign);
}

std::vector<int64_t> positions_of(const std::vector<ScoredGroupMsg>& gs) {
  std::vector<int64_t> out;
  for (const auto& g : gs) out.push_back(g.position);
  return out;
}

std::vector<int64_t> versions_of(const std::vector<ScoredGroupMsg>& gs) {
  std::vector<int64_t> out;
  for (const auto& g : gs) out.push_back(g.policy_version);
  return out;
}

using Histogram = std::map<int64_t, int64_t>;

}  // namespace

TEST_CASE("step collector, sync: a step completes with exactly B groups of its version, ordered by position") {
  StepCollector c(/*sync=*/true, /*prompts_per_step=*/4, /*max_staleness=*/2);
  c.begin_step(2);  // positions [8, 12), version 2
  REQUIRE(c.step() == 2);
  for (int64_t pos : {10, 8, 11}) {
    REQUIRE(offer(c, scored(pos, 2)));
    REQUIRE_FALSE(c.complete());
  }
  REQUIRE(offer(c, scored(9, 2)));
  REQUIRE(c.complete());
  const auto groups = c.take();
  CHECK(positions_of(groups) == std::vector<int64_t>{8, 9, 10, 11});
  CHECK(versions_of(groups) == std::vector<int64_t>{2, 2, 2, 2});
  CHECK(c.staleness() == Histogram{{0, 4}});
  require_counts(c, 4, 0, 0, 0);

  // The next step starts empty and takes its own positions; counts accumulate over the run.
  c.begin_step(3);
  REQUIRE_FALSE(c.complete());
  for (int64_t pos : {15, 14, 13, 12}) REQUIRE(offer(c, scored(pos, 3)));
  REQUIRE(c.complete());
  CHECK(positions_of(c.take()) == std::vector<int64_t>{12, 13, 14, 15});
  require_counts(c, 8, 0, 0, 0);
}

TEST_CASE("step collector, sync: a late group (an older version) is dropped and counted") {
  StepCollector c(true, 4, 2);
  c.begin_step(3);  // positions [12, 16)
  // Version 2 at a position of this step (an actor that had not seen version 3 yet), and version 2
  // at the positions of step 2 (delivered after step 2 completed): both late.
  CHECK_FALSE(offer(c, scored(12, 2)));
  CHECK_FALSE(offer(c, scored(9, 2)));
  // An older version than the step is late however old (max_staleness is for async runs).
  CHECK_FALSE(offer(c, scored(13, 0)));
  require_counts(c, 0, 3, 0, 0);
  REQUIRE_FALSE(c.complete());
  for (int64_t pos = 12; pos < 16; ++pos) REQUIRE(offer(c, scored(pos, 3)));
  REQUIRE(c.complete());
  CHECK(versions_of(c.take()) == std::vector<int64_t>{3, 3, 3, 3});
  require_counts(c, 4, 3, 0, 0);
}

TEST_CASE("step collector, sync: a duplicate (the same position twice) is dropped and counted, the first one stays") {
  StepCollector c(true, 3, 2);
  c.begin_step(1);  // positions [3, 6)
  REQUIRE(offer(c, scored(4, 1, "first")));
  CHECK_FALSE(offer(c, scored(4, 1, "second")));
  CHECK_FALSE(offer(c, scored(4, 1, "third")));
  require_counts(c, 0, 0, 2, 0);
  REQUIRE(offer(c, scored(3, 1)));
  REQUIRE_FALSE(c.complete());  // two distinct positions of three, whatever the duplicates
  REQUIRE(offer(c, scored(5, 1)));
  REQUIRE(c.complete());
  const auto groups = c.take();
  REQUIRE(positions_of(groups) == std::vector<int64_t>{3, 4, 5});
  CHECK(groups[1].actor_id == "first");
  require_counts(c, 3, 0, 2, 0);
}

TEST_CASE(
    "step collector, sync: a foreign group (a position outside the step, or a newer version) is dropped and counted") {
  StepCollector c(true, 4, 2);
  c.begin_step(2);                                     // positions [8, 12), version 2
  CHECK_FALSE(offer(c, scored(7, 2)));                 // the previous step's last position
  CHECK_FALSE(offer(c, scored(12, 2)));                // the next step's first position
  CHECK_FALSE(offer(c, scored(int64_t(1) << 41, 2)));  // an elastic actor's own position space
  CHECK_FALSE(offer(c, scored(9, 3)));                 // a version the learner has not published
  require_counts(c, 0, 0, 0, 4);
  for (int64_t pos = 8; pos < 12; ++pos) REQUIRE(offer(c, scored(pos, 2)));
  REQUIRE(c.complete());
  CHECK(positions_of(c.take()) == std::vector<int64_t>{8, 9, 10, 11});
  require_counts(c, 4, 0, 0, 4);
}

TEST_CASE("step collector: a group of another run never reaches it: validate() rejects it as foreign_run") {
  // The collector is offered groups already validated against the run and the model's shape (the
  // learner's receive_message with its ReceiveExpect); another run's group is stopped there.
  ScoredGroupMsg other = scored(8, 2);
  other.run_id = "run-other";
  try {
    validate(other, kRun, kLayers, kKvHeads);
    FAIL("validate() accepted a group of another run");
  } catch (const MessageError& e) {
    CHECK(e.kind == MessageErrorKind::kForeignRun);
  }
  CHECK_NOTHROW(validate(scored(8, 2), kRun, kLayers, kKvHeads));
}

TEST_CASE(
    "step collector, async: groups up to max_staleness versions old are used and histogrammed, older ones are stale") {
  StepCollector c(/*sync=*/false, /*prompts_per_step=*/4, /*max_staleness=*/2);
  c.begin_step(5);                        // versions 3, 4, 5 are fresh enough
  CHECK_FALSE(offer(c, scored(100, 2)));  // staleness 3
  CHECK_FALSE(offer(c, scored(101, 0)));  // staleness 5
  require_counts(c, 0, 2, 0, 0);
  CHECK(offer(c, scored(102, 5)));  // staleness 0
  CHECK(offer(c, scored(103, 3)));  // staleness 2
  CHECK(offer(c, scored(104, 4)));  // staleness 1
  REQUIRE_FALSE(c.complete());
  CHECK_FALSE(offer(c, scored(105, 6)));  // a version the learner has not published: foreign
  CHECK(offer(c, scored(106, 3)));        // staleness 2
  REQUIRE(c.complete());
  const auto groups = c.take();
  CHECK(positions_of(groups) == std::vector<int64_t>{102, 103, 104, 106});  // arrival order
  CHECK(c.staleness() == Histogram{{0, 1}, {1, 1}, {2, 2}});
  require_counts(c, 4, 2, 0, 1);
}

TEST_CASE(
    "step collector, async: groups beyond B carry over to the next step while fresh, and go stale there when not") {
  StepCollector c(false, 3, 1);
  c.begin_step(4);  // versions 3 and 4 are fresh enough
  for (auto [pos, version] : std::vector<std::pair<int64_t, int64_t>>{{1, 4}, {2, 3}, {3, 4}, {4, 3}, {5, 4}})
    REQUIRE(offer(c, scored(pos, version)));
  REQUIRE(c.complete());
  CHECK(positions_of(c.take()) == std::vector<int64_t>{1, 2, 3});
  CHECK(c.staleness() == Histogram{{0, 2}, {1, 1}});
  require_counts(c, 3, 0, 0, 0);

  // Step 5 accepts versions 4 and 5: the carried group of version 3 (position 4) is now stale, the one
  // of version 4 (position 5) is used first.
  c.begin_step(5);
  require_counts(c, 3, 1, 0, 0);
  REQUIRE_FALSE(c.complete());
  CHECK_FALSE(offer(c, scored(6, 3)));
  REQUIRE(offer(c, scored(7, 5)));
  REQUIRE_FALSE(c.complete());
  REQUIRE(offer(c, scored(8, 5)));
  REQUIRE(c.complete());
  const auto groups = c.take();
  CHECK(positions_of(groups) == std::vector<int64_t>{5, 7, 8});
  CHECK(c.staleness() == Histogram{{0, 2}, {1, 1}});
  require_counts(c, 6, 2, 0, 0);
}

TEST_CASE("step collector, async: with max_staleness 0 only the current version is used") {
  StepCollector c(false, 2, 0);
  c.begin_step(1);
  CHECK_FALSE(offer(c, scored(0, 0)));
  CHECK(offer(c, scored(1, 1)));
  CHECK(offer(c, scored(2, 1)));
  REQUIRE(c.complete());
  CHECK(versions_of(c.take()) == std::vector<int64_t>{1, 1});
  CHECK(c.staleness() == Histogram{{0, 2}});
  require_counts(c, 2, 1, 0, 0);
}

TEST_CASE("step collector, async: a copy of a group already taken is dropped as a duplicate, other groups pass") {
  StepCollector c(false, 4, 1);
  c.begin_step(2);
  REQUIRE(offer(c, scored(10, 2)));
  CHECK_FALSE(offer(c, scored(10, 2)));  // the same group again (a replay scored by a second reward worker)
  require_counts(c, 0, 0, 1, 0);
  CHECK(offer(c, scored(10, 2, "actor-1")));  // another actor's group at the same position
  CHECK(offer(c, scored(10, 1)));             // the same actor and position at another version
  ScoredGroupMsg other_masks = scored(10, 2);
  other_masks.rollouts[0].mask[0] ^= 1;  // a group sampled anew (other masks)
  CHECK(offer(c, std::move(other_masks)));
  require_counts(c, 0, 0, 1, 0);
  REQUIRE(c.complete());
  c.take();
  // Still remembered while its version can be taken (step 3 takes versions 2 and 3) ...
  c.begin_step(3);
  CHECK_FALSE(offer(c, scored(10, 2)));
  require_counts(c, 4, 0, 2, 0);
  // ... and stale, not duplicate, once it cannot.
  c.begin_step(4);
  CHECK_FALSE(offer(c, scored(10, 2)));
  require_counts(c, 4, 1, 2, 0);
}
