// RedisLock (portalocker's pub/sub lock) against a real redis-server: exclusion, loss of the
// subscriber connection, holder death, reaping of a hung holder, specs, and interop with Debian's
// python3-portalocker 2.2.1 run by /usr/bin/python3 (tests named Interop*, labels redis+interop).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/redis/pubsub_lock.hpp"
#include "locksmith/redis/spec.hpp"
#include "locksmith/spec.hpp"
#include "redis_test_util.hpp"
#include "subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::LockMode;
using locksmith::redis::PubSubOptions;
using locksmith::redis::RedisLock;
using locksmith::redis::testing::RedisTest;
using locksmith::test::Channel;
using locksmith::test::Subprocess;

constexpr const char* kPython = LOCKSMITH_REDIS_PYTHON;
constexpr const char* kPeer = LOCKSMITH_PUBSUB_PY_PEER;

// Waits (bounded) until `pred` holds: Redis offers no event for these state changes.
template <class F>
bool eventually(F pred, std::chrono::milliseconds limit = locksmith::test::kWaitLimit) {
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
  const auto until = std::chrono::steady_clock::now() + locksmith::test::kWaitLimit;
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
  // portalocker 4.x's name: "<channel>-lock-<holder_id>", the id 32 hex chars.
  EXPECT_EQ(lock.holder_id().size(), 32u);
  EXPECT_EQ(lock.client_name(), "res-lock-" + lock.holder_id());
  EXPECT_NE(RedisLock(server(), "res").holder_id(), lock.holder_id());
  EXPECT_TRUE(lock.supports_shared());
  ASSERT_TRUE(lock.try_lock()) << lock.last_error();
  EXPECT_TRUE(lock.owned());
  EXPECT_EQ(lock.held_mode(), LockMode::exclusive);
  EXPECT_EQ(numsub("res"), 1);
  const std::string named = " name=" + lock.client_name() + " ";
  EXPECT_NE(pubsub_clients().find(named), std::string::npos) << pubsub_clients();
  const auto info = lock.describe();
  EXPECT_EQ(info.kind, "redis+pubsub");
  EXPECT_TRUE(info.held);
  EXPECT_EQ(lock.acquire(LockMode::exclusive, Clock::time_point::min()),
            std::make_error_code(std::errc::resource_deadlock_would_occur));
  EXPECT_EQ(lock.acquire(LockMode::shared, Clock::time_point::min()),
            std::make_error_code(std::errc::resource_deadlock_would_occur));
  EXPECT_FALSE(lock.release());
  EXPECT_FALSE(lock.owned());
  EXPECT_FALSE(lock.held_mode().has_value());
  EXPECT_EQ(numsub("res"), 0);  // release returns after the server confirmed the UNSUBSCRIBE
  // The idle (reused) connection is no longer a pubsub client: reapers leave it alone.
  EXPECT_EQ(pubsub_clients().find(named), std::string::npos) << pubsub_clients();
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
  ASSERT_EQ(kill_named(a.client_name()), 1);
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
void start_holder(Subprocess& child, locksmith::redis::ConnectOptions server) {
  ASSERT_NO_THROW(child = Subprocess::fork([server](Channel& parent) {
                    RedisLock lock(server, "res");
                    if (!lock.try_lock()) return 2;
                    parent.send("HELD");
                    (void)parent.read_line();  // until killed (or the parent closes the pipe)
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
  Subprocess child;
  ASSERT_NO_FATAL_FAILURE(start_holder(child, server()));
  RedisLock b(server(), "res");
  EXPECT_FALSE(b.try_lock());
  child.kill(SIGKILL);
  EXPECT_TRUE(b.try_lock_for(10s)) << b.last_error();
  EXPECT_EQ(b.reaped(), 0u);  // the server dropped the dead holder's subscription by itself
  b.unlock();
}

TEST_F(PubSubLockTest, HungHolderIsReaped) {
  Subprocess child;
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
  child.kill(SIGKILL);
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

// ---- protocol 1: shared mode, pending-writer election, replies -----------------------------

// A raw subscriber connection (not a RedisLock) on `channel`, for seeing pings and replies.
class RawSubscriber {
 public:
  RawSubscriber(locksmith::redis::ConnectOptions o, const std::string& channel,
                const std::string& name = "")
      : conn_(std::move(o)) {
    if (!name.empty()) ok_ = static_cast<bool>(conn_.command({"CLIENT", "SETNAME", name}));
    if (ok_) ok_ = !conn_.send({"SUBSCRIBE", channel});
    if (ok_) {
      const auto r = conn_.read_until(Clock::now() + 5s);
      ok_ = r && r.value().elements.size() == 3 && r.value().elements[0].str == "subscribe";
    }
  }
  bool ok() const { return ok_; }
  // The data of the next message, or nullopt (timeout, error, EOF).
  std::optional<std::string> next(std::chrono::milliseconds limit = 5000ms) {
    const auto until = Clock::now() + limit;
    for (;;) {
      const auto r = conn_.read_until(until);
      if (!r) {
        if (r.error() != locksmith::errc::timeout) dead_ = true;
        return std::nullopt;
      }
      const auto& v = r.value();
      if (v.elements.size() == 3 && v.elements[0].str == "message") return v.elements[2].str;
    }
  }

 private:
  locksmith::redis::Connection conn_;
  bool ok_ = true;

 public:
  std::atomic<bool> dead_{false};  // the connection failed (killed, closed)
};

// The response channel of a ping as this library writes it: "<channel>-<32 hex>"; the hex is the
// last 32 characters before the closing quote.
std::string reply_channel_of(const std::string& channel, const std::string& ping) {
  const auto end = ping.rfind('"');
  if (end == std::string::npos || end < 32) return "";
  return channel + "-" + ping.substr(end - 32, 32);
}

TEST_F(PubSubLockTest, TwoSharedHoldersAtOnce) {
  RedisLock a(server(), "res");
  RedisLock b(server(), "res");
  RedisLock w(server(), "res");
  ASSERT_TRUE(a.try_lock_shared()) << a.last_error();
  ASSERT_TRUE(b.try_lock_shared()) << b.last_error();
  EXPECT_EQ(numsub("res"), 2);
  EXPECT_EQ(a.held_mode(), LockMode::shared);
  EXPECT_EQ(b.describe().mode, LockMode::shared);
  EXPECT_TRUE(a.owned() && b.owned());
  // A writer is refused while they hold, and leaves nothing behind.
  EXPECT_EQ(w.acquire(LockMode::exclusive, Clock::time_point::min()), locksmith::errc::busy);
  EXPECT_EQ(numsub("res"), 2);
  std::vector<locksmith::redis::PubSubHolder> holders;
  ASSERT_FALSE(w.probe(holders)) << w.last_error();
  ASSERT_EQ(holders.size(), 2u);
  for (const auto& h : holders) {
    EXPECT_EQ(h.mode, LockMode::shared);
    EXPECT_TRUE(h.holder_id == a.holder_id() || h.holder_id == b.holder_id()) << h.holder_id;
  }
  a.unlock();
  b.unlock();
  EXPECT_TRUE(w.try_lock()) << w.last_error();
  // And now a shared newcomer is refused by the writer.
  EXPECT_EQ(a.acquire(LockMode::shared, Clock::time_point::min()), locksmith::errc::busy);
  w.unlock();
}

TEST_F(PubSubLockTest, ExclusiveWaitsForBothSharedReleases) {
  RedisLock a(server(), "res");
  RedisLock b(server(), "res");
  RedisLock w(server(), "res");
  ASSERT_TRUE(a.try_lock_shared()) << a.last_error();
  ASSERT_TRUE(b.try_lock_shared()) << b.last_error();
  std::atomic<bool> got{false};
  std::thread writer([&] { got = w.try_lock_for(20s); });
  // The elected writer stays subscribed (pending) while the readers hold.
  EXPECT_TRUE(eventually([&] { return numsub("res") == 3; }));
  std::vector<locksmith::redis::PubSubHolder> holders;
  EXPECT_TRUE(eventually([&] {
    RedisLock p(server(), "res");
    return !p.probe(holders) && holders.size() == 3 &&
           std::any_of(holders.begin(), holders.end(),
                       [&](const auto& h) { return h.holder_id == w.holder_id() && h.pending; });
  }));
  a.unlock();
  EXPECT_TRUE(eventually([&] { return numsub("res") == 2; }));
  EXPECT_FALSE(got.load());  // b still holds shared
  EXPECT_TRUE(b.owned());
  b.unlock();
  writer.join();
  ASSERT_TRUE(got.load()) << w.last_error();
  EXPECT_EQ(w.held_mode(), LockMode::exclusive);
  EXPECT_EQ(numsub("res"), 1);
  w.unlock();
}

// Readers keep the lock shared without a gap (each new reader joins before the previous one
// leaves); a waiting writer announces itself pending, newcomers back off, and it gets the lock.
TEST_F(PubSubLockTest, PendingWriterNotStarvedBySharedStream) {
  RedisLock r0(server(), "res");
  RedisLock r1(server(), "res");
  RedisLock w(server(), "res");
  ASSERT_TRUE(r0.try_lock_shared()) << r0.last_error();
  std::atomic<bool> writer_done{false};
  std::atomic<bool> got{false};
  std::atomic<int> overlap{0};  // readers that held while the writer held
  int joined = 0;
  int refused = 0;
  RedisLock* holding = &r0;
  RedisLock* next = &r1;
  // The stream runs before the writer comes: readers hand over without a gap.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(next->try_lock_shared_for(5s)) << next->last_error();
    holding->unlock();
    std::swap(holding, next);
  }
  const int joined_before = 5;
  std::thread writer([&] {
    got = w.try_lock_for(20s);
    writer_done = true;
  });
  EXPECT_TRUE(eventually([&] { return numsub("res") == 2; }));  // the writer is pending
  const auto until = std::chrono::steady_clock::now() + 15s;
  while (!writer_done.load() && std::chrono::steady_clock::now() < until) {
    if (next->try_lock_shared_for(20ms)) {
      ++joined;
      if (got.load()) ++overlap;
      holding->unlock();
      std::swap(holding, next);
    } else {
      ++refused;
      holding->unlock();  // no newcomer got in: the stream ends, the writer may go
      holding = nullptr;
      break;
    }
  }
  writer.join();
  if (holding != nullptr && holding->held()) holding->unlock();
  std::printf("[ stream   ] readers joined %d before the writer came, %d after; refused %d\n",
              joined_before, joined, refused);
  ASSERT_TRUE(got.load()) << w.last_error();
  EXPECT_GE(refused, 1);  // a shared newcomer was refused in favour of the pending writer
  EXPECT_EQ(overlap.load(), 0);
  w.unlock();
}

// What a holder publishes, seen raw: {"holder_id": ID, "mode": MODE, "protocol": 1} on the
// response channel of a ping, for each mode; the ping's response channel has JSON escapes
// (\", \\, \/, \u escapes with a surrogate pair) that the holder decodes to UTF-8.
TEST_F(PubSubLockTest, ReplyFormatSeenByRawSubscriber) {
  const std::string rc = "res-\"q\\/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  const std::string ping =
      R"({"message": "ping", "response_channel": "res-\"q\\\/\u00e9\u20AC\ud83d\ude00"})";
  RawSubscriber raw(server(), rc);
  ASSERT_TRUE(raw.ok());
  const auto ask = [&] {
    const auto r = admin().command({"PUBLISH", "res", ping});
    EXPECT_TRUE(r && r.value().integer >= 1) << r.message();
    return raw.next().value_or("(no reply)");
  };
  RedisLock a(server(), "res");
  ASSERT_TRUE(a.try_lock()) << a.last_error();
  EXPECT_EQ(ask(),
            R"({"holder_id": ")" + a.holder_id() + R"(", "mode": "exclusive", "protocol": 1})");
  a.unlock();
  ASSERT_TRUE(a.try_lock_shared()) << a.last_error();
  EXPECT_EQ(ask(), R"({"holder_id": ")" + a.holder_id() + R"(", "mode": "shared", "protocol": 1})");
  // A waiting writer answers "pending" (or "exclusive" during its claim, never "shared").
  RedisLock w(server(), "res");
  std::thread writer([&] { (void)w.try_lock_for(20s); });
  EXPECT_TRUE(eventually([&] { return numsub("res") == 2; }));
  bool saw_pending = false;
  for (int i = 0; i < 4 && !saw_pending; ++i) {
    const auto r = admin().command({"PUBLISH", "res", ping});
    ASSERT_TRUE(r) << r.message();
    for (long long k = 0; k < r.value().integer; ++k) {
      const std::string reply = raw.next().value_or("(no reply)");
      if (reply.find(w.holder_id()) != std::string::npos) {
        saw_pending = reply == R"({"holder_id": ")" + w.holder_id() +
                                   R"(", "mode": "pending", "protocol": 1})";
        EXPECT_EQ(reply.find("shared"), std::string::npos) << reply;
      }
    }
  }
  EXPECT_TRUE(saw_pending);
  a.unlock();
  writer.join();
  EXPECT_TRUE(w.owned()) << w.last_error();
  w.unlock();
}

