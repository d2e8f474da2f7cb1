#include "run_command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>

#include <CLI/CLI.hpp>

#include "cli_common.hpp"
#include "cli_validators.hpp"
#include "locksmith/auto_lock.hpp"
#include "locksmith/keep_alive.hpp"
#include "locksmith/spec.hpp"

namespace locksmith::cli {
namespace {

// Signals that `run` passes on to the command's process group instead of dying of them (which
// would free the lock while the command runs on).
constexpr std::array kForwarded = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// The write end of the self-pipe that turns signals into events of the wait loop.
volatile sig_atomic_t g_signal_pipe = -1;

void on_signal(int signo) {
  const int saved = errno;
  const auto byte = static_cast<unsigned char>(signo);
  if (g_signal_pipe >= 0) (void)!::write(g_signal_pipe, &byte, 1);
  errno = saved;
}

int status_of(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return 1;
}

const char* on_lost_name(OnLost o) {
  switch (o) {
    case OnLost::term:
      return "term";
    case OnLost::kill:
      return "kill";
    case OnLost::ignore:
      return "ignore";
  }
  return "?";
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
// acquire()'s. On return without a stop, the stop signals stay blocked and `old_mask` holds
// the mask to restore: the caller starts the command and its forwarding with them blocked, so
// no signal between the two phases kills run by its default action.
std::error_code acquire_cancellable(std::unique_ptr<Lockable>& lock, LockMode mode,
                                    Clock::time_point deadline, int& stopped_status,
                                    sigset_t& old_mask) {
  stopped_status = 0;
  sigset_t stop_set;
  sigemptyset(&stop_set);
  for (int signo : kStopSignals) sigaddset(&stop_set, signo);
  int fds[2];
  if (::pipe(fds) != 0) {  // cannot watch: wait as before
    ::pthread_sigmask(SIG_BLOCK, &stop_set, &old_mask);
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    const std::error_code ec = lock->acquire(mode, deadline);
    ::pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
    return ec;
  }
  for (int fd : fds) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
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
        // poll() before read(): a thread sanitizer delivers a signal at once only to a thread
        // in a call it knows blocks (poll does, read does not), so a bare read() would leave
        // the handler, and its byte, pending for good.
        struct pollfd readable {
          fds[0], POLLIN, 0
        };
        if (::poll(&readable, 1, -1) < 0) continue;  // EINTR: the byte is on its way
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
  return ec;
}

// Opens the lock and takes it; 0 when held, else the exit status to return.
int open_and_acquire(const RunRequest& request, std::unique_ptr<Lockable>& lock,
                     sigset_t& old_mask) {
  LockMode mode = LockMode::exclusive;
  try {
    LockSpec spec = parse_lock_spec(request.spec);
    lock = open_lock(spec);
    // --shared picks the mode to acquire in; it is not written into the spec as shared=1, which
    // kinds without a shared mode would refuse as an option the user never typed.
    mode = request.shared ? LockMode::shared : lock->default_mode();
    if (mode == LockMode::shared && !lock->supports_shared()) {
      std::fprintf(stderr, "locksmith: %s'%s' has no shared mode\n",
                   request.shared ? "--shared: " : "", request.spec.c_str());
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
  const std::error_code ec = acquire_cancellable(lock, mode, deadline, stopped_status, old_mask);
  if (stopped_status != 0) return stopped_status;
  // The stop signals are blocked from here on; a failure gives them back before it returns.
  struct MaskBack {
    const sigset_t& mask;
    bool armed;
    ~MaskBack() {
      if (armed) ::pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    }
  } mask_back{old_mask, true};
  const std::string target = lock->describe().target;
  // auto: says which mechanisms it would not use here, and why, when it failed or was asked.
  if (const auto* chooser = dynamic_cast<const AutoLock*>(lock.get());
      chooser != nullptr && (request.verbose || ec == errc::no_safe_mechanism)) {
    for (const std::string& why : chooser->refusals()) {
      std::fprintf(stderr, "locksmith: auto: not using %s\n", why.c_str());
    }
  }
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
    // error_target(): a semaphore names the slot file that failed, not DIR/NAME.
    std::fprintf(stderr, "locksmith: cannot lock '%s': %s\n",
                 lock->describe().error_target().c_str(), ec.message().c_str());
    return kExitUsage;
  }
  if (request.verbose) {
    const LockInfo info = lock->describe();
    std::fprintf(stderr, "locksmith: locked %s '%s' (%s, %s)\n", info.kind.c_str(),
                 info.target.c_str(), info.mechanism.c_str(), std::string(to_string(mode)).c_str());
  }
  mask_back.armed = false;
  return 0;
}

// What the guard tells `run` through its status pipe.
struct GuardReport {
  int kind = 0;  // kExecFailed: value is the exec errno; kExited: value is the wait status
  int value = 0;
};
constexpr int kExecFailed = 1;
constexpr int kExited = 2;

// The guard: the leader of the command's process group, forked by `run`. It starts the command,
// reports how it ended, and kills the whole group the moment `run` dies (its end of a pipe
// closes), so that no process of the command runs on after the lock was freed with `run`.
// It runs in a child of a multi-threaded process: async-signal-safe calls only, no allocation.
class Guard {
 public:
  [[noreturn]] static void main(char* const* argv, const sigset_t& original, bool foreground,
                                int death_fd, int report_fd) {
    ::setpgid(0, 0);
    if (foreground) {
      ::signal(SIGTTOU, SIG_IGN);
      ::tcsetpgrp(STDIN_FILENO, ::getpid());
    }
    // `run` signals the whole group; the guard itself lives on until the command ends.
    for (int signo : kForwarded) ::signal(signo, SIG_IGN);
    int chld[2] = {-1, -1};
    if (::pipe2(chld, O_CLOEXEC | O_NONBLOCK) != 0) fail(report_fd, errno);
    g_signal_pipe = chld[1];
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGCHLD, &action, nullptr);
    int exec_pipe[2] = {-1, -1};
    if (::pipe2(exec_pipe, O_CLOEXEC) != 0) fail(report_fd, errno);
    const pid_t command = ::fork();
    if (command < 0) fail(report_fd, errno);
    if (command == 0) exec_command(argv, original, exec_pipe[1]);
    ::close(exec_pipe[1]);
    ::sigprocmask(SIG_SETMASK, &original, nullptr);
    int err = 0;
    if (read_retry(exec_pipe[0], &err, sizeof err) == static_cast<ssize_t>(sizeof err)) {
      int wstatus = 0;
      while (::waitpid(command, &wstatus, 0) < 0 && errno == EINTR) {
      }
      fail(report_fd, err);
    }
    ::close(exec_pipe[0]);
    struct pollfd fds[2] = {{death_fd, POLLIN, 0}, {chld[0], POLLIN, 0}};
    for (;;) {
      int wstatus = 0;
      if (::waitpid(command, &wstatus, WNOHANG) == command) {
        const GuardReport r{kExited, wstatus};
        (void)!::write(report_fd, &r, sizeof r);
        ::_exit(0);
      }
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
      if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) break;  // `run` is gone
      if ((fds[1].revents & POLLIN) != 0) {
        char buf[64];
        while (::read(chld[0], buf, sizeof buf) > 0) {
        }
      }
    }
    ::kill(0, SIGKILL);  // the whole group, this guard included
    ::_exit(kExitCannotRun);
  }

 private:
  [[noreturn]] static void fail(int report_fd, int err) {
    const GuardReport r{kExecFailed, err};
    (void)!::write(report_fd, &r, sizeof r);
    ::_exit(err == ENOENT ? kExitNotFound : kExitCannotRun);
  }

  [[noreturn]] static void exec_command(char* const* argv, const sigset_t& original, int exec_fd) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    // Ignored signals stay ignored across exec: the command gets the defaults back.
    for (int signo : kForwarded) ::sigaction(signo, &dfl, nullptr);
    ::sigaction(SIGCHLD, &dfl, nullptr);
    ::sigaction(SIGTTOU, &dfl, nullptr);
    ::sigprocmask(SIG_SETMASK, &original, nullptr);
    ::execvp(argv[0], argv);
    const int err = errno;
    (void)!::write(exec_fd, &err, sizeof err);
    ::_exit(err == ENOENT ? kExitNotFound : kExitCannotRun);
  }

