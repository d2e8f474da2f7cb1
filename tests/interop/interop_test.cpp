// Interop tests: locksmith and Debian's python3-portalocker (2.2.1) exclude each other on the same
// files, in both directions.
//
// Every lock is held by a separate peer process: locksmith_interop_peer (C++) or py_peer.py run by
// /usr/bin/python3 (portalocker, or fcntl.lockf for POSIX record locks). This driver only
// orchestrates them through pipes: a peer prints one result line (LOCKED / BUSY / ERROR), holds
// what it got, and obeys "release" / "exit" on stdin. Every read and every wait for a child is
// bounded by test::kWaitLimit; a peer still running when its test ends is SIGKILLed and reaped.
//
// A missing python3-portalocker makes the tests fail (never skip) with a message naming the
// Debian package: CI installs it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "subprocess.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// What a "waiter" peer is told to wait (seconds). Longer than kWaitLimit on purpose: a waiter that
// is not woken by the holder's release would only get the lock (or give up) at its own deadline,
// and then the driver's bounded read fails first instead of the test passing slowly.
constexpr const char* kWaiterWait = "60";

constexpr const char* kPython = LOCKSMITH_INTEROP_PYTHON;
constexpr const char* kPyPeer = LOCKSMITH_INTEROP_PY_PEER;
constexpr const char* kCppPeer = LOCKSMITH_INTEROP_CPP_PEER;
#ifdef LOCKSMITH_INTEROP_CLI
constexpr const char* kCli = LOCKSMITH_INTEROP_CLI;
#endif
constexpr int kExitNotLocked = 75;  // `locksmith run`: lock not acquired in time

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::vector<std::string> split(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A peer process (test::Subprocess) with its stdin and stdout on pipes and its stderr in a file;
// what it says is checked with its stderr attached, so that a failed comparison explains itself.
class Peer {
 public:
  Peer(std::vector<std::string> argv, fs::path stderr_file)
      : argv_(std::move(argv)), stderr_file_(std::move(stderr_file)) {
    locksmith::test::SpawnOptions o;
    o.err = locksmith::test::Stdio::file;
    o.stderr_file = stderr_file_.string();
    proc_ = locksmith::test::Subprocess::spawn(argv_, o);
  }

  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // The next line the peer prints; on timeout or end of output, a description starting with '<'
  // that includes the peer's stderr.
  std::string read_line() {
    if (auto line = proc_.read_line()) return *line;
    if (!proc_.channel().at_end()) return describe("<timed out waiting for a line>");
    // A last line without '\n' before the end of output still counts.
    if (std::string rest = proc_.read_all(std::chrono::milliseconds(0)); !rest.empty()) return rest;
    return describe("<end of output>");
  }

  // Sends one command line; false when the peer is gone.
  bool send(std::string_view line) { return proc_.send(line); }

  // Asks the peer to release and returns its answer ("RELEASED" when all went well).
  std::string release() {
    if (!send("release")) return describe("<peer gone before release>");
    return read_line();
  }

  // Closes the peer's stdin (which makes it exit) and waits, bounded, for it to exit.
  // Returns the exit status, 128+N for signal N, or -1 when it did not exit in time (it is then
  // killed). Output the peer printed after the last read_line() is discarded.
  int finish() {
    proc_.close_stdin();
    return wait_exit();
  }

  // SIGKILLs the peer (the OS then drops whatever it held) and reaps it.
  int kill_now() {
    if (!proc_.running()) return -1;
    exit_ = proc_.kill(SIGKILL);
    return status_of(exit_);
  }

  std::string stderr_text() const { return read_file(stderr_file_); }

 private:
  std::string describe(const std::string& what) const {
    std::string cmd;
    for (const auto& a : argv_) cmd += " " + a;
    return what + " from [" + cmd + " ] stderr: " + stderr_text();
  }

  static int status_of(const std::optional<int>& exit) {
    if (!exit) return -1;
    return *exit >= 0 ? *exit : 128 - *exit;
  }

  int wait_exit() {
    if (!proc_.running()) return status_of(exit_);
    exit_ = proc_.wait_exit();
    if (!exit_) {
      ADD_FAILURE() << "peer did not exit within the bound; killing it." << describe(" ");
      proc_.kill(SIGKILL);
      return -1;
    }
    return status_of(exit_);
  }

  std::vector<std::string> argv_;
  fs::path stderr_file_;
  locksmith::test::Subprocess proc_;
  std::optional<int> exit_;
};

using PeerPtr = std::unique_ptr<Peer>;

// "BUSY busy|timeout MS" from the C++ peer.
::testing::AssertionResult IsCppBusy(const std::string& line, const char* why = "busy") {
  const auto w = split(line);
  if (w.size() == 3 && w[0] == "BUSY" && w[1] == why) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected 'BUSY " << why << " MS', got: " << line;
}

// "BUSY EXCEPTION ERRNO MS" from the Python peer, refused because the lock is held: the OSError
// underneath is EAGAIN or EACCES (what flock and fcntl report for a conflict).
::testing::AssertionResult IsPyBusy(const std::string& line, const std::string& exception) {
  const auto w = split(line);
  if (w.size() == 4 && w[0] == "BUSY" && w[1] == exception &&
      (w[2] == "EAGAIN" || w[2] == "EACCES" || w[2] == "EWOULDBLOCK")) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected 'BUSY " << exception << " EAGAIN|EACCES MS', got: " << line;
}

// portalocker's BoundedSemaphore raises a bare AlreadyLocked() when every slot is taken.
::testing::AssertionResult IsPySemBusy(const std::string& line) {
  const auto w = split(line);
  if (w.size() == 4 && w[0] == "BUSY" && w[1] == "AlreadyLocked" && w[2] == "-") {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected 'BUSY AlreadyLocked - MS', got: " << line;
}

// A refusal of fcntl.lockf: Linux reports EAGAIN (BlockingIOError), POSIX also allows EACCES.
::testing::AssertionResult IsLockfBusy(const std::string& line) {
  const auto w = split(line);
  if (!w.empty() && w.size() > 1 && w[1] == "PermissionError") {
    return IsPyBusy(line, "PermissionError");
  }
  return IsPyBusy(line, "BlockingIOError");
}

// Test names from string parameters ("posix", "ofd", ...).
std::string ParamName(const ::testing::TestParamInfo<const char*>& param) { return param.param; }

double elapsed_ms_of(const std::string& busy_line) {
  const auto w = split(busy_line);
  return w.empty() ? -1.0 : std::stod(w.back());
}

class Interop : public ::testing::Test {
 protected:
  fs::path file(const std::string& name = "lockfile") const { return dir_ / name; }

  PeerPtr spawn(std::vector<std::string> argv) {
    const fs::path err = dir_ / ("peer-" + std::to_string(++peers_) + ".stderr");
    return std::make_unique<Peer>(std::move(argv), err);
  }

  // --- C++ peers -------------------------------------------------------------------------------
  PeerPtr cpp_file(const fs::path& p, const std::string& backend, const std::string& mode,
                   const std::string& wait = "0") {
    return spawn({kCppPeer, "file", p.string(), backend, mode, wait});
  }
  PeerPtr cpp_sem(const std::string& name, unsigned max, const std::string& wait = "0") {
    return spawn({kCppPeer, "sem", dir_.path().string(), name, std::to_string(max), wait});
  }

  // --- Python peers ----------------------------------------------------------------------------
  // timeout: seconds for portalocker's timeout, or "fail" for fail_when_locked=True.
  PeerPtr py_portalocker(const fs::path& p, const std::string& mode,
                         const std::string& timeout = "fail") {
    return spawn({kPython, kPyPeer, "portalocker", p.string(), mode, timeout});
  }
  PeerPtr py_lockf(const fs::path& p, const std::string& mode) {
    return spawn({kPython, kPyPeer, "lockf", p.string(), mode});
  }
  PeerPtr py_sem(const std::string& name, unsigned max, const std::string& timeout = "0") {
    return spawn(
        {kPython, kPyPeer, "sem", dir_.path().string(), name, std::to_string(max), timeout});
  }

  // Reads a one-shot peer's result line, lets it exit (dropping anything it got) and returns it.
  static std::string probe(PeerPtr peer) {
    std::string line = peer->read_line();
    if (line == "WAITING") line = peer->read_line();
    const int status = peer->finish();
    EXPECT_EQ(status, 0) << "peer exit status; its stderr: " << peer->stderr_text();
    return line;
  }

  std::string slot_file(const std::string& name, int slot) const {
    char buf[16];
    std::snprintf(buf, sizeof buf, ".%02d.lock", slot);
    return (dir_.path() / (name + buf)).string();
  }

  locksmith::test::TempDir dir_;
  int peers_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The Python side is there at all.

TEST_F(Interop, Python3PortalockerIsInstalled) {
  ASSERT_TRUE(fs::exists(kPython)) << kPython << " is missing (Debian package python3)";
  const std::string line = probe(spawn({kPython, kPyPeer, "version"}));
  EXPECT_TRUE(starts_with(line, "VERSION "))
      << "the interop tests need Debian's python3-portalocker importable by " << kPython
      << " (apt-get install python3-portalocker); got: " << line;
  if (starts_with(line, "VERSION ")) RecordProperty("portalocker", split(line).at(1));
}

// ---------------------------------------------------------------------------------------------
// 1. portalocker holds (flock) -> locksmith's flock backend cannot take a conflicting lock.

TEST_F(Interop, PortalockerExclusiveExcludesCppFlock) {
  auto py = py_portalocker(file(), "exclusive");
  ASSERT_EQ(py->read_line(), "LOCKED");
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), "flock", "exclusive"))));
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), "flock", "shared"))));
  ASSERT_EQ(py->release(), "RELEASED");
  EXPECT_EQ(probe(cpp_file(file(), "flock", "exclusive")), "LOCKED");
  EXPECT_EQ(py->finish(), 0);
}

