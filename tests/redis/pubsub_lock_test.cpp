// RedisLock (portalocker's pub/sub lock) against a real redis-server: exclusion, loss of the
// subscriber connection, holder death, reaping of a hung holder, specs, and interop with Debian's
// python3-portalocker 2.2.1 run by /usr/bin/python3 (tests named Interop*, labels redis+interop).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "link_test_util.hpp"
#include "locksmith/error.hpp"
#include "locksmith/redis/pubsub_lock.hpp"
#include "locksmith/redis/spec.hpp"
#include "locksmith/spec.hpp"
#include "redis_test_util.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::LockMode;
using locksmith::redis::PubSubOptions;
using locksmith::redis::RedisLock;
using locksmith::redis::testing::RedisTest;
namespace lt = locksmith::linktest;

constexpr const char* kPython = LOCKSMITH_REDIS_PYTHON;
constexpr const char* kPeer = LOCKSMITH_PUBSUB_PY_PEER;

// Waits (bounded) until `pred` holds: Redis offers no event for these state changes.
template <class F>
bool eventually(F pred, std::chrono::milliseconds limit = 10s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// SIGSTOPs a child and waits (bounded) until it is really stopped: kill() only queues the signal.
bool stop_child(pid_t pid) {
  if (::kill(pid, SIGSTOP) != 0) return false;
  const auto until = std::chrono::steady_clock::now() + lt::kIoTimeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WUNTRACED | WNOHANG);
    if (r == pid) return WIFSTOPPED(status);
    if (r < 0 || std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(1ms);  // there is no bounded waitpid
  }
}

class PubSubLockTest : public RedisTest {
 protected:
  long long numsub(const std::string& channel) {
    const auto r = admin().command({"PUBSUB", "NUMSUB", channel});
    return r && r.value().elements.size() == 2 ? r.value().elements[1].integer : -1;
  }
  std::string pubsub_clients() {
    const auto r = admin().command({"CLIENT", "LIST", "TYPE", "pubsub"});
    return r ? r.value().str : "(error: " + r.message() + ")";
  }
  // Kills every pubsub client named `name` from the admin connection; returns how many.
  long long kill_named(const std::string& name) {
    const std::string list = pubsub_clients();
    long long killed = 0;
    std::size_t pos = 0;
    while (pos < list.size()) {
      auto nl = list.find('\n', pos);
      if (nl == std::string::npos) nl = list.size();
      const std::string line = list.substr(pos, nl - pos) + " ";
      pos = nl + 1;
      if (line.find(" name=" + name + " ") == std::string::npos) continue;
      const std::string id = line.substr(3, line.find(' ') - 3);
      const auto r = admin().command({"CLIENT", "KILL", "ID", id});
      if (r) killed += r.value().integer;
    }
    return killed;
  }
};

TEST_F(PubSubLockTest, AcquireRelease) {
  RedisLock lock(server(), "res");
  EXPECT_EQ(lock.client_name(), "res-lock");
  ASSERT_TRUE(lock.try_lock()) << lock.last_error();
  EXPECT_TRUE(lock.owned());
  EXPECT_EQ(numsub("res"), 1);
  EXPECT_NE(pubsub_clients().find(" name=res-lock "), std::string::npos) << pubsub_clients();
  const auto info = lock.describe();
  EXPECT_EQ(info.kind, "redis+pubsub");
  EXPECT_TRUE(info.held);
  EXPECT_EQ(lock.acquire(LockMode::exclusive, Clock::time_point::min()),
            std::make_error_code(std::errc::resource_deadlock_would_occur));
  EXPECT_EQ(lock.acquire(LockMode::shared, Clock::time_point::min()), locksmith::errc::unsupported);
  EXPECT_FALSE(lock.release());
  EXPECT_FALSE(lock.owned());
  EXPECT_EQ(numsub("res"), 0);  // release returns after the server confirmed the UNSUBSCRIBE
  // The idle (reused) connection is no longer a pubsub client: reapers leave it alone.
  EXPECT_EQ(pubsub_clients().find(" name=res-lock "), std::string::npos) << pubsub_clients();
  EXPECT_EQ(lock.release(), locksmith::errc::not_locked);
  // And again, on the same object.
  ASSERT_TRUE(lock.try_lock()) << lock.last_error();
  EXPECT_EQ(numsub("res"), 1);
  lock.unlock();
  EXPECT_EQ(numsub("res"), 0);
}

