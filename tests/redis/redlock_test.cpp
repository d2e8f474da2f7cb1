// Redlock against 3 and 5 real redis-servers started per test; masters are killed with SIGKILL
// or flushed to play failures.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/redis/connection.hpp"
#include "locksmith/redis/lease.hpp"
#include "locksmith/redis/redlock.hpp"
#include "locksmith/redis/spec.hpp"
#include "locksmith/spec.hpp"
#include "redis_server.hpp"
#include "subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::LockMode;
using locksmith::redis::Connection;
using locksmith::redis::ConnectOptions;
using locksmith::redis::Redlock;
using locksmith::redis::RedlockOptions;
using locksmith::redis::Result;
using locksmith::redis::testing::RedisServer;
namespace lerr = locksmith;
using locksmith::test::Channel;
using locksmith::test::Subprocess;

constexpr auto kNow = Clock::time_point::min();
constexpr const char* kKey = "rl:key";

bool is_hex32(const std::string& s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

RedlockOptions opts(std::chrono::milliseconds ttl = 10s) {
  RedlockOptions o;
  o.ttl = ttl;
  o.retry_delay = 20ms;
  return o;
}

class RedlockTest : public ::testing::Test {
 protected:
  void start(std::size_t n) {
    try {
      for (std::size_t i = 0; i < n; ++i) servers_.push_back(std::make_unique<RedisServer>());
    } catch (const std::exception& e) {
      FAIL() << e.what();
    }
    for (const auto& s : servers_) {
      ConnectOptions o;
      o.host = s->host();
      o.port = s->port();
      o.connect_timeout = 5s;
      o.command_timeout = 5s;
      admins_.push_back(std::make_unique<Connection>(o));
    }
  }
  void TearDown() override {
    admins_.clear();
    servers_.clear();
  }

  std::vector<ConnectOptions> masters() const {
    std::vector<ConnectOptions> out;
    for (const auto& s : servers_) {
      ConnectOptions o;
      o.host = s->host();
      o.port = s->port();
      out.push_back(o);
    }
    return out;
  }
  std::string hosts() const {
    std::string out;
    for (const auto& s : servers_) {
      if (!out.empty()) out += ',';
      out += s->host() + ":" + std::to_string(s->port());
    }
    return out;
  }
  // The string at `key` on master i, or "(nil)".
  std::string get(std::size_t i, const std::string& key = kKey) {
    const Result r = admins_[i]->command({"GET", key});
    if (!r) return "(error: " + r.message() + ")";
    return r.value().is_nil() ? "(nil)" : r.value().str;
  }
  long long pttl(std::size_t i, const std::string& key = kKey) {
    const Result r = admins_[i]->command({"PTTL", key});
    return r ? r.value().integer : -100;
  }
  bool run(std::size_t i, std::initializer_list<std::string_view> args) {
    const Result r = admins_[i]->command(args);
    EXPECT_TRUE(r) << r.message();
    return r.ok();
  }

  std::vector<std::unique_ptr<RedisServer>> servers_;
  std::vector<std::unique_ptr<Connection>> admins_;
};

TEST_F(RedlockTest, AcquireReleaseThreeMasters) {
  start(3);
  Redlock lock(masters(), kKey, opts());
  EXPECT_EQ(lock.quorum(), 2u);
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  EXPECT_TRUE(lock.held());
  EXPECT_EQ(lock.acquired_on(), 3u);
  EXPECT_TRUE(is_hex32(lock.token())) << lock.token();
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(get(i), lock.token()) << "master " << i;
    EXPECT_GT(pttl(i), 0) << "master " << i;
    EXPECT_LE(pttl(i), 10000) << "master " << i;
  }
  EXPECT_GT(lock.validity(), Clock::duration::zero());
  EXPECT_LE(lock.validity(), 10s);
  const auto info = lock.describe();
  EXPECT_EQ(info.kind, "redlock");
  EXPECT_TRUE(info.held);
  EXPECT_EQ(info.target, hosts() + "/" + kKey);
  ASSERT_TRUE(info.token.has_value());
  EXPECT_EQ(*info.token, lock.token());

  EXPECT_EQ(lock.acquire(LockMode::exclusive, kNow),
            std::make_error_code(std::errc::resource_deadlock_would_occur));
  EXPECT_EQ(lock.release(), std::error_code()) << lock.last_error();
  EXPECT_FALSE(lock.held());
  EXPECT_EQ(lock.validity(), Clock::duration::zero());
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(get(i), "(nil)") << "master " << i;
  EXPECT_EQ(lock.release(), lerr::errc::not_locked);
  EXPECT_EQ(lock.acquire(LockMode::shared, kNow), lerr::errc::unsupported);
}