  static ssize_t read_retry(int fd, void* buf, std::size_t n) {
    for (;;) {
      const ssize_t r = ::read(fd, buf, n);
      if (r >= 0 || errno != EINTR) return r;
    }
  }
};

// Runs the command (under a guard, in its own process group) while the lock is held, passes
// signals on to the group, and stops it when the keeper says the lock was lost.
class Supervisor {
 public:
  // `original` is the signal mask to give back once the command runs (the acquire phase left
  // the forwarded signals blocked).
  Supervisor(const RunRequest& request, Lockable& lock, KeepAlive* keeper, const sigset_t& original)
      : request_(request), lock_(lock), keeper_(keeper), original_(original) {}
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor() {
    g_signal_pipe = -1;
    for (int fd : {signals_[0], signals_[1], death_[1], report_[0]}) {
      if (fd >= 0) ::close(fd);
    }
  }

  // The command's exit status (or 126/127 when it could not run).
  int run() {
    if (::pipe2(signals_.data(), O_CLOEXEC | O_NONBLOCK) != 0) return pipe_failed();
    g_signal_pipe = signals_[1];
    sigset_t blocked;
    sigemptyset(&blocked);
    for (int signo : kForwarded) sigaddset(&blocked, signo);
    sigaddset(&blocked, SIGCHLD);
    // Blocked until the guard's pid is known: a SIGTERM during the spawn is passed on to the
    // command rather than killing us while it runs.
    const sigset_t original = original_;
    ::pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (int signo : kForwarded) ::sigaction(signo, &action, nullptr);
    ::sigaction(SIGCHLD, &action, nullptr);
    const bool started = spawn(original);
    ::pthread_sigmask(SIG_SETMASK, &original, nullptr);
    if (!started) return kExitCannotRun;
    return wait_loop();
  }