TEST_F(PubSubLockTest, SecondLockerBusyAndHolderAnswersPings) {
  RedisLock a(server(), "res");
  RedisLock b(server(), "res");
  ASSERT_TRUE(a.try_lock()) << a.last_error();
  EXPECT_EQ(b.acquire(LockMode::exclusive, Clock::time_point::min()), locksmith::errc::busy);
  // b pinged and got an answer, so nobody was reaped. The holder's thread counts an answer after
  // publishing it, so b may see the reply before the count moves.
  EXPECT_TRUE(eventually([&] { return a.pings_answered() >= 1; }));
  EXPECT_EQ(b.reaped(), 0u);
  EXPECT_FALSE(b.try_lock_for(100ms));
  EXPECT_TRUE(a.owned());
  EXPECT_EQ(numsub("res"), 1);
  a.unlock();
  EXPECT_TRUE(b.try_lock()) << b.last_error();
  EXPECT_FALSE(a.try_lock());
  b.unlock();
}

// A channel name that JSON must escape (a quote and a backslash; Redis client names, which
// portalocker derives from the channel, allow no spaces or control characters):
// the contender's ping carries "<channel>-<random>" as a JSON string, the holder must decode it
// exactly to answer on the right channel, and the contender must then see a live holder.
TEST_F(PubSubLockTest, PingsOnAChannelNameThatNeedsEscaping) {
  const std::string channel = "r\"e\\s/x";
  RedisLock a(server(), channel);
  RedisLock b(server(), channel);
  ASSERT_TRUE(a.try_lock()) << a.last_error();
  EXPECT_EQ(b.acquire(LockMode::exclusive, Clock::time_point::min()), locksmith::errc::busy);
  EXPECT_TRUE(eventually([&] { return a.pings_answered() >= 1; }));
  EXPECT_EQ(b.reaped(), 0u);  // the answer arrived: nobody was taken for dead
  EXPECT_TRUE(a.owned());
  a.unlock();
  EXPECT_TRUE(b.try_lock()) << b.last_error();
  b.unlock();
}

TEST_F(PubSubLockTest, WaiterGetsItOnRelease) {
  RedisLock a(server(), "res");
  RedisLock b(server(), "res");
  ASSERT_TRUE(a.try_lock()) << a.last_error();
  bool got = false;
  std::thread waiter([&] { got = b.try_lock_for(20s); });
  // Let the waiter see the holder at least once (it pings on first sight).
  EXPECT_TRUE(eventually([&] { return a.pings_answered() >= 1; }));
  a.unlock();
  waiter.join();
  ASSERT_TRUE(got) << b.last_error();
  EXPECT_TRUE(b.owned());
  b.unlock();
}

TEST_F(PubSubLockTest, KilledConnectionMeansLost) {
  RedisLock a(server(), "res");
  RedisLock b(server(), "res");
  ASSERT_TRUE(a.try_lock()) << a.last_error();
  ASSERT_EQ(kill_named("res-lock"), 1);
  ASSERT_TRUE(eventually([&] { return a.lost(); })) << "the holder did not notice the kill";
  EXPECT_FALSE(a.owned());
  EXPECT_TRUE(a.held());
  EXPECT_EQ(numsub("res"), 0);  // never re-subscribed
  EXPECT_TRUE(b.try_lock()) << b.last_error();
  EXPECT_FALSE(a.owned());
  EXPECT_EQ(a.release(), locksmith::errc::lock_lost);
  EXPECT_EQ(numsub("res"), 1);  // b's subscription untouched
  b.unlock();
}

// The holder is a forked child that says HELD and waits; the parent kills it.
void start_holder(lt::Child& child, locksmith::redis::ConnectOptions server) {
  ASSERT_TRUE(child.fork_fn([server](int in, int out) {
    RedisLock lock(server, "res");
    if (!lock.try_lock()) return 2;
    lt::child_write(out, "HELD");
    (void)lt::child_read(in);  // until killed (or the parent closes the pipe)
    return 0;
  }));
  ASSERT_EQ(child.read_line().value_or("(no answer)"), "HELD");
}

