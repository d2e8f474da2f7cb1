// The conformance suite (tests/support/conformance.hpp) for the Redis locks, each against a real
// redis-server started for every test: RedisLease (redis-py's Lock protocol), RedisLock
// (portalocker's pub/sub lock, the one Redis lock with shared mode) and Redlock over one master.
// The holder and probe processes of the suite are forked and connect on their own.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "conformance.hpp"
#include "locksmith/redis/connection.hpp"
#include "locksmith/redis/lease.hpp"
#include "locksmith/redis/pubsub_lock.hpp"
#include "locksmith/redis/redlock.hpp"
#include "redis_server.hpp"

namespace conformance {

using locksmith::redis::ConnectOptions;

// One redis-server per test (a clean keyspace; a holder killed by a failed test leaves nothing
// for the next one), started on the test's thread, which outlives its use (PR_SET_PDEATHSIG).
struct RedisFamily {
  static constexpr unsigned kCapacity = 1;
  static constexpr bool kProcessScoped = false;
  static constexpr bool kKernelWaiters = false;
  static std::error_code shared_refusal() { return make_error_code(errc::unsupported); }

  static void set_up() { server() = std::make_unique<locksmith::redis::testing::RedisServer>(); }
  static void tear_down() { server().reset(); }

  static ConnectOptions options() {
    ConnectOptions o;
    o.host = server()->host();
    o.port = server()->port();
    o.connect_timeout = std::chrono::seconds(5);
    o.command_timeout = std::chrono::seconds(5);
    return o;
  }
  static std::string endpoint() {
    return server()->host() + ":" + std::to_string(server()->port());
  }
  static std::string target(const fs::path& /*dir*/, const std::string& name) {
    return endpoint() + "/" + name;
  }
  template <class O>
  static O with_policy(const Policy& p, O o = {}) {
    o.timeout = p.timeout;
    o.fail_when_locked = p.fail_when_locked;
    return o;
  }

 private:
  static std::unique_ptr<locksmith::redis::testing::RedisServer>& server() {
    static std::unique_ptr<locksmith::redis::testing::RedisServer> s;
    return s;
  }
};

struct RedisLease_ : RedisFamily {
  static constexpr bool kShared = false;
  static std::string kind() { return "redis"; }
  static std::unique_ptr<Lockable> make(const fs::path& /*dir*/, const std::string& name,
                                        const Policy& p = {}) {
    return std::make_unique<locksmith::redis::RedisLease>(
        options(), name, with_policy<locksmith::redis::LeaseOptions>(p));
  }
};

struct RedisPubSubLock_ : RedisFamily {
  static constexpr bool kShared = true;
  static std::string kind() { return "redis+pubsub"; }
  static std::unique_ptr<Lockable> make(const fs::path& /*dir*/, const std::string& name,
                                        const Policy& p = {}) {
    return std::make_unique<locksmith::redis::RedisLock>(
        options(), name, with_policy<locksmith::redis::PubSubOptions>(p));
  }
};

struct Redlock1_ : RedisFamily {
  static constexpr bool kShared = false;
  static std::string kind() { return "redlock"; }
  static std::unique_ptr<Lockable> make(const fs::path& /*dir*/, const std::string& name,
                                        const Policy& p = {}) {
    locksmith::redis::RedlockOptions o = with_policy<locksmith::redis::RedlockOptions>(p);
    o.master_timeout = std::chrono::milliseconds(0);  // the ConnectOptions' 5 s: a loaded machine
    return std::make_unique<locksmith::redis::Redlock>(std::vector<ConnectOptions>{options()}, name,
                                                       o);
  }
};

using RedisLockTypes = ::testing::Types<RedisLease_, RedisPubSubLock_, Redlock1_>;
// ctest names: "RedisConformance.<Test><conformance::<Type>>".
INSTANTIATE_TYPED_TEST_SUITE_P(RedisConformance, Conformance, RedisLockTypes);

}  // namespace conformance
