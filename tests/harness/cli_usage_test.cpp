// Values `locksmith` must refuse (exit 2) with a message that says what the user did wrong
// (issue 10): nan/inf/negative numbers, meaningless counts, specs that name nothing, and
// messages about things the user never typed.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <regex>
#include <string>

#include "subprocess.hpp"
#include "test_support.hpp"

namespace locksmith::harness {
namespace {

struct Output {
  int status = -1;
  std::string text;  // stdout and stderr
};

// Runs `locksmith ARGS` bounded by timeout(1): a value that makes a run endless fails the test
// (status 124) instead of hanging it.
Output locksmith(const std::string& args) {
  const std::string cmd = "timeout 20 " + std::string(LOCKSMITH_BINARY) + " " + args + " 2>&1";
  const test::Completed done = test::run_shell(cmd);
  Output o;
  o.text = done.out;
  o.status = test::shell_status(done.exit);
  return o;
}

struct Case {
  std::string args;
  std::string says;  // in the message
};

void expect_refused(const Case& c) {
  const Output o = locksmith(c.args);
  EXPECT_EQ(o.status, 2) << c.args << "\n" << o.text;
  EXPECT_NE(o.text.find(c.says), std::string::npos) << c.args << "\n" << o.text;
  // CLI11's own range checks printed DBL_MAX in full.
  EXPECT_FALSE(std::regex_search(o.text, std::regex("[0-9]{20}"))) << c.args << "\n" << o.text;
}

TEST(CliUsage, RefusesNumbersThatMeanNothing) {
  const test::TempDir dir;
  const std::string lock = " --lock flock:" + (dir / "l").string();
  const std::string run = "run" + lock;
  const std::string stress = "stress -q" + lock + " --workers 1";
  for (const Case& c : {
           Case{run + " --timeout nan -- true", "--timeout: must be a number of seconds from 0"},
           Case{run + " --timeout inf -- true", "leave --timeout out to wait forever"},
           Case{run + " --timeout -1 -- true", "not '-1'"},
           Case{stress + " --duration nan", "--duration: must be a number of seconds"},
           Case{stress + " --duration inf", "not 'inf'"},
           Case{stress + " --duration 0", "from 0.001"},
           Case{stress + " --duration 1e300", "to 1000000000,"},
           Case{stress + " -n 5 --shared-ratio nan", "--shared-ratio: must be a fraction"},
           Case{stress + " -n 5 --shared-ratio 1.5", "not '1.5'"},
           Case{stress + " -n 5 --threads 0", "--threads: must be a whole number from 1"},
           Case{stress + " -n 0", "--iterations: must be a whole number from 1"},
           Case{stress + " -n 5 --timeout nan", "--timeout: must be a number of seconds"},
           Case{stress + " -n 5 --timeout -0.5", "not '-0.5'"},
           Case{stress + " -n 5 --nemesis-interval nan", "--nemesis-interval: must be"},
           Case{stress + " -n 5 --pause-for inf", "--pause-for: must be"},
           Case{stress + " -n 5 --pause-for -1", "--pause-for: must be"},
           Case{stress + " -n 5 --hold-us -1", "--hold-us: must be a whole number from 0"},
           Case{"probe " + dir.path().string() + " --duration nan", "--duration: must be"},
           Case{"probe " + dir.path().string() + " --duration -1", "--duration: must be"},
       }) {
    expect_refused(c);
  }
}

TEST(CliUsage, RefusesSpecsThatNameNothing) {
  const test::TempDir dir;
  const std::string d = dir.path().string();
  for (const Case& c : {
           Case{"run --lock 'sem:" + d + "/?max=2' -- true", "has no semaphore name"},
           Case{"run --lock : -- true", "nothing before ':'"},
           Case{"run --lock 'flock:" + d + "/x?timeout=1s&timeout=2s' -- true",
                "option 'timeout' given twice"},
           Case{"run --lock 'flock:" + d + "/x?perms=07777' -- true", "setuid, setgid or sticky"},
           Case{"stress -q -n 5 --lock 'sem:" + d + "/?max=2'", "has no semaphore name"},
       }) {
    expect_refused(c);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "x")) << "a refused spec must not create its file";
}

// `run --shared` on a kind without readers: the message names --shared, not a ?shared=1 the
// user never typed.
TEST(CliUsage, SharedOnAKindWithoutSharedModeNamesTheFlag) {
  const test::TempDir dir;
  for (const std::string& spec :
       {"mkdir:" + (dir / "m").string(), "sem:" + (dir / "s").string() + "?max=2"}) {
    const Output o = locksmith("run --shared --lock '" + spec + "' -- true");
    EXPECT_EQ(o.status, 2) << o.text;
    EXPECT_NE(o.text.find("--shared: '" + spec + "' has no shared mode"), std::string::npos)
        << o.text;
    EXPECT_EQ(o.text.find("shared=1"), std::string::npos) << o.text;
  }
  // A kind with a shared mode still takes it.
  const Output ok =
      locksmith("run --shared --verbose --lock flock:" + (dir / "f").string() + " -- true");
  EXPECT_EQ(ok.status, 0) << ok.text;
  EXPECT_NE(ok.text.find("shared"), std::string::npos) << ok.text;
}

// A semaphore that cannot be locked names the slot file that failed, not DIR/NAME.
TEST(CliUsage, SemaphoreErrorsNameTheSlotFile) {
  const test::TempDir dir;
  const std::string missing = (dir / "missing").string();
  const Output o = locksmith("run --lock 'sem:" + missing + "/jobs?max=2' -- true");
  EXPECT_EQ(o.status, 2) << o.text;
  EXPECT_NE(o.text.find("cannot lock '" + missing + "/jobs.00.lock'"), std::string::npos) << o.text;
}

// A misspelt command is named, with the commands there are; CLI11 alone said "A subcommand is
// required" although one was given.
TEST(CliUsage, UnknownCommandNamesTheCommands) {
  for (const char* args : {"bogus", "strss --lock flock:/tmp/x", "-h leasse list"}) {
    const Output o = locksmith(args);
    EXPECT_EQ(o.status, 2) << args << "\n" << o.text;
    EXPECT_NE(o.text.find("(commands: run, stress, check, probe, leases)"), std::string::npos)
        << args << "\n"
        << o.text;
    EXPECT_EQ(o.text.find("A subcommand is required"), std::string::npos) << args << "\n" << o.text;
  }
  EXPECT_NE(locksmith("strss").text.find("unknown command 'strss'"), std::string::npos);
  // Known commands and the top-level flags are untouched.
  EXPECT_EQ(locksmith("--version").status, 0);
  EXPECT_EQ(locksmith("probe --help").status, 0);
  EXPECT_NE(locksmith("").text.find("A subcommand is required"), std::string::npos);
}

// `probe --only` takes primitive names only: anything else is refused before any work, naming
// the primitives there are (it used to probe nothing and exit 0).
TEST(CliUsage, ProbeRefusesUnknownPrimitives) {
  const test::TempDir dir;
  expect_refused({"probe " + dir.path().string() + " -q --only flock,bogus -d 0.2",
                  "unknown primitive 'bogus' (primitives: flock, fcntl, ofd, sem, link, mkdir, "
                  "dotlock, auto)"});
  expect_refused({"probe " + dir.path().string() + " --only=nfs", "unknown primitive 'nfs'"});
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

}  // namespace
}  // namespace locksmith::harness
