// LeaseRegistry (named leases with a record) and `locksmith leases`, against a real redis-server
// started per test.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/redis/lease.hpp"
#include "locksmith/redis/registry.hpp"
#include "redis_test_util.hpp"
#include "subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::LockMode;
using locksmith::redis::LeaseOptions;
using locksmith::redis::LeaseRecord;
using locksmith::redis::LeaseRegistry;
using locksmith::redis::RedisLease;
using locksmith::redis::testing::RedisTest;

constexpr auto kNow = Clock::time_point::min();
constexpr const char* kKey = "locksmith:lease:job";

LeaseOptions ttl(std::chrono::milliseconds t) {
  LeaseOptions o;
  o.ttl = t;
  return o;
}

std::string this_host() {
  std::array<char, 256> buf{};
  EXPECT_EQ(::gethostname(buf.data(), buf.size() - 1), 0);
  return buf.data();
}

struct Output {
  int status = -1;
  std::string out;
};

// Runs a shell command (bounded: every command here fails at once rather than waits) and
// returns its exit status and stdout.
Output run(const std::string& cmd) {
  const locksmith::test::Completed c = locksmith::test::run_shell(cmd);
  return Output{locksmith::test::shell_status(c.exit), c.out};
}

class RedisRegistry : public RedisTest {
 protected:
  LeaseRegistry& registry() {
    if (!registry_) registry_.emplace(server());
    return *registry_;
  }
  std::vector<LeaseRecord> list() {
    std::vector<LeaseRecord> out;
    const auto ec = registry().list(out);
    EXPECT_FALSE(ec) << registry().last_error();
    return out;
  }
  bool indexed(const std::string& key) {
    const auto r = admin().command({"SISMEMBER", "locksmith:lease:index", key});
    return r && r.value().integer == 1;
  }
  bool exists(const std::string& key) {
    const auto r = admin().command({"EXISTS", key});
    return r && r.value().integer == 1;
  }
  std::optional<LeaseRegistry> registry_;
};

TEST_F(RedisRegistry, AcquireListsCreatorHostPidFence) {
  auto lease = registry().open("job", "alice", ttl(30s));
  ASSERT_FALSE(lease->acquire(LockMode::exclusive, kNow)) << lease->last_error();
  ASSERT_TRUE(lease->fence());
  EXPECT_EQ(lease->key(), kKey);
  EXPECT_EQ(get(kKey), lease->token());  // the same key as redis-py's Lock and RedisLease
  const auto records = list();
  ASSERT_EQ(records.size(), 1u);
  const LeaseRecord& r = records.front();
  EXPECT_EQ(r.name, "job");
  EXPECT_EQ(r.key, kKey);
  EXPECT_EQ(r.state, LeaseRecord::State::registered);
  EXPECT_EQ(r.creator, "alice");
  EXPECT_EQ(r.host, this_host());
  EXPECT_EQ(r.pid, ::getpid());
  EXPECT_EQ(r.fence, lease->fence());
  ASSERT_TRUE(r.created);
  EXPECT_LE(std::chrono::abs(std::chrono::system_clock::now() - *r.created), 10min);
  ASSERT_TRUE(r.ttl_remaining);
  EXPECT_GT(r.ttl_remaining->count(), 0);
  EXPECT_LE(*r.ttl_remaining, 30s);
  // The token itself is never stored in the record.
  const auto all = admin().command({"HGETALL", std::string(kKey) + ":info"});
  ASSERT_TRUE(all) << all.message();
  ASSERT_FALSE(all.value().elements.empty());
  for (const auto& e : all.value().elements) EXPECT_NE(e.str, lease->token());
  EXPECT_TRUE(indexed(kKey));

  std::optional<LeaseRecord> shown;
  ASSERT_FALSE(registry().show("job", shown)) << registry().last_error();
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->creator, "alice");
  ASSERT_FALSE(registry().show("nothing", shown));
  EXPECT_FALSE(shown);
}

TEST_F(RedisRegistry, SecondAcquireIsBusyAndFencesIncrease) {
  auto a = registry().open("job", "a", ttl(30s));
  auto b = registry().open("job", "b", ttl(30s));
  ASSERT_FALSE(a->acquire(LockMode::exclusive, kNow));
  EXPECT_EQ(b->acquire(LockMode::exclusive, kNow), locksmith::errc::busy);
  ASSERT_EQ(list().size(), 1u);
  EXPECT_EQ(list().front().creator, "a");
  const auto first = *a->fence();
  ASSERT_FALSE(a->release());  // RedisLease::release of a registered lease drops its record
  EXPECT_FALSE(exists(std::string(kKey) + ":info"));
  EXPECT_FALSE(indexed(kKey));
  EXPECT_TRUE(list().empty());
  ASSERT_FALSE(b->acquire(LockMode::exclusive, kNow));
  EXPECT_GT(*b->fence(), first);
  ASSERT_EQ(list().size(), 1u);
  EXPECT_EQ(list().front().creator, "b");
  EXPECT_EQ(list().front().fence, b->fence());
}

