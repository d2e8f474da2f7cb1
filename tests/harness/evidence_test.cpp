// A verdict is evidence: `locksmith check` and the engine refuse evidence that does not add up
// (missing, truncated, corrupt, foreign or duplicated histories, a FIFO in place of one, a reused
// history directory), scenarios never touch user data they did not create and leave nothing
// behind, and an interrupted run gives no verdict. The real binary and real runs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "locksmith/harness/engine.hpp"
#include "test_support.hpp"

namespace locksmith::harness {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Output {
  int status = -1;
  std::string text;
};

// Runs `locksmith ARGS` (stdout and stderr together), bounded by timeout(1).
Output locksmith(const std::string& args) {
  Output o;
  const std::string cmd = "timeout 120 " + std::string(LOCKSMITH_BINARY) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.text.append(buf, n);
  const int status = ::pclose(p);
  o.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return o;
}

// A kept run of `spec` in `dir`: its histories, for `check`.
Output kept_run(const std::string& spec, const fs::path& dir, const std::string& extra = "") {
  return locksmith("stress -q --lock '" + spec + "' --workers 4 --iterations 300 --history-dir '" +
                   dir.string() + "' " + extra);
}

std::vector<fs::path> histories(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("history-", 0) == 0 && name != "history-controller.bin") out.push_back(e.path());
  }
  return out;
}

class Evidence : public ::testing::Test {
 protected:
  void SetUp() override {
    run_ = dir_ / "run";
    const Output o = kept_run("flock:" + (dir_ / "x.lock").string(), run_);
    ASSERT_EQ(o.status, 0) << o.text;
    ASSERT_EQ(locksmith("check -q '" + run_.string() + "'").status, 0);  // the control
  }
  test::TempDir dir_;
  fs::path run_;
};

TEST_F(Evidence, AMissingHistoryIsNoVerdict) {
  ASSERT_FALSE(histories(run_).empty());
  fs::remove(histories(run_).front());
  const Output o = locksmith("check -q '" + run_.string() + "'");
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("is missing"), std::string::npos) << o.text;
}

TEST_F(Evidence, TheSameDirectoryTwiceIsNoVerdict) {
  const Output o = locksmith("check -q '" + run_.string() + "' '" + run_.string() + "'");
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("given twice"), std::string::npos) << o.text;
}

TEST_F(Evidence, TwoUnrelatedRunsAreNoVerdict) {
  const fs::path other = dir_ / "other";
  ASSERT_EQ(kept_run("flock:" + (dir_ / "y.lock").string(), other).status, 0);
  const Output o = locksmith("check -q '" + run_.string() + "' '" + other.string() + "'");
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("different runs"), std::string::npos) << o.text;
}

TEST_F(Evidence, AHistoryOfAnotherRunIsRefused) {
  const fs::path other = dir_ / "other";
  ASSERT_EQ(kept_run("flock:" + (dir_ / "y.lock").string(), other).status, 0);
  const fs::path mine = histories(run_).front();
  fs::copy_file(histories(other).front(), mine, fs::copy_options::overwrite_existing);
  const Output o = locksmith("check -q '" + run_.string() + "'");
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("belongs to run"), std::string::npos) << o.text;
}

TEST_F(Evidence, ATruncatedHistoryIsRefused) {
  const fs::path h = histories(run_).front();
  fs::resize_file(h, fs::file_size(h) - 48 * 10);
  const Output o = locksmith("check -q '" + run_.string() + "'");
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("truncated"), std::string::npos) << o.text;
}

TEST_F(Evidence, ACorruptRecordIsRefused) {
  const fs::path h = histories(run_).front();
  {
    std::fstream f(h, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(48 * 5 + 28);  // record 5: its sequence number (after time, ids, type, witnesses)
    const char junk[4] = {'\x7f', '\x7f', '\x7f', '\x7f'};
    f.write(junk, sizeof junk);
  }
  const Output o = locksmith("check -q '" + run_.string() + "'");
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("corrupt"), std::string::npos) << o.text;
}

TEST_F(Evidence, AFifoInPlaceOfAHistoryDoesNotHang) {
  const fs::path h = histories(run_).front();
  fs::remove(h);
  ASSERT_EQ(::mkfifo(h.c_str(), 0644), 0);
  const Output o = locksmith("check -q '" + run_.string() + "'");  // bounded by timeout(1)
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("not a regular file"), std::string::npos) << o.text;
}

TEST_F(Evidence, AReusedHistoryDirectoryIsRefused) {
  const Output o = kept_run("flock:" + (dir_ / "x.lock").string(), run_);
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("not empty"), std::string::npos) << o.text;
  EXPECT_EQ(locksmith("check -q '" + run_.string() + "'").status, 0);  // the first run intact
}

// Deleting a worker's history of a broken run must not turn UNSAFE into SAFE.
TEST(EvidenceBroken, DeletingAHistoryOfABrokenRunDoesNotMakeItSafe) {
  test::TempDir dir;
  const fs::path run = dir / "run";
  const Output first = locksmith("stress -q --lock 'broken:atomic:" + (dir / "data").string() +
                                 "' --workers 2 --duration 1 --history-dir '" + run.string() + "'");
  ASSERT_EQ(first.status, 1) << first.text;
  for (const auto& h : histories(run)) fs::remove(h);
  const Output o = locksmith("check -q '" + run.string() + "'");
  EXPECT_EQ(o.status, 2) << o.text;
}

