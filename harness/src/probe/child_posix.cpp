// The semantics probe's helper processes (forked children on a socket pair) and the
// async-signal-safe lock calls they and the prober make. See probe_internal.hpp.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <system_error>

#include "probe_internal.hpp"

namespace locksmith::harness::probe {

std::string error_text(int err) { return std::generic_category().message(err); }

void fail(const std::string& what, int err) {
  throw ExperimentError(what + ": " + error_text(err));
}

bool is_busy(int err) noexcept { return err == EWOULDBLOCK || err == EAGAIN || err == EACCES; }

bool is_unsupported(int err) noexcept {
  return err == ENOLCK || err == EOPNOTSUPP || err == EINVAL || err == ENOSYS
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
         || err == ENOTSUP
#endif
      ;
}

// ---------------------------------------------------------------------------------------------
// Lock calls.

const char* kind_name(Kind k) noexcept {
  switch (k) {
    case Kind::flock:
      return "flock";
    case Kind::fcntl:
      return "fcntl";
    case Kind::ofd:
      return "ofd";
  }
  return "?";
}

namespace {

int fcntl_call(int fd, int cmd, short type) noexcept {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  fl.l_pid = 0;  // must be 0 for OFD locks
  return ::fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
}

}  // namespace

int try_lock(int fd, Kind k) noexcept {
  switch (k) {
    case Kind::flock:
      return ::flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
    case Kind::fcntl:
      return fcntl_call(fd, F_SETLK, F_WRLCK);
    case Kind::ofd:
#if defined(F_OFD_SETLK)
      return fcntl_call(fd, F_OFD_SETLK, F_WRLCK);
#else
      return ENOSYS;
#endif
  }
  return EINVAL;
}

int unlock(int fd, Kind k) noexcept {
  switch (k) {
    case Kind::flock:
      return ::flock(fd, LOCK_UN) == 0 ? 0 : errno;
    case Kind::fcntl:
      return fcntl_call(fd, F_SETLK, F_UNLCK);
    case Kind::ofd:
#if defined(F_OFD_SETLK)
      return fcntl_call(fd, F_OFD_SETLK, F_UNLCK);
#else
      return ENOSYS;
#endif
  }
  return EINVAL;
}

// ---------------------------------------------------------------------------------------------
// The socket protocol.

namespace {

#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

}  // namespace

bool child_read(int sock, std::int32_t& value) noexcept {
  char* p = reinterpret_cast<char*>(&value);
  std::size_t got = 0;
  while (got < sizeof value) {
    const ssize_t n = ::read(sock, p + got, sizeof value - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

bool child_write(int sock, std::int32_t value) noexcept {
  for (;;) {
    const ssize_t n = ::send(sock, &value, sizeof value, kSendFlags);
    if (n == static_cast<ssize_t>(sizeof value)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// ---------------------------------------------------------------------------------------------
// Child.

UniqueFd Child::start() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) fail("socketpair", errno);
  UniqueFd mine(sv[0]);
  UniqueFd theirs(sv[1]);
  ::fcntl(mine.get(), F_SETFD, FD_CLOEXEC);
  ::fcntl(theirs.get(), F_SETFD, FD_CLOEXEC);
  const auto lifetime = std::chrono::duration_cast<std::chrono::seconds>(timeout_ * 6);
  pid_ = ::fork();
  if (pid_ < 0) fail("fork", errno);
  if (pid_ == 0) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGALRM, &dfl, nullptr);
    ::alarm(static_cast<unsigned>(std::max<std::int64_t>(60, lifetime.count())));
    ::close(mine.release());
    return theirs;
  }
  sock_ = std::move(mine);
  return {};
}

void Child::send(std::int32_t value) {
  if (!child_write(sock_.get(), value)) fail("cannot reach child " + std::to_string(pid_), errno);
}

std::int32_t Child::receive() {
  std::int32_t value = 0;
  if (!receive_until(Clock::now() + timeout_, value)) {
    throw ExperimentError("child " + std::to_string(pid_) + " did not answer within " +
                          std::to_string(timeout_.count()) + " ms");
  }
  return value;
}

bool Child::receive_until(Clock::time_point deadline, std::int32_t& value) {
  char* p = reinterpret_cast<char*>(&value);
  std::size_t got = 0;
  while (got < sizeof value) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    pollfd pfd{sock_.get(), POLLIN, 0};
    const int ready =
        ::poll(&pfd, 1, static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, INT_MAX)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) fail("poll", errno);
    if (ready == 0) {
      if (got == 0) return false;
      throw ExperimentError("child " + std::to_string(pid_) + " sent a partial message");
    }
    const ssize_t n = ::read(sock_.get(), p + got, sizeof value - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("read from child " + std::to_string(pid_), errno);
    if (n == 0) throw ExperimentError("child " + std::to_string(pid_) + " exited unexpectedly");
    got += static_cast<std::size_t>(n);
  }
  return true;
}

int Child::finish() noexcept {
  if (pid_ <= 0) return -1;
  if (sock_) child_write(sock_.get(), kQuit);
  sock_.reset();
  int status = 0;
  const auto deadline = Clock::now() + timeout_;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) break;
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    // Reaping only: the child has been told to quit; poll its exit in 1 ms steps.
    timespec nap{0, 1000000};
    ::nanosleep(&nap, nullptr);
  }
  pid_ = -1;
  return status;
}

}  // namespace locksmith::harness::probe
