// The acquire deadline bounds the connects and round trips of every Redis lock kind (RedisLease,
// RedisLock, Redlock, and `locksmith run` on their specs): a server that accepts connections but
// never answers (SIGSTOP) is reported as a connection error naming host:port within about the
// deadline, never as errc::timeout ("still locked") blaming a holder that does not exist.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/redis/connection.hpp"
#include "locksmith/redis/lease.hpp"
#include "locksmith/redis/pubsub_lock.hpp"
#include "locksmith/redis/redlock.hpp"
#include "redis_server.hpp"
#include "redis_test_util.hpp"
#include "subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::Lockable;
using locksmith::LockMode;
using locksmith::redis::ConnectOptions;
using locksmith::redis::RedisLease;
using locksmith::redis::RedisLock;
using locksmith::redis::Redlock;
using locksmith::redis::RedlockOptions;
using locksmith::redis::testing::RedisServer;
using locksmith::redis::testing::RedisTest;

// A behavioural bound, not a performance figure: against a 1 s deadline the 5 s timeouts of the
// connection options (10 s before the fix) must not be what ends the wait.
constexpr auto kBound = 5s;
constexpr auto kDeadline = 1s;

// SIGSTOPs the server (its child) for the scope and waits, bounded, until it is really stopped:
// kill() only queues the signal. SIGCONT on the way out, so the fixture's kill finds it running.
class Stopped {
 public:
  explicit Stopped(pid_t pid) : pid_(pid) {
    if (::kill(pid_, SIGSTOP) != 0) return;
    const auto until = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WUNTRACED | WNOHANG);
      if (r == pid_) {
        stopped_ = WIFSTOPPED(status);
        return;
      }
      if (r < 0 || std::chrono::steady_clock::now() >= until) return;
      std::this_thread::sleep_for(1ms);  // there is no bounded waitpid
    }
  }
  Stopped(const Stopped&) = delete;
  Stopped& operator=(const Stopped&) = delete;
  ~Stopped() { ::kill(pid_, SIGCONT); }
  bool ok() const noexcept { return stopped_; }

 private:
  pid_t pid_;
  bool stopped_ = false;
};

struct Timed {
  std::error_code ec;
  std::chrono::steady_clock::duration took{};
};

Timed timed_acquire(Lockable& lock, Clock::time_point deadline) {
  const auto start = std::chrono::steady_clock::now();
  Timed t;
  t.ec = lock.acquire(LockMode::exclusive, deadline);
  t.took = std::chrono::steady_clock::now() - start;
  return t;
}

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// The outcome every kind must give against a stopped server: a connection error (ETIMEDOUT)
// whose message names host:port, within the bound, and nothing held.
void expect_no_answer(const Timed& t, const std::string& where, bool held) {
  ASSERT_TRUE(t.ec) << "acquired a lock on a stopped server";
  EXPECT_FALSE(locksmith::is_contended(t.ec)) << t.ec.message();
  EXPECT_EQ(t.ec, std::errc::timed_out) << t.ec.message();
  EXPECT_NE(t.ec.message().find(where), std::string::npos) << t.ec.message();
  EXPECT_NE(t.ec.message().find("did not answer"), std::string::npos) << t.ec.message();
  EXPECT_LT(t.took, kBound) << seconds(t.took) << " s";
  EXPECT_FALSE(held);
}

class RedisDeadline : public RedisTest {
 protected:
  std::string where() const { return "127.0.0.1:" + std::to_string(server_->port()); }
};

TEST_F(RedisDeadline, LeaseAgainstAStoppedServerFailsByTheDeadline) {
  RedisLease lease(server(), "k");
  const Stopped stopped(server_->pid());
  ASSERT_TRUE(stopped.ok());
  const Timed t = timed_acquire(lease, Lockable::deadline_after(kDeadline));
  expect_no_answer(t, where(), lease.held());
  EXPECT_GE(t.took, kDeadline - 100ms) << "the deadline, not an early give-up, ended the wait";
}

// An established connection, then the server hangs: the next acquire's command round trip is
// bounded by the deadline too, not only the connect.
TEST_F(RedisDeadline, LeaseOnAnOpenConnectionFailsByTheDeadline) {
  RedisLease lease(server(), "k");
  ASSERT_TRUE(lease.try_lock()) << lease.last_error();
  lease.unlock();
  const Stopped stopped(server_->pid());
  ASSERT_TRUE(stopped.ok());
  const Timed t = timed_acquire(lease, Lockable::deadline_after(kDeadline));
  expect_no_answer(t, where(), lease.held());
}