// Junk on the lock channel (what no portalocker sends) is ignored by a C++ holder, which keeps
// the lock and still answers real pings, including ones with whitespace, duplicate keys and
// nested members that Python's json accepts.
TEST_F(PubSubLockTest, MalformedPingsAreIgnored) {
  RedisLock a(server(), "res");
  ASSERT_TRUE(a.try_lock()) << a.last_error();
  RawSubscriber raw(server(), "res-raw");
  ASSERT_TRUE(raw.ok());
  for (const char* junk : {"",
                           "hello",
                           "12.5",
                           "[1, 2]",
                           "{",
                           "{}",
                           "{\"response_channel\": 5}",
                           "{\"response_channel\": \"\"}",
                           "{\"response_channel\": \"res-raw\"",
                           "{\"response_channel\" 1}",
                           "{\"response_channel\": \"res-raw\",}",
                           "{\"response_channel\": \"res-raw\"} x",
                           "{\"response_channel\": \"res-\\q\"}",
                           "{\"response_channel\": \"res-\\u12\"}",
                           "{\"a\": [1, {\"b\": [[[]]]}], \"response_channel\": null}",
                           "{\"x\": \"\\\"}",
                           "{\"response_channel\": \"res-raw\\",
                           "{\"n\": -1.5e3, \"t\": true, \"response_channel\": [\"res-raw\"]}",
                           "{\"a\" : {\"b\" : 1 , } }",
                           "{,}",
                           "{\"a\"}",
                           "{\"a\": }"}) {
    const auto r = admin().command({"PUBLISH", "res", junk});
    ASSERT_TRUE(r) << r.message();
  }
  for (const char* ping :
       {" { \"message\" : \"ping\" ,\n\t\"response_channel\" : \"res-raw\" } ",
        R"({"response_channel": "nowhere", "x": {"y": [1, "}"]}, )"
        R"("response_channel": "res-\u0072aw"})",
        R"({"response_channel": "res-raw", "message": "pong", "e": {}, "l": []})"}) {
    const auto r = admin().command({"PUBLISH", "res", ping});
    ASSERT_TRUE(r) << r.message();
    const std::string reply = raw.next().value_or("(no reply)");
    EXPECT_NE(reply.find(a.holder_id()), std::string::npos) << ping << " -> " << reply;
  }
  EXPECT_FALSE(raw.next(100ms).has_value());  // the junk got no answer
  EXPECT_TRUE(a.owned());
  EXPECT_EQ(a.pings_answered(), 3u);
  a.unlock();
}