TEST_F(Interop, PortalockerSharedAdmitsCppSharedAndRefusesCppExclusive) {
  auto py = py_portalocker(file(), "shared");
  ASSERT_EQ(py->read_line(), "LOCKED");
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), "flock", "exclusive"))));
  // 4. A Python shared holder and a C++ shared holder coexist.
  auto cpp = cpp_file(file(), "flock", "shared");
  ASSERT_EQ(cpp->read_line(), "LOCKED");
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), "flock", "exclusive"))));
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "exclusive")), "AlreadyLocked"));
  // Python leaves; the C++ reader alone still keeps writers out.
  ASSERT_EQ(py->release(), "RELEASED");
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "exclusive")), "AlreadyLocked"));
  ASSERT_EQ(cpp->release(), "RELEASED");
  EXPECT_EQ(probe(cpp_file(file(), "flock", "exclusive")), "LOCKED");
}

TEST_F(Interop, CppTimedFlockWaitExpiresWhilePortalockerHolds) {
  auto py = py_portalocker(file(), "exclusive");
  ASSERT_EQ(py->read_line(), "LOCKED");
  const std::string line = probe(cpp_file(file(), "flock", "exclusive", "0.3"));
  ASSERT_TRUE(IsCppBusy(line, "timeout"));
  EXPECT_GE(elapsed_ms_of(line), 300.0) << "a timed wait that failed waited its timeout";
}