TEST_F(PubSubLockTest, ReusedConnectionKilledWhileIdle) {
  RedisLock lock(server(), "res");
  ASSERT_TRUE(lock.try_lock()) << lock.last_error();
  lock.unlock();
  // Kill the idle subscriber connection kept for the next hold (any client but the admin's).
  const auto r = admin().command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  ASSERT_TRUE(r) << r.message();
  ASSERT_GE(r.value().integer, 1);
  EXPECT_TRUE(lock.try_lock()) << lock.last_error();
  EXPECT_EQ(numsub("res"), 1);
  lock.unlock();
}

TEST_F(PubSubLockTest, HolderSigkilledFreesLock) {
  lt::Child child;
  ASSERT_NO_FATAL_FAILURE(start_holder(child, server()));
  RedisLock b(server(), "res");
  EXPECT_FALSE(b.try_lock());
  child.kill_and_reap();
  EXPECT_TRUE(b.try_lock_for(10s)) << b.last_error();
  EXPECT_EQ(b.reaped(), 0u);  // the server dropped the dead holder's subscription by itself
  b.unlock();
}

TEST_F(PubSubLockTest, HungHolderIsReaped) {
  lt::Child child;
  ASSERT_NO_FATAL_FAILURE(start_holder(child, server()));
  ASSERT_TRUE(stop_child(child.pid()));
  PubSubOptions o;
  o.unavailable_timeout = 200ms;
  RedisLock b(server(), "res", o);
  // try_lock pings, gets no answer within unavailable_timeout, kills "res-lock", subscribes.
  EXPECT_TRUE(b.try_lock()) << b.last_error();
  EXPECT_EQ(b.reaped(), 1u);
  EXPECT_EQ(numsub("res"), 1);
  b.unlock();
  ::kill(child.pid(), SIGCONT);
  child.kill_and_reap();
}

TEST_F(PubSubLockTest, SpecOpensRedisLock) {
  locksmith::redis::register_redis_schemes();
  const std::string base = "redis+pubsub://127.0.0.1:" + std::to_string(server_->port()) + "/res";
  auto a = locksmith::open_lock(base + "?timeout=5s&fail_when_locked=1");
  ASSERT_NE(dynamic_cast<RedisLock*>(a.get()), nullptr);
  const auto& opts = dynamic_cast<RedisLock&>(*a).options();
  EXPECT_TRUE(opts.fail_when_locked);
  ASSERT_TRUE(opts.timeout.has_value());
  EXPECT_EQ(*opts.timeout, std::chrono::seconds(5));
  a->lock();
  auto b = locksmith::redis::open_redis_pubsub_lock(
      base + "?fail_when_locked=1&unavailable_timeout=300ms");
  EXPECT_EQ(dynamic_cast<RedisLock&>(*b).options().unavailable_timeout, 300ms);
  EXPECT_THROW(b->lock(), locksmith::AlreadyLocked);
  a->unlock();
  b->lock();
  b->unlock();
  for (const char* bad : {"?ttl=5s", "?refresh=1", "?bogus=1", "?unavailable_timeout=x"}) {
    try {
      (void)locksmith::redis::open_redis_pubsub_lock(base + bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const locksmith::LockError& e) {
      EXPECT_EQ(e.code(), locksmith::errc::invalid_spec) << bad;
      EXPECT_NE(std::string(e.what()).find("redis+pubsub://"), std::string::npos) << e.what();
    }
  }
}

// Acquire+release cycles, uncontended; prints the mean (no timing assertion).
TEST_F(PubSubLockTest, UncontendedCycles) {
  RedisLock lock(server(), "res");
  constexpr int kCycles = 300;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCycles; ++i) {
    ASSERT_TRUE(lock.try_lock()) << i << ": " << lock.last_error();
    ASSERT_FALSE(lock.release()) << i << ": " << lock.last_error();
  }
  const auto us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ cycles   ] %d acquire+release: %.1f us each\n", kCycles, us / kCycles);
  EXPECT_EQ(numsub("res"), 0);
}