// A subscriber named like a legacy holder that answers pings only with junk is not a live holder:
// junk is not counted as a reply, so the contender reaps it and gets the lock.
TEST_F(PubSubLockTest, JunkRepliesAreNotCounted) {
  RawSubscriber junk_peer(server(), "res", "res-lock");
  ASSERT_TRUE(junk_peer.ok());
  locksmith::redis::Connection pub(server());
  std::atomic<bool> stop{false};
  std::thread answerer([&] {
    while (!stop.load() && !junk_peer.dead_.load()) {
      const auto ping = junk_peer.next(200ms);
      if (!ping) continue;
      const std::string rc = reply_channel_of("res", *ping);
      for (const char* j :
           {"junk", "{\"holder_id\": 5}", "{\"mode\": \"shared\"}", "[]", "{}", "1.2.3"}) {
        (void)pub.command({"PUBLISH", rc, j});
      }
    }
  });
  PubSubOptions o;
  o.unavailable_timeout = 200ms;
  RedisLock b(server(), "res", o);
  // No reply counts, so the junk peer is taken for a dead legacy holder and reaped.
  EXPECT_TRUE(b.try_lock_shared_for(10s)) << b.last_error();
  EXPECT_GE(b.reaped(), 1u);
  EXPECT_EQ(numsub("res"), 1);
  EXPECT_TRUE(eventually([&] { return junk_peer.dead_.load(); }));  // it was CLIENT KILLed
  stop = true;
  answerer.join();
  b.unlock();
}

