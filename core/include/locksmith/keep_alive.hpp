// KeepAlive: keeps an expiring lock alive while it is held, and tells the holder at once when it
// is lost anyway. A lost lock is never silent: every way of being told is offered together.
//
//   locksmith::LinkLock lock("/shared/job.lock");
//   lock.lock();
//   locksmith::KeepAlive keeper(lock, {.on_lost = [](std::error_code) { /* stop writing */ }});
//   while (!keeper.lost()) work(keeper.stop_token());   // or poll(keeper.notify_handle())
//   keeper.stop();
//   lock.unlock();
//
// Semantics
//  - A thread calls lock.keep_alive() every interval (default: the lock's keep_alive_interval(),
//    a third of its lifetime or TTL). For a lock that cannot be lost (interval zero: flock, fcntl,
//    ...) no thread is started and nothing is ever reported.
//  - Loss is declared, once, when keep_alive() says errc::lock_lost (someone broke or took it),
//    when it reports an error, or cannot answer, until the lock's own bound valid_until() has
//    passed (a server that does not answer long enough means the hold is no longer certain), or
//    at once when the primitive's own thread pushes a notice (the pub/sub lock's connection
//    dropped: Lockable::on_loss). A renewal that fails with another error is retried at a tenth
//    of the interval until the bound.
//  - On loss, in this order: lost() becomes true and reason()/lost_at() are set, stop_token()'s
//    stop is requested, notify_handle() becomes readable (POSIX: a pipe's read end with one byte;
//    Windows: a manual-reset event that is set), then on_lost runs on the keeper's thread.
//  - While a KeepAlive runs, call nothing on the lock but lost(): stop() (or destroy) the keeper
//    before release(). The keeper never releases the lock.
//  - A holder paused (SIGSTOP, a VM freeze) past the lock's bound is told as soon as it resumes,
//    by the first renewal, which finds the lock gone or, when nobody took it meanwhile, renews it
//    (the hold was then never interrupted: the lock file or key still held our claim or token).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <system_error>
#include <thread>

#include "locksmith/lockable.hpp"
#include "locksmith/unique_fd.hpp"

namespace locksmith {

struct KeepAliveOptions {
  // How often to renew; nullopt = the lock's keep_alive_interval().
  std::optional<Clock::duration> interval;
  // Called once, on the keeper's thread, when the lock is found lost (after lost() is true).
  std::function<void(std::error_code)> on_lost;
};

class KeepAlive {
 public:
  // `lock` must be held and must outlive the keeper. Throws LockError when the notification
  // handle cannot be made (out of fds) or the thread cannot start.
  explicit KeepAlive(Lockable& lock, KeepAliveOptions options = {});
  KeepAlive(const KeepAlive&) = delete;
  KeepAlive& operator=(const KeepAlive&) = delete;
  ~KeepAlive();

  // Stops renewing (joins the thread); the lock stays held. Idempotent.
  void stop() noexcept;

  // Whether the lock can be lost at all (a thread runs).
  bool active() const noexcept { return interval_ > Clock::duration::zero(); }
  Clock::duration interval() const noexcept { return interval_; }
  bool lost() const noexcept { return lost_.load(std::memory_order_acquire); }
  // Why it was lost (empty while not lost).
  std::error_code reason() const;
  // When the keeper found the loss (steady clock; epoch while not lost).
  Clock::time_point lost_at() const;
  // Stop is requested when the lock is lost.
  std::stop_token stop_token() const noexcept { return stop_source_.get_token(); }
  // Readable (POSIX) / signalled (Windows) once the lock is lost; kInvalid when !active().
  native_handle notify_handle() const noexcept { return notify_read_.get(); }
  // Successful renewals so far.
  std::uint64_t renewals() const noexcept { return renewals_.load(std::memory_order_relaxed); }

 private:
  void loop();
  void declare_lost(std::error_code why);
  void make_notify_handle();
  void signal_notify_handle() noexcept;

  Lockable& lock_;
  KeepAliveOptions options_;
  Clock::duration interval_{};
  std::atomic<bool> lost_{false};
  std::atomic<std::uint64_t> renewals_{0};
  std::stop_source stop_source_;
  mutable std::mutex mu_;  // reason_, lost_at_, stopping_, pushed_
  std::condition_variable cv_;
  std::error_code reason_;
  Clock::time_point lost_at_{};
  bool stopping_ = false;
  bool pushed_ = false;  // the primitive's own thread reported the loss
  bool on_loss_set_ = false;
  UniqueFd notify_read_;
  UniqueFd notify_write_;  // POSIX: the pipe's write end (unused on Windows)
  std::thread thread_;
};

}  // namespace locksmith
