#include "locksmith/keep_alive.hpp"

#include <algorithm>
#include <utility>

namespace locksmith {

KeepAlive::KeepAlive(Lockable& lock, KeepAliveOptions options)
    : lock_(lock), options_(std::move(options)) {
  interval_ = options_.interval.value_or(lock_.keep_alive_interval());
  if (lock_.keep_alive_interval() <= Clock::duration::zero()) interval_ = {};
  if (!active()) return;
  make_notify_handle();
  on_loss_set_ = lock_.on_loss([this] {
    {
      const std::lock_guard lk(mu_);
      pushed_ = true;
    }
    cv_.notify_all();
  });
  try {
    thread_ = std::thread([this] { loop(); });
  } catch (const std::system_error& e) {
    if (on_loss_set_) lock_.on_loss({});
    throw LockError(e.code(), "cannot start the keep-alive thread for", lock_.describe().target);
  }
}

KeepAlive::~KeepAlive() { stop(); }

void KeepAlive::stop() noexcept {
  {
    const std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (on_loss_set_) {
    lock_.on_loss({});
    on_loss_set_ = false;
  }
}

std::error_code KeepAlive::reason() const {
  const std::lock_guard lk(mu_);
  return reason_;
}

Clock::time_point KeepAlive::lost_at() const {
  const std::lock_guard lk(mu_);
  return lost_at_;
}

void KeepAlive::declare_lost(std::error_code why) {
  {
    const std::lock_guard lk(mu_);
    reason_ = why;
    lost_at_ = Clock::now();
  }
  lost_.store(true, std::memory_order_release);
  stop_source_.request_stop();
  signal_notify_handle();
  if (options_.on_lost) {
    try {
      options_.on_lost(why);
    } catch (...) {
      // The holder's callback must not take the keeper down; the loss is recorded above.
    }
  }
}

void KeepAlive::loop() {
  // A failed renewal that is not a loss is retried sooner, until the lock's own bound.
  const auto retry = std::max<Clock::duration>(interval_ / 10, std::chrono::milliseconds(1));
  auto next = Clock::now() + interval_;
  auto attempted = Clock::now();
  for (;;) {
    {
      std::unique_lock lk(mu_);
      // Wake at the next renewal, or when the hold stops being certain (never sooner than
      // `retry` after the last attempt: a bound that a renewal did not move must not spin).
      const auto until = std::max(std::min(next, lock_.valid_until()), attempted + retry);
      cv_.wait_until(lk, until, [&] { return stopping_ || pushed_; });
      if (stopping_) return;
      pushed_ = false;
    }
    attempted = Clock::now();
    // Renew first even when pushed or past the bound: the primitive decides (a lock still ours
    // after a pause was never taken away).
    const std::error_code ec = lock_.keep_alive();
    if (!ec) {
      renewals_.fetch_add(1, std::memory_order_relaxed);
      next = Clock::now() + interval_;
      continue;
    }
    if (ec == errc::lock_lost || ec == errc::not_locked || Clock::now() >= lock_.valid_until()) {
      declare_lost(ec == errc::not_locked ? make_error_code(errc::lock_lost) : ec);
      return;
    }
    next = Clock::now() + retry;
  }
}

}  // namespace locksmith