// probe() pings like portalocker: the JSON string escapes exactly as Python's json.dumps
// (ensure_ascii) for a channel with quotes, control and non-ASCII characters; and parses a
// legacy (timestamp) reply and a protocol-1 reply from raw peers.
TEST_F(PubSubLockTest, ProbeEscapesLikePythonAndParsesReplies) {
  const std::string channel = "c\"\\\x01\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff";
  RawSubscriber raw(server(), channel);
  ASSERT_TRUE(raw.ok());
  locksmith::redis::Connection pub(server());
  RedisLock p(server(), channel);
  std::vector<locksmith::redis::PubSubHolder> holders;
  std::error_code ec;
  std::thread prober([&] { ec = p.probe(holders); });
  const auto ping = raw.next();
  const std::string expect_prefix =
      R"({"message": "ping", "response_channel": "c\"\\\u0001\b\f\n\r\t\u00e9\u20ac\ud83d\ude00)"
      "\xff-";
  if (ping) {
    EXPECT_EQ(ping->substr(0, expect_prefix.size()), expect_prefix) << *ping;
    EXPECT_TRUE(pub.command({"PUBLISH", reply_channel_of(channel, *ping), " 1764505700.123456\n"}));
  }
  prober.join();
  ASSERT_TRUE(ping.has_value());
  EXPECT_FALSE(ec) << p.last_error();
  ASSERT_EQ(holders.size(), 1u);
  EXPECT_TRUE(holders[0].legacy);
  EXPECT_EQ(holders[0].mode, LockMode::exclusive);
  // A protocol-1 reply; an unknown mode would count as legacy (exclusive).
  for (const std::string& reply :
       {std::string(R"({"protocol": 1, "mode": "shared", "holder_id": "h\u00e9\b\f\n\r\t\/\"\\"})"),
        std::string(R"({"protocol": 1, "mode": "weird", "holder_id": "h"})"),
        std::string(R"({"protocol": 2, "mode": "shared", "holder_id": "h"})")}) {
    std::thread again([&] { ec = p.probe(holders); });
    const auto ping2 = raw.next();
    if (ping2) {
      EXPECT_TRUE(pub.command({"PUBLISH", reply_channel_of(channel, *ping2), reply}));
    }
    again.join();
    ASSERT_TRUE(ping2.has_value());
    EXPECT_FALSE(ec) << p.last_error();
    ASSERT_EQ(holders.size(), 1u);
    if (reply.find("\"protocol\": 1, \"mode\": \"shared\"") != std::string::npos) {
      EXPECT_EQ(holders[0].holder_id, "h\xc3\xa9\b\f\n\r\t/\"\\");
      EXPECT_EQ(holders[0].mode, LockMode::shared);
      EXPECT_FALSE(holders[0].legacy);
    } else {
      EXPECT_TRUE(holders[0].legacy);
    }
  }
  // Nobody answers: probe() says timeout and reaps nothing.
  PubSubOptions o;
  o.unavailable_timeout = 100ms;
  RedisLock q(server(), channel, o);
  EXPECT_EQ(q.probe(holders), locksmith::errc::timeout);
  EXPECT_EQ(q.reaped(), 0u);
  // An empty channel: no holders, conclusive.
  RedisLock e(server(), "empty");
  EXPECT_FALSE(e.probe(holders));
  EXPECT_TRUE(holders.empty());
}