TEST_F(Interop, CppFlockWaiterGetsLockWhenPortalockerReleases) {
  auto py = py_portalocker(file(), "exclusive");
  ASSERT_EQ(py->read_line(), "LOCKED");
  auto waiter = cpp_file(file(), "flock", "exclusive", kWaiterWait);
  ASSERT_EQ(waiter->read_line(), "WAITING");
  ASSERT_EQ(py->release(), "RELEASED");
  EXPECT_EQ(waiter->read_line(), "LOCKED");
}

// ---------------------------------------------------------------------------------------------
// 2. locksmith holds (flock) -> portalocker.Lock fails; released -> portalocker gets it.

TEST_F(Interop, CppFlockExclusiveMakesPortalockerFail) {
  auto cpp = cpp_file(file(), "flock", "exclusive");
  ASSERT_EQ(cpp->read_line(), "LOCKED");
  // timeout=0: portalocker tries once and raises LockException.
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "exclusive", "0")), "LockException"));
  // fail_when_locked=True: AlreadyLocked.
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "exclusive", "fail")), "AlreadyLocked"));
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "shared", "fail")), "AlreadyLocked"));
  ASSERT_EQ(cpp->release(), "RELEASED");
  EXPECT_EQ(probe(py_portalocker(file(), "exclusive")), "LOCKED");
  EXPECT_EQ(cpp->finish(), 0);
}

