#include "rewards/reward_role.h"

#include <any>
#include <atomic>
#include <chrono>
#include <mutex>
#include <variant>

#include "core/log.h"

namespace rlkv {

using std::chrono::milliseconds;

ScoredGroupMsg to_scored_message(const ScoredGroup& sg) {
  ScoredGroupMsg m(std::any_cast<const RolloutGroupMsg&>(sg.group.payload));
  for (size_t i = 0; i < m.rollouts.size() && i < sg.scores.size(); ++i) {
    RolloutScore s;
    s.correct = sg.scores[i].correct ? 1 : 0;
    s.excess = sg.scores[i].excess;
    s.reward = sg.scores[i].reward;
    m.rollouts[i].score = s;
  }
  return m;
}

RewardRoleStats run_reward_role(Context& ctx, Puller& pull, const RunEndpoints& ep, const RunIdentity& id,
                                const RewardWorkerOptions& opts) {
  RewardRoleStats st;
  Pusher push(ctx);
  push.set_key(ep.key);
  push.connect(ep.scored);
  Subscriber sub(ctx);
  sub.set_key(ep.key);
  sub.connect(ep.policy);
  DropCounter drops("reward worker rollouts"), policy_drops("reward worker policy");
  const ReceiveExpect expect{id.run_id, id.num_layers, id.num_kv_heads};
  std::mutex push_mu;  // the sink (pool threads) and the hello forwarding (this thread) share `push`
  // Set on the learner's stop policy: a group scored after it has no taker (the learner's socket
  // may be closed), so the sink gives up at the first failed send, for that group and every later one
  // (a queue of 64 waiting 1 s each held the shutdown for a minute).
  std::atomic<bool> stopping{false};
  bool gave_up = false;  // under push_mu
  {
    RewardWorker worker(opts, [&](ScoredGroup&& sg) {
      const std::string frame = encode(to_scored_message(sg));
      std::lock_guard<std::mutex> lock(push_mu);
      if (gave_up) return;  // after the stop, one failed send ends them all (each waited 1 s)
      while (!push.send(frame, milliseconds(1000))) {
        ++st.push_failures;
        if (run_stop_flag().load() || stopping.load()) {
          gave_up = true;
          return;
        }
      }
    });
    // Whether the learner's stop policy is waiting (non-stop policies carry nothing for this role).
    auto stop_policy = [&] {
      auto pol = receive_policy(sub, milliseconds(0), expect, policy_drops);
      if (pol && pol->stop) stopping = true;
      return stopping.load();
    };
    while (!run_stop_flag().load()) {
      if (stop_policy()) break;
      auto msg = receive_message(pull, milliseconds(100), expect, drops);
      if (!msg) continue;
      if (auto* hello = std::get_if<HelloMsg>(&*msg)) {  // an actor's claim: the learner keeps the books
        std::lock_guard<std::mutex> lock(push_mu);
        push.send(encode(*hello), milliseconds(1000));
        continue;
      }
      auto* g = std::get_if<RolloutGroupMsg>(&*msg);
      if (!g) {
        ++st.dropped;
        continue;
      }
      RolloutGroup rg;
      rg.prompt_id = g->prompt_id;
      rg.answer = g->answer;
      rg.ref_len = g->ref_len;
      for (const auto& r : g->rollouts) {
        RolloutGroup::Rollout ro;
        ro.response = r.text;
        ro.length = r.length;
        ro.finish_reason = r.finish_reason;
        rg.rollouts.push_back(std::move(ro));
      }
      rg.payload = std::move(*g);
      // While the pool is full (its sink waiting on a slow or departed learner), keep watching for
      // the stop policy: after it the sink gives up, before it a blocked push would wait forever.
      while (!worker.push_for(rg, milliseconds(100)))
        if (run_stop_flag().load() || stop_policy()) break;
      if (stopping) break;
    }
    worker.drain();
    st.worker = worker.stats();
  }
  st.dropped += drops.total();
  if (drops.total() > 0) log_warn("reward worker dropped rollout groups: " + drops.summary());
  log_refusals(pull, "reward worker rollouts");
  log_refusals(sub, "reward worker policy");
  push.close();
  sub.close();
  return st;
}

}  // namespace rlkv
