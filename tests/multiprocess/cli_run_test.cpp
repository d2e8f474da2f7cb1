// `locksmith run` end to end: the real binary (LOCKSMITH_MP_CLI), real lock holders in other
// processes, and this test binary as the command it runs (the `hold-cmd` and `count-fds` roles).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "locksmith/file_lock.hpp"
#include "locksmith/spec.hpp"
#include "mp_support.hpp"
#include "mp_util.hpp"
#include "test_support.hpp"

#ifdef LOCKSMITH_MP_CLI

namespace locksmith::mp {
namespace {

using namespace std::chrono_literals;

constexpr const char* kCli = LOCKSMITH_MP_CLI;
constexpr int kExitUsage = 2;
constexpr int kExitNotLocked = 75;
constexpr int kExitNotFound = 127;

// `locksmith run --lock SPEC [options] -- command...`
Subprocess run_spec(const std::string& lock_spec, const std::vector<std::string>& options,
                    const std::vector<std::string>& command, const SpawnOptions& spawn = {}) {
  std::vector<std::string> argv{kCli, "run", "--lock", lock_spec};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.emplace_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return Subprocess::spawn(argv, spawn);
}

struct Kind {
  const char* spec_kind;  // in the lock spec
  const char* backend;    // of the locker holding the same file
};

class CliRunTest : public ::testing::TestWithParam<Kind> {
 protected:
  std::string spec(const std::string& extra = "") const {
    return std::string(GetParam().spec_kind) + ":" + path_.string() + extra;
  }
  Subprocess locker() const {
    return Subprocess::self("locker", {GetParam().backend, path_.string()});
  }