TEST_F(Interop, CppFlockSharedAdmitsPortalockerSharedAndRefusesExclusive) {
  auto cpp = cpp_file(file(), "flock", "shared");
  ASSERT_EQ(cpp->read_line(), "LOCKED");
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "exclusive")), "AlreadyLocked"));
  auto py = py_portalocker(file(), "shared");
  ASSERT_EQ(py->read_line(), "LOCKED");
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "exclusive")), "AlreadyLocked"));
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), "flock", "exclusive"))));
  ASSERT_EQ(cpp->release(), "RELEASED");
  // The Python reader alone still keeps the C++ writer out.
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), "flock", "exclusive"))));
  ASSERT_EQ(py->release(), "RELEASED");
  EXPECT_EQ(probe(py_portalocker(file(), "exclusive")), "LOCKED");
}

TEST_F(Interop, PortalockerTimeoutExpiresWhileCppFlockHolds) {
  auto cpp = cpp_file(file(), "flock", "exclusive");
  ASSERT_EQ(cpp->read_line(), "LOCKED");
  const std::string line = probe(py_portalocker(file(), "exclusive", "0.5"));
  ASSERT_TRUE(IsPyBusy(line, "LockException"));
  EXPECT_GE(elapsed_ms_of(line), 500.0) << "portalocker waited its timeout";
}

TEST_F(Interop, PortalockerWaiterGetsLockWhenCppFlockReleases) {
  auto cpp = cpp_file(file(), "flock", "exclusive");
  ASSERT_EQ(cpp->read_line(), "LOCKED");
  auto waiter = py_portalocker(file(), "exclusive", kWaiterWait);
  ASSERT_EQ(waiter->read_line(), "WAITING");
  ASSERT_EQ(cpp->release(), "RELEASED");
  EXPECT_EQ(waiter->read_line(), "LOCKED");
}

TEST_F(Interop, PortalockerGetsLockWhenCppFlockHolderIsKilled) {
  auto cpp = cpp_file(file(), "flock", "exclusive");
  ASSERT_EQ(cpp->read_line(), "LOCKED");
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "exclusive")), "AlreadyLocked"));
  EXPECT_EQ(cpp->kill_now(), 128 + SIGKILL);
  EXPECT_EQ(probe(py_portalocker(file(), "exclusive")), "LOCKED");
}

// ---------------------------------------------------------------------------------------------
// 3. POSIX record locks: Python's fcntl.lockf (portalocker's LockfLocker) against locksmith's
// posix and ofd backends. OFD locks conflict with classic POSIX locks on Linux.

class RecordLockInterop : public Interop, public ::testing::WithParamInterface<const char*> {
 protected:
  std::string backend() const { return GetParam(); }
};

TEST_P(RecordLockInterop, LockfExclusiveExcludesCpp) {
  auto py = py_lockf(file(), "exclusive");
  ASSERT_EQ(py->read_line(), "LOCKED");
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), backend(), "exclusive"))));
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), backend(), "shared"))));
  ASSERT_EQ(py->release(), "RELEASED");
  EXPECT_EQ(probe(cpp_file(file(), backend(), "exclusive")), "LOCKED");
}

TEST_P(RecordLockInterop, CppExclusiveExcludesLockf) {
  auto cpp = cpp_file(file(), backend(), "exclusive");
  ASSERT_EQ(cpp->read_line(), "LOCKED");
  EXPECT_TRUE(IsLockfBusy(probe(py_lockf(file(), "exclusive"))));
  EXPECT_TRUE(IsLockfBusy(probe(py_lockf(file(), "shared"))));
  ASSERT_EQ(cpp->release(), "RELEASED");
  EXPECT_EQ(probe(py_lockf(file(), "exclusive")), "LOCKED");
}

