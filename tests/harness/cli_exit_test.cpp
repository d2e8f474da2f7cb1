// `locksmith stress` exit statuses, as CI gates on them (DESIGN.md): 0 nothing unsafe, 1 a
// violation, 2 usage/environment errors — and a run that could not enter a single critical
// section is "no evidence" (2), never a pass.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "locksmith/file_lock.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace locksmith::harness {
namespace {

int stress(const std::string& args) {
  const std::string cmd = std::string(LOCKSMITH_BINARY) + " stress -q " + args + " 2>/dev/null";
  return test::shell_status(test::run_shell(cmd).exit);
}

TEST(StressExitStatus, CleanViolationUsageAndNoEvidence) {
  test::TempDir dir;
  const std::string d = dir.path().string();
  EXPECT_EQ(stress("--lock flock:" + d + "/ok --workers 4 --iterations 400"), 0);
  // Ten critical sections prove nothing about exclusion: not enough evidence is no verdict.
  EXPECT_EQ(stress("--lock flock:" + d + "/few --workers 2 --iterations 5"), 2);
  EXPECT_EQ(stress("--lock broken:noop:" + d + "/bad --workers 4 --iterations 100"), 1);
  EXPECT_EQ(stress("--lock nosuch:/x --workers 2 --iterations 5"), 2);
  // Held here for the whole run: every worker times out, nothing is exercised.
  FileLock held(dir / "held", {});
  held.lock();
  EXPECT_EQ(stress("--lock flock:" + d + "/held --workers 2 --duration 0.5 --timeout 0.1"), 2);
}

}  // namespace
}  // namespace locksmith::harness