  // `locksmith run --lock SPEC [options] -- command...` on this test's lock file.
  Subprocess run(const std::vector<std::string>& options, const std::vector<std::string>& command,
                 const SpawnOptions& spawn = {}) const {
    return run_spec(spec(), options, command, spawn);
  }
  std::vector<std::string> self_role(const std::string& role,
                                     const std::vector<std::string>& args = {}) const {
    std::vector<std::string> argv{self_exe(), std::string(kChildFlag) + role};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  bool parent_can_lock(LockMode mode = LockMode::exclusive) const {
    LockOptions o;
    o.backend = parse_backend(GetParam().backend);
    FileLock probe(path_, o);
    return !probe.acquire(mode, Clock::time_point::min());
  }

  test::TempDir dir_;
  std::filesystem::path path_ = dir_ / "lock";
};

TEST_P(CliRunTest, ExitStatusOfTheCommandPassesThrough) {
  EXPECT_EQ(run({}, {"/bin/sh", "-c", "exit 7"}).wait_exit(), 7);
  EXPECT_EQ(run({}, {"/bin/true"}).wait_exit(), 0);
  EXPECT_EQ(run({}, {"/bin/sh", "-c", "exit 0"}).wait_exit(), 0);
}

TEST_P(CliRunTest, CommandRunsWhileTheLockIsHeldAndItIsReleasedAfterwards) {
  Subprocess cli = run({}, self_role("hold-cmd"));
  ASSERT_EQ(cli.read_line().value_or("<no reply>"), "READY");
  EXPECT_FALSE(parent_can_lock(LockMode::shared));
  Subprocess other = locker();
  EXPECT_EQ(other.request("acquire ex"), "BUSY");
  cli.close_stdin();  // hold-cmd exits on EOF
  EXPECT_EQ(cli.wait_exit(), 0);
  EXPECT_TRUE(parent_can_lock());
}

TEST_P(CliRunTest, Exits75WhenAnotherProcessHoldsTheLock) {
  Subprocess holder = locker();
  ASSERT_EQ(holder.request("acquire ex"), "LOCKED");
  EXPECT_EQ(run({"--timeout", "0"}, {"/bin/true"}).wait_exit(), kExitNotLocked);

  const auto start = Clock::now();
  EXPECT_EQ(run({"--timeout", "0.3"}, {"/bin/true"}).wait_exit(), kExitNotLocked);
  EXPECT_GE(Clock::now() - start, 300ms);

  // The command must not have run: it would have created this file.
  const auto marker = dir_ / "ran";
  EXPECT_EQ(run({"--timeout", "0"}, {"/bin/sh", "-c", "touch " + marker.string()}).wait_exit(),
            kExitNotLocked);
  EXPECT_FALSE(std::filesystem::exists(marker));

  ASSERT_EQ(holder.request("release"), "OK");
  EXPECT_EQ(run({"--timeout", "0"}, {"/bin/sh", "-c", "touch " + marker.string()}).wait_exit(), 0);
  EXPECT_TRUE(std::filesystem::exists(marker));
}

TEST_P(CliRunTest, Exits127ForAMissingCommand) {
  EXPECT_EQ(run({}, {(dir_ / "no-such-command").string()}).wait_exit(), kExitNotFound);
  EXPECT_TRUE(parent_can_lock()) << "the lock stayed held after the command failed to start";
}

TEST_P(CliRunTest, SharedHoldersRunConcurrently) {
  Subprocess first = run({"--shared"}, self_role("hold-cmd"));
  Subprocess second = run({"--shared"}, self_role("hold-cmd"));
  // Both commands are running at the same time, each under its shared lock.
  ASSERT_EQ(first.read_line().value_or("<no reply>"), "READY");
  ASSERT_EQ(second.read_line().value_or("<no reply>"), "READY");
  EXPECT_FALSE(parent_can_lock(LockMode::exclusive));
  EXPECT_TRUE(parent_can_lock(LockMode::shared));
  EXPECT_EQ(run({"--timeout", "0"}, {"/bin/true"}).wait_exit(), kExitNotLocked);
  first.close_stdin();
  second.close_stdin();
  EXPECT_EQ(first.wait_exit(), 0);
  EXPECT_EQ(second.wait_exit(), 0);
  EXPECT_TRUE(parent_can_lock());
}

TEST_P(CliRunTest, CommandDoesNotInheritTheLockFd) {
  // The probe is trusted only because it sees an fd that *is* inherited.
  const int leaked = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(leaked, 0);
  SpawnOptions with_fd;
  with_fd.extra_fds = {{leaked, 5}};
  Subprocess control = Subprocess::self("count-fds", {path_.string()}, with_fd);
  EXPECT_EQ(control.read_line().value_or("<no reply>"), "FDS 1");
  EXPECT_EQ(control.wait_exit(), 1);
  ::close(leaked);

  Subprocess cli = run({}, self_role("count-fds", {path_.string()}));
  EXPECT_EQ(cli.read_line().value_or("<no reply>"), "FDS 0");
  EXPECT_EQ(cli.wait_exit(), 0);
}

TEST_P(CliRunTest, SigtermIsForwardedToTheCommand) {
  Subprocess cli = run({}, self_role("hold-cmd"));
  ASSERT_EQ(cli.read_line().value_or("<no reply>"), "READY");
  // locksmith installs its forwarding handlers before it starts the command, so by the time the
  // command says READY they are in place (a SIGTERM earlier would have been held, not lost).
  ASSERT_TRUE(catches_signal(cli.pid(), SIGTERM)) << "locksmith has no SIGTERM handler";
  cli.kill(SIGTERM);
  // 128 + SIGTERM from locksmith's exit status: the command died of the forwarded signal and
  // locksmith itself exited normally (had SIGTERM killed locksmith, this would be -SIGTERM).
  EXPECT_EQ(cli.wait_exit(), 128 + SIGTERM);
  EXPECT_TRUE(parent_can_lock());
}

std::string kind_name(const ::testing::TestParamInfo<Kind>& param) { return param.param.backend; }

INSTANTIATE_TEST_SUITE_P(Kinds, CliRunTest,
                         ::testing::Values(Kind{"flock", "flock"}, Kind{"fcntl", "posix"},
                                           Kind{"ofd", "ofd"}),
                         kind_name);

// --- A run stopped by a signal while it waits for the lock ------------------------------------

// The names in `dir`, sorted.
std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Polls a condition that a file or /proc shows (there is nothing to block on), bounded.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = kWaitLimit) {
  const auto until = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() >= until) return false;
    ::usleep(2000);
  }
  return true;
}