TEST_P(RecordLockInterop, SharedHoldersCoexistAndExcludeWriters) {
  auto py = py_lockf(file(), "shared");
  ASSERT_EQ(py->read_line(), "LOCKED");
  auto cpp = cpp_file(file(), backend(), "shared");
  ASSERT_EQ(cpp->read_line(), "LOCKED");
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), backend(), "exclusive"))));
  EXPECT_TRUE(IsLockfBusy(probe(py_lockf(file(), "exclusive"))));
  ASSERT_EQ(py->release(), "RELEASED");
  // The C++ reader alone still keeps a Python writer out, and vice versa below.
  EXPECT_TRUE(IsLockfBusy(probe(py_lockf(file(), "exclusive"))));
  auto py2 = py_lockf(file(), "shared");
  ASSERT_EQ(py2->read_line(), "LOCKED");
  ASSERT_EQ(cpp->release(), "RELEASED");
  EXPECT_TRUE(IsCppBusy(probe(cpp_file(file(), backend(), "exclusive"))));
  ASSERT_EQ(py2->release(), "RELEASED");
  EXPECT_EQ(probe(cpp_file(file(), backend(), "exclusive")), "LOCKED");
}

TEST_P(RecordLockInterop, CppTimedWaitExpiresWhileLockfHolds) {
  auto py = py_lockf(file(), "exclusive");
  ASSERT_EQ(py->read_line(), "LOCKED");
  const std::string line = probe(cpp_file(file(), backend(), "exclusive", "0.3"));
  ASSERT_TRUE(IsCppBusy(line, "timeout"));
  EXPECT_GE(elapsed_ms_of(line), 300.0) << "a timed wait that failed waited its timeout";
}

TEST_P(RecordLockInterop, CppWaiterGetsLockWhenLockfReleases) {
  auto py = py_lockf(file(), "exclusive");
  ASSERT_EQ(py->read_line(), "LOCKED");
  auto waiter = cpp_file(file(), backend(), "exclusive", kWaiterWait);
  ASSERT_EQ(waiter->read_line(), "WAITING");
  ASSERT_EQ(py->release(), "RELEASED");
  EXPECT_EQ(waiter->read_line(), "LOCKED");
}

TEST_P(RecordLockInterop, LockfGetsLockWhenCppHolderIsKilled) {
  auto cpp = cpp_file(file(), backend(), "exclusive");
  ASSERT_EQ(cpp->read_line(), "LOCKED");
  EXPECT_TRUE(IsLockfBusy(probe(py_lockf(file(), "exclusive"))));
  EXPECT_EQ(cpp->kill_now(), 128 + SIGKILL);
  EXPECT_EQ(probe(py_lockf(file(), "exclusive")), "LOCKED");
}

INSTANTIATE_TEST_SUITE_P(Backends, RecordLockInterop, ::testing::Values("posix", "ofd"), ParamName);

// ---------------------------------------------------------------------------------------------
// 5. BoundedSemaphore: the same slot files `{name}.{NN}.lock`, counted against one bound.

TEST_F(Interop, CppFullSemaphoreRefusesPortalocker) {
  std::vector<PeerPtr> holders;
  for (int i = 0; i < 3; ++i) {
    holders.push_back(cpp_sem("jobs", 3));
    ASSERT_EQ(holders.back()->read_line(),
              "LOCKED " + std::to_string(i) + " " + slot_file("jobs", i));
  }
  EXPECT_TRUE(IsPySemBusy(probe(py_sem("jobs", 3, "0"))));
  EXPECT_TRUE(IsPySemBusy(probe(py_sem("jobs", 3, "fail"))));
  const std::string line = probe(py_sem("jobs", 3, "0.3"));
  ASSERT_TRUE(IsPySemBusy(line));
  EXPECT_GE(elapsed_ms_of(line), 300.0) << "portalocker waited its timeout";
  // A semaphore of another name shares nothing with this one.
  EXPECT_EQ(probe(py_sem("other", 3, "0")), "LOCKED " + slot_file("other", 0));
}

TEST_F(Interop, PortalockerTakesTheLastSlotCppLeftFree) {
  std::vector<PeerPtr> holders;
  for (int i = 0; i < 2; ++i) {
    holders.push_back(cpp_sem("jobs", 3));
    ASSERT_EQ(holders.back()->read_line(),
              "LOCKED " + std::to_string(i) + " " + slot_file("jobs", i));
  }
  auto py = py_sem("jobs", 3, "0");
  ASSERT_EQ(py->read_line(), "LOCKED " + slot_file("jobs", 2));
  // Now full with mixed holders: neither side gets a fourth slot.
  EXPECT_TRUE(IsCppBusy(probe(cpp_sem("jobs", 3))));
  EXPECT_TRUE(IsPySemBusy(probe(py_sem("jobs", 3, "0"))));
  ASSERT_EQ(py->release(), "RELEASED");
  EXPECT_EQ(probe(cpp_sem("jobs", 3)), "LOCKED 2 " + slot_file("jobs", 2));
}