TEST_F(RedisDeadline, PubSubLockAgainstAStoppedServerFailsByTheDeadline) {
  RedisLock lock(server(), "ch");
  const Stopped stopped(server_->pid());
  ASSERT_TRUE(stopped.ok());
  const Timed t = timed_acquire(lock, Lockable::deadline_after(kDeadline));
  expect_no_answer(t, where(), lock.held());
}

// master_timeout 0 keeps the ConnectOptions' 5 s timeouts: the deadline alone bounds the wait.
TEST_F(RedisDeadline, RedlockWithAMajorityStoppedFailsByTheDeadlineNamingThem) {
  RedisServer second;
  RedisServer third;
  std::vector<ConnectOptions> masters{server(), server(), server()};
  masters[1].port = second.port();
  masters[2].port = third.port();
  RedlockOptions options;
  options.master_timeout = 0ms;
  Redlock lock(masters, "k", options);
  const Stopped first_stopped(server_->pid());
  const Stopped third_stopped(third.pid());
  ASSERT_TRUE(first_stopped.ok());
  ASSERT_TRUE(third_stopped.ok());
  const Timed t = timed_acquire(lock, Lockable::deadline_after(kDeadline));
  expect_no_answer(t, where(), lock.held());
  const std::string third_where = "127.0.0.1:" + std::to_string(third.port());
  EXPECT_NE(t.ec.message().find(third_where), std::string::npos) << t.ec.message();
  EXPECT_NE(t.ec.message().find("1 of 3"), std::string::npos) << t.ec.message();
}

// Waiting forever: the connection's own timeouts bound each step, and the error is reported.
TEST_F(RedisDeadline, WaitingForeverAgainstAStoppedServerReportsTheError) {
  ConnectOptions o = server();
  o.connect_timeout = 500ms;
  o.command_timeout = 500ms;
  RedisLease lease(o, "k");
  RedisLock pubsub(o, "ch");
  RedlockOptions options;
  options.master_timeout = 0ms;
  Redlock redlock({o}, "k", options);
  const Stopped stopped(server_->pid());
  ASSERT_TRUE(stopped.ok());
  expect_no_answer(timed_acquire(lease, locksmith::kForever), where(), lease.held());
  expect_no_answer(timed_acquire(pubsub, locksmith::kForever), where(), pubsub.held());
  expect_no_answer(timed_acquire(redlock, locksmith::kForever), where(), redlock.held());
}

// Contention is still contention: a key held by someone else on a server that answers.
TEST_F(RedisDeadline, AHeldKeyIsStillReportedAsLocked) {
  RedisLease holder(server(), "k");
  ASSERT_TRUE(holder.try_lock()) << holder.last_error();
  RedisLease waiter(server(), "k");
  const Timed t = timed_acquire(waiter, Lockable::deadline_after(300ms));
  EXPECT_EQ(t.ec, locksmith::errc::timeout) << t.ec.message();
  EXPECT_EQ(timed_acquire(waiter, Clock::time_point::min()).ec, locksmith::errc::busy);
  holder.unlock();
}

#ifdef LOCKSMITH_BINARY
struct Output {
  int status = -1;
  std::string out;
  std::chrono::steady_clock::duration took{};
};

// Runs a shell command (bounded by the fix under test) and returns its status and output.
Output run(const std::string& cmd) {
  const locksmith::test::Completed c = locksmith::test::run_shell(cmd);
  return Output{locksmith::test::shell_status(c.exit), c.out, c.took};
}

// `run -t 1` against a stopped server: "cannot lock ...: redis HOST:PORT did not answer within
// 1s", exit 2 (an error), not 75 ("still locked").
TEST_F(RedisDeadline, CliRunAgainstAStoppedServerExits2NamingTheServer) {
  const std::string hp = where();
  const Stopped stopped(server_->pid());
  ASSERT_TRUE(stopped.ok());
  for (const std::string& spec : {"redis://" + hp + "/k", "redis+pubsub://" + hp + "/ch",
                                  "redlock://" + hp + "/k?master_timeout=5s"}) {
    SCOPED_TRACE(spec);
    const Output o =
        run(std::string(LOCKSMITH_BINARY) + " run -t 1 --lock '" + spec + "' -- true 2>&1");
    EXPECT_EQ(o.status, 2) << o.out;
    EXPECT_NE(o.out.find("cannot lock"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find(hp + " did not answer within"), std::string::npos) << o.out;
    EXPECT_EQ(o.out.find("still locked"), std::string::npos) << o.out;
    EXPECT_LT(o.took, kBound) << seconds(o.took) << " s";
  }
}
#endif

}  // namespace