  bool lost_reported() const noexcept { return lost_; }

 private:
  static int pipe_failed() {
    std::fprintf(stderr, "locksmith: cannot create a pipe: %s\n", std::strerror(errno));
    return kExitCannotRun;
  }

  bool spawn(const sigset_t& original) {
    if (::pipe2(death_.data(), O_CLOEXEC) != 0 || ::pipe2(report_.data(), O_CLOEXEC) != 0) {
      pipe_failed();
      return false;
    }
    std::vector<char*> argv;
    argv.reserve(request_.command.size() + 1);
    for (const auto& arg : request_.command) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    // Hand the terminal to the command's group when we are in the foreground, so it can read it
    // and Ctrl-C reaches it directly.
    foreground_ = ::isatty(STDIN_FILENO) == 1 && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::fprintf(stderr, "locksmith: cannot fork: %s\n", std::strerror(errno));
      return false;
    }
    if (pid == 0) {
      ::close(death_[1]);
      ::close(report_[0]);
      Guard::main(argv.data(), original, foreground_, death_[0], report_[1]);
    }
    ::close(death_[0]);
    death_[0] = -1;
    ::close(report_[1]);
    report_[1] = -1;
    guard_ = pid;
    ::setpgid(pid, pid);  // also in the guard: whichever runs first
    return true;
  }

  void take_terminal_back() {
    if (!foreground_) return;
    struct sigaction ign {};
    struct sigaction old {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGTTOU, &ign, &old);
    ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
    ::sigaction(SIGTTOU, &old, nullptr);
    foreground_ = false;
  }

  void signal_group(int signo) const {
    if (guard_ > 0) ::kill(-guard_, signo);
  }

  void on_lock_lost() {
    if (keeper_ == nullptr) return;
    lost_ = true;
    const std::error_code why = keeper_->reason();
    const std::string target = lock_.describe().target;
    // "lock lost: 'PATH': lock lost" says nothing twice; other reasons (the server did not
    // answer until the lease ran out) are worth their words.
    const std::string reason = why == errc::lock_lost ? "taken away" : why.message();
    switch (request_.on_lost) {
      case OnLost::term:
        std::fprintf(stderr,
                     "locksmith: lock lost: '%s' (%s); sending SIGTERM to the command, SIGKILL "
                     "after %gs\n",
                     target.c_str(), reason.c_str(), request_.kill_after_seconds);
        signal_group(SIGTERM);
        kill_at_ =
            Lockable::deadline_after(std::chrono::duration<double>(request_.kill_after_seconds));
        break;
      case OnLost::kill:
        std::fprintf(stderr, "locksmith: lock lost: '%s' (%s); sending SIGKILL to the command\n",
                     target.c_str(), reason.c_str());
        signal_group(SIGKILL);
        break;
      case OnLost::ignore:
        std::fprintf(stderr,
                     "locksmith: lock lost: '%s' (%s); the command runs on UNLOCKED "
                     "(--on-lost ignore)\n",
                     target.c_str(), reason.c_str());
        break;
    }
  }

