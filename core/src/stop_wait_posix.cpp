#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

#include "stop_wait.hpp"

namespace locksmith::detail {
namespace {

// When the self-pipe cannot be made (out of descriptors), stops are polled this often.
constexpr auto kStopPoll = std::chrono::milliseconds(20);

bool make_pipe(UniqueFd& read_end, UniqueFd& write_end) noexcept {
  int fds[2];
  if (::pipe(fds) != 0) return false;
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  for (int fd : fds) {
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

void StopWait::Wake::operator()() const noexcept {
  const char byte = 1;
  (void)!::write(fd, &byte, 1);  // full pipe: a byte is pending already
}

void StopWait::arm() noexcept {
  armed_ = true;
  if (!token_.stop_possible()) return;
  if (!make_pipe(wake_read_, wake_write_)) {
    wake_read_.reset();
    wake_write_.reset();
    return;
  }
  // Runs the callback at once when the stop was requested already.
  callback_.emplace(token_, Wake{wake_write_.get()});
}

bool StopWait::wait_until(Clock::time_point until, int fd) noexcept {
  if (!armed_) arm();
  if (stopped()) return false;
  const bool pollable = !token_.stop_possible() || wake_read_.valid();
  const auto now = Clock::now();
  if (until <= now) return false;
  if (!pollable) until = std::min(until, now + kStopPoll);  // no pipe: poll the token
  if (fd < 0 && !wake_read_.valid()) {
    std::this_thread::sleep_until(until);
    return false;
  }
  struct pollfd pfds[2] = {};
  nfds_t n = 0;
  if (fd >= 0) {
    pfds[n].fd = fd;
    pfds[n++].events = POLLIN;
  }
  if (wake_read_.valid()) {
    pfds[n].fd = wake_read_.get();
    pfds[n++].events = POLLIN;
  }
  const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now).count();
#if defined(LOCKSMITH_OS_LINUX)
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(left / 1000000000);
  ts.tv_nsec = static_cast<long>(left % 1000000000);
  const int r = ::ppoll(pfds, n, &ts, nullptr);
#else
  const int r = ::poll(
      pfds, n, static_cast<int>(std::min<long long>((left + 999999) / 1000000, 1000 * 60 * 60)));
#endif
  if (r <= 0) return false;
  return fd >= 0 && (pfds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

}  // namespace locksmith::detail
