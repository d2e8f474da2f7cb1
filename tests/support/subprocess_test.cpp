// The Subprocess helper itself: every way of starting a child, line and byte I/O both ways,
// bounded waits that end on time, exit codes and signals, and no child left behind.
#include "subprocess.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace locksmith::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Child roles of this binary.
int run_role(const std::string& role, int argc, char** argv) {
  if (role == "echo") {  // echoes lines until end of input, then exits with argv[2]
    Channel parent(0, 1);
    while (auto line = parent.read_line()) parent.send(*line);
    return argc > 2 ? std::atoi(argv[2]) : 0;
  }
  if (role == "env") {  // prints $LOCKSMITH_SUPPORT_VALUE (or "-")
    const char* v = std::getenv("LOCKSMITH_SUPPORT_VALUE");
    std::printf("%s\n", v != nullptr ? v : "-");
    return 0;
  }
  if (role == "ignores-term") {  // reports whether SIGTERM is ignored
    struct sigaction sa {};
    ::sigaction(SIGTERM, nullptr, &sa);
    std::printf("%s\n", sa.sa_handler == SIG_IGN ? "ignored" : "default");
    return 0;
  }
  return 100;
}

TEST(Subprocess, SpawnedProgramEchoesLinesAndExits) {
  Subprocess cat = Subprocess::spawn({"/bin/cat"});
  EXPECT_GT(cat.pid(), 0);
  EXPECT_TRUE(cat.send("one"));
  EXPECT_EQ(cat.read_line(), "one");
  EXPECT_EQ(cat.request("two"), "two");
  cat.close_stdin();
  EXPECT_EQ(cat.read_line(), std::nullopt);  // end of stream
  EXPECT_EQ(cat.wait_exit(), 0);
  EXPECT_FALSE(cat.running());
  EXPECT_EQ(cat.wait_exit(), std::nullopt) << "a reaped child has no second exit";
}

TEST(Subprocess, SelfRunsThisBinaryAsAChildRole) {
  Subprocess echo = Subprocess::self("echo", {"7"});
  EXPECT_EQ(echo.request("hello"), "hello");
  echo.close_stdin();
  EXPECT_EQ(echo.wait_exit(), 7);
}

TEST(Subprocess, ForkedBodyTalksBothWaysAndItsResultIsTheExitCode) {
  Subprocess child = Subprocess::fork([](Channel& parent) {
    parent.send('r');
    const auto line = parent.read_line();
    parent.send(line.value_or("<none>") + "!");
    return 5;
  });
  EXPECT_EQ(child.receive(), 'r');
  EXPECT_TRUE(child.send("go"));
  EXPECT_EQ(child.read_line(), "go!");
  EXPECT_EQ(child.wait_exit(), 5);
}

TEST(Subprocess, ForkedBodyWithStdioPrintsToThePipe) {
  Subprocess child = Subprocess::fork(
      [](Channel&) {
        std::printf("printed %d\n", 42);  // flushed before the child exits
        return 0;
      },
      true);
  EXPECT_EQ(child.read_line(), "printed 42");
  EXPECT_EQ(child.wait_exit(), 0);
}

TEST(Subprocess, AThrowingBodyExits99) {
  Subprocess child = Subprocess::fork([](Channel&) -> int { throw std::runtime_error("x"); });
  EXPECT_EQ(child.wait_exit(), 99);
}

TEST(Subprocess, WaitsAreBoundedAndLeaveTheChildRunning) {
  Subprocess cat = Subprocess::spawn({"/bin/cat"});
  const auto start = Clock::now();
  EXPECT_EQ(cat.read_line(50ms), std::nullopt);
  EXPECT_EQ(cat.receive(50ms), std::nullopt);
  EXPECT_EQ(cat.wait_exit(50ms), std::nullopt);
  const auto took = Clock::now() - start;
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, kWaitLimit);
  EXPECT_TRUE(cat.running());
  EXPECT_EQ(cat.kill(SIGKILL), -SIGKILL);
  EXPECT_FALSE(cat.running());
}

TEST(Subprocess, KillWithAnotherSignalLeavesTheReapToWaitExit) {
  Subprocess cat = Subprocess::spawn({"/bin/cat"});
  EXPECT_EQ(cat.kill(SIGTERM), std::nullopt);
  EXPECT_EQ(cat.wait_exit(), -SIGTERM);
}