TEST_F(RedlockTest, AcquireReleaseFiveMastersWithStdLock) {
  start(5);
  Redlock lock(masters(), kKey, opts());
  EXPECT_EQ(lock.quorum(), 3u);
  {
    std::unique_lock guard(lock);
    EXPECT_EQ(lock.acquired_on(), 5u);
    for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(get(i), lock.token()) << "master " << i;
  }
  EXPECT_FALSE(lock.held());
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(get(i), "(nil)") << "master " << i;
}

TEST_F(RedlockTest, BusyWhileAnotherRedlockHoldsIt) {
  start(3);
  Redlock a(masters(), kKey, opts());
  Redlock b(masters(), kKey, opts());
  ASSERT_EQ(a.acquire(LockMode::exclusive, kNow), std::error_code()) << a.last_error();
  EXPECT_EQ(b.acquire(LockMode::exclusive, kNow), lerr::errc::busy);
  EXPECT_FALSE(b.held());
  EXPECT_EQ(b.acquire(LockMode::exclusive, Redlock::deadline_after(100ms)), lerr::errc::timeout);
  EXPECT_FALSE(b.try_lock());
  // B's failed attempts did not disturb A's keys.
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(get(i), a.token()) << "master " << i;
  ASSERT_EQ(a.release(), std::error_code());
  ASSERT_TRUE(b.try_lock()) << b.last_error();
  b.unlock();
}

TEST_F(RedlockTest, WaiterGetsTheLockWhenTheHoldersKeysExpire) {
  start(3);
  Redlock a(masters(), kKey, opts(300ms));
  Redlock b(masters(), kKey, opts());
  ASSERT_EQ(a.acquire(LockMode::exclusive, kNow), std::error_code()) << a.last_error();
  // A never releases; its keys expire after 300 ms and B, retrying, takes them.
  ASSERT_TRUE(b.try_lock_for(10s)) << b.last_error();
  // B needs a majority, not every master: one of A's keys may still have been alive when B's
  // retry got the other two.
  auto b_keys = [&] {
    int n = 0;
    for (std::size_t i = 0; i < 3; ++i) n += get(i) == b.token() ? 1 : 0;
    return n;
  };
  EXPECT_GE(b_keys(), 2);
  EXPECT_EQ(a.release(), lerr::errc::lock_lost);
  EXPECT_GE(b_keys(), 2);  // A's release deleted none of B's keys
  EXPECT_EQ(b.release(), std::error_code());
}

TEST_F(RedlockTest, AcquiresWithOneOfThreeMastersKilled) {
  start(3);
  servers_[1]->kill();
  Redlock lock(masters(), kKey, opts());
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  EXPECT_EQ(lock.acquired_on(), 2u);
  EXPECT_EQ(get(0), lock.token());
  EXPECT_EQ(get(2), lock.token());
  Redlock other(masters(), kKey, opts());
  EXPECT_EQ(other.acquire(LockMode::exclusive, kNow), lerr::errc::busy);
  EXPECT_EQ(lock.release(), std::error_code()) << lock.last_error();
  EXPECT_EQ(get(0), "(nil)");
  EXPECT_EQ(get(2), "(nil)");
}

TEST_F(RedlockTest, MasterKilledWhileHeld) {
  start(3);
  Redlock lock(masters(), kKey, opts());
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  servers_[0]->kill();
  EXPECT_EQ(lock.release(), std::error_code()) << lock.last_error();
  EXPECT_EQ(get(1), "(nil)");
  EXPECT_EQ(get(2), "(nil)");
}

