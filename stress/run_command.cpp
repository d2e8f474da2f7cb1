#include "run_command.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

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

}  // namespace

int run_locked(const RunRequest& request) {
  std::unique_ptr<Lockable> lock;
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
  const std::error_code ec = lock->acquire(mode, deadline);
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