TEST_F(Interop, CppSemaphoreSkipsSlotsPortalockerHolds) {
  std::vector<PeerPtr> holders;
  for (int i = 0; i < 2; ++i) {
    holders.push_back(py_sem("jobs", 3, "0"));
    ASSERT_EQ(holders.back()->read_line(), "LOCKED " + slot_file("jobs", i));
  }
  auto cpp = cpp_sem("jobs", 3);
  ASSERT_EQ(cpp->read_line(), "LOCKED 2 " + slot_file("jobs", 2));
  EXPECT_TRUE(IsCppBusy(probe(cpp_sem("jobs", 3))));
  ASSERT_EQ(holders[0]->release(), "RELEASED");
  EXPECT_EQ(probe(cpp_sem("jobs", 3)), "LOCKED 0 " + slot_file("jobs", 0));
}

TEST_F(Interop, CppSemaphoreWaiterWakesWhenPortalockerFreesASlot) {
  std::vector<PeerPtr> holders;
  for (int i = 0; i < 2; ++i) {
    holders.push_back(py_sem("jobs", 2, "0"));
    ASSERT_EQ(holders.back()->read_line(), "LOCKED " + slot_file("jobs", i));
  }
  const std::string line = probe(cpp_sem("jobs", 2, "0.3"));
  ASSERT_TRUE(IsCppBusy(line, "timeout"));
  EXPECT_GE(elapsed_ms_of(line), 300.0);
  auto waiter = cpp_sem("jobs", 2, kWaiterWait);
  ASSERT_EQ(waiter->read_line(), "WAITING");
  ASSERT_EQ(holders[1]->release(), "RELEASED");
  EXPECT_EQ(waiter->read_line(), "LOCKED 1 " + slot_file("jobs", 1));
}

TEST_F(Interop, PortalockerSemaphoreWaiterGetsSlotCppReleases) {
  std::vector<PeerPtr> holders;
  for (int i = 0; i < 2; ++i) {
    holders.push_back(cpp_sem("jobs", 2));
    ASSERT_EQ(holders.back()->read_line(),
              "LOCKED " + std::to_string(i) + " " + slot_file("jobs", i));
  }
  auto waiter = py_sem("jobs", 2, kWaiterWait);
  ASSERT_EQ(waiter->read_line(), "WAITING");
  ASSERT_EQ(holders[0]->release(), "RELEASED");
  EXPECT_EQ(waiter->read_line(), "LOCKED " + slot_file("jobs", 0));
}

// ---------------------------------------------------------------------------------------------
// 6. The `locksmith run` command line against Python holders and contenders.

#ifdef LOCKSMITH_INTEROP_CLI

class CliInterop : public Interop {
 protected:
  PeerPtr run_cli(std::vector<std::string> args) {
    args.insert(args.begin(), {kCli, "run"});
    return spawn(std::move(args));
  }
  // Runs `locksmith run ARGS` to completion and returns its exit status.
  int run_status(std::vector<std::string> args) {
    auto cli = run_cli(std::move(args));
    const int status = cli->finish();
    if (status != 0 && status != kExitNotLocked) {
      ADD_FAILURE() << "locksmith run exited " << status << "; stderr: " << cli->stderr_text();
    }
    return status;
  }
};