TEST(Scenarios, AtomicRefusesAnExistingFileAndLeavesItAlone) {
  test::TempDir dir;
  const fs::path data = dir / "data";
  { std::ofstream(data) << "user data\n"; }
  const Output o = locksmith("stress -q --lock 'atomic:" + data.string() + "' -d 0.3");
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("exists"), std::string::npos) << o.text;
  std::ifstream in(data);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "user data");
}

TEST(Scenarios, RunsLeaveNothingBehind) {
  test::TempDir dir;
  for (const std::string& spec :
       {"flock:" + (dir / "f.lock").string(), "link:" + (dir / "l.lock").string(),
        "dotlock:" + (dir / "d").string(), "atomic:" + (dir / "data").string(),
        "filestore:" + (dir / "store").string()}) {
    const Output o = locksmith("stress -q --lock '" + spec + "' -d 0.3 --nemesis kill");
    EXPECT_NE(o.status, 1) << spec << ": " << o.text;
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(dir.path())) left.push_back(e.path().filename());
    EXPECT_TRUE(left.empty()) << spec << " left " << left.size() << " entries, e.g. "
                              << (left.empty() ? "" : left.front());
  }
}

TEST(Scenarios, ASecondFileStoreRunOnTheSameStoreIsClean) {
  test::TempDir dir;
  const std::string spec = "filestore:" + (dir / "store").string();
  for (int run = 0; run < 2; ++run) {
    const Output o = locksmith("stress -q --lock '" + spec + "' --workers 4 -d 0.5");
    EXPECT_NE(o.status, 1) << "run " << run << ": " << o.text;
  }
}

// SIGTERM to the controller: the workers are stopped, the report says there is no verdict
// (exit 2), and the temporary run directory and the lock's files are gone.
TEST(Interrupt, SigtermStopsTheRunWithoutAVerdict) {
  test::TempDir dir;
  const fs::path tmp = dir / "tmp";
  fs::create_directories(tmp);
  const std::string cmd = "TMPDIR='" + tmp.string() + "' exec " + std::string(LOCKSMITH_BINARY) +
                          " stress --no-progress --lock 'flock:" + (dir / "f.lock").string() +
                          "' -d 60 > '" + (dir / "out").string() + "' 2>&1";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait (bounded) for the run directory and its worker histories to appear.
  const auto until = std::chrono::steady_clock::now() + 20s;
  bool running = false;
  while (!running && std::chrono::steady_clock::now() < until) {
    for (const auto& e : fs::directory_iterator(tmp)) {
      std::error_code ec;
      running = running || fs::exists(e.path() / "history-0.bin", ec);
    }
    if (!running) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(running);
  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream in(dir / "out");
  std::string out;
  for (std::string line; std::getline(in, line);) out += line + '\n';
  EXPECT_NE(out.find("NO VERDICT - interrupted by SIGTERM"), std::string::npos) << out;
  EXPECT_TRUE(fs::is_empty(tmp)) << "the run directory was left behind";
  EXPECT_FALSE(fs::exists(dir / "f.lock.guard"));
}

}  // namespace
}  // namespace locksmith::harness

namespace locksmith::harness {
namespace {

// A full filesystem is an environment error (exit 2) naming the OS error, never UNSAFE: run in a
// private mount namespace on a small tmpfs filled to the last block.
TEST(FullDisk, StressAndProbeGiveNoVerdict) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount)";
  test::TempDir dir;
  const fs::path mnt = dir / "full";
  fs::create_directories(mnt);
  for (const std::string& cmd :
       {std::string("stress -q --lock 'flock:") + mnt.string() + "/x.lock' -d 0.5",
        std::string("probe -q '") + mnt.string() + "' -d 0.3"}) {
    const std::string script = "mount -t tmpfs -o size=256k tmpfs '" + mnt.string() +
                               "' && (dd if=/dev/zero of='" + mnt.string() +
                               "/fill' bs=4k 2>/dev/null; true) && exec timeout 120 " +
                               std::string(LOCKSMITH_BINARY) + " " + cmd;
    const std::string line = "unshare -m --propagation private sh -c \"" + script + "\" 2>&1";
    FILE* p = ::popen(line.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = ::pclose(p);
    ASSERT_TRUE(WIFEXITED(status)) << out;
    if (out.find("unshare failed") != std::string::npos) GTEST_SKIP() << out;
    EXPECT_EQ(WEXITSTATUS(status), 2) << cmd << ": " << out;
    EXPECT_NE(out.find("No space left on device"), std::string::npos) << cmd << ": " << out;
    EXPECT_EQ(out.find("UNSAFE"), std::string::npos) << cmd << ": " << out;
  }
}

TEST(ReportFiles, AnUnwritableReportPathIsRefusedBeforeTheRun) {
  test::TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  const Output o = locksmith("stress -q --lock 'flock:" + (dir / "x.lock").string() +
                             "' -d 30 --json '" + (dir / "no" / "such" / "r.json").string() + "'");
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("cannot write report"), std::string::npos) << o.text;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);  // refused before a 30 s run
}

}  // namespace
}  // namespace locksmith::harness