// Writers and readers on one channel, each with its own RedisLock (and connections), checked by
// in-process counters: never two writers, never a writer with a reader; every attempt succeeds
// within a bounded wait.
TEST_F(PubSubLockTest, MixedContendersExclude) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 25;
  std::atomic<int> writers{0};
  std::atomic<int> readers{0};
  std::atomic<int> violations{0};
  std::atomic<int> failures{0};
  std::atomic<int> shared_overlap{0};
  std::atomic<std::uint64_t> reaped{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      RedisLock lock(server(), "mix");
      for (int i = 0; i < kRounds; ++i) {
        const bool write = (t + i) % 3 == 0;
        const bool got = write ? lock.try_lock_for(20s) : lock.try_lock_shared_for(20s);
        if (!got) {
          ++failures;
          continue;
        }
        if (write) {
          if (writers.fetch_add(1) != 0 || readers.load() != 0) ++violations;
        } else {
          if (readers.fetch_add(1) != 0) ++shared_overlap;
          if (writers.load() != 0) ++violations;
        }
        std::this_thread::sleep_for(1ms);  // hold a little (no synchronisation relies on it)
        if (write) {
          writers.fetch_sub(1);
        } else {
          readers.fetch_sub(1);
        }
        if (lock.release()) ++failures;
      }
      reaped += lock.reaped();
    });
  }
  for (auto& th : threads) th.join();
  std::printf("[ mix      ] readers overlapped %d times\n", shared_overlap.load());
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  // Nobody hangs here, so nobody may be reaped: churn (one contender leaving before a probe's
  // PUBLISH, another arriving after it) once made a probe CLIENT KILL a live newcomer, which then
  // took the lock on a dead subscription while the prober took it too.
  EXPECT_EQ(reaped.load(), 0u);
  EXPECT_EQ(numsub("mix"), 0);
}