TEST_F(RedisRegistry, ReleaseIsOwnerOnly) {
  auto lease = registry().open("job", "alice", ttl(30s));
  ASSERT_FALSE(lease->acquire(LockMode::exclusive, kNow));
  const std::string token = lease->token();
  lease->detach();  // as `leases acquire` does: the lease outlives the object
  EXPECT_EQ(get(kKey), token);

  EXPECT_EQ(registry().release("job", "00000000000000000000000000000000"),
            locksmith::errc::lock_lost);
  EXPECT_NE(registry().last_error().find("not the owner"), std::string::npos)
      << registry().last_error();
  ASSERT_EQ(list().size(), 1u);
  EXPECT_EQ(get(kKey), token);
  EXPECT_EQ(registry().extend("job", "x", 10s), locksmith::errc::lock_lost);
  EXPECT_EQ(registry().keep_alive("job", "x", 10s), locksmith::errc::lock_lost);

  ASSERT_FALSE(registry().release("job", token)) << registry().last_error();
  EXPECT_TRUE(list().empty());
  EXPECT_EQ(get(kKey), "(nil)");
  EXPECT_FALSE(exists(std::string(kKey) + ":info"));
  EXPECT_FALSE(indexed(kKey));
  EXPECT_EQ(registry().release("job", token), locksmith::errc::not_locked);
}

TEST_F(RedisRegistry, ForceReleaseDeletesWhoeverHoldsIt) {
  auto lease = registry().open("job", "alice", ttl(30s));
  ASSERT_FALSE(lease->acquire(LockMode::exclusive, kNow));
  bool existed = false;
  ASSERT_FALSE(registry().force_release("job", &existed)) << registry().last_error();
  EXPECT_TRUE(existed);
  EXPECT_TRUE(list().empty());
  EXPECT_FALSE(exists(kKey));
  EXPECT_FALSE(exists(std::string(kKey) + ":info"));
  EXPECT_FALSE(indexed(kKey));
  EXPECT_EQ(lease->release(), locksmith::errc::lock_lost);
  ASSERT_FALSE(registry().force_release("job", &existed));
  EXPECT_FALSE(existed);
}

// RedisLease::force_release() of a registered lease removes its record too (the same script).
TEST_F(RedisRegistry, LeaseForceReleaseRemovesTheRecord) {
  auto lease = registry().open("job", "alice", ttl(30s));
  ASSERT_FALSE(lease->acquire(LockMode::exclusive, kNow));
  ASSERT_TRUE(exists(std::string(kKey) + ":info"));
  ASSERT_FALSE(lease->force_release()) << lease->last_error();
  EXPECT_FALSE(exists(kKey));
  EXPECT_FALSE(exists(std::string(kKey) + ":info"));
  EXPECT_FALSE(indexed(kKey));
  EXPECT_TRUE(list().empty());
}

TEST_F(RedisRegistry, ExpiredLeaseIsPruned) {
  auto lease = registry().open("job", "alice", ttl(50ms));
  ASSERT_FALSE(lease->acquire(LockMode::exclusive, kNow));
  lease->detach();
  EXPECT_TRUE(indexed(kKey));
  // Bounded wait for the server to expire the key.
  const auto limit = Clock::now() + 10s;
  while (exists(kKey) && Clock::now() < limit) std::this_thread::sleep_for(10ms);
  ASSERT_FALSE(exists(kKey));
  EXPECT_TRUE(exists(std::string(kKey) + ":info"));  // nothing has pruned it yet
  EXPECT_TRUE(list().empty());
  EXPECT_FALSE(exists(std::string(kKey) + ":info"));
  EXPECT_FALSE(indexed(kKey));
}

TEST_F(RedisRegistry, PlainLeaseExcludesAndShowsAsUnregistered) {
  RedisLease plain(server(), kKey, ttl(30s));
  ASSERT_FALSE(plain.acquire(LockMode::exclusive, kNow));
  auto lease = registry().open("job", "alice", ttl(30s));
  EXPECT_EQ(lease->acquire(LockMode::exclusive, kNow), locksmith::errc::busy);
  std::optional<LeaseRecord> shown;
  ASSERT_FALSE(registry().show("job", shown));
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->state, LeaseRecord::State::unregistered);
  EXPECT_TRUE(shown->creator.empty());
  ASSERT_FALSE(plain.release());
  ASSERT_FALSE(lease->acquire(LockMode::exclusive, kNow));
  // And the other way round: a registered lease excludes a plain one.
  RedisLease other(server(), kKey, ttl(30s));
  EXPECT_EQ(other.acquire(LockMode::exclusive, kNow), locksmith::errc::busy);
}

