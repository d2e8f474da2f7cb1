// The child roles of the multi-process tests. The test binary runs itself as
// `--locksmith-child=ROLE ARGS...`; a role talks to the test through its stdin/stdout, one line
// per message, and never waits unboundedly: every role gives up after kIdleLimit of silence and
// exits when its stdin reaches end of file (its test is gone).
//
// Roles
//   locker BACKEND PATH      a command interpreter over one FileLock and raw fds (see below)
//   counter BACKEND LOCK COUNTER K
//                            READY, waits for "go", then K locked read-modify-write increments
//   sem-worker BACKEND DIR NAME MAX SHM INDEX ITERATIONS
//                            READY, waits for "go", then ITERATIONS semaphore critical sections
//                            that track occupancy in the shared mapping SHM
//   sem BACKEND DIR NAME MAX one BoundedSemaphore object: "acquire" -> SLOT n | BUSY, "release"
//   hold-cmd                 the command run under `locksmith run`: READY on fd 3 (if open) and
//                            stdout, then waits for a line or EOF on stdin
//   count-fds PATH           prints and exits with how many of its fds refer to PATH
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/file_lock.hpp"
#include "locksmith/lock.hpp"
#include "locksmith/semaphore.hpp"
#include "mp_support.hpp"
#include "mp_util.hpp"

