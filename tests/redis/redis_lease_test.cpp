// RedisLease and Connection against a real redis-server started per test.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/redis/connection.hpp"
#include "locksmith/redis/lease.hpp"
#include "locksmith/redis/spec.hpp"
#include "locksmith/spec.hpp"
#include "redis_test_util.hpp"
#include "subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::LockMode;
using locksmith::redis::Connection;
using locksmith::redis::ConnectOptions;
using locksmith::redis::LeaseOptions;
using locksmith::redis::RedisLease;
using locksmith::redis::Reply;
using locksmith::redis::Result;
using locksmith::redis::Script;
using locksmith::redis::testing::RedisTest;
using locksmith::test::Channel;
using locksmith::test::Subprocess;
namespace rerr = locksmith::redis;

constexpr auto kNow = Clock::time_point::min();

LeaseOptions ttl(std::chrono::milliseconds t) {
  LeaseOptions o;
  o.ttl = t;
  return o;
}

bool is_hex32(const std::string& s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

TEST(RedisSha1, KnownVectors) {
  EXPECT_EQ(locksmith::redis::sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(locksmith::redis::sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(locksmith::redis::sha1_hex(std::string(1000, 'a')),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba");
}

using RedisConnection = RedisTest;

TEST_F(RedisConnection, CommandsAndReplyTypes) {
  Connection c(server());
  ASSERT_FALSE(c.connect()) << c.last_error();
  Result r = c.command({"SET", "k", "v"});
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(r.value().type, Reply::Type::status);
  EXPECT_EQ(r.value().str, "OK");
  r = c.command({"GET", "k"});
  EXPECT_EQ(r.value().type, Reply::Type::string);
  EXPECT_EQ(r.value().str, "v");
  r = c.command({"GET", "missing"});
  EXPECT_TRUE(r.value().is_nil());
  r = c.command(std::vector<std::string>{"INCR", "n"});
  EXPECT_EQ(r.value().type, Reply::Type::integer);
  EXPECT_EQ(r.value().integer, 1);
  r = c.command({"MGET", "k", "missing"});
  ASSERT_EQ(r.value().type, Reply::Type::array);
  ASSERT_EQ(r.value().elements.size(), 2u);
  EXPECT_EQ(r.value().elements[0].str, "v");
  EXPECT_TRUE(r.value().elements[1].is_nil());
}

TEST_F(RedisConnection, ScriptsUseEvalshaAndSurviveScriptFlush) {
  Connection c(server());
  const Script s("return ARGV[1] .. KEYS[1]");
  Result r = c.eval(s, {"k"}, {"a"});
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(r.value().str, "ak");
  // The SHA1 we computed is the server's name for the script: EVALSHA hits from now on.
  r = c.command({"SCRIPT", "EXISTS", s.sha1()});
  ASSERT_TRUE(r);
  ASSERT_EQ(r.value().elements.size(), 1u);
  EXPECT_EQ(r.value().elements[0].integer, 1);
  ASSERT_TRUE(c.command({"SCRIPT", "FLUSH"}));
  r = c.eval(s, {"x"}, {"b"});  // NOSCRIPT -> EVAL
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(r.value().str, "bx");
}

TEST_F(RedisConnection, ScriptErrors) {
  Connection c(server());
  Result r = c.eval(Script("return redis.call('nosuchcommand')"), {}, {});
  EXPECT_EQ(r.error(), rerr::errc::script_error) << r.message();
  EXPECT_NE(r.message().find(std::to_string(server_->port())), std::string::npos) << r.message();
  r = c.eval(Script("this is not lua"), {}, {});
  EXPECT_EQ(r.error(), rerr::errc::script_error) << r.message();
  // The connection is still usable after error replies.
  EXPECT_TRUE(c.command({"PING"}));
}

TEST_F(RedisConnection, WrongTypeIsItsOwnError) {
  Connection c(server());
  ASSERT_TRUE(c.command({"HSET", "h", "f", "v"}));
  const Result r = c.command({"GET", "h"});
  EXPECT_EQ(r.error(), rerr::errc::wrong_type);
  EXPECT_NE(r.message().find("WRONGTYPE"), std::string::npos) << r.message();
}

TEST_F(RedisConnection, ReconnectsAfterTheServerDropsTheConnection) {
  Connection c(server());
  const Result id = c.command({"CLIENT", "ID"});
  ASSERT_TRUE(id) << id.message();
  const Result killed = admin().command({"CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal"});
  ASSERT_TRUE(killed) << killed.message();
  EXPECT_EQ(killed.value().integer, 1);
  // Closed while idle: the next command finds that out before sending and runs on a new
  // connection (and nothing dies of SIGPIPE).
  const Result r = c.command({"CLIENT", "ID"});
  ASSERT_TRUE(r) << r.message();
  EXPECT_NE(r.value().integer, id.value().integer);
  EXPECT_TRUE(c.connected());
}

TEST_F(RedisConnection, ServerGoneDuringACommandIsConnectionClosed) {
  Connection c(server());
  ASSERT_TRUE(c.command({"PING"}));
  // SHUTDOWN exits without replying: the reply never comes, the connection ends.
  const Result r = c.command({"SHUTDOWN", "NOSAVE"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), locksmith::redis::errc::connection_closed) << r.message();
  EXPECT_NE(r.message().find(std::to_string(server().port)), std::string::npos) << r.message();
  EXPECT_FALSE(c.connected());
  // The next command cannot connect, and says where it tried.
  const Result again = c.command({"PING"});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), std::errc::connection_refused) << again.message();
  EXPECT_NE(again.message().find(std::to_string(server().port)), std::string::npos);
}

TEST_F(RedisConnection, CommandTimeoutWhenTheServerHangs) {
  ConnectOptions o = server();
  o.command_timeout = 300ms;
  Connection c(o);
  ASSERT_TRUE(c.command({"PING"}));
  RedisLease lease(o, "res");
  ASSERT_TRUE(lease.try_lock());  // the lease's connection is established
  lease.unlock();
  ASSERT_EQ(::kill(server_->pid(), SIGSTOP), 0);
  const Result r = c.command({"PING"});
  const std::error_code acquired = lease.acquire(LockMode::exclusive, Clock::now() + 10s);
  ASSERT_EQ(::kill(server_->pid(), SIGCONT), 0);
  EXPECT_EQ(r.error(), std::errc::timed_out) << r.message();
  EXPECT_NE(r.message().find(std::to_string(o.port)), std::string::npos) << r.message();
  EXPECT_EQ(acquired, std::errc::timed_out) << lease.last_error();
  EXPECT_FALSE(lease.held());
  // The next command reconnects to the resumed server.
  EXPECT_TRUE(c.command({"PING"}));
  // The acquire script may have run once the server resumed: a key with the lost attempt's
  // token is recognised as ours (or was deleted by the clean-up).
  const std::string before = get("res");
  ASSERT_TRUE(lease.try_lock()) << lease.last_error();
  EXPECT_TRUE(before == "(nil)" || before == lease.token()) << before;
  lease.unlock();
  EXPECT_EQ(get("res"), "(nil)");
}

TEST(RedisConnectionErrors, UnreachableServerNamesHostPortAndOsError) {
  const int port = locksmith::redis::testing::free_loopback_port();
  ConnectOptions o;
  o.port = port;
  Connection c(o);
  const std::error_code ec = c.connect();
  EXPECT_EQ(ec, std::errc::connection_refused) << ec.message();
  const std::string where = "127.0.0.1:" + std::to_string(port);
  EXPECT_NE(c.last_error().find(where), std::string::npos) << c.last_error();
  EXPECT_NE(c.last_error().find("refused"), std::string::npos) << c.last_error();
  // A command connects on demand and reports the same.
  const Result r = c.command({"PING"});
  EXPECT_EQ(r.error(), std::errc::connection_refused);
  EXPECT_NE(r.message().find(where), std::string::npos) << r.message();

  // Through the lease: the throwing form names host:port/key and the OS error.
  RedisLease lease(o, "k");
  try {
    (void)lease.try_lock();
    ADD_FAILURE() << "try_lock did not throw";
  } catch (const locksmith::LockError& e) {
    EXPECT_EQ(e.code(), std::errc::connection_refused);
    EXPECT_NE(std::string(e.what()).find(where + "/k"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
  }
  EXPECT_NE(lease.last_error().find(where), std::string::npos) << lease.last_error();
}

class RedisAuth : public RedisTest {
 protected:
  std::vector<std::string> server_args() const override { return {"--requirepass", "s3cret"}; }
};

TEST_F(RedisAuth, WrongPasswordNoPasswordAndAclUser) {
  ConnectOptions o = server();
  o.password = "wrong";
  Connection c(o);
  std::error_code ec = c.connect();
  EXPECT_EQ(ec, rerr::errc::auth_failed) << c.last_error();
  EXPECT_NE(c.last_error().find("AUTH failed"), std::string::npos) << c.last_error();
  EXPECT_NE(c.last_error().find(std::to_string(o.port)), std::string::npos) << c.last_error();
  EXPECT_EQ(c.last_error().find("wrong"), std::string::npos) << "password leaked";
  EXPECT_FALSE(c.connected());

  Connection anon(server());  // no password: NOAUTH on the first command
  EXPECT_EQ(anon.command({"GET", "k"}).error(), rerr::errc::auth_failed);

  o.password = "s3cret";
  Connection good(o);
  ASSERT_FALSE(good.connect()) << good.last_error();
  ASSERT_TRUE(good.command({"ACL", "SETUSER", "alice", "on", ">pw", "~*", "&*", "+@all"}));

  ConnectOptions alice = server();
  alice.user = "alice";
  alice.password = "pw";
  Connection a(alice);
  EXPECT_FALSE(a.connect()) << a.last_error();
  alice.password = "nope";
  Connection bad(alice);
  EXPECT_EQ(bad.connect(), rerr::errc::auth_failed);
  EXPECT_NE(bad.last_error().find("user 'alice'"), std::string::npos) << bad.last_error();

  // An ACL user without channel permissions locks, releases and waits (without notices).
  ASSERT_TRUE(good.command({"ACL", "SETUSER", "bob", "on", ">pw", "~*", "resetchannels", "+@all"}));
  ConnectOptions bob = server();
  bob.user = "bob";
  bob.password = "pw";
  RedisLease b1(bob, "bobs");
  RedisLease b2(bob, "bobs");
  ASSERT_TRUE(b1.try_lock()) << b1.last_error();
  EXPECT_FALSE(b2.try_lock_for(50ms)) << b2.last_error();
  EXPECT_FALSE(b1.release()) << b1.last_error();
  EXPECT_TRUE(b2.try_lock()) << b2.last_error();
  EXPECT_FALSE(b2.release());

  o.password = "wrong";
  RedisLease lease(o, "k");
  EXPECT_EQ(lease.acquire(LockMode::exclusive, kNow), rerr::errc::auth_failed);
  o.password = "s3cret";
  o.db = 3;
  RedisLease ok(o, "k");
  ASSERT_TRUE(ok.try_lock()) << ok.last_error();
  ok.unlock();
}

using RedisLeaseTest = RedisTest;

TEST_F(RedisLeaseTest, AcquireRelease) {
  RedisLease lease(server(), "res", ttl(10s));
  EXPECT_FALSE(lease.supports_shared());
  EXPECT_EQ(lease.acquire(LockMode::shared, kNow), locksmith::errc::unsupported);
  ASSERT_TRUE(lease.try_lock()) << lease.last_error();
  EXPECT_TRUE(lease.held());
  EXPECT_TRUE(is_hex32(lease.token())) << lease.token();
  EXPECT_EQ(get("res"), lease.token());
  EXPECT_GT(pttl("res"), 0);
  EXPECT_LE(pttl("res"), 10000);
  ASSERT_TRUE(lease.fence().has_value());
  EXPECT_EQ(get("res:fence"), std::to_string(*lease.fence()));
  EXPECT_TRUE(lease.valid());
  EXPECT_TRUE(lease.owned());
  const auto info = lease.describe();
  EXPECT_EQ(info.kind, "redis");
  EXPECT_TRUE(info.held);
  EXPECT_EQ(info.token, lease.token());
  EXPECT_EQ(info.fence, lease.fence());
  EXPECT_EQ(info.target, "127.0.0.1:" + std::to_string(server_->port()) + "/res");
  EXPECT_EQ(lease.acquire(LockMode::exclusive, kNow), std::errc::resource_deadlock_would_occur);
  const std::uint64_t first_fence = *lease.fence();
  lease.unlock();
  EXPECT_FALSE(lease.held());
  EXPECT_EQ(get("res"), "(nil)");
  EXPECT_FALSE(lease.owned());
  EXPECT_EQ(lease.release(), locksmith::errc::not_locked);
  // A new acquisition: a new token and the next fence.
  ASSERT_TRUE(lease.try_lock());
  EXPECT_EQ(*lease.fence(), first_fence + 1);
  lease.unlock();
}

TEST_F(RedisLeaseTest, SecondClientIsBusyThenTimesOut) {
  RedisLease a(server(), "res", ttl(10s));
  ASSERT_TRUE(a.try_lock());
  RedisLease b(server(), "res", ttl(10s));
  EXPECT_EQ(b.acquire(LockMode::exclusive, kNow), locksmith::errc::busy);
  EXPECT_FALSE(b.try_lock());
  EXPECT_EQ(b.acquire(LockMode::exclusive, Clock::now() + 100ms), locksmith::errc::timeout);
  EXPECT_FALSE(b.try_lock_for(50ms));
  EXPECT_FALSE(b.held());
  EXPECT_TRUE(b.token().empty());
  EXPECT_EQ(get("res"), a.token());  // untouched by the waiter
  LeaseOptions o = ttl(10s);
  o.fail_when_locked = true;
  RedisLease c(server(), "res", o);
  EXPECT_THROW(c.lock(), locksmith::AlreadyLocked);
  o.fail_when_locked = false;
  o.timeout = 100ms;
  RedisLease d(server(), "res", o);
  EXPECT_THROW(d.lock(), locksmith::LockTimeout);
  a.unlock();
  EXPECT_TRUE(b.try_lock());
}

TEST_F(RedisLeaseTest, TimeoutIsBounded) {
  RedisLease a(server(), "res", ttl(60s));
  ASSERT_TRUE(a.try_lock());
  RedisLease b(server(), "res", ttl(60s));
  const auto t0 = Clock::now();
  EXPECT_FALSE(b.try_lock_for(300ms));
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 300ms);
  // Bounded by the deadline, not by the holder's 60 s ttl (a generous bound, not a timing test).
  EXPECT_LT(waited, 30s);
}

TEST_F(RedisLeaseTest, NonOwnerCannotReleaseOrExtend) {
  RedisLease a(server(), "res", ttl(10s));
  ASSERT_TRUE(a.try_lock());
  RedisLease b(server(), "res", ttl(10s));
  EXPECT_EQ(b.release(), locksmith::errc::not_locked);
  EXPECT_EQ(b.extend(5s), locksmith::errc::not_locked);
  EXPECT_EQ(b.reacquire(), locksmith::errc::not_locked);
  EXPECT_EQ(b.adopt(std::string(32, 'f')), locksmith::errc::not_locked);
  EXPECT_FALSE(b.held());
  EXPECT_FALSE(b.owned());
  EXPECT_EQ(get("res"), a.token());
  // Given the owner's token, it can (redis-py semantics: the token is the ownership).
  ASSERT_FALSE(b.adopt(a.token()));
  EXPECT_TRUE(b.owned());
  EXPECT_FALSE(b.fence().has_value());
  EXPECT_FALSE(b.release());
  EXPECT_EQ(get("res"), "(nil)");
  EXPECT_EQ(a.release(), locksmith::errc::lock_lost);
}

TEST_F(RedisLeaseTest, ExpiredLeaseTakenOverFirstReleaseIsLockLost) {
  RedisLease a(server(), "res", ttl(200ms));
  ASSERT_TRUE(a.try_lock());
  const std::string a_token = a.token();
  RedisLease b(server(), "res", ttl(30s));
  // b's wait ends when a's key expires (bounded by its PTTL), long before the deadline.
  ASSERT_TRUE(b.try_lock_for(20s));
  EXPECT_FALSE(a.valid());
  EXPECT_GT(*b.fence(), *a.fence());
  EXPECT_EQ(a.release(), locksmith::errc::lock_lost);  // the release script saw b's token
  EXPECT_EQ(get("res"), b.token());                    // the other owner's key survives
  EXPECT_THROW(a.unlock(), locksmith::NotLocked);
  b.unlock();
}

TEST_F(RedisLeaseTest, ExpiredLeaseTakenOverCannotBeExtended) {
  RedisLease a(server(), "res", ttl(200ms));
  ASSERT_TRUE(a.try_lock());
  RedisLease b(server(), "res", ttl(30s));
  ASSERT_TRUE(b.try_lock_for(20s));
  EXPECT_EQ(a.extend(60s, true), locksmith::errc::lock_lost);
  EXPECT_EQ(a.reacquire(), locksmith::errc::lock_lost);
  EXPECT_EQ(get("res"), b.token());
  EXPECT_LE(pttl("res"), 30000);  // b's own ttl, not extended by a
  EXPECT_TRUE(a.lost());
  EXPECT_EQ(a.release(), locksmith::errc::lock_lost);
  b.unlock();
}

TEST_F(RedisLeaseTest, ExtendAndReacquire) {
  RedisLease a(server(), "res", ttl(1000ms));
  ASSERT_TRUE(a.try_lock());
  const auto v0 = a.valid_until();
  ASSERT_FALSE(a.extend(5000ms));
  EXPECT_GT(pttl("res"), 1000);
  EXPECT_GT(a.valid_until(), v0);
  ASSERT_FALSE(a.extend(20000ms, true));
  EXPECT_GT(pttl("res"), 6000);
  ASSERT_FALSE(a.reacquire());
  EXPECT_LE(pttl("res"), 1000);
  EXPECT_GT(pttl("res"), 0);
  a.unlock();
}

TEST_F(RedisLeaseTest, ForceReleaseDeletesWhoeverHoldsIt) {
  RedisLease a(server(), "res", ttl(10s));
  ASSERT_TRUE(a.try_lock());
  RedisLease admin_lease(server(), "res");
  ASSERT_FALSE(admin_lease.force_release());
  EXPECT_EQ(get("res"), "(nil)");
  EXPECT_FALSE(a.owned());
  EXPECT_EQ(a.release(), locksmith::errc::lock_lost);
}

TEST_F(RedisLeaseTest, WrongTypeFenceKeyIsAnErrorAndLeavesNoKey) {
  ASSERT_TRUE(admin().command({"LPUSH", "res:fence", "x"}));
  RedisLease a(server(), "res", ttl(10s));
  try {
    (void)a.try_lock();
    ADD_FAILURE() << "no error";
  } catch (const locksmith::LockError& e) {
    EXPECT_EQ(e.code(), rerr::errc::wrong_type) << e.what();
  }
  EXPECT_NE(a.last_error().find("WRONGTYPE"), std::string::npos) << a.last_error();
  EXPECT_FALSE(a.held());
  EXPECT_EQ(get("res"), "(nil)");  // the SET was undone
  // A key of another type under the lock name itself: adopt's GET reports it.
  ASSERT_TRUE(admin().command({"HSET", "other", "f", "v"}));
  RedisLease b(server(), "other", ttl(10s));
  EXPECT_EQ(b.adopt(std::string(32, 'a')), rerr::errc::wrong_type);
}

TEST_F(RedisLeaseTest, AutoRefreshKeepsItPastTtl) {
  LeaseOptions o = ttl(300ms);
  o.auto_refresh = true;
  RedisLease a(server(), "res", o);
  ASSERT_TRUE(a.try_lock());
  const std::string token = a.token();
  // Time passing is the point here: three ttls.
  std::this_thread::sleep_for(900ms);
  EXPECT_EQ(get("res"), token);
  EXPECT_TRUE(a.owned());
  EXPECT_TRUE(a.valid());
  RedisLease b(server(), "res", ttl(300ms));
  EXPECT_FALSE(b.try_lock());
  a.unlock();
  EXPECT_EQ(get("res"), "(nil)");
  EXPECT_TRUE(b.try_lock());
}

TEST_F(RedisLeaseTest, AutoRefreshNoticesLoss) {
  LeaseOptions o = ttl(300ms);
  o.auto_refresh = true;
  RedisLease a(server(), "res", o);
  ASSERT_TRUE(a.try_lock());
  RedisLease other(server(), "res", ttl(30s));
  ASSERT_FALSE(other.force_release());
  ASSERT_TRUE(other.try_lock());
  // The refresher runs every 100 ms; allow it plenty of time.
  const auto until = Clock::now() + 10s;
  while (!a.lost() && Clock::now() < until) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(a.lost());
  EXPECT_FALSE(a.valid());
  EXPECT_FALSE(a.owned());
  EXPECT_EQ(a.release(), locksmith::errc::lock_lost);
  EXPECT_EQ(get("res"), other.token());
}

TEST_F(RedisLeaseTest, WaiterIsWokenByRelease) {
  RedisLease a(server(), "res", ttl(60s));
  ASSERT_TRUE(a.try_lock());
  const ConnectOptions srv = server();
  Subprocess waiter;
  ASSERT_NO_THROW(waiter = Subprocess::fork([&](Channel& parent) {
                    LeaseOptions o = ttl(60s);
                    o.backstop.reset();  // only a release notice (or the 60 s ttl) can wake it
                    RedisLease b(srv, "res", o);
                    const bool got = b.try_lock_for(30s);
                    parent.send(got ? "GOT" : "TIMEOUT " + b.last_error());
                    // A second wait on the same object reuses its subscription.
                    b.unlock();
                    return 0;
                  }));
  // Release once the waiter is subscribed (bounded).
  const auto until = Clock::now() + 20s;
  long long subscribers = 0;
  while (Clock::now() < until) {
    const Result r = admin().command({"PUBSUB", "NUMSUB", "res:released"});
    ASSERT_TRUE(r) << r.message();
    subscribers = r.value().elements.at(1).integer;
    if (subscribers > 0) break;
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(subscribers, 1);
  a.unlock();
  EXPECT_EQ(waiter.read_line(std::chrono::seconds(25)).value_or("(none)"), "GOT");
  const auto status = waiter.wait_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(*status == 0);
}

TEST_F(RedisLeaseTest, WaiterReusesItsSubscriberBetweenWaits) {
  RedisLease a(server(), "res", ttl(60s));
  LeaseOptions o = ttl(60s);
  o.backstop.reset();
  RedisLease b(server(), "res", o);
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(a.try_lock());
    std::thread releaser([&] {
      // Release once b is subscribed: b keeps one subscriber connection across rounds.
      const auto until = Clock::now() + 20s;
      Connection c(server());
      while (Clock::now() < until) {
        const Result r = c.command({"PUBSUB", "NUMSUB", "res:released"});
        if (r && r.value().elements.at(1).integer == 1) break;
        std::this_thread::sleep_for(5ms);
      }
      a.unlock();
    });
    const bool got = b.try_lock_for(30s);
    releaser.join();
    ASSERT_TRUE(got) << b.last_error();
    b.unlock();
  }
  const Result r = admin().command({"PUBSUB", "NUMSUB", "res:released"});
  EXPECT_EQ(r.value().elements.at(1).integer, 1);  // still the one connection
}

// Several processes acquire in turn; every acquisition's fence is new and larger than any fence
// handed out before it was taken (checked inside the critical section against the counter).
TEST_F(RedisLeaseTest, FenceStrictlyIncreasesAcrossProcesses) {
  constexpr int kProcs = 4;
  constexpr int kRounds = 25;
  const ConnectOptions srv = server();
  std::vector<std::unique_ptr<Subprocess>> kids;
  for (int p = 0; p < kProcs; ++p) {
    kids.push_back(std::make_unique<Subprocess>());
    ASSERT_NO_THROW(*kids.back() = Subprocess::fork([&](Channel& parent) {
      LeaseOptions o = ttl(30s);
      o.timeout = 60s;
      RedisLease lease(srv, "res", o);
      Connection look(srv);
      std::ostringstream line;
      for (int i = 0; i < kRounds; ++i) {
        if (lease.acquire(LockMode::exclusive, Clock::now() + 60s)) return 2;
        const Result cur = look.command({"GET", "res:fence"});
        if (!cur || cur.value().str != std::to_string(*lease.fence())) return 3;
        line << *lease.fence() << ' ';
        if (lease.release()) return 4;
      }
      parent.send(line.str());
      return 0;
    }));
  }
  std::set<std::uint64_t> all;
  for (auto& k : kids) {
    const std::string line = k->read_line(std::chrono::seconds(60)).value_or("");
    std::istringstream in(line);
    std::vector<std::uint64_t> mine;
    for (std::uint64_t f = 0; in >> f;) mine.push_back(f);
    EXPECT_EQ(mine.size(), static_cast<std::size_t>(kRounds)) << "child said: " << line;
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
    all.insert(mine.begin(), mine.end());
    const auto status = k->wait_exit();
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(*status == 0) << "status " << *status;
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kProcs * kRounds));  // no fence twice
  ASSERT_FALSE(all.empty());
  // Consecutive from the first (which the server's clock chose), none skipped.
  EXPECT_EQ(*all.rbegin() - *all.begin(), static_cast<std::uint64_t>(kProcs * kRounds - 1));
  EXPECT_EQ(get("res:fence"), std::to_string(*all.rbegin()));
}

// A server that loses its data (here FLUSHALL; a restart without persistence does the same)
// forgets the fence counter too; the next fence still exceeds every earlier one, because a new
// counter starts from the server's clock in microseconds.
TEST_F(RedisLeaseTest, FenceKeepsIncreasingAfterTheServerLosesItsData) {
  RedisLease lease(server(), "res");
  ASSERT_TRUE(lease.try_lock()) << lease.last_error();
  const std::uint64_t first = lease.fence().value_or(0);
  const Result now = admin().command({"TIME"});
  ASSERT_TRUE(now) << now.message();
  const std::uint64_t server_us = std::stoull(now.value().elements.at(0).str) * 1000000 +
                                  std::stoull(now.value().elements.at(1).str);
  EXPECT_LE(first, server_us);
  EXPECT_GT(first, server_us - 60'000'000);  // taken within the last minute of server time
  ASSERT_FALSE(lease.release());
  ASSERT_TRUE(lease.try_lock());
  const std::uint64_t second = lease.fence().value_or(0);
  EXPECT_EQ(second, first + 1);
  ASSERT_FALSE(lease.release());
  ASSERT_TRUE(admin().command({"FLUSHALL"}));
  EXPECT_EQ(get("res:fence"), "(nil)");
  ASSERT_TRUE(lease.try_lock());
  EXPECT_GT(lease.fence().value_or(0), second);
  EXPECT_EQ(get("res:fence"), std::to_string(lease.fence().value_or(0)));
  EXPECT_FALSE(lease.release());
}

// --- Specs ---

TEST_F(RedisLeaseTest, WithoutFenceAcquireIsPlainSetAndStillExcludes) {
  LeaseOptions o;
  o.ttl = 30s;
  o.fence = false;
  RedisLease a(server(), "res", o);
  RedisLease b(server(), "res", o);
  ASSERT_TRUE(a.try_lock()) << a.last_error();
  EXPECT_FALSE(a.fence().has_value());
  EXPECT_EQ(get("res"), a.token());
  EXPECT_EQ(get("res:fence"), "(nil)");  // no INCR without fencing
  EXPECT_GT(pttl("res"), 0);
  EXPECT_FALSE(b.try_lock());
  // A waiter is woken by the release (the waiting path needs the holder's PTTL).
  std::error_code waited;
  std::thread waiter([&] { waited = b.acquire(LockMode::exclusive, Clock::now() + 10s); });
  // Release once the waiter is subscribed (bounded).
  long long subscribers = 0;
  for (const auto until = Clock::now() + 20s; Clock::now() < until;) {
    const Result r = admin().command({"PUBSUB", "NUMSUB", "res:released"});
    ASSERT_TRUE(r) << r.message();
    subscribers = r.value().elements.at(1).integer;
    if (subscribers > 0) break;
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(subscribers, 1);
  EXPECT_FALSE(a.release());
  waiter.join();
  EXPECT_FALSE(waited) << b.last_error();
  EXPECT_EQ(get("res"), b.token());
  EXPECT_FALSE(b.release());
  EXPECT_EQ(get("res"), "(nil)");
}

TEST(RedisSpec, ParsesEverything) {
  const auto s = locksmith::redis::parse_redis_spec(
      "redis://alice:p%40ss@example.org:6380/jobs%2Fnightly?ttl=1.5s&timeout=250ms&"
      "fail_when_locked=1&refresh=1&fence=0&db=2&connect_timeout=1s&command_timeout=2s");
  EXPECT_EQ(s.server.host, "example.org");
  EXPECT_EQ(s.server.port, 6380);
  EXPECT_EQ(s.server.user, "alice");
  EXPECT_EQ(s.server.password, "p@ss");
  EXPECT_EQ(s.server.db, 2);
  EXPECT_EQ(s.server.connect_timeout, 1s);
  EXPECT_EQ(s.server.command_timeout, 2s);
  EXPECT_EQ(s.key, "jobs/nightly");
  EXPECT_EQ(s.options.ttl, 1500ms);
  EXPECT_EQ(s.options.timeout, std::optional<Clock::duration>(250ms));
  EXPECT_TRUE(s.options.fail_when_locked);
  EXPECT_TRUE(s.options.auto_refresh);
  EXPECT_FALSE(s.options.fence);

  const auto d = locksmith::redis::parse_redis_spec("redis://localhost/k");
  EXPECT_EQ(d.server.port, 6379);
  EXPECT_EQ(d.options.ttl, 30s);
  EXPECT_FALSE(d.options.timeout.has_value());
  EXPECT_TRUE(d.options.fence);
  EXPECT_TRUE(d.server.password.empty());
  const auto v6 = locksmith::redis::parse_redis_spec("redis://:pw@[::1]:7000/k/with/slashes");
  EXPECT_EQ(v6.server.host, "::1");
  EXPECT_EQ(v6.server.port, 7000);
  EXPECT_EQ(v6.server.password, "pw");
  EXPECT_TRUE(v6.server.user.empty());
  EXPECT_EQ(v6.key, "k/with/slashes");
}

TEST(RedisSpec, BadSpecsThrowInvalidSpecNamingTheSpec) {
  for (const std::string spec : {
           "redis://host:6379",          // no key
           "redis://host:6379/",         // empty key
           "redis://:6379/k",            // no host
           "redis://host:0/k",           // port out of range
           "redis://host:x/k",           // port not a number
           "redis://host:/k",            // empty port
           "redis://host:1/k?ttl=abc",   // bad duration
           "redis://host:1/k?ttl=0",     // zero ttl
           "redis://host:1/k?bogus=1",   // unknown option
           "redis://host:1/k?shared=1",  // no shared leases
           "redis://host:1/k?refresh=maybe", "redis://host:1/k?db=-1",
           "redis://host:1/k?ttl=1s&ttl=2s",  // given twice: which one was meant?
           "redis://pw@host:1/k",             // credentials without ':'
           "redis://[::1/k",                  // unterminated IPv6
           "redis://host:1/k%zz",             // bad escape
           "redis:/host:1/k",                 // not redis://
       }) {
    try {
      (void)locksmith::redis::parse_redis_spec(spec);
      ADD_FAILURE() << "accepted: " << spec;
    } catch (const locksmith::LockError& e) {
      EXPECT_EQ(e.code(), locksmith::errc::invalid_spec) << spec;
      EXPECT_EQ(e.target(), spec);
      EXPECT_NE(std::string(e.what()).find(spec), std::string::npos) << e.what();
    }
  }
}

TEST(RedisSpec, MessagesHideThePassword) {
  try {
    (void)locksmith::redis::parse_redis_spec("redis://u:secret@h:1/k?bogus=1");
    ADD_FAILURE() << "accepted";
  } catch (const locksmith::LockError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("secret"), std::string::npos) << what;
    EXPECT_NE(what.find("redis://u:***@h:1/k?bogus=1"), std::string::npos) << what;
    EXPECT_NE(what.find("bogus"), std::string::npos) << what;
  }
}

TEST_F(RedisLeaseTest, OpenLockWithRegisteredScheme) {
  locksmith::redis::register_redis_schemes();
  const std::string spec =
      "redis://127.0.0.1:" + std::to_string(server_->port()) + "/res?ttl=5s&fail_when_locked=1";
  auto a = locksmith::open_lock(spec);
  auto b = locksmith::open_lock(spec);
  EXPECT_EQ(a->describe().kind, "redis");
  a->lock();
  EXPECT_THROW(b->lock(), locksmith::AlreadyLocked);
  EXPECT_TRUE(a->describe().fence.has_value());
  a->unlock();
  b->lock();
  b->unlock();
  EXPECT_THROW((void)locksmith::open_lock("redis://h:1/k?bogus=1"), locksmith::LockError);
}

}  // namespace