struct StopCase {
  const char* kind;
  const char* target;  // file name in the test directory
  int signo;
};

class CliRunStopTest : public ::testing::TestWithParam<StopCase> {};

// SIGTERM/SIGINT while `run` waits: it stops waiting, removes what its lock made (a link claim,
// a dotlock temporary file) and exits 128 + signo. Before, the default action killed it and
// left them behind.
TEST_P(CliRunStopTest, SignalWhileWaitingLeavesNothingBehind) {
  const StopCase c = GetParam();
  test::TempDir dir;
  const std::string spec = std::string(c.kind) + ":" + (dir / c.target).string();
  auto holder = open_lock(spec);
  ASSERT_TRUE(holder->try_lock());
  const auto before = names_in(dir.path());
  Subprocess cli = run_spec(spec, {}, {"/bin/true"});
  // Waiting: its claim / temporary file is there (for link and dotlock), its handler is in place.
  if (std::string(c.kind) == "link" || std::string(c.kind) == "dotlock") {
    ASSERT_TRUE(eventually([&] { return names_in(dir.path()).size() > before.size(); }))
        << "run made no claim or temporary file";
  }
  // Its handler is in place before the signal is sent (a loaded machine can take seconds to
  // get there under a sanitizer; a signal sent before would take the default action).
  ASSERT_TRUE(eventually([&] { return catches_signal(cli.pid(), c.signo); }))
      << "run never caught signal " << c.signo;
  cli.kill(c.signo);
  EXPECT_EQ(cli.wait_exit(), 128 + c.signo);
  EXPECT_EQ(names_in(dir.path()), before) << "run left files behind";
  holder->unlock();
}

std::string stop_case_name(const ::testing::TestParamInfo<StopCase>& param) {
  return std::string(param.param.kind) + (param.param.signo == SIGINT ? "_SIGINT" : "_SIGTERM");
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, CliRunStopTest,
    ::testing::Values(StopCase{"link", "res.lock", SIGTERM}, StopCase{"link", "res.lock", SIGINT},
                      StopCase{"dotlock", "f", SIGTERM}, StopCase{"dotlock", "f", SIGINT},
                      StopCase{"pidfile", "p", SIGTERM}, StopCase{"mkdir", "m", SIGTERM}),
    stop_case_name);

// `link:` on something that can never be a lock file: exit 2 at once, naming path and reason
// (it used to say "locked by someone else", and wait forever without --timeout).
TEST(CliRun, LinkOnANonRegularFileExits2AtOnce) {
  test::TempDir dir;
  const struct {
    std::string path;
    std::string reason;
  } cases[] = {{"/dev/null", "not a regular file"},
               {dir.path().string(), std::make_error_code(std::errc::is_a_directory).message()}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    const auto start = Clock::now();
    Subprocess cli = Subprocess::spawn(
        {"/bin/sh", "-c", std::string(kCli) + " run --lock link:" + c.path + " -- true 2>&1"});
    const std::string line = cli.read_line(5s).value_or("<no reply>");
    EXPECT_EQ(cli.wait_exit(5s), kExitUsage);
    EXPECT_LT(Clock::now() - start, 3s);
    EXPECT_NE(line.find("'" + c.path + "'"), std::string::npos) << line;
    EXPECT_NE(line.find(c.reason), std::string::npos) << line;
  }
}

TEST(CliRun, Exits2ForABadSpec) {
  test::TempDir dir;
  const std::string base = (dir / "lock").string();
  for (const std::string& bad :
       {"flock:" + base + "?timeout=banana", "sem:" + base, "flock:" + base + "?colour=red",
        std::string("nosuchkind:/x"), std::string("flock:")}) {
    EXPECT_EQ(run_spec(bad, {}, {"/bin/true"}).wait_exit(), kExitUsage) << bad;
  }
  // `--shared` on a semaphore, which has no shared mode.
  EXPECT_EQ(run_spec("sem:" + base + "?max=2", {"--shared"}, {"/bin/true"}).wait_exit(),
            kExitUsage);
}

}  // namespace
}  // namespace locksmith::mp

#endif  // LOCKSMITH_MP_CLI