namespace locksmith::mp {
namespace {

using namespace std::chrono_literals;

// A role that hears nothing from its test for this long assumes the test is gone and exits:
// longer than any wait of the test, so that the test's bounded wait always fires first.
constexpr std::chrono::milliseconds kIdleLimit = 2 * kWaitLimit;

int fail(const std::string& what) {
  std::fprintf(stderr, "child role failed: %s\n", what.c_str());
  return 3;
}

void reply(const std::string& line) {
  std::string data = line + "\n";
  std::string_view rest = data;
  while (!rest.empty()) {
    const ssize_t n = ::write(1, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string outcome(std::error_code ec) {
  if (!ec) return "LOCKED";
  if (ec == errc::busy) return "BUSY";
  if (ec == errc::timeout) return "TIMEOUT";
  return "ERROR " + ec.message();
}

// The role's stdin, line by line (bounded reads; one buffer for the whole role).
test::Channel& stdin_lines() {
  static test::Channel in(0, -1);
  return in;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Waits for "go" on stdin (bounded).
bool wait_for_go() {
  const auto line = stdin_lines().read_line(kIdleLimit);
  return line && *line == "go";
}

// Reads (bounded) until EOF or one byte on `fd`.
void wait_for_eof_or_byte(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + kIdleLimit;
  while (std::chrono::steady_clock::now() < deadline) {
    const int r = ::poll(&pfd, 1, 100);
    if (r < 0 && errno == EINTR) continue;
    if (r != 0) return;
  }
}

// In a forked copy of the locker: detaches from the test's pipes so that only the locker itself
// talks to the test (and the test sees EOF when the locker dies).
void detach_stdio() {
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::close(null);
  }
}

// Exit codes of a forked prober.
constexpr int kProbeLocked = 0;
constexpr int kProbeBusy = 1;
constexpr int kProbeError = 2;

int probe_exit(std::error_code ec) {
  if (!ec) return kProbeLocked;
  return is_contended(ec) ? kProbeBusy : kProbeError;
}

std::string probe_result(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return "ERROR waitpid";
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);  // SIGKILLed: returns at once
      return "ERROR probe hung";
    }
    std::this_thread::sleep_for(1ms);
  }
  if (!WIFEXITED(status)) return "ERROR probe died";
  switch (WEXITSTATUS(status)) {
    case kProbeLocked:
      return "LOCKED";
    case kProbeBusy:
      return "BUSY";
    default:
      return "ERROR probe failed";
  }
}

// The locker role. Commands (one per line) and replies:
//   acquire ex|sh        FileLock, do not wait          LOCKED | BUSY | ERROR ...
//   wait ex|sh MS        FileLock, wait up to MS ms     LOCKED | TIMEOUT | ERROR ...
//   release              FileLock release               OK | ERROR ...
//   open                 a new raw fd on PATH           FD i
//   lock I ex|sh         lock(fds[I], NB) with BACKEND  LOCKED | BUSY | ERROR ...
//   unlock I             unlock(fds[I])                 OK | ERROR ...
//   close I              close(fds[I]) without unlock   OK
//   touch-close          open PATH again, close it      OK
//   fork-try I ex|sh     a forked child locks its inherited fds[I], NB   LOCKED | BUSY | ERROR
//   fork-try-open ex|sh  a forked child opens PATH itself and locks, NB  LOCKED | BUSY | ERROR
//   fork-keep            a forked child keeps every inherited fd until end-fork   FORKED
//   end-fork             ends that child and reaps it   OK | ERROR ...
//   exit                 _exit(0) at once: no unlock, no destructor (the OS releases)
int locker_role(const std::vector<std::string>& args) {
  if (args.size() != 2) return fail("locker BACKEND PATH");
  const Backend backend = parse_backend(args[0]);
  const std::filesystem::path path = args[1];
  LockOptions options;
  options.backend = backend;
  FileLock file_lock(path, options);
  std::vector<int> fds;
  pid_t kept = -1;
  int kept_control = -1;

  auto fd_at = [&](const std::string& index) -> int {
    const std::size_t i = std::stoul(index);
    return i < fds.size() ? fds[i] : -1;
  };
  auto flags_of = [](const std::string& mode) {
    return (mode == "sh" ? LockFlags::shared : LockFlags::exclusive) | LockFlags::non_blocking;
  };

  for (;;) {
    const auto line = stdin_lines().read_line(kIdleLimit);
    if (!line) ::_exit(0);  // the test is gone (EOF) or silent for too long
    const auto w = words(*line);
    if (w.empty()) continue;
    const std::string& cmd = w[0];
    if (cmd == "acquire" && w.size() == 2) {
      reply(outcome(file_lock.acquire(parse_mode(w[1]), Clock::time_point::min())));
    } else if (cmd == "wait" && w.size() == 3) {
      const auto deadline = Clock::now() + std::chrono::milliseconds(std::stol(w[2]));
      reply(outcome(file_lock.acquire(parse_mode(w[1]), deadline)));
    } else if (cmd == "release") {
      const auto ec = file_lock.release();
      reply(ec ? "ERROR " + ec.message() : "OK");
    } else if (cmd == "open") {
      const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return fail("open " + path.string());
      fds.push_back(fd);
      reply("FD " + std::to_string(fds.size() - 1));
    } else if (cmd == "lock" && w.size() == 3) {
      reply(outcome(lock(fd_at(w[1]), flags_of(w[2]), backend)));
    } else if (cmd == "unlock" && w.size() == 2) {
      const auto ec = unlock(fd_at(w[1]), backend);
      reply(ec ? "ERROR " + ec.message() : "OK");
    } else if (cmd == "close" && w.size() == 2) {
      ::close(fd_at(w[1]));
      fds.at(std::stoul(w[1])) = -1;
      reply("OK");
    } else if (cmd == "touch-close") {
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return fail("open " + path.string());
      ::close(fd);
      reply("OK");
    } else if ((cmd == "fork-try" && w.size() == 3) || (cmd == "fork-try-open" && w.size() == 2)) {
      const bool own_open = cmd == "fork-try-open";
      const LockFlags flags = flags_of(w.back());
      const int inherited = own_open ? -1 : fd_at(w[1]);
      const pid_t pid = ::fork();
      if (pid < 0) return fail("fork");
      if (pid == 0) {
        detach_stdio();
        int fd = inherited;
        if (own_open) fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0) ::_exit(kProbeError);
        // _exit: the probe must not unlock or close anything its parent relies on.
        ::_exit(probe_exit(lock(fd, flags, backend)));
      }
      reply(probe_result(pid));
    } else if (cmd == "fork-keep") {
      int control[2];
      if (kept > 0 || ::pipe2(control, O_CLOEXEC) != 0) return fail("fork-keep");
      const pid_t pid = ::fork();
      if (pid < 0) return fail("fork");
      if (pid == 0) {
        detach_stdio();
        ::close(control[1]);
        wait_for_eof_or_byte(control[0]);
        ::_exit(0);
      }
      ::close(control[0]);
      kept = pid;
      kept_control = control[1];
      reply("FORKED");
    } else if (cmd == "end-fork") {
      if (kept <= 0) {
        reply("ERROR no forked child");
        continue;
      }
      ::close(kept_control);
      const std::string r = probe_result(kept);  // the kept child exits 0 == "LOCKED"
      kept = -1;
      reply(r == "LOCKED" ? "OK" : r);
    } else if (cmd == "exit") {
      ::_exit(0);
    } else {
      reply("ERROR unknown command '" + *line + "'");
    }
  }
}

// Increments the decimal number in `counter_fd` (read, then write back): the lost-update probe.
bool increment(int counter_fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(counter_fd, buf, sizeof buf - 1, 0);
  if (n < 0) return false;
  const long value = n == 0 ? 0 : std::strtol(buf, nullptr, 10);
  // Give a competing writer every chance to interleave if the lock does not exclude.
  std::this_thread::yield();
  const std::string next = std::to_string(value + 1);
  if (::ftruncate(counter_fd, 0) != 0) return false;
  return ::pwrite(counter_fd, next.data(), next.size(), 0) == static_cast<ssize_t>(next.size());
}

int counter_role(const std::vector<std::string>& args) {
  if (args.size() != 4) return fail("counter BACKEND LOCK COUNTER K");
  LockOptions options;
  options.backend = parse_backend(args[0]);
  const std::filesystem::path counter = args[2];
  const long k = std::stol(args[3]);
  // The counter is a different file from the lock file, so opening it never drops a posix lock.
  const int counter_fd = ::open(counter.c_str(), O_RDWR | O_CLOEXEC);
  if (counter_fd < 0) return fail("open counter");
  FileLock file_lock(args[1], options);
  reply("READY");
  if (!wait_for_go()) return fail("no go");
  for (long i = 0; i < k; ++i) {
    const auto ec = file_lock.acquire(LockMode::exclusive, Clock::now() + kWaitLimit);
    if (ec) return fail("acquire: " + ec.message());
    if (!increment(counter_fd)) return fail("increment");
    if (const auto released = file_lock.release()) return fail("release: " + released.message());
  }
  ::close(counter_fd);
  reply("DONE");
  return 0;
}

int sem_worker_role(const std::vector<std::string>& args) {
  if (args.size() != 7) return fail("sem-worker BACKEND DIR NAME MAX SHM INDEX ITERATIONS");
  SemaphoreOptions options;
  options.backend = parse_backend(args[0]);
  const unsigned maximum = static_cast<unsigned>(std::stoul(args[3]));
  const std::size_t index = std::stoul(args[5]);
  const long iterations = std::stol(args[6]);
  SharedCounters shm(args[4]);
  if (!shm.ok() || index >= SharedCounters::kSlots) return fail("shared mapping");
  BoundedSemaphore sem(maximum, args[2], args[1], options);
  reply("READY");
  if (!wait_for_go()) return fail("no go");
  for (long i = 0; i < iterations; ++i) {
    const auto ec = sem.acquire(LockMode::exclusive, Clock::now() + kWaitLimit);
    if (ec) return fail("semaphore acquire: " + ec.message());
    const std::int64_t now_inside = shm.occupancy().fetch_add(1) + 1;
    auto max = shm.max_occupancy();
    std::int64_t seen = max.load();
    while (now_inside > seen && !max.compare_exchange_weak(seen, now_inside)) {
    }
    shm.entries(index).fetch_add(1);
    // Stay inside for a moment so that critical sections of different workers overlap.
    for (int spin = 0; spin < 20; ++spin) std::this_thread::yield();
    shm.occupancy().fetch_sub(1);
    if (const auto released = sem.release()) return fail("release: " + released.message());
  }
  reply("DONE");
  return 0;
}

int sem_role(const std::vector<std::string>& args) {
  if (args.size() != 4) return fail("sem BACKEND DIR NAME MAX");
  SemaphoreOptions options;
  options.backend = parse_backend(args[0]);
  BoundedSemaphore sem(static_cast<unsigned>(std::stoul(args[3])), args[2], args[1], options);
  for (;;) {
    const auto line = stdin_lines().read_line(kIdleLimit);
    if (!line) return 0;
    if (*line == "acquire") {
      const auto ec = sem.acquire(LockMode::exclusive, Clock::time_point::min());
      reply(ec ? outcome(ec) : "SLOT " + std::to_string(sem.held_slot()));
    } else if (*line == "release") {
      const auto ec = sem.release();
      reply(ec ? "ERROR " + ec.message() : "OK");
    } else {
      reply("ERROR unknown command '" + *line + "'");
    }
  }
}

int hold_cmd_role() {
  // fd 3 is the test's private channel when it passed one through `locksmith run`.
  if (::fcntl(3, F_GETFD) >= 0) {
    const char ready[] = "READY\n";
    if (::write(3, ready, sizeof ready - 1) < 0) return fail("write fd 3");
  }
  reply("READY");
  wait_for_eof_or_byte(0);
  return 0;
}

int count_fds_role(const std::vector<std::string>& args) {
  if (args.size() != 1) return fail("count-fds PATH");
  const std::filesystem::path target = std::filesystem::canonical(args[0]);
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto points_to = std::filesystem::read_symlink(entry.path(), ec);
    if (!ec && points_to == target) ++count;
  }
  reply("FDS " + std::to_string(count));
  return count;
}

}  // namespace

int run_child_role(const std::string& role, const std::vector<std::string>& args) {
  try {
    if (role == "locker") return locker_role(args);
    if (role == "counter") return counter_role(args);
    if (role == "sem-worker") return sem_worker_role(args);
    if (role == "sem") return sem_role(args);
    if (role == "hold-cmd") return hold_cmd_role();
    if (role == "count-fds") return count_fds_role(args);
  } catch (const std::exception& e) {
    return fail(role + ": " + e.what());
  }
  return fail("unknown role '" + role + "'");
}

}  // namespace locksmith::mp