// A master that accepts connections but never answers (SIGSTOP) costs at most its 50 ms
// timeouts, not the validity: with the ConnectOptions' 5 s timeouts a 2 s ttl could not be won.
TEST_F(RedlockTest, StoppedMasterDoesNotEatTheValidity) {
  start(3);
  ASSERT_EQ(::kill(servers_[1]->pid(), SIGSTOP), 0);
  Redlock lock(masters(), kKey, opts(2s));
  const auto ec = lock.acquire(LockMode::exclusive, kNow);
  ASSERT_EQ(::kill(servers_[1]->pid(), SIGCONT), 0);
  ASSERT_EQ(ec, std::error_code()) << lock.last_error();
  EXPECT_EQ(lock.acquired_on(), 2u);
  EXPECT_GT(lock.validity(), Clock::duration::zero());
  EXPECT_EQ(lock.release(), std::error_code()) << lock.last_error();
  EXPECT_EQ(get(0), "(nil)");
}

TEST_F(RedlockTest, FailsNamingTheHostsWithTwoOfThreeDown) {
  start(3);
  const std::string dead0 = "127.0.0.1:" + std::to_string(servers_[0]->port());
  const std::string dead2 = "127.0.0.1:" + std::to_string(servers_[2]->port());
  servers_[0]->kill();
  servers_[2]->kill();
  Redlock lock(masters(), kKey, opts());
  const auto ec = lock.acquire(LockMode::exclusive, Redlock::deadline_after(500ms));
  ASSERT_TRUE(ec);
  EXPECT_FALSE(lerr::is_contended(ec)) << ec.message();
  EXPECT_FALSE(lock.held());
  EXPECT_NE(lock.last_error().find(dead0), std::string::npos) << lock.last_error();
  EXPECT_NE(lock.last_error().find(dead2), std::string::npos) << lock.last_error();
  EXPECT_NE(lock.last_error().find("1 of 3"), std::string::npos) << lock.last_error();
  // The surviving master was cleaned up.
  EXPECT_EQ(get(1), "(nil)");
  try {
    (void)lock.try_lock();
    ADD_FAILURE() << "try_lock did not throw";
  } catch (const lerr::LockError& e) {
    EXPECT_NE(std::string(e.what()).find(dead0), std::string::npos) << e.what();
  }
}

TEST_F(RedlockTest, KeyHeldBySomeoneElseOnAMinorityDoesNotStopUs) {
  start(5);
  ASSERT_TRUE(run(0, {"SET", kKey, "someone-else", "PX", "30000"}));
  ASSERT_TRUE(run(3, {"SET", kKey, "someone-else", "PX", "30000"}));
  Redlock lock(masters(), kKey, opts());
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  EXPECT_EQ(lock.acquired_on(), 3u);
  EXPECT_EQ(lock.release(), std::error_code()) << lock.last_error();
  EXPECT_EQ(get(0), "someone-else");
  EXPECT_EQ(get(3), "someone-else");
  EXPECT_EQ(get(1), "(nil)");
}

TEST_F(RedlockTest, KeyHeldBySomeoneElseOnAMajorityStopsUs) {
  start(3);
  ASSERT_TRUE(run(0, {"SET", kKey, "someone-else", "PX", "30000"}));
  ASSERT_TRUE(run(2, {"SET", kKey, "someone-else", "PX", "30000"}));
  Redlock lock(masters(), kKey, opts());
  EXPECT_EQ(lock.acquire(LockMode::exclusive, kNow), lerr::errc::busy);
  EXPECT_EQ(lock.acquire(LockMode::exclusive, Redlock::deadline_after(150ms)), lerr::errc::timeout);
  EXPECT_FALSE(lock.held());
  // The minority key we took was given back; the other owner's keys are untouched.
  EXPECT_EQ(get(1), "(nil)");
  EXPECT_EQ(get(0), "someone-else");
  EXPECT_EQ(get(2), "someone-else");
}

TEST_F(RedlockTest, ReleaseAfterOneMasterLostTheKey) {
  start(3);
  Redlock lock(masters(), kKey, opts());
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  ASSERT_TRUE(run(1, {"FLUSHALL"}));
  EXPECT_EQ(lock.release(), std::error_code()) << lock.last_error();
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(get(i), "(nil)") << "master " << i;

  // With two of three flushed, fewer than a majority still hold our token.
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  ASSERT_TRUE(run(0, {"FLUSHALL"}));
  ASSERT_TRUE(run(2, {"SET", kKey, "someone-else"}));
  EXPECT_EQ(lock.release(), lerr::errc::lock_lost);
  EXPECT_FALSE(lock.held());
  EXPECT_EQ(get(1), "(nil)");
  EXPECT_EQ(get(2), "someone-else");
  EXPECT_NE(lock.last_error().find("1 of 3"), std::string::npos) << lock.last_error();
}

