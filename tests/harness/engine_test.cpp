// End-to-end stress runs through the real engine: worker processes re-executing the locksmith
// binary, histories on disk, real checkers. The checkers are trusted only because every broken
// lock below is reported as a violation in every one of 20 short runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <exception>
#include <fstream>
#include <string>
#include <thread>

#include "locksmith/harness/engine.hpp"
#include "test_support.hpp"

namespace locksmith::harness {
namespace {

StressOptions short_run(const std::string& spec) {
  StressOptions o;
  o.spec = spec;
  o.workers = 4;
  o.iterations = 100;
  o.hold = std::chrono::microseconds(50);
  o.acquire_timeout = std::chrono::milliseconds(5000);
  o.worker_exe = LOCKSMITH_BINARY;
  return o;
}

const CheckResult* find_check(const StressResult& r, const std::string& name) {
  const auto it = std::find_if(r.checks.begin(), r.checks.end(),
                               [&](const CheckResult& c) { return c.name == name; });
  return it == r.checks.end() ? nullptr : &*it;
}

std::string failures(const StressResult& r) {
  std::string out;
  for (const auto& c : r.checks) {
    if (c.verdict == Verdict::fail) out += c.name + ": " + c.summary + "\n";
  }
  return out;
}

std::uint64_t count(const History& h, EventType t) {
  return static_cast<std::uint64_t>(
      std::count_if(h.events.begin(), h.events.end(), [&](const Event& e) { return e.type == t; }));
}

class BrokenLockTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BrokenLockTest, ReportedAsViolationInEveryOneOfTwentyRuns) {
  test::TempDir dir;
  for (int run = 0; run < 20; ++run) {
    StressOptions o = short_run(GetParam() + (dir / "broken.lock").string());
    if (GetParam() == "broken:fcntl-threads:") o.workers = 2;
    const StressResult r = run_stress(o);
    const CheckResult* exclusion = find_check(r, "exclusion");
    ASSERT_NE(exclusion, nullptr);
    EXPECT_EQ(exclusion->verdict, Verdict::fail) << "run " << run << " of " << GetParam();
    EXPECT_GT(exclusion->violation_count, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Harness, BrokenLockTest,
                         ::testing::Values("broken:noop:", "broken:create:",
                                           "broken:fcntl-threads:"),
                         [](const auto& param_info) {
                           std::string name = param_info.param.substr(7);
                           name.pop_back();
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

class CorrectLockTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CorrectLockTest, CleanRunWithEveryUpdateCounted) {
  test::TempDir dir;
  const StressResult r = run_stress(short_run(GetParam() + (dir / "good.lock").string()));
  EXPECT_EQ(failures(r), "");
  EXPECT_EQ(count(r.history, EventType::ok), 400u);
  ASSERT_TRUE(r.final_counter.has_value());
  EXPECT_EQ(*r.final_counter, 400);
}

INSTANTIATE_TEST_SUITE_P(Harness, CorrectLockTest, ::testing::Values("flock:", "fcntl:", "ofd:"),
                         [](const auto& param_info) {
                           return param_info.param.substr(0, param_info.param.size() - 1);
                         });

// The atomic-write scenario: a file rewritten in place is caught in every one of 20 runs; one
// replaced by AtomicFile stays clean while the nemesis kills writers mid-write.
TEST(AtomicWriteScenario, InPlaceRewriteReportedInEveryOneOfTwentyRuns) {
  test::TempDir dir;
  for (int run = 0; run < 20; ++run) {
    StressOptions o = short_run("broken:atomic:" + (dir / "data").string());
    o.iterations.reset();
    o.duration = std::chrono::milliseconds(300);
    o.evidence_budget = std::chrono::seconds(10);  // a loaded machine: until enough reads raced
    const StressResult r = run_stress(o);
    EXPECT_EQ(r.history.info.kind, "broken-atomic");
    const CheckResult* visibility = find_check(r, "atomic-visibility");
    ASSERT_NE(visibility, nullptr) << "run " << run;
    EXPECT_EQ(visibility->verdict, Verdict::fail) << "run " << run << ": " << visibility->summary;
    EXPECT_GT(visibility->metrics.at("partial_reads"), 0) << "run " << run;
  }
}

TEST(AtomicWriteScenario, AtomicReplaceIsCleanWhileWritersAreKilled) {
  test::TempDir dir;
  StressOptions o = short_run("atomic:" + (dir / "data").string());
  o.iterations.reset();
  o.duration = std::chrono::milliseconds(1500);
  o.nemesis_kill = true;
  o.nemesis_interval = std::chrono::milliseconds(50);
  const StressResult r = run_stress(o);
  EXPECT_EQ(r.history.info.kind, "atomic-write");
  EXPECT_EQ(failures(r), "");
  const CheckResult* visibility = find_check(r, "atomic-visibility");
  ASSERT_NE(visibility, nullptr);
  EXPECT_EQ(visibility->verdict, Verdict::pass) << visibility->summary;
  EXPECT_GT(count(r.history, EventType::read), 0u);
  EXPECT_GT(count(r.history, EventType::write), 1u);
  EXPECT_GT(count(r.history, EventType::crash), 0u);  // writers died mid-write, readers saw none
  EXPECT_FALSE(r.final_counter.has_value());
}

TEST(AtomicWriteScenario, NeedsWritersAndReaders) {
  test::TempDir dir;
  StressOptions o = short_run("atomic:" + (dir / "data").string());
  o.workers = 1;
  EXPECT_THROW(run_stress(o), std::invalid_argument);
  EXPECT_THROW(run_stress(short_run("atomic:")), LockError);
}

// The FileStore scenario: claim by rename delivers every message exactly once while producers and
// consumers are killed; claim by read-copy-unlink is caught delivering twice in each of 20 runs.
TEST(FileStoreScenario, ClaimByCopyReportedInEveryOneOfTwentyRuns) {
  test::TempDir dir;
  for (int run = 0; run < 20; ++run) {
    StressOptions o =
        short_run("broken:filestore:" + (dir / ("store" + std::to_string(run))).string());
    o.iterations.reset();
    o.duration = std::chrono::milliseconds(300);
    o.evidence_budget = std::chrono::seconds(10);  // a loaded machine: until enough were taken
    const StressResult r = run_stress(o);
    EXPECT_EQ(r.history.info.kind, "broken-filestore");
    const CheckResult* once = find_check(r, "exactly-once");
    ASSERT_NE(once, nullptr) << "run " << run;
    EXPECT_EQ(once->verdict, Verdict::fail) << "run " << run << ": " << once->summary;
    EXPECT_GT(once->metrics.at("duplicates"), 0) << "run " << run;
  }
}

TEST(FileStoreScenario, EveryMessageDeliveredOnceWhileWorkersAreKilled) {
  test::TempDir dir;
  StressOptions o = short_run("filestore:" + (dir / "store").string());
  o.iterations.reset();
  o.duration = std::chrono::milliseconds(1500);
  o.evidence_budget = std::chrono::seconds(10);  // a loaded machine: until enough were taken
  o.nemesis_kill = true;
  o.nemesis_interval = std::chrono::milliseconds(50);
  const StressResult r = run_stress(o);
  EXPECT_EQ(r.history.info.kind, "filestore");
  EXPECT_EQ(failures(r), "");
  const CheckResult* once = find_check(r, "exactly-once");
  ASSERT_NE(once, nullptr);
  EXPECT_EQ(once->verdict, Verdict::pass) << once->summary;
  EXPECT_GT(once->metrics.at("messages"), 1);
  EXPECT_EQ(once->metrics.at("lost"), 0);
  EXPECT_EQ(once->metrics.at("duplicates"), 0);
  EXPECT_GT(count(r.history, EventType::take), 0u);
  EXPECT_GT(count(r.history, EventType::crash), 0u);
  // The controller drained new/ and recorded cur/; then the store the run made is removed.
  EXPECT_GT(count(r.history, EventType::stored), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir / "store"));
}

TEST(Harness, SharedAndExclusiveMixIsClean) {
  test::TempDir dir;
  StressOptions o = short_run("flock:" + (dir / "rw.lock").string());
  o.shared_ratio = 0.5;
  const StressResult r = run_stress(o);
  EXPECT_EQ(failures(r), "");
  EXPECT_TRUE(r.history.info.shared_mix);
  const auto shared_oks = std::count_if(
      r.history.events.begin(), r.history.events.end(),
      [](const Event& e) { return e.type == EventType::ok && e.mode == Mode::shared; });
  EXPECT_GT(shared_oks, 0);
  EXPECT_LT(shared_oks, 400);
}

TEST(Harness, SemaphoreBoundHolds) {
  test::TempDir dir;
  const StressResult r = run_stress(short_run("sem:" + (dir / "pool").string() + "?max=2"));
  EXPECT_EQ(failures(r), "");
  EXPECT_EQ(r.history.info.max_holders, 2u);
  const CheckResult* bound = find_check(r, "semaphore-bound");
  ASSERT_NE(bound, nullptr);
  EXPECT_EQ(bound->verdict, Verdict::pass);
}

TEST(Harness, KillNemesisRecordsCrashesAndTheLockRecovers) {
  test::TempDir dir;
  StressOptions o = short_run("flock:" + (dir / "kill.lock").string());
  o.iterations.reset();
  o.duration = std::chrono::milliseconds(1500);
  o.nemesis_kill = true;
  o.nemesis_interval = std::chrono::milliseconds(100);
  const StressResult r = run_stress(o);
  EXPECT_EQ(failures(r), "");
  EXPECT_GT(count(r.history, EventType::crash), 0u);
  const CheckResult* recovery = find_check(r, "release-after-crash");
  ASSERT_NE(recovery, nullptr);
  EXPECT_EQ(recovery->verdict, Verdict::pass);
  // Histories survived the SIGKILLs: every crash names a worker that had recorded events.
  for (const auto& e : r.history.events) {
    if (e.type != EventType::crash) continue;
    EXPECT_TRUE(std::any_of(
        r.history.events.begin(), r.history.events.end(),
        [&](const Event& x) { return x.worker == e.worker && x.type == EventType::invoke; }))
        << "no history from killed worker " << e.worker;
  }
}

TEST(Harness, PauseNemesisIsClean) {
  test::TempDir dir;
  StressOptions o = short_run("flock:" + (dir / "pause.lock").string());
  o.iterations.reset();
  o.duration = std::chrono::milliseconds(1000);
  o.nemesis_pause = true;
  o.nemesis_interval = std::chrono::milliseconds(200);
  o.pause_for = std::chrono::milliseconds(100);
  const StressResult r = run_stress(o);
  EXPECT_EQ(failures(r), "");
  EXPECT_GT(count(r.history, EventType::pause), 0u);
  EXPECT_EQ(count(r.history, EventType::pause), count(r.history, EventType::resume));
}

TEST(Harness, BadSpecIsRejectedBeforeAnythingStarts) {
  test::TempDir dir;
  EXPECT_THROW(run_stress(short_run("flcok:" + dir.path().string() + "/x")), std::exception);
  EXPECT_THROW(run_stress(short_run("broken:nope:" + dir.path().string() + "/x")), std::exception);
  StressOptions o = short_run("sem:" + (dir / "s").string() + "?max=2");
  o.shared_ratio = 0.5;
  EXPECT_THROW(run_stress(o), std::invalid_argument);
}

TEST(Harness, WorkerErrorsAreReportedNotHidden) {
  test::TempDir dir;
  // The lock's directory does not exist: every worker fails to open it.
  EXPECT_THROW(run_stress(short_run("flock:" + (dir / "missing/x.lock").string())), std::exception);
}

}  // namespace
}  // namespace locksmith::harness

namespace locksmith::harness {
namespace {

// Two controllers meeting in one rendezvous directory stand in for two hosts. Each has a single
// worker, so no host can see an overlap on its own: only the shared guarded file can.
History two_host_run(const std::string& spec, const std::filesystem::path& rendezvous) {
  auto host_options = [&](std::uint8_t host) {
    StressOptions o = short_run(spec);
    o.workers = 1;
    o.iterations = 300;
    o.rendezvous = rendezvous;
    o.hosts = 2;
    o.host = host;
    o.rendezvous_timeout = std::chrono::seconds(60);
    return o;
  };
  std::exception_ptr other_error;
  std::thread other([&] {
    try {
      run_stress(host_options(1));
    } catch (...) {
      other_error = std::current_exception();
    }
  });
  run_stress(host_options(0));
  other.join();
  if (other_error) std::rethrow_exception(other_error);
  return load_history({rendezvous / "host-0", rendezvous / "host-1"});
}

TEST(Harness, TwoHostsOverlapIsFoundThroughTheGuardedFile) {
  test::TempDir dir;
  const History h = two_host_run("broken:noop:" + (dir / "mh.lock").string(), dir / "rv");
  ASSERT_GT(h.events.size(), 0u);
  EXPECT_TRUE(
      std::any_of(h.events.begin(), h.events.end(), [](const Event& e) { return e.host == 1; }));
  const auto checks = check_all(h, std::nullopt);
  const auto exclusion = std::find_if(checks.begin(), checks.end(),
                                      [](const CheckResult& c) { return c.name == "exclusion"; });
  ASSERT_NE(exclusion, checks.end());
  EXPECT_EQ(exclusion->verdict, Verdict::fail);
}

TEST(Harness, TwoHostsWithARealLockAreClean) {
  test::TempDir dir;
  const History h = two_host_run("flock:" + (dir / "mh.lock").string(), dir / "rv");
  for (const auto& c : check_all(h, std::nullopt)) {
    EXPECT_NE(c.verdict, Verdict::fail) << c.name << ": " << c.summary;
  }
}

TEST(Harness, StaleRendezvousDirectoryIsRefused) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "rv");
  { std::ofstream(dir / "rv" / "ready-0") << "1\n"; }
  StressOptions o = short_run("flock:" + (dir / "x.lock").string());
  o.rendezvous = dir / "rv";
  o.hosts = 2;
  EXPECT_THROW(run_stress(o), std::runtime_error);
}

}  // namespace
}  // namespace locksmith::harness
