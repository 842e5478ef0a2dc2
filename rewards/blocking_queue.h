// A closable multi-producer multi-consumer FIFO, the in-process hand-off between pipeline stages
// (transports behind a small interface with an in-process implementation; the ZeroMQ
// transport feeds the same push/pop calls: rewards/reward_role.h).
//
// capacity 0 = unbounded; otherwise push() blocks while `capacity` items wait (back-pressure).
// close(): later pushes fail (return false, the item is dropped), blocked pushers wake up and fail,
// pops drain what is left and then return nullopt. Thread safety: every method may be called from any
// thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

namespace rlkv {

template <typename T>
class BlockingQueue {
 public:
  explicit BlockingQueue(size_t capacity = 0) : capacity_(capacity) {}

  bool push(T v) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return room(); });
    if (closed_) return false;
    items_.push_back(std::move(v));
    not_empty_.notify_one();
    return true;
  }

  // push() that waits at most `timeout` for room: true when queued (v moved from); false when still
  // full or closed, v untouched.
  bool push_for(T& v, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!not_full_.wait_for(lock, timeout, [&] { return room(); }) || closed_) return false;
    items_.push_back(std::move(v));
    not_empty_.notify_one();
    return true;
  }

  std::optional<T> pop() {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    return take(lock);
  }

  std::optional<T> try_pop() {
    std::unique_lock<std::mutex> lock(mu_);
    return take(lock);
  }

  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  // Drops every waiting item (cancellation); returns how many.
  size_t clear() {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t n = items_.size();
    items_.clear();
    not_full_.notify_all();
    return n;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_.size();
  }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }

 private:
  // A push may go on (under mu_): closed (it fails), unbounded, or below capacity.
  bool room() const { return closed_ || capacity_ == 0 || items_.size() < capacity_; }

  std::optional<T> take(std::unique_lock<std::mutex>&) {
    if (items_.empty()) return std::nullopt;
    std::optional<T> v(std::move(items_.front()));
    items_.pop_front();
    not_full_.notify_one();
    return v;
  }

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace rlkv