TEST_F(RedlockTest, Extend) {
  start(3);
  RedlockOptions o = opts(2s);
  o.max_extensions = 2;
  Redlock lock(masters(), kKey, o);
  EXPECT_EQ(lock.extend(5s), lerr::errc::not_locked);
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  EXPECT_LE(lock.validity(), 2s);
  ASSERT_EQ(lock.extend(60s), std::error_code()) << lock.last_error();
  EXPECT_GT(lock.validity(), 2s);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_GT(pttl(i), 2000) << "master " << i;
  // One master lost the key: a majority still extends.
  ASSERT_TRUE(run(0, {"FLUSHALL"}));
  ASSERT_EQ(lock.extend(50s), std::error_code()) << lock.last_error();
  EXPECT_EQ(get(0), "(nil)");
  EXPECT_GT(pttl(1), 2000);
  // The cap.
  EXPECT_EQ(lock.extend(50s), std::make_error_code(std::errc::operation_not_permitted));
  EXPECT_TRUE(lock.held());
  EXPECT_EQ(lock.release(), std::error_code()) << lock.last_error();

  // Fewer than a majority hold our token: lost.
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  ASSERT_TRUE(run(0, {"FLUSHALL"}));
  ASSERT_TRUE(run(1, {"FLUSHALL"}));
  EXPECT_EQ(lock.extend(50s), lerr::errc::lock_lost);
  EXPECT_EQ(lock.validity(), Clock::duration::zero());
  EXPECT_EQ(get(2), lock.token());  // the minority key stays until release
  EXPECT_EQ(lock.release(), lerr::errc::lock_lost);
  EXPECT_EQ(get(2), "(nil)");
}

TEST_F(RedlockTest, RedisLeaseOnOneMasterSeesANormalLease) {
  start(3);
  Redlock lock(masters(), kKey, opts());
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  ConnectOptions m0 = masters()[0];
  locksmith::redis::RedisLease lease(m0, kKey);
  EXPECT_FALSE(lease.try_lock());  // held
  ASSERT_EQ(lease.adopt(lock.token()), std::error_code()) << lease.last_error();
  EXPECT_TRUE(lease.owned());
  EXPECT_EQ(lease.release(), std::error_code());
  EXPECT_EQ(get(0), "(nil)");
  EXPECT_EQ(lock.release(), std::error_code()) << lock.last_error();  // 2 of 3 still held
}

// Debian's redis-py (run by /usr/bin/python3) on one master sees a normal redis-py lease: it
// cannot take the key, and a Lock given our token owns it and releases it.
TEST_F(RedlockTest, RedisPyOnOneMasterSeesANormalLease) {
  start(3);
  Redlock lock(masters(), kKey, opts());
  ASSERT_EQ(lock.acquire(LockMode::exclusive, kNow), std::error_code()) << lock.last_error();
  const char* script =
      "import sys, redis\n"
      "r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]))\n"
      "print('BUSY' if not r.lock(sys.argv[2]).acquire(blocking=False) else 'GOT', flush=True)\n"
      "mine = r.lock(sys.argv[2])\n"
      "mine.local.token = sys.argv[3].encode()\n"
      "print('OWNED' if mine.owned() else 'NOT-OWNED', flush=True)\n"
      "mine.release()\n"
      "print('RELEASED', flush=True)\n";
  Subprocess py;
  ASSERT_NO_THROW(py =
                      Subprocess::spawn({"/usr/bin/python3", "-c", script,
                                         std::to_string(servers_[2]->port()), kKey, lock.token()}));
  EXPECT_EQ(py.read_line().value_or("(no answer)"), "BUSY");
  EXPECT_EQ(py.read_line().value_or("(no answer)"), "OWNED");
  EXPECT_EQ(py.read_line().value_or("(no answer)"), "RELEASED");
  EXPECT_EQ(py.wait_exit().value_or(-1), 0);
  EXPECT_EQ(get(2), "(nil)");
  EXPECT_EQ(lock.release(), std::error_code()) << lock.last_error();  // 2 of 3 still held
}