TEST_F(RedisRegistry, StaleRecordIsNotShownAsCurrent) {
  auto lease = registry().open("job", "alice", ttl(30s));
  ASSERT_FALSE(lease->acquire(LockMode::exclusive, kNow));
  lease->detach();
  // Someone deletes the key behind the registry's back, and a plain lease takes it.
  ASSERT_TRUE(admin().command({"DEL", kKey}));
  RedisLease plain(server(), kKey, ttl(30s));
  ASSERT_FALSE(plain.acquire(LockMode::exclusive, kNow));
  const auto records = list();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records.front().state, LeaseRecord::State::unregistered);
  EXPECT_TRUE(records.front().creator.empty());
  EXPECT_FALSE(records.front().pid);
  EXPECT_FALSE(records.front().fence);
  EXPECT_STREQ(locksmith::redis::to_string(records.front().state), "held by an unregistered owner");
}

TEST_F(RedisRegistry, RedisPyLockExcludesAndShowsAsUnregistered) {
  const std::string py =
      "/usr/bin/python3 -c \"import redis; r = redis.Redis(host='127.0.0.1', port=" +
      std::to_string(server_->port()) + ", socket_timeout=5); l = r.lock('" + kKey +
      "', timeout=30); print(l.acquire(blocking=False))\"";
  const Output o = run(py);
  ASSERT_EQ(o.status, 0) << "is Debian's python3-redis installed for /usr/bin/python3?";
  ASSERT_EQ(o.out, "True\n");
  auto lease = registry().open("job", "alice", ttl(30s));
  EXPECT_EQ(lease->acquire(LockMode::exclusive, kNow), locksmith::errc::busy);
  std::optional<LeaseRecord> shown;
  ASSERT_FALSE(registry().show("job", shown));
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->state, LeaseRecord::State::unregistered);
}

