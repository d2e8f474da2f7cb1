#include "locksmith/semaphore.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "file_ops.hpp"
#include "wait.hpp"

namespace locksmith {

BoundedSemaphore::BoundedSemaphore(unsigned maximum, std::string name,
                                   std::filesystem::path directory, SemaphoreOptions options)
    : maximum_(maximum),
      name_(std::move(name)),
      directory_(std::move(directory)),
      options_(options) {
  if (maximum_ == 0 || maximum_ > 1000) {
    throw LockError(std::make_error_code(std::errc::invalid_argument),
                    "semaphore maximum must be 1..1000, not " + std::to_string(maximum_),
                    (directory_ / name_).string());
  }
}

BoundedSemaphore::~BoundedSemaphore() = default;

std::filesystem::path BoundedSemaphore::slot_path(unsigned number) const {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%02u", number);
  return directory_ / (name_ + "." + digits + ".lock");
}

LockOptions BoundedSemaphore::slot_options() const {
  LockOptions o;
  o.backend = options_.backend;
  o.permissions = options_.permissions;
  o.follow_symlinks = options_.follow_symlinks;
  return o;
}

Clock::time_point BoundedSemaphore::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

std::error_code BoundedSemaphore::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (mode != LockMode::exclusive) return std::make_error_code(std::errc::invalid_argument);
  if (held_ >= 0) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  const LockOptions opts = slot_options();
  failed_ = -1;

  // First pass: every slot, in numeric order, without waiting (portalocker's order).
  std::vector<UniqueFd> fds(maximum_);
  for (unsigned i = 0; i < maximum_; ++i) {
    std::error_code ec;
    try {
      ec = detail::open_lock_file(slot_path(i), OpenMode::append, opts.permissions,
                                  opts.follow_symlinks, fds[i]);
    } catch (const std::bad_alloc&) {
      ec = std::make_error_code(std::errc::not_enough_memory);
    }
    if (ec) {
      failed_ = static_cast<int>(i);
      return ec;
    }
    ec = lock_until(fds[i].get(), LockMode::exclusive, opts.backend, Clock::time_point::min());
    if (!ec) {
      slot_.emplace(slot_path(i), opts);
      slot_->adopt(std::move(fds[i]), LockMode::exclusive);
      held_ = static_cast<int>(i);
      return {};
    }
    if (!is_contended(ec)) {
      failed_ = static_cast<int>(i);
      return ec;
    }
  }
  if (Clock::now() >= deadline) return make_error_code(errc::busy);

  // All busy: block on every slot at once and keep the first one granted.
  std::vector<detail::Waiter> waiters(maximum_);
  std::mutex mutex;
  int winner = -1;
  std::error_code failure;
  auto wait_slot = [&](unsigned i) noexcept {
    std::error_code ec;
    for (auto backoff = std::chrono::microseconds(100);; backoff *= 2) {
      ec = waiters[i].wait(fds[i].get(), LockMode::exclusive, opts.backend, deadline);
      // fcntl locks: while one of our threads already holds a slot and another still waits, the
      // kernel can see a cycle through another process doing the same and refuse with EDEADLK.
      // The cycle dissolves when either side cancels its other waiters, so wait a little and
      // try again instead of failing.
      if (ec != std::errc::resource_deadlock_would_occur || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(
          std::min<std::chrono::microseconds>(backoff, std::chrono::milliseconds(10)));
    }
    if (ec == std::errc::resource_deadlock_would_occur) ec = make_error_code(errc::timeout);
    std::lock_guard<std::mutex> guard(mutex);
    if (!ec) {
      if (winner < 0) {
        winner = static_cast<int>(i);
      } else {
        locksmith::unlock(fds[i].get(), opts.backend);  // lost the race to another slot
        return;
      }
    } else if (ec == errc::timeout || ec == errc::cancelled) {
      return;
    } else if (!failure) {
      failure = ec;
      failed_ = static_cast<int>(i);
    }
    for (unsigned j = 0; j < maximum_; ++j) {
      if (j != i) waiters[j].cancel();
    }
  };
  std::vector<std::thread> threads;
  try {
    threads.reserve(maximum_ - 1);
    for (unsigned i = 1; i < maximum_; ++i) threads.emplace_back(wait_slot, i);
  } catch (const std::exception&) {
    for (auto& w : waiters) w.cancel();
    for (auto& t : threads) t.join();
    return std::make_error_code(std::errc::resource_unavailable_try_again);
  }
  wait_slot(0);
  for (auto& t : threads) t.join();
  if (winner >= 0) {
    const auto i = static_cast<unsigned>(winner);
    slot_.emplace(slot_path(i), opts);
    slot_->adopt(std::move(fds[i]), LockMode::exclusive);
    held_ = winner;
    failed_ = -1;  // another slot's failure does not matter once one is held
    return {};
  }
  if (failure) return failure;
  return make_error_code(errc::timeout);
}

std::error_code BoundedSemaphore::release() noexcept {
  if (held_ < 0) return make_error_code(errc::not_locked);
  const std::error_code ec = slot_->release();
  slot_.reset();
  held_ = -1;
  return ec;
}

LockInfo BoundedSemaphore::describe() const {
  LockInfo info;
  info.kind = "sem";
  info.mechanism = std::string(to_string(options_.backend));
  info.target = (directory_ / name_).string();
  info.held = held_ >= 0;
  if (info.held) {
    info.mode = LockMode::exclusive;
    info.slot = slot_path(static_cast<unsigned>(held_)).string();
  } else if (failed_ >= 0) {
    info.failed_path = slot_path(static_cast<unsigned>(failed_)).string();
  }
  return info;
}

namespace {
std::string random_semaphore_name() {
  std::string hex;
  const std::error_code ec = detail::random_hex(8, hex);
  if (ec) throw LockError(ec, "cannot read random bytes for", "semaphore name");
  return "bounded_semaphore_" + hex;
}
}  // namespace

NamedBoundedSemaphore::NamedBoundedSemaphore(unsigned maximum, std::filesystem::path directory,
                                             SemaphoreOptions options)
    : BoundedSemaphore(maximum, random_semaphore_name(), std::move(directory), options) {}

}  // namespace locksmith
