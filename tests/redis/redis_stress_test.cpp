// The stress engine on redis:// leases: worker processes (the locksmith binary) contend for one
// key on a real redis-server; the checkers judge exclusion, lost updates and fencing order.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "locksmith/harness/engine.hpp"
#include "redis_test_util.hpp"
#include "test_support.hpp"

namespace locksmith::redis::testing {
namespace {

using harness::CheckResult;
using harness::EventType;
using harness::StressOptions;
using harness::Verdict;

class RedisStress : public RedisTest {
 protected:
  std::string spec(const std::string& key, const std::string& options) const {
    return "redis://" + server_->host() + ":" + std::to_string(server_->port()) + "/" + key + "?" +
           options;
  }
};

const CheckResult* find_check(const harness::StressResult& r, const std::string& name) {
  const auto it = std::find_if(r.checks.begin(), r.checks.end(),
                               [&](const CheckResult& c) { return c.name == name; });
  return it == r.checks.end() ? nullptr : &*it;
}

TEST_F(RedisStress, LeaseExcludesAndFencesIncrease) {
  StressOptions o;
  o.spec = spec("stress", "ttl=10s");
  o.workers = 4;
  o.iterations = 50;
  o.hold = std::chrono::microseconds(100);
  // A pause after each release lets a waiter in: without it a loaded machine can let each
  // worker re-take its own lease 50 times, too few handoffs for the fencing check to judge.
  o.think = std::chrono::microseconds(2000);
  o.acquire_timeout = std::chrono::milliseconds(10000);
  o.worker_exe = LOCKSMITH_BINARY;
  const harness::StressResult r = harness::run_stress(o);
  EXPECT_EQ(r.history.info.kind, "redis");
  for (const auto& c : r.checks) {
    EXPECT_NE(c.verdict, Verdict::fail) << c.name << ": " << c.summary;
  }
  const CheckResult* fencing = find_check(r, "fencing");
  ASSERT_NE(fencing, nullptr);
  EXPECT_EQ(fencing->verdict, Verdict::pass) << fencing->summary;  // the lease gives fences
  ASSERT_TRUE(r.final_counter.has_value());
  EXPECT_EQ(*r.final_counter, 200);
  const auto fenced = std::count_if(r.history.events.begin(), r.history.events.end(),
                                    [](auto& e) { return e.type == EventType::ok && e.value > 0; });
  EXPECT_EQ(fenced, 200);
}

TEST_F(RedisStress, KilledHoldersLeaseExpiresAndOthersGoOn) {
  StressOptions o;
  o.spec = spec("killed", "ttl=300ms");
  o.workers = 3;
  o.duration = std::chrono::milliseconds(2000);
  // Holders spend most of the time inside (5 ms against a ~0.1 ms acquire), so the nemesis,
  // which only kills a worker inside its critical section, finds one at almost every try.
  o.hold = std::chrono::microseconds(5000);
  o.acquire_timeout = std::chrono::milliseconds(5000);
  o.nemesis_kill = true;
  o.nemesis_interval = std::chrono::milliseconds(200);
  o.worker_exe = LOCKSMITH_BINARY;
  const harness::StressResult r = harness::run_stress(o);
  for (const auto& c : r.checks) {
    if (c.name == "release-after-crash") continue;  // a lease is freed by its TTL, not at once
    EXPECT_NE(c.verdict, Verdict::fail) << c.name << ": " << c.summary;
  }
  const auto crashes = std::count_if(r.history.events.begin(), r.history.events.end(),
                                     [](auto& e) { return e.type == EventType::crash; });
  EXPECT_GT(crashes, 0);
}

// portalocker 4.x's shared mode under the engine: half the acquisitions shared, on one channel.
// Writers exclude everyone, readers share (and are seen to overlap at least once).
TEST_F(RedisStress, PubSubSharedAndExclusiveMix) {
  StressOptions o;
  o.spec = "redis+pubsub://" + server_->host() + ":" + std::to_string(server_->port()) + "/mix";
  o.workers = 4;
  o.duration = std::chrono::milliseconds(2000);
  o.hold = std::chrono::microseconds(1000);
  o.shared_ratio = 0.5;
  o.acquire_timeout = std::chrono::milliseconds(10000);
  o.worker_exe = LOCKSMITH_BINARY;
  const harness::StressResult r = harness::run_stress(o);
  for (const auto& c : r.checks) {
    EXPECT_NE(c.verdict, Verdict::fail) << c.name << ": " << c.summary;
  }
  const CheckResult* modes = find_check(r, "shared-exclusive");
  ASSERT_NE(modes, nullptr);
  EXPECT_GT(modes->metrics.at("shared_sections"), 0);
  EXPECT_GT(modes->metrics.at("exclusive_sections"), 0);
  EXPECT_GT(modes->metrics.at("reader_overlaps"), 0) << modes->summary;
}

}  // namespace
}  // namespace locksmith::redis::testing
