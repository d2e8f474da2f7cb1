// The Redis nemesis and the fenced-resource scenario of the stress engine, against real
// redis-servers started by the tests: connections killed (CLIENT KILL), a server restarted
// without persistence, a Redlock master stopped, and lease holders paused past their TTL while a
// fenced resource refuses their late writes.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/harness/checkers.hpp"
#include "locksmith/harness/engine.hpp"
#include "redis_test_util.hpp"
#include "test_support.hpp"

namespace locksmith::redis::testing {
namespace {

using harness::CheckResult;
using harness::EventType;
using harness::StressOptions;
using harness::StressResult;
using harness::Verdict;

const CheckResult* find_check(const StressResult& r, const std::string& name) {
  const auto it = std::find_if(r.checks.begin(), r.checks.end(),
                               [&](const CheckResult& c) { return c.name == name; });
  return it == r.checks.end() ? nullptr : &*it;
}

std::size_t count(const StressResult& r, EventType t) {
  return static_cast<std::size_t>(std::count_if(r.history.events.begin(), r.history.events.end(),
                                                [&](auto& e) { return e.type == t; }));
}

double metric(const CheckResult* c, const std::string& name) {
  if (c == nullptr) return -1;
  const auto it = c->metrics.find(name);
  return it == c->metrics.end() ? -1 : it->second;
}

std::string all_checks(const StressResult& r) {
  std::string out;
  for (const auto& c : r.checks) {
    out += c.name + " " + harness::to_string(c.verdict) + ": " + c.summary + "\n";
  }
  return out;
}

// check_fenced_writes orders writes by the resource's sequence numbers, not by time.
TEST(FencedWritesChecker, JudgesTheResourceOrderNotTheClock) {
  harness::History h;
  h.info.fenced = true;
  auto write = [&](std::uint64_t t, std::uint32_t worker, std::int64_t fence, std::int64_t seq) {
    harness::Event e;
    e.time_ns = t;
    e.worker = worker;
    e.type = EventType::fenced_write;
    e.value = fence;
    e.aux = seq;
    h.events.push_back(e);
  };
  write(100, 0, 1, 1);
  write(300, 1, 3, 2);   // accepted #2 with token 3
  write(200, 2, 2, -3);  // rejected #3 (recorded earlier on the clock): no violation
  CheckResult c = harness::check_fenced_writes(h);
  EXPECT_EQ(c.verdict, Verdict::pass) << c.summary;
  EXPECT_EQ(metric(&c, "accepted"), 2);
  EXPECT_EQ(metric(&c, "rejected"), 1);
  write(150, 2, 2, 4);  // accepted #4 with token 2 after token 3: stale
  c = harness::check_fenced_writes(h);
  EXPECT_EQ(c.verdict, Verdict::fail) << c.summary;
  EXPECT_EQ(metric(&c, "stale_accepted"), 1);
  EXPECT_EQ(c.violation_count, 1u);
  EXPECT_EQ(harness::check_fenced_writes(harness::History{}).verdict, Verdict::skipped);
}

class RedisNemesis : public RedisTest {
 protected:
  // Runs `spec` with the redis-restart nemesis every 0.5 s, then kills the server it restarted.
  void run_with_restarts(const std::string& spec, harness::StressResult& r);
  std::string where() const { return server_->host() + ":" + std::to_string(server_->port()); }
  StressOptions options(const std::string& spec) const {
    StressOptions o;
    o.spec = spec;
    o.workers = 4;
    o.duration = std::chrono::milliseconds(2000);
    o.acquire_timeout = std::chrono::milliseconds(5000);
    o.worker_exe = LOCKSMITH_BINARY;
    return o;
  }
  // Holders stay 5 ms inside, leases live 50 ms, and the pause nemesis stops a holder for
  // 150 ms: its lease expires, another worker takes it and writes with a newer token, then the
  // paused one wakes up and writes with its old token.
  StressOptions fenced(const std::string& prefix, const std::string& key) const {
    StressOptions o = options(prefix + "redis://" + where() + "/" + key + "?ttl=50ms");
    o.hold = std::chrono::microseconds(5000);
    o.nemesis_pause = true;
    o.nemesis_interval = std::chrono::milliseconds(200);
    o.pause_for = std::chrono::milliseconds(150);
    return o;
  }
};

TEST_F(RedisNemesis, FencedResourceRejectsTheWritesOfPausedExpiredHolders) {
  // A run in which no pause landed before a holder's write proves nothing: up to 3 runs.
  double rejected = 0;
  for (int run = 0; run < 3 && rejected == 0; ++run) {
    const StressResult r = harness::run_stress(fenced("fenced:", "fenced" + std::to_string(run)));
    EXPECT_EQ(r.history.info.kind, "fenced");
    EXPECT_TRUE(r.history.info.fenced);
    for (const auto& c : r.checks) {
      EXPECT_NE(c.verdict, Verdict::fail) << all_checks(r);
    }
    const CheckResult* writes = find_check(r, "fenced-writes");
    ASSERT_NE(writes, nullptr) << all_checks(r);
    EXPECT_EQ(writes->verdict, Verdict::pass) << writes->summary;
    EXPECT_EQ(metric(writes, "stale_accepted"), 0) << writes->summary;
    EXPECT_GT(metric(writes, "accepted"), 0) << writes->summary;
    EXPECT_GT(count(r, EventType::pause), 0u);
    rejected = metric(writes, "rejected");
    // The leases did overlap (that is what the fence is for): reported, not failed.
    const CheckResult* exclusion = find_check(r, "exclusion");
    ASSERT_NE(exclusion, nullptr);
    EXPECT_EQ(exclusion->verdict, Verdict::pass) << exclusion->summary;
    EXPECT_GE(metric(exclusion, "expired_lease_overlaps"), 0);
  }
  EXPECT_GT(rejected, 0) << "no stale write was attempted in 3 runs";
}

TEST_F(RedisNemesis, BrokenFencedResourceIsCaughtAcceptingStaleWrites) {
  bool caught = false;
  for (int run = 0; run < 3 && !caught; ++run) {
    const StressResult r =
        harness::run_stress(fenced("broken:fenced:", "broken" + std::to_string(run)));
    EXPECT_EQ(r.history.info.kind, "broken-fenced");
    const CheckResult* writes = find_check(r, "fenced-writes");
    ASSERT_NE(writes, nullptr) << all_checks(r);
    EXPECT_EQ(metric(writes, "rejected"), 0) << writes->summary;  // it accepts everything
    caught = writes->verdict == Verdict::fail;
    if (caught) {
      EXPECT_GT(metric(writes, "stale_accepted"), 0);
      ASSERT_FALSE(writes->violations.empty());
      EXPECT_NE(writes->violations.front().what.find("stale write accepted"), std::string::npos);
    }
  }
  EXPECT_TRUE(caught) << "the broken resource was not caught in 3 runs";
}

TEST_F(RedisNemesis, LeaseSurvivesKilledConnections) {
  StressOptions o = options("redis://" + where() + "/killed?ttl=2s");
  o.hold = std::chrono::microseconds(2000);
  o.nemesis_redis_kill = true;
  o.nemesis_interval = std::chrono::milliseconds(100);
  const StressResult r = harness::run_stress(o);
  EXPECT_EQ(r.history.info.nemesis, "redis-kill");
  EXPECT_GT(count(r, EventType::fault), 5u);
  EXPECT_GT(count(r, EventType::ok), 0u);
  for (const auto& c : r.checks) {
    EXPECT_NE(c.verdict, Verdict::fail) << all_checks(r);
  }
  const CheckResult* fencing = find_check(r, "fencing");
  ASSERT_NE(fencing, nullptr);
  EXPECT_EQ(fencing->verdict, Verdict::pass) << fencing->summary;
}

// A pub/sub lock is its subscriber connection: CLIENT KILL takes the lock away from a holder that
// is still inside its critical section. The holder is told (its release fails with lock_lost),
// and the harness, whose workers do not check ownership before writing, reports the overlap.
TEST_F(RedisNemesis, PubSubLockIsLostWithItsConnection) {
  bool caught = false;
  std::size_t lost = 0;
  for (int run = 0; run < 3 && !caught; ++run) {
    StressOptions o = options("redis+pubsub://" + where() + "/ch" + std::to_string(run));
    o.hold = std::chrono::microseconds(20000);
    o.nemesis_redis_kill = true;
    o.nemesis_interval = std::chrono::milliseconds(100);
    const StressResult r = harness::run_stress(o);
    EXPECT_GT(count(r, EventType::fault), 5u);
    lost += static_cast<std::size_t>(
        std::count_if(r.history.events.begin(), r.history.events.end(), [](auto& e) {
          return e.type == EventType::release_fail &&
                 e.value == static_cast<int>(locksmith::errc::lock_lost);
        }));
    const CheckResult* exclusion = find_check(r, "exclusion");
    ASSERT_NE(exclusion, nullptr);
    caught = exclusion->verdict == Verdict::fail;
  }
  EXPECT_GT(lost, 0u) << "no holder was told it lost the lock";
  EXPECT_TRUE(caught) << "no overlap after killed pub/sub connections in 3 runs";
}

// Kills the server that redis-restart started (a child of this process, not the fixture's).
void kill_restarted(const ConnectOptions& server) {
  Connection c(server);
  const Result info = c.command({"INFO", "server"});
  if (!info) return;
  const auto at = info.value().str.find("process_id:");
  if (at == std::string::npos) return;
  const pid_t pid = static_cast<pid_t>(std::atol(info.value().str.c_str() + at + 11));
  if (pid <= 1) return;
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

// The restarted server is a child of this process, not the fixture's server.
void RedisNemesis::run_with_restarts(const std::string& spec, StressResult& r) {
  StressOptions o = options(spec);
  o.hold = std::chrono::microseconds(2000);
  o.nemesis_redis_restart = true;
  o.nemesis_interval = std::chrono::milliseconds(500);
  try {
    r = harness::run_stress(o);
  } catch (const std::exception& e) {
    kill_restarted(server());
    FAIL() << e.what();
  }
  kill_restarted(server());
}

// Without persistence a restart loses the lease and its fence counter. The lease can then be
// granted twice (an exclusion failure is a true finding, not asserted either way: it needs a
// holder inside at the restart), but the fences go on increasing: a fence key that INCR creates
// starts from the server's clock, past every fence handed out before.
TEST_F(RedisNemesis, RestartWithoutPersistenceKeepsFencesIncreasing) {
  StressResult r;
  ASSERT_NO_FATAL_FAILURE(run_with_restarts("redis://" + where() + "/restarted?ttl=2s", r));
  EXPECT_EQ(r.history.info.nemesis, "redis-restart");
  EXPECT_GT(count(r, EventType::fault_end), 0u);  // restarted and answering again
  EXPECT_GT(count(r, EventType::ok), 10u);
  const CheckResult* fencing = find_check(r, "fencing");
  ASSERT_NE(fencing, nullptr);
  EXPECT_EQ(fencing->verdict, Verdict::pass) << all_checks(r);
  EXPECT_EQ(metric(fencing, "regressions"), 0) << fencing->summary;
}

// The same restarts against a fenced resource: whatever the lost lease let happen, no write with
// an older fence is accepted after a newer one.
TEST_F(RedisNemesis, FencedResourceStaysSafeAcrossRestarts) {
  StressResult r;
  ASSERT_NO_FATAL_FAILURE(
      run_with_restarts("fenced:redis://" + where() + "/restarted-fenced?ttl=2s", r));
  EXPECT_GT(count(r, EventType::fault_end), 0u);
  const CheckResult* writes = find_check(r, "fenced-writes");
  ASSERT_NE(writes, nullptr) << all_checks(r);
  // Without a pause no stale write need reach the resource: then the fence was not tested
  // (inconclusive), but a restart must never make it accept one.
  EXPECT_NE(writes->verdict, Verdict::fail) << writes->summary;
  if (metric(writes, "rejected") > 0) {
    EXPECT_EQ(writes->verdict, Verdict::pass) << writes->summary;
  }
  EXPECT_EQ(metric(writes, "stale_accepted"), 0) << writes->summary;
  EXPECT_GT(metric(writes, "accepted"), 0) << writes->summary;
}

// Redlock with 3 masters keeps a majority while one is frozen: safe, and grants go on.
TEST(RedisNemesisRedlock, StoppedMasterKeepsRedlockSafeAndLive) {
  std::vector<std::unique_ptr<RedisServer>> masters;
  std::string hosts;
  for (int i = 0; i < 3; ++i) {
    masters.push_back(std::make_unique<RedisServer>());
    hosts += (i ? "," : "") + masters.back()->host() + ":" + std::to_string(masters.back()->port());
  }
  StressOptions o;
  o.spec = "redlock://" + hosts + "/stopped?ttl=2s";
  o.workers = 4;
  o.duration = std::chrono::milliseconds(2500);
  o.hold = std::chrono::microseconds(2000);
  o.acquire_timeout = std::chrono::milliseconds(5000);
  o.nemesis_redis_stop = true;
  o.nemesis_interval = std::chrono::milliseconds(400);
  o.pause_for = std::chrono::milliseconds(300);
  o.worker_exe = LOCKSMITH_BINARY;
  const StressResult r = harness::run_stress(o);
  for (const auto& c : r.checks) {
    EXPECT_NE(c.verdict, Verdict::fail) << all_checks(r);
  }
  // Grants while a master was stopped (between a fault and its fault_end).
  std::uint64_t stopped_since = 0;
  std::size_t during = 0;
  std::size_t stops = 0;
  for (const auto& e : r.history.events) {
    if (e.type == EventType::fault) {
      stopped_since = e.time_ns;
      ++stops;
    } else if (e.type == EventType::fault_end) {
      stopped_since = 0;
    } else if (e.type == EventType::ok && stopped_since != 0) {
      ++during;
    }
  }
  EXPECT_GT(stops, 2u);
  EXPECT_GT(during, 0u) << "no acquisition while a master was stopped";
}

}  // namespace
}  // namespace locksmith::redis::testing