TEST(RedlockSpec, Parses) {
  const auto s = locksmith::redis::parse_redlock_spec(
      "redlock://h1:7001,h2,[::1]:7003/my%2Fkey?ttl=10s&timeout=5s&fail_when_locked=1"
      "&retry_delay=150ms&max_extensions=7&master_timeout=20ms&db=2");
  ASSERT_EQ(s.masters.size(), 3u);
  EXPECT_EQ(s.masters[0].host, "h1");
  EXPECT_EQ(s.masters[0].port, 7001);
  EXPECT_EQ(s.masters[1].host, "h2");
  EXPECT_EQ(s.masters[1].port, 6379);
  EXPECT_EQ(s.masters[2].host, "::1");
  EXPECT_EQ(s.masters[2].port, 7003);
  EXPECT_EQ(s.masters[2].db, 2);
  EXPECT_EQ(s.key, "my/key");
  EXPECT_EQ(s.options.ttl, 10s);
  ASSERT_TRUE(s.options.timeout.has_value());
  EXPECT_EQ(*s.options.timeout, 5s);
  EXPECT_TRUE(s.options.fail_when_locked);
  EXPECT_EQ(s.options.retry_delay, 150ms);
  EXPECT_EQ(s.options.max_extensions, 7u);
  EXPECT_EQ(s.options.master_timeout, 20ms);

  const auto d = locksmith::redis::parse_redlock_spec("redlock://a:1/k");
  EXPECT_EQ(d.options.ttl, 30s);
  EXPECT_FALSE(d.options.timeout.has_value());
  EXPECT_FALSE(d.options.fail_when_locked);
  EXPECT_EQ(d.options.retry_delay, 200ms);
  EXPECT_EQ(d.options.master_timeout, 50ms);
}

TEST(RedlockSpec, RejectsBadSpecs) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"redis://a:1/k", "expected redlock://"},
      {"redlock://a:1,b:2", "no /KEY"},
      {"redlock://a:1,b:2/", "empty key"},
      {"redlock:///k", "no masters"},
      {"redlock://a:1,,b:2/k", "empty host"},
      {"redlock://a:1,b:/k", "empty port"},
      {"redlock://a:1,b:70000/k", "port must be"},
      {"redlock://a:1,b:x/k", "port must be"},
      {"redlock://a:1,a:1/k", "listed twice"},
      {"redlock://u:p@a:1/k", "credentials"},
      {"redlock://[::1/k", "unterminated"},
      {"redlock://a:1/k?ttl=soon", "ttl must be a duration"},
      {"redlock://a:1/k?ttl=0", "ttl must be at least"},
      {"redlock://a:1/k?fail_when_locked=maybe", "fail_when_locked must be 1 or 0"},
      {"redlock://a:1/k?max_extensions=-1", "max_extensions must be"},
      {"redlock://a:1/k?refresh=1", "unknown option 'refresh'"},
      {"redlock://a:1/k%zz", "bad %-escape"},
      {"redlock://a:1/k?ttl=1s&ttl=2s", "option 'ttl' given twice"},
  };
  for (const auto& [spec, why] : cases) {
    try {
      (void)locksmith::redis::parse_redlock_spec(spec);
      ADD_FAILURE() << spec << " was accepted";
    } catch (const lerr::LockError& e) {
      EXPECT_EQ(e.code(), lerr::errc::invalid_spec) << spec;
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << spec << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(spec), std::string::npos) << spec << ": " << e.what();
    }
  }
}

TEST_F(RedlockTest, OpenLockAfterRegisterRedisSchemes) {
  start(3);
  locksmith::redis::register_redis_schemes();
  const std::string spec = "redlock://" + hosts() + "/" + kKey + "?ttl=10s&fail_when_locked=1";
  const auto a = locksmith::open_lock(spec);
  const auto b = locksmith::open_lock(spec);
  ASSERT_NE(dynamic_cast<Redlock*>(a.get()), nullptr);
  EXPECT_EQ(a->describe().kind, "redlock");
  EXPECT_FALSE(a->supports_shared());
  a->lock();
  ASSERT_TRUE(a->describe().token.has_value());
  EXPECT_EQ(get(0), *a->describe().token);
  EXPECT_GT(pttl(0), 5000);
  EXPECT_THROW(b->lock(), lerr::AlreadyLocked);  // fail_when_locked
  a->unlock();
  b->lock();
  b->unlock();
  EXPECT_THROW(locksmith::open_lock("redlock://" + hosts() + "/k?bogus=1"), lerr::LockError);
}

}  // namespace