  // The command's status once the guard has ended.
  int finish(int guard_status) {
    guard_ = 0;
    take_terminal_back();
    GuardReport r;
    if (::read(report_[0], &r, sizeof r) != static_cast<ssize_t>(sizeof r)) {
      std::fprintf(stderr, "locksmith: the command's guard process ended without a report (%s)\n",
                   guard_status == 0 ? "exit 0" : "killed?");
      return kExitCannotRun;
    }
    if (r.kind == kExecFailed) {
      std::fprintf(stderr, "locksmith: cannot run '%s': %s\n", request_.command[0].c_str(),
                   std::strerror(r.value));
      return r.value == ENOENT ? kExitNotFound : kExitCannotRun;
    }
    return status_of(r.value);
  }

  // Waits for the command; returns its exit status.
  int wait_loop() {
    std::array<struct pollfd, 2> fds{};
    fds[0].fd = signals_[0];
    fds[0].events = POLLIN;
    fds[1].fd = keeper_ != nullptr && keeper_->active() ? keeper_->notify_handle() : -1;
    fds[1].events = POLLIN;
    for (;;) {
      int wstatus = 0;
      const pid_t r = ::waitpid(guard_, &wstatus, WNOHANG);
      if (r == guard_) {
        // The group may still hold processes that left the guard's care; they go with it.
        signal_group(SIGKILL);
        return finish(wstatus);
      }
      if (r < 0 && errno != EINTR) {
        std::fprintf(stderr, "locksmith: waitpid: %s\n", std::strerror(errno));
        return kExitCannotRun;
      }
      int timeout_ms = -1;
      if (kill_at_) {
        const auto left = *kill_at_ - Clock::now();
        if (left <= Clock::duration::zero()) {
          std::fprintf(stderr, "locksmith: the command outlived --kill-after; sending SIGKILL\n");
          signal_group(SIGKILL);
          kill_at_.reset();
          continue;
        }
        timeout_ms = static_cast<int>(
            std::min<std::int64_t>(std::chrono::ceil<std::chrono::milliseconds>(left).count(),
                                   std::int64_t{24} * 3600 * 1000));
      }
      if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
        std::fprintf(stderr, "locksmith: poll: %s\n", std::strerror(errno));
        return kExitCannotRun;
      }
      if ((fds[1].revents & POLLIN) != 0) {
        fds[1].fd = -1;  // told once
        on_lock_lost();
      }
      if ((fds[0].revents & POLLIN) != 0) {
        std::array<unsigned char, 64> sigs{};
        const ssize_t n = ::read(signals_[0], sigs.data(), sigs.size());
        for (ssize_t i = 0; i < n; ++i) {
          const int signo = sigs[static_cast<std::size_t>(i)];
          if (signo != SIGCHLD) signal_group(signo);
        }
      }
    }
  }

  const RunRequest& request_;
  Lockable& lock_;
  KeepAlive* keeper_;
  sigset_t original_;
  std::array<int, 2> signals_{-1, -1};  // self-pipe of our signal handler
  std::array<int, 2> death_{-1, -1};    // closes when we die: the guard kills the group
  std::array<int, 2> report_{-1, -1};   // the guard's GuardReport
  pid_t guard_ = 0;
  bool foreground_ = false;
  bool lost_ = false;
  std::optional<Clock::time_point> kill_at_;
};

}  // namespace

int run_locked(const RunRequest& request) {
  std::unique_ptr<Lockable> lock;
  sigset_t original_mask;
  if (const int status = open_and_acquire(request, lock, original_mask)) return status;
  const std::string target = lock->describe().target;
  std::optional<KeepAlive> keeper;
  if (request.keep_alive && lock->keep_alive_interval() > Clock::duration::zero()) {
    KeepAliveOptions o;
    if (request.keep_alive_seconds) {
      o.interval = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(*request.keep_alive_seconds));
    }
    try {
      keeper.emplace(*lock, o);
    } catch (const LockError& e) {
      std::fprintf(stderr, "locksmith: %s\n", e.what());
      (void)lock->release();
      ::pthread_sigmask(SIG_SETMASK, &original_mask, nullptr);
      return kExitUsage;
    }
    if (request.verbose) {
      std::fprintf(stderr, "locksmith: keeping '%s' alive every %gs (on loss: %s)\n",
                   target.c_str(), std::chrono::duration<double>(keeper->interval()).count(),
                   on_lost_name(request.on_lost));
    }
  } else if (request.verbose && lock->keep_alive_interval() > Clock::duration::zero()) {
    std::fprintf(stderr, "locksmith: not keeping '%s' alive (--no-keep-alive)\n", target.c_str());
  }
  Supervisor supervisor(request, *lock, keeper ? &*keeper : nullptr, original_mask);
  const int status = supervisor.run();
  if (keeper) keeper->stop();
  const bool lost = supervisor.lost_reported() || (keeper && keeper->lost());
  const std::error_code released = lock->release();
  if (lost || released == errc::lock_lost) {
    if (!supervisor.lost_reported()) {
      std::fprintf(stderr, "locksmith: lock lost: '%s' was not ours any more at release\n",
                   target.c_str());
    }
    return kExitLockLost;
  }
  if (released) {
    std::fprintf(stderr, "locksmith: cannot unlock '%s': %s\n", target.c_str(),
                 released.message().c_str());
    if (status == 0) return kExitUsage;
  }
  return status;
}

