// `locksmith probe --save` records verdicts for the mount it probed, and `locksmith run` with an
// `auto:` lock reads them: a mechanism saved UNSAFE is not used, and `run` says so.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "locksmith/mount.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace locksmith::harness {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ProbeSave, SavesVerdictsThatAutoThenHonours) {
  test::TempDir dir;
  test::TempDir state;
  const std::string store = (state / "sub" / "verdicts").string();
  const auto probe =
      test::run_shell(std::string(LOCKSMITH_BINARY) + " probe " + dir.path().string() +
                      " --only flock,fcntl -d 0.5 -q " + "--save --verdicts " + store + " 2>&1");
  // 0, or 2 when a loaded machine gave too little evidence (INCONCLUSIVE, saved as such).
  ASSERT_TRUE(probe.exit == 0 || probe.exit == 2) << probe.out;
  EXPECT_NE(probe.out.find("saved 2 verdicts"), std::string::npos) << probe.out;
  const std::string saved = slurp(store);
  const std::regex flock_line("\tflock\t(SAFE|INCONCLUSIVE)\t");
  const std::regex fcntl_line("\tfcntl\t(SAFE|INCONCLUSIVE)\t");
  EXPECT_TRUE(std::regex_search(saved, flock_line)) << saved;
  EXPECT_TRUE(std::regex_search(saved, fcntl_line)) << saved;

  // As if the probe had seen flock fail here: auto uses fcntl and says why not flock.
  MountInfo m;
  ASSERT_FALSE(identify_mount(dir.path(), m));
  VerdictStore s(store);
  ASSERT_FALSE(s.update(m, {{"flock", "UNSAFE", 1700000000, "exclusion failed", ""}}));
  test::SpawnOptions o;
  o.env = {"LOCKSMITH_VERDICTS=" + store};
  o.err = test::Stdio::stdout_;
  const auto run = test::run({LOCKSMITH_BINARY, "run", "-v", "--lock",
                              "auto:" + (dir / "res").string(), "--", "/bin/true"},
                             o);
  EXPECT_EQ(run.exit, 0) << run.out;
  EXPECT_NE(run.out.find("auto: not using flock: `locksmith probe --save` found it UNSAFE"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("(posix, exclusive)"), std::string::npos) << run.out;

  // Only fcntl left and saved UNSAFE too: nothing safe, and the message says why.
  ASSERT_FALSE(s.update(m, {{"fcntl", "UNSAFE", 1700000000, "", ""}}));
  ASSERT_FALSE(s.update(m, {{"link", "UNSAFE", 1700000000, "", ""}}));
  const auto none = test::run(
      {LOCKSMITH_BINARY, "run", "--lock", "auto:" + (dir / "res").string(), "--", "/bin/true"}, o);
  EXPECT_EQ(none.exit, 2) << none.out;
  EXPECT_NE(none.out.find("no locking mechanism is known to exclude"), std::string::npos)
      << none.out;
  EXPECT_NE(none.out.find("auto: not using link"), std::string::npos) << none.out;
}

TEST(ProbeSave, AStoreThatCannotBeWrittenIsAnEnvironmentError) {
  test::TempDir dir;
  const std::string probe = std::string(LOCKSMITH_BINARY) + " probe " + dir.path().string() +
                            " --only flock -d 0.2 -q --save --verdicts /proc/no/such 2>&1";
  const auto r = test::run_shell(probe);
  EXPECT_EQ(r.exit, 2) << r.out;
  EXPECT_NE(r.out.find("cannot save verdicts"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace locksmith::harness
