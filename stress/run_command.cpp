#include "run_command.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>

#include "locksmith/spec.hpp"

extern char** environ;

namespace locksmith::cli {
namespace {

volatile sig_atomic_t g_child = 0;

void forward_signal(int signo) {
  const pid_t child = g_child;
  if (child > 0) ::kill(child, signo);
}

constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

void install_forwarding() {
  struct sigaction action {};
  action.sa_handler = forward_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: waitpid() returns EINTR, and the wait loop retries
  for (int signo : kForwarded) ::sigaction(signo, &action, nullptr);
}

int status_of(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return 1;
}

int spawn_and_wait(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  argv.reserve(command.size() + 1);
  for (const auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  // Block the forwarded signals until the child's pid is known, so that a SIGTERM arriving
  // during the spawn is forwarded to the command instead of killing us (and freeing the lock)
  // while the command runs on. The child gets the original mask back.
  sigset_t forwarded;
  sigset_t original;
  sigemptyset(&forwarded);
  for (int signo : kForwarded) sigaddset(&forwarded, signo);
  install_forwarding();
  ::sigprocmask(SIG_BLOCK, &forwarded, &original);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &original);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int err = ::posix_spawnp(&pid, argv[0], nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (err == 0) g_child = pid;
  ::sigprocmask(SIG_SETMASK, &original, nullptr);
  if (err != 0) {
    std::fprintf(stderr, "locksmith: cannot run '%s': %s\n", argv[0], std::strerror(err));
    return err == ENOENT ? kExitNotFound : kExitCannotRun;
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) {
      std::fprintf(stderr, "locksmith: waitpid: %s\n", std::strerror(errno));
      return kExitCannotRun;
    }
  }
  g_child = 0;
  return status_of(wstatus);
}

// --- The acquire phase: a wait that SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 stop cleanly --
//
// Killed by a signal's default action while it waits, run would leave the files its lock is
// making behind (a link claim, a dotlock temporary file): no destructor runs. So while it waits,
// these signals are blocked in this thread and caught by a handler that only writes the signal
// number to a self-pipe; a watcher thread, the only thread with them unblocked, reads it and
// stops the lock's stop token (Lockable::set_stop_token). acquire() then returns
// errc::cancelled, the lock object is destroyed (removing what it made), and run exits with
// 128 + the signal number. A lock that cannot be stopped makes nothing that dying leaves behind
// (kernel locks, Redis): for it the watcher restores the default action and re-raises the
// signal, as before. Signals arriving after the watcher ended are taken with sigwait() before
// the old mask is restored, so none slips through as a default-action kill.

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
volatile sig_atomic_t g_stop_pipe = -1;

void on_stop_signal(int signo) {
  const int saved = errno;
  const auto byte = static_cast<unsigned char>(signo);
  (void)!::write(g_stop_pipe, &byte, 1);
  errno = saved;
}

// Acquires `lock` until `deadline` unless one of kStopSignals arrives first. When one does, the
// lock is released (if it was got meanwhile) and destroyed, a message is printed, and
// `stopped_status` is set to 128 + signo; else `stopped_status` is 0 and the result is
// acquire()'s.
std::error_code acquire_cancellable(std::unique_ptr<Lockable>& lock, LockMode mode,
                                    Clock::time_point deadline, int& stopped_status) {
  stopped_status = 0;
  int fds[2];
  if (::pipe(fds) != 0) return lock->acquire(mode, deadline);  // cannot watch: wait as before
  for (int fd : fds) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  sigset_t stop_set;
  sigset_t old_mask;
  sigemptyset(&stop_set);
  for (int signo : kStopSignals) sigaddset(&stop_set, signo);
  std::stop_source stop;
  const bool stoppable = lock->set_stop_token(stop.get_token());
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  action.sa_mask = stop_set;
  action.sa_flags = SA_RESTART;
  struct sigaction old_actions[std::size(kStopSignals)];
  g_stop_pipe = fds[1];
  ::pthread_sigmask(SIG_BLOCK, &stop_set, &old_mask);
  for (std::size_t i = 0; i < std::size(kStopSignals); ++i) {
    ::sigaction(kStopSignals[i], &action, &old_actions[i]);
  }
  std::atomic<int> caught{0};
  std::error_code ec;
  try {
    std::thread watcher([&] {
      ::pthread_sigmask(SIG_UNBLOCK, &stop_set, nullptr);
      for (;;) {
        unsigned char byte = 0;
        const ssize_t n = ::read(fds[0], &byte, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || byte == 0) break;  // 0: the acquire ended
        if (!stoppable) {
          ::signal(byte, SIG_DFL);
          ::raise(byte);  // unblocked in this thread: the default action, as without us
        }
        caught.store(byte);
        stop.request_stop();
        break;
      }
      ::pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);  // later ones wait for sigwait below
    });
    ec = lock->acquire(mode, deadline);
    const unsigned char done = 0;
    (void)!::write(fds[1], &done, 1);
    watcher.join();
  } catch (const std::system_error&) {  // no thread: wait as before
    ec = lock->acquire(mode, deadline);
  }
  sigset_t pending;
  sigpending(&pending);
  for (int signo : kStopSignals) {
    if (sigismember(&pending, signo) != 1) continue;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    int got = 0;
    if (sigwait(&one, &got) == 0 && caught.load() == 0) caught.store(got);
  }
  for (std::size_t i = 0; i < std::size(kStopSignals); ++i) {
    ::sigaction(kStopSignals[i], &old_actions[i], nullptr);
  }
  g_stop_pipe = -1;
  ::close(fds[0]);
  ::close(fds[1]);
  const int signo = caught.load();
  if (signo != 0) {
    if (!ec) (void)lock->release();
    const std::string target = lock->describe().target;
    lock.reset();  // removes a kept link claim
    std::fprintf(stderr, "locksmith: stopped by %s while waiting for '%s'\n", ::strsignal(signo),
                 target.c_str());
    stopped_status = 128 + signo;
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    return make_error_code(errc::cancelled);
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return ec;
}

}  // namespace

int run_locked(const RunRequest& request) {
  std::unique_ptr<Lockable> lock;
  LockMode mode = LockMode::exclusive;
  try {
    LockSpec spec = parse_lock_spec(request.spec);
    if (request.shared) spec.options["shared"] = "1";
    lock = open_lock(spec);
    mode = lock->default_mode();
    if (mode == LockMode::shared && !lock->supports_shared()) {
      std::fprintf(stderr, "locksmith: '%s' has no shared mode\n", request.spec.c_str());
      return kExitUsage;
    }
  } catch (const LockError& e) {
    std::fprintf(stderr, "locksmith: %s\n", e.what());
    return kExitUsage;
  }
  Clock::time_point deadline = lock->default_deadline();
  if (request.timeout_seconds) {
    deadline = Lockable::deadline_after(std::chrono::duration<double>(*request.timeout_seconds));
  }
  int stopped_status = 0;
  const std::error_code ec = acquire_cancellable(lock, mode, deadline, stopped_status);
  if (stopped_status != 0) return stopped_status;
  const std::string target = lock->describe().target;
  if (is_contended(ec)) {
    if (request.timeout_seconds && *request.timeout_seconds > 0) {
      std::fprintf(stderr, "locksmith: '%s' still locked after %gs\n", target.c_str(),
                   *request.timeout_seconds);
    } else {
      std::fprintf(stderr, "locksmith: '%s' is locked by someone else\n", target.c_str());
    }
    return kExitNotLocked;
  }
  if (ec) {
    std::fprintf(stderr, "locksmith: cannot lock '%s': %s\n", target.c_str(), ec.message().c_str());
    return kExitUsage;
  }
  if (request.verbose) {
    const LockInfo info = lock->describe();
    std::fprintf(stderr, "locksmith: locked %s '%s' (%s, %s)\n", info.kind.c_str(),
                 info.target.c_str(), info.mechanism.c_str(), std::string(to_string(mode)).c_str());
  }
  const int status = spawn_and_wait(request.command);
  const std::error_code released = lock->release();
  if (released) {
    std::fprintf(stderr, "locksmith: cannot unlock '%s': %s\n", target.c_str(),
                 released.message().c_str());
    if (status == 0) return kExitUsage;
  }
  return status;
}

}  // namespace locksmith::cli
