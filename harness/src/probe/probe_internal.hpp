// Internal to the semantics probe (fs_probe.hpp): what the three parts share.
//   child_posix.cpp        forked helper processes and the lock calls they make
//   experiments_posix.cpp  the experiments, probe_semantics() and the probe's scratch directories
//   fs_identity_posix.cpp  statfs / mount table: identify_filesystem() and its facts
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "locksmith/harness/fs_probe.hpp"
#include "locksmith/unique_fd.hpp"

namespace locksmith::harness::probe {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Thrown inside an experiment: the experiment could not decide. Becomes "error: <what>".
struct ExperimentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The experiment's precondition does not hold here (e.g. the lock it needs held does not even
// exclude a competitor through the peer mount): the fact is "not applicable: <why>", not a
// wrong answer and not an error.
struct NotApplicable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string error_text(int err);
[[noreturn]] void fail(const std::string& what, int err);

bool is_busy(int err) noexcept;
// Errors by which a filesystem (or the platform) says "this lock does not exist here".
bool is_unsupported(int err) noexcept;

// ---------------------------------------------------------------------------------------------
// Lock calls. All of them are async-signal-safe (forked children use them) and return 0 or the
// errno of the failed call.

enum class Kind { flock, fcntl, ofd };

const char* kind_name(Kind k) noexcept;
// A non-blocking exclusive lock of the whole file.
int try_lock(int fd, Kind k) noexcept;
int unlock(int fd, Kind k) noexcept;

// ---------------------------------------------------------------------------------------------
// Child processes. A child talks to the prober over a socket pair (4-byte integers; send() with
// MSG_NOSIGNAL so a dead peer is an error, not a SIGPIPE). Child bodies run after fork() in a
// process that may have had other threads: they keep to system calls and never allocate.

inline constexpr std::int32_t kQuit = -1;
inline constexpr std::int32_t kGo = 1;

bool child_read(int sock, std::int32_t& value) noexcept;
bool child_write(int sock, std::int32_t value) noexcept;

// Answers every request with handler(request) until told to quit or the prober goes away.
template <class Handler>
int serve(int sock, Handler handler) noexcept {
  std::int32_t request = 0;
  while (child_read(sock, request) && request != kQuit) {
    if (!child_write(sock, handler(request))) return 1;
  }
  return 0;
}

std::int64_t monotonic_ns() noexcept;

class Child {
 public:
  // Forks; the child runs body(socket) and _exit()s with its result. A child outlives neither
  // its lifetime alarm nor its Child object: the destructor asks it to quit, then kills it.
  template <class Body>
  Child(Body body, milliseconds timeout) : timeout_(timeout) {
    UniqueFd theirs = start();
    if (pid_ == 0) ::_exit(body(theirs.get()));
  }
  Child(Child&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)),
        sock_(std::move(other.sock_)),
        timeout_(other.timeout_) {}
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { finish(); }

  void send(std::int32_t value);
  // The child's next answer; throws when none comes within the timeout.
  std::int32_t receive();
  // False when nothing arrived by `deadline`; throws when the child is gone.
  bool receive_until(Clock::time_point deadline, std::int32_t& value);
  std::int32_t ask(std::int32_t request) {
    send(request);
    return receive();
  }
  // Asks the child to quit and reaps it (killing it if it does not exit within the timeout).
  // Returns its wait status, or -1 when there was no child.
  int finish() noexcept;

 private:
  // Makes the socket pair and forks. In the parent: keeps its end, returns an empty fd. In the
  // child (pid_ == 0): sets the lifetime alarm and returns the child's end.
  UniqueFd start();

  pid_t pid_ = -1;
  UniqueFd sock_;
  milliseconds timeout_;
};

// A fresh directory DIR/.locksmith-probe-XXXXXX for the probe's files (the caller removes it).
// Throws std::system_error naming `dir` when none can be made there.
std::filesystem::path make_probe_directory(const std::filesystem::path& dir);

// ---------------------------------------------------------------------------------------------
// Identification facts (fs_identity_posix.cpp): fs_type, mount_point, mount_source,
// mount_options, each name prefixed with `prefix` ("" or "peer_").

std::vector<Fact> identity_facts(const FsIdentity& id, const std::string& prefix);

}  // namespace locksmith::harness::probe