TEST_F(RedisRegistry, KeepAliveAndExtendMoveThePttl) {
  auto lease = registry().open("job", "alice", ttl(10s));
  ASSERT_FALSE(lease->acquire(LockMode::exclusive, kNow));
  const std::string token = lease->token();
  lease->detach();
  EXPECT_LE(pttl(kKey), 10'000);
  ASSERT_FALSE(registry().keep_alive("job", token, 100s)) << registry().last_error();
  EXPECT_GT(pttl(kKey), 10'000);
  EXPECT_LE(pttl(kKey), 100'000);
  ASSERT_FALSE(registry().extend("job", token, 100s)) << registry().last_error();
  EXPECT_GT(pttl(kKey), 100'000);
  EXPECT_LE(pttl(kKey), 200'000);
  ASSERT_FALSE(registry().keep_alive("job", token, 5s));
  EXPECT_LE(pttl(kKey), 5'000);
  EXPECT_EQ(registry().extend("gone", token, 5s), locksmith::errc::not_locked);
}

TEST_F(RedisRegistry, CallerFieldsReplaceDefaults) {
  LeaseOptions o = ttl(30s);
  o.info = {{"pid", "4242"}, {"ticket", "OPS-1"}, {"fence", "0"}};
  auto lease = registry().open("job", "alice", o);
  ASSERT_FALSE(lease->acquire(LockMode::exclusive, kNow));
  const auto records = list();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records.front().pid, 4242);
  EXPECT_EQ(records.front().fence, lease->fence());  // never the caller's
  const auto t = admin().command({"HGET", std::string(kKey) + ":info", "ticket"});
  ASSERT_TRUE(t) << t.message();
  EXPECT_EQ(t.value().str, "OPS-1");
}

TEST_F(RedisRegistry, InvalidNames) {
  EXPECT_THROW((void)registry().open("", "a"), locksmith::LockError);
  EXPECT_THROW((void)registry().open("index", "a"), locksmith::LockError);
  EXPECT_EQ(registry().release("", "t"), locksmith::errc::invalid_spec);
}

// Newlines and other control characters would forge lines of `leases list` and of logs; a name
// past kMaxNameBytes is a mistake (or an attack on the server's memory), not a name.
TEST_F(RedisRegistry, NamesAreOneLineOfBoundedText) {
  const std::string longest(LeaseRegistry::kMaxNameBytes, 'x');
  for (const std::string& bad :
       {std::string("a\nb"), std::string("a\rb"), std::string("tab\there"), std::string("\x7f"),
        std::string("nul\0x", 5), longest + "x", std::string(100'000, 'y')}) {
    EXPECT_FALSE(LeaseRegistry::name_problem(bad).empty()) << bad.size();
    EXPECT_THROW((void)registry().open(bad, "a"), locksmith::LockError) << bad.size();
    std::optional<LeaseRecord> record;
    EXPECT_EQ(registry().show(bad, record), locksmith::errc::invalid_spec);
    EXPECT_EQ(registry().force_release(bad), locksmith::errc::invalid_spec);
    // The message shows the name escaped and cut, never a raw newline or 100 KB.
    EXPECT_EQ(registry().last_error().find('\n'), std::string::npos);
    EXPECT_LT(registry().last_error().size(), 300u) << registry().last_error();
  }
  EXPECT_NE(LeaseRegistry::name_problem("a\nb").find("'a\\nb'"), std::string::npos)
      << LeaseRegistry::name_problem("a\nb");
  for (const std::string& good : {longest, std::string("nightly build/ü-1")}) {
    EXPECT_EQ(LeaseRegistry::name_problem(good), "");
    auto lease = registry().open(good, "a", ttl(5s));
    EXPECT_FALSE(lease->acquire(LockMode::exclusive, kNow)) << lease->last_error();
    EXPECT_FALSE(lease->release());
  }
}

#ifdef LOCKSMITH_BINARY
TEST_F(RedisRegistry, CliAcquireListReleaseEndToEnd) {
  const std::string bin = LOCKSMITH_BINARY;
  const std::string srv = " --server redis://127.0.0.1:" + std::to_string(server_->port());
  Output o = run(bin + " leases list" + srv);
  ASSERT_EQ(o.status, 0);
  EXPECT_EQ(o.out, "no leases\n");

  // `echo $$;` first: the shell forks the command (no exec), and prints its own pid.
  o = run("echo $$; " + bin + " leases acquire job --ttl 5m --creator ci --json" + srv);
  ASSERT_EQ(o.status, 0) << o.out;
  const std::string shell_pid = o.out.substr(0, o.out.find('\n'));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(o.out, m, std::regex("\"token\":\"([0-9a-f]{32})\""))) << o.out;
  const std::string token = m[1];
  EXPECT_EQ(get(kKey), token);
  EXPECT_GT(pttl(kKey), 60'000);  // the lease outlived the command

  o = run(bin + " leases acquire job --ttl 5m" + srv + " 2>/dev/null");
  EXPECT_EQ(o.status, 1);  // busy

  o = run(bin + " leases list --json" + srv);
  ASSERT_EQ(o.status, 0);
  EXPECT_NE(o.out.find("\"name\":\"job\""), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("\"creator\":\"ci\""), std::string::npos) << o.out;
  // The record's pid is the acquiring command's parent (the shell), not the locksmith process.
  EXPECT_NE(o.out.find("\"pid\":" + shell_pid + ","), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find(token), std::string::npos) << "the token must not be listed";

  o = run(bin + " leases list" + srv);
  ASSERT_EQ(o.status, 0);
  EXPECT_NE(o.out.find("NAME"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("job"), std::string::npos) << o.out;

  o = run(bin + " leases release job" + srv + " 2>&1");
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.out.find("--token"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("--force"), std::string::npos) << o.out;
  EXPECT_EQ(get(kKey), token);

  o = run(bin + " leases release job --token 0123" + srv + " 2>/dev/null");
  EXPECT_EQ(o.status, 1);
  EXPECT_EQ(get(kKey), token);

  o = run(bin + " leases release job --token " + token + srv);
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(get(kKey), "(nil)");
  o = run(bin + " leases list" + srv);
  EXPECT_EQ(o.out, "no leases\n");

  // --force of a lease that is not there deleted nothing: status 1, as the README says.
  o = run(bin + " leases release job --force" + srv + " 2>&1");
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("no lease job"), std::string::npos) << o.out;

  // Names with a newline, or of 100 KB, are usage errors (2) that say why.
  o = run(bin + " leases acquire \"$(printf 'a\\nb')\" --ttl 5m" + srv + " 2>&1");
  EXPECT_EQ(o.status, 2) << o.out;
  EXPECT_NE(o.out.find("invalid lease name"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("control character"), std::string::npos) << o.out;
  o = run(bin + " leases show " + std::string(100'000, 'n') + srv + " 2>&1");
  EXPECT_EQ(o.status, 2) << o.out.substr(0, 200);
  EXPECT_NE(o.out.find("at most 512"), std::string::npos) << o.out.substr(0, 200);
  EXPECT_LT(o.out.size(), 300u);
  o = run(bin + " leases list" + srv);
  EXPECT_EQ(o.out, "no leases\n");

  // Server errors name host:port and exit 3.
  const int dead = locksmith::redis::testing::free_loopback_port();
  o = run(bin + " leases list --server redis://127.0.0.1:" + std::to_string(dead) + " 2>&1");
  EXPECT_EQ(o.status, 3);
  EXPECT_NE(o.out.find("127.0.0.1:" + std::to_string(dead)), std::string::npos) << o.out;
}
#endif

}  // namespace