TEST_F(PubSubLockTest, SpecSharedOption) {
  locksmith::redis::register_redis_schemes();
  const std::string base = "redis+pubsub://127.0.0.1:" + std::to_string(server_->port()) + "/res";
  auto a = locksmith::open_lock(base + "?shared=1");
  auto b = locksmith::redis::open_redis_pubsub_lock(base + "?shared=true&fail_when_locked=1");
  auto w = locksmith::redis::open_redis_pubsub_lock(base + "?shared=0&fail_when_locked=1");
  EXPECT_TRUE(dynamic_cast<RedisLock&>(*a).options().shared);
  EXPECT_FALSE(dynamic_cast<RedisLock&>(*w).options().shared);
  a->lock();
  b->lock();  // both shared
  EXPECT_EQ(a->describe().mode, LockMode::shared);
  EXPECT_THROW(w->lock(), locksmith::AlreadyLocked);
  a->unlock();
  b->unlock();
  w->lock();
  w->unlock();
  try {
    (void)locksmith::redis::open_redis_pubsub_lock(base + "?shared=maybe");
    ADD_FAILURE() << "accepted shared=maybe";
  } catch (const locksmith::LockError& e) {
    EXPECT_EQ(e.code(), locksmith::errc::invalid_spec);
  }
  // An option given twice is refused, whether this lock's own (shared) or a redis:// one.
  for (const char* twice : {"?shared=1&shared=0", "?timeout=1s&fail_when_locked=1&timeout=2s"}) {
    try {
      (void)locksmith::redis::open_redis_pubsub_lock(base + twice);
      ADD_FAILURE() << "accepted " << twice;
    } catch (const locksmith::LockError& e) {
      EXPECT_EQ(e.code(), locksmith::errc::invalid_spec) << twice;
      EXPECT_NE(std::string(e.what()).find("given twice"), std::string::npos) << e.what();
    }
  }
}

class InteropPubSub : public PubSubLockTest {
 protected:
  void start_py(Subprocess& py, const std::string& channel) {
    ASSERT_NO_THROW(
        py = Subprocess::spawn({kPython, kPeer, std::to_string(server_->port()), channel}));
    ASSERT_EQ(py.read_line().value_or("(no answer)"), "READY")
        << "is Debian's python3-portalocker installed for " << kPython << "?";
  }
  std::string ask(Subprocess& py, const std::string& command) {
    if (!py.send(command)) return "(send failed)";
    return py.read_line().value_or("(no answer)");
  }
};

TEST_F(InteropPubSub, PythonHoldsCppBusy) {
  Subprocess py;
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
  Subprocess py;
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
  Subprocess py;
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

namespace {

// Shared C++ holders vs Debian's 2.2.1: Python sees them as held (any reply means held), and a
// C++ shared contender counts a Python (legacy) holder as exclusive.
TEST_F(InteropPubSub, SharedCppHoldersAndLegacyPython) {
  Subprocess py;
  ASSERT_NO_FATAL_FAILURE(start_py(py, "res"));
  RedisLock a(server(), "res");
  RedisLock b(server(), "res");
  ASSERT_TRUE(a.try_lock_shared()) << a.last_error();
  ASSERT_TRUE(b.try_lock_shared()) << b.last_error();
  EXPECT_EQ(ask(py, "try"), "BUSY");
  EXPECT_EQ(numsub("res"), 2);
  // Python's json reads our replies: one per holder, "shared", protocol 1.
  const std::string reply = ask(py, "ping");
  EXPECT_TRUE(reply == "REPLY " + a.holder_id() + " shared 1" ||
              reply == "REPLY " + b.holder_id() + " shared 1")
      << reply;
  a.unlock();
  b.unlock();
  ASSERT_EQ(ask(py, "try"), "ACQUIRED");
  EXPECT_EQ(ask(py, "ping"), "LEGACY");  // 2.2.1 answers str(time.time())
  EXPECT_EQ(a.acquire(LockMode::shared, Clock::time_point::min()), locksmith::errc::busy);
  EXPECT_EQ(a.reaped(), 0u);
  EXPECT_EQ(numsub("res"), 1);
  EXPECT_EQ(ask(py, "release"), "RELEASED");
  EXPECT_TRUE(a.try_lock_shared()) << a.last_error();
  a.unlock();
}

}  // namespace
