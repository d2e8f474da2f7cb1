// Redis locks are never lost silently: KeepAlive renews a lease / Redlock past its TTL, finds a
// deleted or expired key, and is pushed at once when the pub/sub lock's connection drops; and
// `locksmith run` on their specs keeps them alive and stops its command on loss (exit 76).
// Real redis-servers on free loopback ports.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/keep_alive.hpp"
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
using locksmith::errc;
using locksmith::KeepAlive;
using locksmith::redis::LeaseOptions;
using locksmith::redis::PubSubOptions;
using locksmith::redis::RedisLease;
using locksmith::redis::RedisLock;
using locksmith::redis::Redlock;
using locksmith::redis::RedlockOptions;
using locksmith::redis::testing::RedisServer;
using locksmith::redis::testing::RedisTest;

// Every wait here ends by the one bound of the test suites.
using locksmith::test::kWaitLimit;

bool readable_within(int fd, Clock::duration within) {
  struct pollfd p {};
  p.fd = fd;
  p.events = POLLIN;
  const int ms =
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(within).count());
  return ::poll(&p, 1, ms) == 1 && (p.revents & POLLIN) != 0;
}

template <class Pred>
bool eventually(Pred pred) {
  const auto until = Clock::now() + kWaitLimit;
  while (!pred()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

class RedisKeepAlive : public RedisTest {};

TEST_F(RedisKeepAlive, ALeaseOutlivesItsTtlAndADeletedKeyIsALoss) {
  LeaseOptions o;
  o.ttl = 300ms;
  RedisLease holder(server(), "k", o);
  RedisLease other(server(), "k", o);
  ASSERT_FALSE(holder.acquire(locksmith::LockMode::exclusive, Clock::time_point::min()));
  KeepAlive keeper(holder);
  ASSERT_TRUE(keeper.active());
  ASSERT_TRUE(eventually([&] { return keeper.renewals() >= 6; }));  // >= 2 TTLs
  EXPECT_FALSE(other.try_lock());
  EXPECT_FALSE(keeper.lost());
  ASSERT_TRUE(admin().command({"DEL", "k"}));
  ASSERT_TRUE(readable_within(keeper.notify_handle(), kWaitLimit));
  EXPECT_EQ(keeper.reason(), make_error_code(errc::lock_lost));
  keeper.stop();
  EXPECT_EQ(holder.release(), make_error_code(errc::lock_lost));
}

TEST_F(RedisKeepAlive, ARedlockOutlivesMaxExtensionsAndItsTtl) {
  RedlockOptions o;
  o.ttl = 300ms;
  o.max_extensions = 1;  // keep-alive is not bounded by it
  Redlock holder({server()}, "k", o);
  Redlock other({server()}, "k", o);
  ASSERT_TRUE(holder.try_lock());
  KeepAlive keeper(holder);
  ASSERT_TRUE(eventually([&] { return keeper.renewals() >= 6; }));
  EXPECT_FALSE(other.try_lock());
  ASSERT_TRUE(admin().command({"DEL", "k"}));
  ASSERT_TRUE(readable_within(keeper.notify_handle(), kWaitLimit));
  EXPECT_EQ(keeper.reason(), make_error_code(errc::lock_lost));
}

// The subscriber thread finds the dropped connection and pushes the notice: told long before
// the keeper's own (hour-long) interval would have asked.
TEST_F(RedisKeepAlive, ADroppedPubSubConnectionIsPushedAtOnce) {
  PubSubOptions o;
  o.health_check_interval = 1h;
  RedisLock holder(server(), "ch", o);
  ASSERT_TRUE(holder.try_lock());
  KeepAlive keeper(holder);
  ASSERT_TRUE(keeper.active());
  EXPECT_FALSE(readable_within(keeper.notify_handle(), 20ms));
  ASSERT_TRUE(admin().command({"CLIENT", "KILL", "TYPE", "pubsub"}));
  ASSERT_TRUE(readable_within(keeper.notify_handle(), kWaitLimit));
  EXPECT_TRUE(keeper.lost());
  EXPECT_EQ(keeper.reason(), make_error_code(errc::lock_lost));
  keeper.stop();
  EXPECT_EQ(holder.release(), make_error_code(errc::lock_lost));
}

#ifdef LOCKSMITH_BINARY
// `locksmith run` in the background (through the shell): its exit status and output (stdout
// and stderr) once it ends.
class Background {
 public:
  explicit Background(const std::string& cmd) : proc_(spawn(cmd)) {}
  // The shell's status (128+N for signal N), once it ended (bounded; killed after the bound).
  int wait() {
    out_ += proc_.read_all();
    const auto exit = proc_.wait_exit();
    if (!exit) proc_.kill(SIGKILL);
    return locksmith::test::shell_status(exit);
  }
  const std::string& out() const { return out_; }

 private:
  static locksmith::test::Subprocess spawn(const std::string& cmd) {
    locksmith::test::SpawnOptions o;
    o.in = locksmith::test::Stdio::null;
    o.err = locksmith::test::Stdio::stdout_;
    return locksmith::test::Subprocess::spawn({"/bin/sh", "-c", cmd}, o);
  }

  locksmith::test::Subprocess proc_;
  std::string out_;
};

int run_now(const std::string& cmd) {
  return locksmith::test::shell_status(locksmith::test::run_shell(cmd).exit);
}

// A fresh directory, removed with its contents at the end.
struct ScratchDir {
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ls-keepalive-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path = tmpl;
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path path;
};

class RedisRunKeepAlive : public RedisTest {
 protected:
  std::string where() const { return server_->host() + ":" + std::to_string(server_->port()); }
  // `locksmith run --lock SPEC OPTIONS -- sh -c 'touch STARTED; SCRIPT'`
  std::string run_cmd(const std::string& spec, const std::string& options,
                      const std::string& script) const {
    return std::string(LOCKSMITH_BINARY) + " run " + options + " --lock '" + spec +
           "' -- sh -c 'touch " + started_.string() + "; " + script + "'";
  }
  bool started() const {
    return eventually([&] { return std::filesystem::exists(started_); });
  }

  ScratchDir dir_;
  std::filesystem::path started_ = dir_.path / "started";
};

TEST_F(RedisRunKeepAlive, RunKeepsALeaseAliveWhileTheCommandRuns) {
  const std::string spec = "redis://" + where() + "/k?ttl=300ms";
  Background holder(run_cmd(spec, "", "sleep 1.5"));
  ASSERT_TRUE(started());
  // Three TTLs of waiting: still held.
  EXPECT_EQ(run_now(std::string(LOCKSMITH_BINARY) + " run -t 1 --lock '" + spec + "' -- true"), 75);
  EXPECT_EQ(holder.wait(), 0) << holder.out();
}

TEST_F(RedisRunKeepAlive, WithoutKeepAliveTheLeaseExpires) {
  const std::string spec = "redis://" + where() + "/k?ttl=300ms";
  Background holder(run_cmd(spec, "--no-keep-alive", "sleep 1.5"));
  ASSERT_TRUE(started());
  EXPECT_EQ(run_now(std::string(LOCKSMITH_BINARY) + " run -t 5 --lock '" + spec + "' -- true"), 0);
  EXPECT_EQ(holder.wait(), 76) << holder.out();
}

TEST_F(RedisRunKeepAlive, ADeletedLeaseStopsTheCommand) {
  Background holder(run_cmd("redis://" + where() + "/k?ttl=3s", "", "exec sleep 60"));
  ASSERT_TRUE(started());
  ASSERT_TRUE(admin().command({"DEL", "k"}));
  EXPECT_EQ(holder.wait(), 76) << holder.out();
  EXPECT_NE(holder.out().find("lock lost"), std::string::npos) << holder.out();
}

TEST_F(RedisRunKeepAlive, AKilledPubSubConnectionStopsTheCommand) {
  Background holder(run_cmd("redis+pubsub://" + where() + "/ch", "", "exec sleep 60"));
  ASSERT_TRUE(started());
  // The subscriber is there once the command runs; kill it (as a failover or `CLIENT KILL`).
  ASSERT_TRUE(admin().command({"CLIENT", "KILL", "TYPE", "pubsub"}));
  EXPECT_EQ(holder.wait(), 76) << holder.out();
  EXPECT_NE(holder.out().find("lock lost"), std::string::npos) << holder.out();
}

TEST_F(RedisRunKeepAlive, RunKeepsARedlockAlive) {
  // A TTL a loaded machine can take a Redlock within (its validity is the TTL less the time
  // the majority took), and a waiter that waits 2.5 TTLs.
  const std::string spec = "redlock://" + where() + "/k?ttl=1s";
  Background holder(run_cmd(spec, "", "sleep 3.5"));
  ASSERT_TRUE(started());
  EXPECT_EQ(run_now(std::string(LOCKSMITH_BINARY) + " run -t 2.5 --lock '" + spec + "' -- true"),
            75);
  EXPECT_EQ(holder.wait(), 0) << holder.out();
}
#endif

}  // namespace