TEST_F(CliInterop, RunExits75WhilePortalockerHolds) {
  const std::string spec = "flock:" + file().string();
  const fs::path marker = dir_ / "ran";
  auto py = py_portalocker(file(), "exclusive");
  ASSERT_EQ(py->read_line(), "LOCKED");
  EXPECT_EQ(run_status({"--lock", spec, "--timeout", "0", "--", "true"}), kExitNotLocked);
  EXPECT_EQ(run_status({"--lock", spec, "--timeout", "0", "--", "touch", marker.string()}),
            kExitNotLocked);
  EXPECT_FALSE(fs::exists(marker)) << "the command ran without the lock";
  EXPECT_EQ(run_status({"--lock", spec, "--shared", "--timeout", "0", "--", "true"}),
            kExitNotLocked);
  EXPECT_EQ(run_status({"--lock", file().string(), "--timeout", "0.2", "--", "true"}),
            kExitNotLocked);
  ASSERT_EQ(py->release(), "RELEASED");
  EXPECT_EQ(run_status({"--lock", spec, "--timeout", "0", "--", "touch", marker.string()}), 0);
  EXPECT_TRUE(fs::exists(marker));
}

TEST_F(CliInterop, RunSharedCoexistsWithPortalockerShared) {
  const std::string spec = "flock:" + file().string();
  auto py = py_portalocker(file(), "shared");
  ASSERT_EQ(py->read_line(), "LOCKED");
  EXPECT_EQ(run_status({"--lock", spec, "--shared", "--timeout", "0", "--", "true"}), 0);
  EXPECT_EQ(run_status({"--lock", spec, "--timeout", "0", "--", "true"}), kExitNotLocked);
}

TEST_F(CliInterop, PortalockerSeesLockWhileRunRuns) {
  // The command says it is running, then waits for a line on its stdin (or end of input).
  auto cli = run_cli({"--lock", file().string(), "--", "/bin/sh", "-c", "echo RUNNING; read x"});
  ASSERT_EQ(cli->read_line(), "RUNNING");
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "exclusive")), "AlreadyLocked"));
  EXPECT_TRUE(IsPyBusy(probe(py_portalocker(file(), "shared")), "AlreadyLocked"));
  ASSERT_TRUE(cli->send("done"));
  EXPECT_EQ(cli->finish(), 0) << cli->stderr_text();
  EXPECT_EQ(probe(py_portalocker(file(), "exclusive")), "LOCKED");
}

TEST_F(CliInterop, RunSemaphoreExits75WhilePortalockerHoldsAllSlots) {
  std::vector<PeerPtr> holders;
  for (int i = 0; i < 2; ++i) {
    holders.push_back(py_sem("jobs", 2, "0"));
    ASSERT_EQ(holders.back()->read_line(), "LOCKED " + slot_file("jobs", i));
  }
  const std::string spec = "sem:" + (dir_.path() / "jobs").string() + "?max=2";
  EXPECT_EQ(run_status({"--lock", spec, "--timeout", "0", "--", "true"}), kExitNotLocked);
  ASSERT_EQ(holders[0]->release(), "RELEASED");
  EXPECT_EQ(run_status({"--lock", spec, "--timeout", "0", "--", "true"}), 0);
}

class CliRecordLockInterop : public CliInterop, public ::testing::WithParamInterface<const char*> {
 protected:
  std::string spec() const { return std::string(GetParam()) + ":" + file().string(); }
};

TEST_P(CliRecordLockInterop, RunExits75WhileLockfHolds) {
  auto py = py_lockf(file(), "exclusive");
  ASSERT_EQ(py->read_line(), "LOCKED");
  EXPECT_EQ(run_status({"--lock", spec(), "--timeout", "0", "--", "true"}), kExitNotLocked);
  ASSERT_EQ(py->release(), "RELEASED");
  EXPECT_EQ(run_status({"--lock", spec(), "--timeout", "0", "--", "true"}), 0);
}

TEST_P(CliRecordLockInterop, LockfSeesLockWhileRunRuns) {
  auto cli = run_cli({"--lock", spec(), "--", "/bin/sh", "-c", "echo RUNNING; read x"});
  ASSERT_EQ(cli->read_line(), "RUNNING");
  EXPECT_TRUE(IsLockfBusy(probe(py_lockf(file(), "exclusive"))));
  ASSERT_TRUE(cli->send("done"));
  EXPECT_EQ(cli->finish(), 0) << cli->stderr_text();
  EXPECT_EQ(probe(py_lockf(file(), "exclusive")), "LOCKED");
}

INSTANTIATE_TEST_SUITE_P(Specs, CliRecordLockInterop, ::testing::Values("fcntl", "ofd"), ParamName);

#endif  // LOCKSMITH_INTEROP_CLI

}  // namespace