// ---------------------------------------------------------------------------------------------
// The command line.

struct RunCommand::State {
  CLI::App* cmd = nullptr;
  RunRequest request;      // what the options fill in directly
  double timeout = -1;     // < 0: not given
  double keep_alive = -1;  // < 0: not given
  bool no_keep_alive = false;
  std::string on_lost = "term";
};

RunCommand::RunCommand(CLI::App& app) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.cmd = app.add_subcommand(
      "run",
      "Acquire a lock, run COMMAND, release it. Exits with COMMAND's status; 75 when the lock was\n"
      "not acquired in time; 76 when the lock was lost while COMMAND ran; 2 on a bad spec or a\n"
      "lock error; 126/127 when COMMAND cannot run; 128+N when COMMAND was killed by signal N,\n"
      "or when locksmith got SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 (N) while waiting for\n"
      "the lock: it stops waiting and removes the files its lock made (link claim, dotlock\n"
      "temporary file).\n"
      "COMMAND runs in its own process group and is killed if `run` itself dies (even by\n"
      "SIGKILL). A lock that can expire (link, dotlock, redis://, redlock://, redis+pubsub://)\n"
      "is kept alive while COMMAND runs (every lifetime/3 or TTL/3; pub/sub: its connection is\n"
      "watched); when it is lost anyway, `run` says so at once and stops COMMAND's process\n"
      "group: SIGTERM, then SIGKILL after --kill-after seconds (--on-lost chooses).");
  s.cmd->add_option("--lock,-l", s.request.spec, "Lock spec (see below)")->required();
  s.cmd->add_flag("--shared,-s", s.request.shared, "Take a shared (reader) lock");
  s.cmd
      ->add_option("--timeout,-t", s.timeout,
                   "Seconds to wait for the lock (0: do not wait; default: forever)")
      ->check(seconds_or_zero("do not wait", "leave --timeout out to wait forever"));
  s.cmd->add_flag("--verbose,-v", s.request.verbose, "Say on stderr which lock was taken");
  CLI::Option* keep_alive_opt =
      s.cmd
          ->add_option("--keep-alive", s.keep_alive,
                       "Seconds between renewals of an expiring lock (default: "
                       "a third of its\nlifetime or TTL)")
          ->check(positive_seconds());
  s.cmd
      ->add_flag("--no-keep-alive", s.no_keep_alive,
                 "Do not renew the lock: it may expire while COMMAND runs (then exit 76)")
      ->excludes(keep_alive_opt);
  s.cmd
      ->add_option("--on-lost", s.on_lost,
                   "What to do to COMMAND when the lock is lost: term (SIGTERM to its process\n"
                   "group, SIGKILL after --kill-after; default), kill (SIGKILL at once), ignore\n"
                   "(let it finish; still exit 76)")
      ->check(CLI::IsMember({"term", "kill", "ignore"}));
  s.cmd
      ->add_option("--kill-after", s.request.kill_after_seconds,
                   "Seconds between SIGTERM and SIGKILL when the lock is lost (default 5)")
      ->check(seconds_or_zero("SIGKILL at once"));
  s.cmd->add_option("command", s.request.command, "COMMAND [ARGS...] after --")->required();
  s.cmd->footer(kSpecHelp);
}

RunCommand::~RunCommand() = default;

bool RunCommand::selected() const { return state_->cmd->parsed(); }

RunRequest RunCommand::request() const {
  const State& s = *state_;
  RunRequest r = s.request;
  if (s.timeout >= 0) r.timeout_seconds = s.timeout;
  if (s.keep_alive > 0) r.keep_alive_seconds = s.keep_alive;
  r.keep_alive = !s.no_keep_alive;
  r.on_lost = s.on_lost == "kill"     ? OnLost::kill
              : s.on_lost == "ignore" ? OnLost::ignore
                                      : OnLost::term;
  return r;
}

int RunCommand::run() const { return run_locked(request()); }

}  // namespace locksmith::cli
