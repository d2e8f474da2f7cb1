// Interop: RedisLease and Debian's python3-redis (redis.lock.Lock 4.3.4) exclude each other on one
// key and release each other's leases given the token. The Python side is redis_py_peer.py run by
// /usr/bin/python3; a missing python3-redis makes the tests fail (never skip), naming the package.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "locksmith/redis/lease.hpp"
#include "redis_test_util.hpp"
#include "subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::redis::LeaseOptions;
using locksmith::redis::RedisLease;
using locksmith::redis::testing::RedisTest;
using locksmith::test::Channel;
using locksmith::test::Subprocess;

constexpr const char* kPython = LOCKSMITH_REDIS_PYTHON;
constexpr const char* kPeer = LOCKSMITH_REDIS_PY_PEER;

class RedisInterop : public RedisTest {
 protected:
  // Starts the Python peer on `key`; fails the test unless it says READY.
  void start_py(Subprocess& py, const std::string& key) {
    ASSERT_NO_THROW(py = Subprocess::spawn({kPython, kPeer, std::to_string(server_->port()), key}));
    ASSERT_EQ(py.read_line().value_or("(no answer)"), "READY")
        << "is Debian's python3-redis installed for " << kPython << "?";
  }
  std::string ask(Subprocess& py, const std::string& command) {
    if (!py.send(command)) return "(send failed)";
    return py.read_line().value_or("(no answer)");
  }
  // "ACQUIRED <token>" -> token ("" otherwise).
  static std::string token_of(const std::string& answer) {
    return answer.rfind("ACQUIRED ", 0) == 0 ? answer.substr(9) : std::string();
  }
  LeaseOptions opts() const {
    LeaseOptions o;
    o.ttl = 30s;
    return o;
  }
};

TEST_F(RedisInterop, CppHoldsPythonCannotAcquire) {
  Subprocess py;
  ASSERT_NO_FATAL_FAILURE(start_py(py, "res"));
  RedisLease lease(server(), "res", opts());
  ASSERT_TRUE(lease.try_lock()) << lease.last_error();
  EXPECT_EQ(ask(py, "try"), "BUSY");
  EXPECT_EQ(get("res"), lease.token());
  lease.unlock();
  const std::string tok = token_of(ask(py, "try"));
  EXPECT_FALSE(tok.empty());
  EXPECT_EQ(ask(py, "release"), "RELEASED");
}

TEST_F(RedisInterop, PythonHoldsCppBusyUntilPythonReleases) {
  Subprocess py;
  ASSERT_NO_FATAL_FAILURE(start_py(py, "res"));
  const std::string tok = token_of(ask(py, "try"));
  ASSERT_EQ(tok.size(), 32u);  // uuid1().hex
  EXPECT_EQ(get("res"), tok);
  EXPECT_GT(pttl("res"), 0);  // SET ... PX
  RedisLease lease(server(), "res", opts());
  EXPECT_FALSE(lease.try_lock());
  EXPECT_EQ(get("res:fence"), "(nil)");  // the fence belongs to acquisitions only
  // A waiting C++ client gets it once Python releases (redis-py publishes nothing: the waiter's
  // backstop retry finds the key gone).
  bool got = false;
  std::thread waiter([&] { got = lease.try_lock_for(20s); });
  EXPECT_EQ(ask(py, "release"), "RELEASED");
  waiter.join();
  ASSERT_TRUE(got) << lease.last_error();
  EXPECT_EQ(get("res"), lease.token());
  EXPECT_EQ(ask(py, "try"), "BUSY");
  lease.unlock();
}

TEST_F(RedisInterop, PythonReleasesCppLeaseOnlyWithItsToken) {
  Subprocess py;
  ASSERT_NO_FATAL_FAILURE(start_py(py, "res"));
  RedisLease lease(server(), "res", opts());
  ASSERT_TRUE(lease.try_lock());
  EXPECT_EQ(ask(py, "release"), "ERROR LockError");  // Python holds no token
  EXPECT_EQ(ask(py, "release_with " + std::string(32, '0')), "NOT_OWNED");
  EXPECT_EQ(get("res"), lease.token());
  EXPECT_TRUE(lease.owned());
  EXPECT_EQ(ask(py, "release_with " + lease.token()), "RELEASED");
  EXPECT_EQ(get("res"), "(nil)");
  EXPECT_FALSE(lease.owned());
  EXPECT_EQ(lease.release(), locksmith::errc::lock_lost);
}

TEST_F(RedisInterop, CppReleasesPythonLeaseOnlyWithItsToken) {
  Subprocess py;
  ASSERT_NO_FATAL_FAILURE(start_py(py, "res"));
  const std::string tok = token_of(ask(py, "try"));
  ASSERT_FALSE(tok.empty());
  RedisLease lease(server(), "res", opts());
  EXPECT_EQ(lease.adopt(std::string(32, 'e')), locksmith::errc::not_locked);
  EXPECT_FALSE(lease.held());
  EXPECT_EQ(get("res"), tok);
  ASSERT_FALSE(lease.adopt(tok)) << lease.last_error();
  EXPECT_TRUE(lease.owned());
  EXPECT_TRUE(lease.valid());
  EXPECT_EQ(ask(py, "owned"), "1");
  ASSERT_FALSE(lease.extend(10s));  // redis-py's extend script, on Python's lease
  EXPECT_GT(pttl("res"), 30000);
  EXPECT_FALSE(lease.release());
  EXPECT_EQ(get("res"), "(nil)");
  EXPECT_EQ(ask(py, "owned"), "0");
  EXPECT_EQ(ask(py, "release"), "NOT_OWNED");
}

TEST_F(RedisInterop, PythonWaiterGetsItWhenCppReleases) {
  Subprocess py;
  ASSERT_NO_FATAL_FAILURE(start_py(py, "res"));
  RedisLease lease(server(), "res", opts());
  ASSERT_TRUE(lease.try_lock());
  ASSERT_TRUE(py.send("wait 20"));
  EXPECT_FALSE(py.read_line(300ms).has_value());  // still waiting while C++ holds
  lease.unlock();
  const std::string tok = token_of(py.read_line().value_or(""));
  EXPECT_FALSE(tok.empty());
  EXPECT_EQ(get("res"), tok);
  EXPECT_EQ(ask(py, "release"), "RELEASED");
}

}  // namespace
