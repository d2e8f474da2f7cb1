// locksmith_interop_peer: the C++ side of the interop tests. It takes one lock, says what happened
// on stdout, then holds the lock until the driver tells it what to do on stdin.
//
//   locksmith_interop_peer file PATH BACKEND MODE WAIT    BACKEND flock|posix|ofd,
//                                                         MODE exclusive|shared
//   locksmith_interop_peer sem DIR NAME MAX WAIT          BoundedSemaphore(MAX, NAME, DIR)
//
// WAIT is in seconds: 0 tries once, more waits until that deadline (the peer first prints
// "WAITING"). The result is one line:
//   LOCKED                       (file)
//   LOCKED SLOT PATH             (sem: the slot number and its file)
//   BUSY busy|timeout ELAPSED_MS someone else holds it; the peer exits 0
//   ERROR MESSAGE                anything else; the peer exits 2
// While holding, each stdin line is a command: "release" unlocks and answers "RELEASED" (or
// ERROR); "exit" or end of input exits (the OS drops the lock with the process). The peer never
// waits for a command longer than kCommandWait, so an abandoned peer cannot linger.
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "locksmith/file_lock.hpp"
#include "locksmith/semaphore.hpp"

namespace {

using locksmith::Clock;
using locksmith::LockMode;

constexpr auto kCommandWait = std::chrono::seconds(90);
constexpr int kExitError = 2;
constexpr int kExitAbandoned = 3;

void say(const std::string& line) {
  std::string out = line + "\n";
  const char* p = out.data();
  std::size_t left = out.size();
  while (left > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::_Exit(kExitError);  // the driver is gone
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

[[noreturn]] void fail(const std::string& message) {
  say("ERROR " + message);
  std::exit(kExitError);
}

// Reads one line from stdin, waiting at most until `deadline`; nullopt on end of input.
std::optional<std::string> read_command(Clock::time_point deadline) {
  static std::string buffer;
  for (;;) {
    if (const auto nl = buffer.find('\n'); nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      std::fprintf(stderr, "interop_peer: no command within the bound; exiting\n");
      std::exit(kExitAbandoned);
    }
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      fail(std::string("poll: ") + std::strerror(errno));
    }
    if (ready == 0) continue;
    char chunk[256];
    const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(std::string("read: ") + std::strerror(errno));
    }
    if (n == 0) return std::nullopt;
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

locksmith::Backend parse_backend(std::string_view s) {
  if (s == "flock") return locksmith::Backend::flock;
  if (s == "posix") return locksmith::Backend::posix;
  if (s == "ofd") return locksmith::Backend::ofd;
  fail("unknown backend '" + std::string(s) + "'");
}

LockMode parse_mode(std::string_view s) {
  if (s == "exclusive") return LockMode::exclusive;
  if (s == "shared") return LockMode::shared;
  fail("unknown mode '" + std::string(s) + "'");
}

double parse_seconds(const char* s) {
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (end == s || *end != '\0' || v < 0) fail(std::string("bad WAIT '") + s + "'");
  return v;
}

int usage() {
  std::fprintf(stderr,
               "usage: locksmith_interop_peer file PATH flock|posix|ofd exclusive|shared WAIT\n"
               "       locksmith_interop_peer sem DIR NAME MAX WAIT\n");
  return kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) return usage();
  const std::string_view kind = argv[1];

  std::unique_ptr<locksmith::Lockable> lock;
  LockMode mode = LockMode::exclusive;
  locksmith::BoundedSemaphore* semaphore = nullptr;
  if (kind == "file") {
    locksmith::LockOptions options;
    options.backend = parse_backend(argv[3]);
    mode = parse_mode(argv[4]);
    lock = std::make_unique<locksmith::FileLock>(argv[2], options);
  } else if (kind == "sem") {
    char* end = nullptr;
    const unsigned long maximum = std::strtoul(argv[4], &end, 10);
    if (end == argv[4] || *end != '\0' || maximum == 0) fail("bad MAX");
    auto sem = std::make_unique<locksmith::BoundedSemaphore>(static_cast<unsigned>(maximum),
                                                             argv[3], argv[2]);
    semaphore = sem.get();
    lock = std::move(sem);
  } else {
    return usage();
  }

  const double wait = parse_seconds(argv[5]);
  const auto start = Clock::now();
  Clock::time_point deadline = Clock::time_point::min();
  if (wait > 0) {
    deadline = locksmith::Lockable::deadline_after(std::chrono::duration<double>(wait));
    say("WAITING");
  }
  const std::error_code ec = lock->acquire(mode, deadline);
  const auto elapsed = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (locksmith::is_contended(ec)) {
    const char* why = ec == locksmith::errc::timeout ? "timeout" : "busy";
    say(std::string("BUSY ") + why + " " + std::to_string(elapsed));
    return 0;
  }
  if (ec) fail("acquire: " + ec.message());
  if (semaphore != nullptr) {
    const int slot = semaphore->held_slot();
    say("LOCKED " + std::to_string(slot) + " " +
        semaphore->slot_path(static_cast<unsigned>(slot)).string());
  } else {
    say("LOCKED");
  }

  const auto command_deadline = Clock::now() + kCommandWait;
  bool held = true;
  while (const auto command = read_command(command_deadline)) {
    if (*command == "exit") break;
    if (*command == "release" && held) {
      if (const std::error_code rec = lock->release()) fail("release: " + rec.message());
      held = false;
      say("RELEASED");
      continue;
    }
    fail("unexpected command '" + *command + "'");
  }
  // Exiting drops whatever is still held; that is part of what the tests check.
  return 0;
}
