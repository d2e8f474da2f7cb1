// POSIX lock backends (flock, fcntl, OFD) and the timed-wait mechanism.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <thread>

#include "locksmith/error.hpp"
#include "locksmith/lock.hpp"
#include "sys_posix.hpp"
#include "wait.hpp"

#if defined(LOCKSMITH_OS_LINUX)
#include <sys/syscall.h>
#endif

namespace locksmith {
namespace detail {
namespace {

bool flock_like(Backend b) noexcept { return b == Backend::flock; }

int fcntl_lock(native_handle fd, int cmd, short type) noexcept {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // to the end of the file, however it grows
  fl.l_pid = 0;  // must be 0 for OFD locks
  return ::fcntl(fd, cmd, &fl);
}

bool supported(Backend b) noexcept {
#if defined(F_OFD_SETLK)
  if (b == Backend::ofd) return true;
#endif
  return b == Backend::flock || b == Backend::posix;
}

void on_wake_signal(int /*signo*/) {
  // Nothing to do: the signal exists to make a blocking lock call return EINTR.
}

int choose_wake_signal() noexcept {
#if defined(LOCKSMITH_OS_LINUX)
  int signo = SIGRTMAX - 3;
  if (const char* env = std::getenv("LOCKSMITH_WAKE_SIGNAL")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || v < 0 || v > SIGRTMAX) return 0;
    signo = static_cast<int>(v);
    if (signo == 0) return 0;
  }
  struct sigaction current {};
  if (::sigaction(signo, nullptr, &current) != 0) return 0;
  if (current.sa_handler == on_wake_signal) return signo;
  if (current.sa_handler != SIG_DFL || (current.sa_flags & SA_SIGINFO) != 0) return 0;
  struct sigaction action {};
  action.sa_handler = on_wake_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: the blocking call must return EINTR
  if (::sigaction(signo, &action, nullptr) != 0) return 0;
  return signo;
#else
  return 0;
#endif
}

timespec to_timespec(Clock::duration d) noexcept {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>(std::chrono::nanoseconds(d - secs).count());
  return ts;
}

constexpr auto kRefire = std::chrono::milliseconds(1);

#if defined(LOCKSMITH_OS_LINUX)
// Each waiting thread keeps one POSIX timer (signalling that thread) from its first timed wait to
// its exit: creating and deleting one per wait cost three system calls on every contended lock.
// Timers are not inherited by fork(): a child's copy of the thread's record is stale, which the
// fork generation tells.
std::atomic<unsigned> g_fork_generation{0};

void note_fork() noexcept { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

struct ThreadTimer {
  timer_t id{};
  bool live = false;
  int signo = 0;
  unsigned generation = 0;
  ThreadTimer() = default;
  ThreadTimer(const ThreadTimer&) = delete;
  ThreadTimer& operator=(const ThreadTimer&) = delete;
  ~ThreadTimer() {
    if (live && generation == g_fork_generation.load(std::memory_order_relaxed)) {
      ::timer_delete(id);
    }
  }
};

bool thread_timer(int signo, timer_t& out) noexcept {
  static const bool registered = ::pthread_atfork(nullptr, nullptr, note_fork) == 0;
  (void)registered;
  thread_local ThreadTimer t;
  const unsigned generation = g_fork_generation.load(std::memory_order_relaxed);
  if (!t.live || t.generation != generation || t.signo != signo) {
    if (t.live && t.generation == generation) ::timer_delete(t.id);
    t.live = false;
    sigevent sev{};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = signo;
    sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
    if (::timer_create(CLOCK_MONOTONIC, &sev, &t.id) != 0) return false;
    t.live = true;
    t.signo = signo;
    t.generation = generation;
  }
  out = t.id;
  return true;
}
#endif

}  // namespace

int lock_call(native_handle fd, LockMode mode, Backend b, bool wait) noexcept {
  const bool ex = mode == LockMode::exclusive;
  if (flock_like(b)) {
    return ::flock(fd, (ex ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB));
  }
  const short type = ex ? F_WRLCK : F_RDLCK;
  if (b == Backend::posix) return fcntl_lock(fd, wait ? F_SETLKW : F_SETLK, type);
#if defined(F_OFD_SETLK)
  if (b == Backend::ofd) return fcntl_lock(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, type);
#endif
  errno = EOPNOTSUPP;
  return -1;
}

bool is_busy_errno(int err) noexcept {
  return err == EWOULDBLOCK || err == EAGAIN || err == EACCES;
}

void Waiter::cancel() noexcept {
  cancelled_.store(true, std::memory_order_release);
  std::lock_guard<std::mutex> guard(mutex_);
  if (has_timer_) arm_now_locked();
}

bool Waiter::arm_now_locked() noexcept {
#if defined(LOCKSMITH_OS_LINUX)
  itimerspec spec{};
  spec.it_value.tv_nsec = 1;
  spec.it_interval = to_timespec(kRefire);
  return ::timer_settime(static_cast<timer_t>(timer_), 0, &spec, nullptr) == 0;
#else
  return false;
#endif
}

std::error_code Waiter::wait_polling(native_handle fd, LockMode mode, Backend b,
                                     Clock::time_point deadline) noexcept {
  auto backoff = std::chrono::microseconds(50);
  for (;;) {
    if (cancelled_.load(std::memory_order_acquire)) return make_error_code(errc::cancelled);
    if (lock_call(fd, mode, b, false) == 0) return {};
    const int err = errno;
    if (err != EINTR && !is_busy_errno(err)) return {err, std::generic_category()};
    const auto now = Clock::now();
    if (now >= deadline) return make_error_code(errc::timeout);
    const Clock::duration nap = std::min<Clock::duration>(backoff, deadline - now);
    std::this_thread::sleep_for(nap);
    backoff = std::min<std::chrono::microseconds>(backoff * 2, std::chrono::milliseconds(10));
  }
}

std::error_code Waiter::wait(native_handle fd, LockMode mode, Backend b,
                             Clock::time_point deadline) noexcept {
  if (cancelled_.load(std::memory_order_acquire)) return make_error_code(errc::cancelled);
#if defined(LOCKSMITH_OS_LINUX)
  const int signo = wake_signal();
  sigset_t blocked;
  if (signo == 0 || ::pthread_sigmask(SIG_BLOCK, nullptr, &blocked) != 0 ||
      sigismember(&blocked, signo) == 1) {
    return wait_polling(fd, mode, b, deadline);
  }
  timer_t timer{};
  if (!thread_timer(signo, timer)) return wait_polling(fd, mode, b, deadline);
  {
    std::lock_guard<std::mutex> guard(mutex_);
    timer_ = timer;
    has_timer_ = true;
    if (cancelled_.load(std::memory_order_acquire)) {
      arm_now_locked();
    } else if (deadline != kForever) {
      // std::chrono::steady_clock is CLOCK_MONOTONIC on Linux, so the deadline is absolute there.
      itimerspec spec{};
      spec.it_value = to_timespec(deadline.time_since_epoch());
      if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
      spec.it_interval = to_timespec(kRefire);
      ::timer_settime(timer, TIMER_ABSTIME, &spec, nullptr);
    }
  }
  std::error_code result;
  for (;;) {
    if (cancelled_.load(std::memory_order_acquire)) {
      result = make_error_code(errc::cancelled);
      break;
    }
    if (Clock::now() >= deadline) {
      // One last non-blocking try: the deadline decides only when the lock is still busy.
      if (lock_call(fd, mode, b, false) != 0) {
        const int err = errno;
        result = is_busy_errno(err) || err == EINTR ? make_error_code(errc::timeout)
                                                    : std::error_code(err, std::generic_category());
      }
      break;
    }
    if (lock_call(fd, mode, b, true) == 0) break;
    const int err = errno;
    if (err != EINTR) {
      result = {err, std::generic_category()};
      break;
    }
  }
  {
    // Disarm (the timer stays with the thread for its next wait). A signal that fired just
    // before is delivered as this call returns, and interrupts nothing.
    std::lock_guard<std::mutex> guard(mutex_);
    const itimerspec off{};
    ::timer_settime(timer, 0, &off, nullptr);
    timer_ = nullptr;
    has_timer_ = false;
  }
  // A cancelled wait that nevertheless got the lock reports success; the caller decides.
  return result;
#else
  return wait_polling(fd, mode, b, deadline);
#endif
}

}  // namespace detail

int wake_signal() noexcept {
  static const int signo = detail::choose_wake_signal();
  return signo;
}

std::error_code lock_until(native_handle h, LockMode mode, Backend b,
                           Clock::time_point deadline) noexcept {
  if (!detail::supported(b)) return make_error_code(errc::unsupported);
  if (detail::lock_call(h, mode, b, false) == 0) return {};
  int err = errno;
  if (err == EINTR) err = EAGAIN;  // treat as busy; the waits below retry
  if (!detail::is_busy_errno(err)) return {err, std::generic_category()};
  if (deadline == kForever) {
    if (detail::retry_on_eintr([&] { return detail::lock_call(h, mode, b, true); }) == 0) return {};
    return detail::last_error();
  }
  if (Clock::now() >= deadline) return make_error_code(errc::busy);
  detail::Waiter waiter;
  return waiter.wait(h, mode, b, deadline);
}

std::error_code unlock(native_handle h, Backend b) noexcept {
  if (!detail::supported(b)) return make_error_code(errc::unsupported);
  int rc = -1;
  if (b == Backend::flock) {
    rc = detail::retry_on_eintr([&] { return ::flock(h, LOCK_UN); });
  } else {
    const int cmd = b == Backend::posix ? F_SETLK :
#if defined(F_OFD_SETLK)
                                        F_OFD_SETLK;
#else
                                        F_SETLK;
#endif
    rc = detail::retry_on_eintr([&] { return detail::fcntl_lock(h, cmd, F_UNLCK); });
  }
  return rc == 0 ? std::error_code{} : detail::last_error();
}

}  // namespace locksmith
