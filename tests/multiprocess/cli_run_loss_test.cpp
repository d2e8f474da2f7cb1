// `locksmith run` never leaves its command running unlocked: an expiring lock is kept alive
// while the command runs, a lost one stops the command (exit 76), and the command's whole process
// group dies with `run`, even when `run` is SIGKILLed. The real binary, real link locks.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mp_support.hpp"
#include "test_support.hpp"

#ifdef LOCKSMITH_MP_CLI

namespace locksmith::mp {
namespace {

using namespace std::chrono_literals;

constexpr const char* kCli = LOCKSMITH_MP_CLI;
constexpr int kExitNotLocked = 75;
constexpr int kExitLockLost = 76;

class CliRunLoss : public ::testing::Test {
 protected:
  // `locksmith run --lock SPEC [options] -- command...`, its stderr into err_.
  Subprocess run(const std::string& spec, const std::vector<std::string>& options,
                 const std::vector<std::string>& command) const {
    std::string line = "exec";
    for (const std::string& a : std::vector<std::string>{kCli, "run", "--lock", spec}) {
      line += " '" + a + "'";
    }
    for (const auto& a : options) line += " '" + a + "'";
    line += " --";
    for (const auto& a : command) line += " '" + a + "'";
    line += " 2>>'" + err_.string() + "'";
    return Subprocess::spawn({"/bin/sh", "-c", line});
  }
  std::string link_spec(const std::string& query) const { return "link:" + lock_.string() + query; }
  std::vector<std::string> hold_cmd() const {
    return {self_exe(), std::string(kChildFlag) + "hold-cmd"};
  }
  std::string err() const {
    std::ifstream in(err_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Waits (bounded) until run's stderr contains `text`.
  bool err_says(const std::string& text) const {
    const auto until = std::chrono::steady_clock::now() + kWaitLimit;
    while (err().find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  test::TempDir dir_;
  std::filesystem::path lock_ = dir_ / "lock";
  std::filesystem::path err_ = dir_ / "stderr";
};

// A process that is gone or a zombie (nobody may reap orphans in a container).
bool dead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  if (!std::getline(stat, content)) return true;
  const auto close = content.rfind(')');
  return close != std::string::npos && close + 2 < content.size() && content[close + 2] == 'Z';
}

bool dies_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!dead(pid)) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Before keep-alive, a waiter broke the claim one lifetime after `run` took it, while the
// command still ran (the control below shows it still does with --no-keep-alive).
TEST_F(CliRunLoss, KeepAliveHoldsALinkLockPastItsLifetime) {
  const std::string spec = link_spec("?lifetime=400ms&slop=0s");
  Subprocess holder = run(spec, {}, hold_cmd());
  ASSERT_EQ(holder.read_line().value_or("<no reply>"), "READY");
  // Three lifetimes of waiting: the lock must still be held.
  EXPECT_EQ(run(spec, {"--timeout", "1.2"}, {"/bin/true"}).wait_exit(), kExitNotLocked);
  ASSERT_TRUE(holder.send("done"));
  EXPECT_EQ(holder.wait_exit(), 0) << err();
}

TEST_F(CliRunLoss, WithoutKeepAliveTheLockExpiresAndRunSaysSo) {
  const std::string spec = link_spec("?lifetime=300ms&slop=0s");
  Subprocess holder = run(spec, {"--no-keep-alive"}, hold_cmd());
  ASSERT_EQ(holder.read_line().value_or("<no reply>"), "READY");
  EXPECT_EQ(run(spec, {"--timeout", "10"}, {"/bin/true"}).wait_exit(), 0);  // broke it
  ASSERT_TRUE(holder.send("done"));
  EXPECT_EQ(holder.wait_exit(), kExitLockLost);
  EXPECT_NE(err().find("lock lost"), std::string::npos) << err();
}

TEST_F(CliRunLoss, ALostLockStopsTheCommandWithSigterm) {
  Subprocess holder = run(link_spec("?lifetime=600ms"), {}, hold_cmd());
  ASSERT_EQ(holder.read_line().value_or("<no reply>"), "READY");
  std::filesystem::remove(lock_);                // broken by someone else
  EXPECT_EQ(holder.wait_exit(), kExitLockLost);  // hold-cmd ends only by the SIGTERM
  EXPECT_NE(err().find("lock lost: '" + lock_.string() + "'"), std::string::npos) << err();
  EXPECT_NE(err().find("SIGTERM"), std::string::npos) << err();
}

TEST_F(CliRunLoss, OnLostIgnoreLetsTheCommandFinishButStillExits76) {
  Subprocess holder = run(link_spec("?lifetime=600ms"), {"--on-lost", "ignore"}, hold_cmd());
  ASSERT_EQ(holder.read_line().value_or("<no reply>"), "READY");
  std::filesystem::remove(lock_);
  ASSERT_TRUE(err_says("UNLOCKED")) << err();
  EXPECT_FALSE(holder.wait_exit(0ms).has_value());  // told, and the command runs on
  ASSERT_TRUE(holder.send("done"));
  EXPECT_EQ(holder.wait_exit(), kExitLockLost);
}

TEST_F(CliRunLoss, KillAfterEscalatesToSigkill) {
  // The command ignores SIGTERM; only SIGKILL ends it.
  Subprocess holder = run(link_spec("?lifetime=600ms"), {"--kill-after", "0.2"},
                          {"/bin/sh", "-c", "trap '' TERM; echo READY; while :; do read x; done"});
  ASSERT_EQ(holder.read_line().value_or("<no reply>"), "READY");
  std::filesystem::remove(lock_);
  EXPECT_EQ(holder.wait_exit(), kExitLockLost);
  EXPECT_NE(err().find("SIGKILL"), std::string::npos) << err();
}

TEST_F(CliRunLoss, OnLostKillSendsSigkillAtOnce) {
  Subprocess holder = run(link_spec("?lifetime=600ms"), {"--on-lost", "kill"},
                          {"/bin/sh", "-c", "trap '' TERM; echo READY; while :; do read x; done"});
  ASSERT_EQ(holder.read_line().value_or("<no reply>"), "READY");
  std::filesystem::remove(lock_);
  EXPECT_EQ(holder.wait_exit(), kExitLockLost);
}

// The command and everything it starts in its group die with `run`, even when `run` gets
// SIGKILL (and with it the lock, for flock).
TEST_F(CliRunLoss, SigkillOfRunKillsTheCommandsWholeProcessGroup) {
  Subprocess holder =
      run("flock:" + lock_.string(), {}, {"/bin/sh", "-c", "sleep 300 & echo $$ $!; wait"});
  const std::string pids = holder.read_line().value_or("");
  std::istringstream in(pids);
  pid_t shell = 0;
  pid_t background = 0;
  ASSERT_TRUE(in >> shell >> background) << "got '" << pids << "'";
  EXPECT_NE(::getpgid(shell), ::getpgrp());  // its own group, not ours
  EXPECT_EQ(::getpgid(shell), ::getpgid(background));
  holder.kill(SIGKILL);
  EXPECT_TRUE(dies_within(shell, kWaitLimit));
  EXPECT_TRUE(dies_within(background, kWaitLimit));
}

TEST_F(CliRunLoss, HelpDescribesTheLossBehaviour) {
  Subprocess help = Subprocess::spawn({kCli, "run", "--help"});
  std::string text;
  while (auto line = help.read_line()) text += *line + "\n";
  EXPECT_EQ(help.wait_exit(), 0);
  for (const char* needle :
       {"--on-lost", "--kill-after", "--keep-alive", "--no-keep-alive", "76"}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle;
  }
}

}  // namespace
}  // namespace locksmith::mp

#endif  // LOCKSMITH_MP_CLI