TEST(Subprocess, DestructorKillsAndReapsARunningChild) {
  pid_t pid = -1;
  {
    Subprocess cat = Subprocess::spawn({"/bin/cat"});
    pid = cat.pid();
    ASSERT_EQ(::kill(pid, 0), 0);
  }
  // Reaped: the pid is no longer ours (not even a zombie).
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(Subprocess, MovedFromHandleOwnsNothing) {
  Subprocess a = Subprocess::spawn({"/bin/cat"});
  const pid_t pid = a.pid();
  Subprocess b = std::move(a);
  EXPECT_EQ(b.pid(), pid);
  EXPECT_FALSE(a.running());  // NOLINT(bugprone-use-after-move): the moved-from state is defined
  EXPECT_EQ(b.request("x"), "x");
}

TEST(Subprocess, AProgramThatCannotRunThrowsNamingIt) {
  try {
    Subprocess::spawn({"/nonexistent/locksmith-no-such-program"});
    ADD_FAILURE() << "spawn of a missing program did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find("locksmith-no-such-program"), std::string::npos);
  }
}

TEST(Subprocess, RunCollectsStdoutStderrAndTheExitCode) {
  SpawnOptions o;
  o.err = Stdio::stdout_;
  o.search_path = true;
  const Completed c = run({"sh", "-c", "echo out; echo err >&2; exit 3"}, o);
  EXPECT_EQ(c.exit, 3);
  EXPECT_EQ(c.out, "out\nerr\n");
  EXPECT_LT(c.took, kWaitLimit);
}

TEST(Subprocess, RunKillsAProgramThatOutlivesItsLimit) {
  const auto start = Clock::now();
  const Completed c = run({"/bin/sleep", "30"}, {}, 100ms);
  EXPECT_EQ(c.exit, std::nullopt);
  EXPECT_LT(Clock::now() - start, 10s);
}

TEST(Subprocess, StderrGoesToAFileWhenAsked) {
  TempDir dir;
  SpawnOptions o;
  o.err = Stdio::file;
  o.stderr_file = (dir / "err").string();
  const Completed c = run({"/bin/sh", "-c", "echo oops >&2"}, o);
  EXPECT_EQ(c.exit, 0);
  EXPECT_EQ(c.out, "");
  std::FILE* f = std::fopen(o.stderr_file.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char buf[32] = {};
  EXPECT_EQ(std::fgets(buf, sizeof buf, f), buf);
  std::fclose(f);
  EXPECT_STREQ(buf, "oops\n");
}

TEST(Subprocess, EnvironmentIsSetAndFiltered) {
  ::setenv("LOCKSMITH_SUPPORT_VALUE", "inherited", 1);
  {
    Subprocess p = Subprocess::self("env");
    EXPECT_EQ(p.read_line(), "inherited");
    EXPECT_EQ(p.wait_exit(), 0);
  }
  {
    SpawnOptions o;
    o.env = {"LOCKSMITH_SUPPORT_VALUE=set"};
    Subprocess p = Subprocess::self("env", {}, o);
    EXPECT_EQ(p.read_line(), "set");
    EXPECT_EQ(p.wait_exit(), 0);
  }
  {
    SpawnOptions o;
    o.drop_env_prefix = "LOCKSMITH_";
    Subprocess p = Subprocess::self("env", {}, o);
    EXPECT_EQ(p.read_line(), "-");
    EXPECT_EQ(p.wait_exit(), 0);
  }
  ::unsetenv("LOCKSMITH_SUPPORT_VALUE");
}

TEST(Subprocess, SignalsStartDefaultOrIgnoredAsAsked) {
  {
    Subprocess p = Subprocess::self("ignores-term");
    EXPECT_EQ(p.read_line(), "default");
    EXPECT_EQ(p.wait_exit(), 0);
  }
  SpawnOptions o;
  o.ignore_signals = {SIGTERM};
  Subprocess p = Subprocess::self("ignores-term", {}, o);
  EXPECT_EQ(p.read_line(), "ignored");
  EXPECT_EQ(p.wait_exit(), 0);
}

TEST(Subprocess, ExtraDescriptorsReachTheChild) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  SpawnOptions o;
  o.extra_fds = {{fds[1], 5}};
  o.search_path = true;
  const Completed c = run({"sh", "-c", "echo via-fd5 >&5"}, o);
  ::close(fds[1]);
  EXPECT_EQ(c.exit, 0);
  Channel reader(fds[0], -1);
  EXPECT_EQ(reader.read_line(), "via-fd5");
}

}  // namespace
}  // namespace locksmith::test

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (const auto role = locksmith::test::child_role(argc, argv)) {
    return locksmith::test::run_role(*role, argc, argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