class InteropPubSub : public PubSubLockTest {
 protected:
  void start_py(lt::Child& py, const std::string& channel) {
    ASSERT_TRUE(py.spawn({kPython, kPeer, std::to_string(server_->port()), channel}));
    ASSERT_EQ(py.read_line().value_or("(no answer)"), "READY")
        << "is Debian's python3-portalocker installed for " << kPython << "?";
  }
  std::string ask(lt::Child& py, const std::string& command) {
    if (!py.send(command)) return "(send failed)";
    return py.read_line().value_or("(no answer)");
  }
};

TEST_F(InteropPubSub, PythonHoldsCppBusy) {
  lt::Child py;
  ASSERT_NO_FATAL_FAILURE(start_py(py, "res"));
  ASSERT_EQ(ask(py, "try"), "ACQUIRED");
  EXPECT_EQ(numsub("res"), 1);
  // portalocker names its (pooled) subscriber connection "<channel>-lock".
  EXPECT_NE(pubsub_clients().find(" name=res-lock "), std::string::npos) << pubsub_clients();
  PubSubOptions o;
  o.unavailable_timeout = 2s;
  RedisLock lock(server(), "res", o);
  // The ping goes to Python's holder thread, which answers, so it is not reaped.
  EXPECT_EQ(lock.acquire(LockMode::exclusive, Clock::time_point::min()), locksmith::errc::busy);
  EXPECT_EQ(lock.reaped(), 0u);
  EXPECT_FALSE(lock.try_lock_for(300ms));
  EXPECT_EQ(numsub("res"), 1);
  // A C++ waiter gets it once Python releases.
  bool got = false;
  std::thread waiter([&] { got = lock.try_lock_for(20s); });
  EXPECT_EQ(ask(py, "release"), "RELEASED");
  waiter.join();
  ASSERT_TRUE(got) << lock.last_error();
  EXPECT_EQ(ask(py, "try"), "BUSY");
  lock.unlock();
  EXPECT_EQ(ask(py, "try"), "ACQUIRED");
  EXPECT_EQ(ask(py, "release"), "RELEASED");
}

TEST_F(InteropPubSub, CppHoldsPythonFailsThenGetsItOnRelease) {
  lt::Child py;
  ASSERT_NO_FATAL_FAILURE(start_py(py, "res"));
  RedisLock lock(server(), "res");
  ASSERT_TRUE(lock.try_lock()) << lock.last_error();
  EXPECT_EQ(ask(py, "try"), "BUSY");
  EXPECT_EQ(ask(py, "wait 0.3"), "BUSY");
  // Python pinged (each attempt) and our holder thread answered with str(time.time()).
  EXPECT_TRUE(eventually([&] { return lock.pings_answered() >= 2; })) << lock.pings_answered();
  EXPECT_TRUE(lock.owned());
  EXPECT_EQ(lock.reaped(), 0u);
  EXPECT_EQ(numsub("res"), 1);
  // A Python waiter gets it once C++ releases.
  ASSERT_TRUE(py.send("wait 20"));
  EXPECT_TRUE(eventually([&] { return lock.pings_answered() >= 3; }));
  lock.unlock();
  EXPECT_EQ(py.read_line().value_or("(no answer)"), "ACQUIRED");
  EXPECT_FALSE(lock.try_lock());
  EXPECT_EQ(ask(py, "release"), "RELEASED");
  EXPECT_TRUE(lock.try_lock()) << lock.last_error();
  lock.unlock();
}

}  // namespace

namespace {

// A Python holder that stopped answering (SIGSTOP) is reaped by name ("res-lock") as portalocker
// names its subscriber connection; the C++ contender then holds the lock.
TEST_F(InteropPubSub, HungPythonHolderIsReaped) {
  lt::Child py;
  ASSERT_NO_FATAL_FAILURE(start_py(py, "res"));
  ASSERT_EQ(ask(py, "try"), "ACQUIRED");
  ASSERT_TRUE(stop_child(py.pid()));
  PubSubOptions o;
  o.unavailable_timeout = 300ms;
  RedisLock lock(server(), "res", o);
  EXPECT_TRUE(lock.try_lock()) << lock.last_error();
  EXPECT_EQ(lock.reaped(), 1u);
  EXPECT_EQ(numsub("res"), 1);
  lock.unlock();
  ::kill(py.pid(), SIGCONT);
}

}  // namespace
