// RedisLease benchmarks against a redis-server started for the run (loopback, no persistence):
//
// 1. BM_lease_cycle: RedisLease try_lock + unlock, uncontended: the acquire script (SET NX PX +
//    INCR fence) and the release script (compare-delete + PUBLISH), each by EVALSHA: two round
//    trips.
// 2. BM_raw_cycle: the raw hiredis loop of the same protocol without fence and notification:
//    SET key token NX PX 30000, then EVAL of redis-py's compare-delete script (the script text
//    sent every time, as a plain client would); BM_raw_evalsha sends it by EVALSHA instead.
// 3. BM_lease_paired: (1) and (2) in alternating ABBA blocks, so that both see the same load
//    (counters raw_us / locksmith_us / ratio).
// 4. BM_lease_handoff: a waiter thread with its own RedisLease (so its own connections, as another
//    process would have) blocks in acquire() on a key the benchmark thread holds. Once /proc shows
//    the waiter asleep in poll(2) on its release-channel subscription, the holder stamps the time
//    and releases; latency = the waiter's steady_clock time when acquire() returns - the stamp.
//    Counters p50_us / p90_us / p99_us / max_us; $LOCKSMITH_BENCH_HANDOFFS handoffs (default 500).
// (1) and (3) run twice: fence:1 is the default lease, fence:0 the lease with fence=0, whose
// acquire is the raw loop's plain SET NX PX.
#include <benchmark/benchmark.h>
#include <hiredis.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "locksmith/redis/lease.hpp"
#include "redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::LockMode;
using locksmith::redis::ConnectOptions;
using locksmith::redis::LeaseOptions;
using locksmith::redis::RedisLease;
using locksmith::redis::testing::RedisServer;
namespace bench = locksmith::bench;

constexpr const char* kCompareDelete =
    "local token = redis.call('get', KEYS[1]) "
    "if not token or token ~= ARGV[1] then return 0 end "
    "redis.call('del', KEYS[1]) return 1";

// One server for the whole run, started on first use and killed at exit.
RedisServer& server() {
  static RedisServer s;
  return s;
}

ConnectOptions options() {
  ConnectOptions o;
  o.host = server().host();
  o.port = server().port();
  return o;
}

struct ContextFree {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextFree>;

Context raw_connect() {
  Context c(redisConnect(server().host().c_str(), server().port()));
  if (!c || c->err != 0) return nullptr;
  return c;
}

// True when `reply` is the expected integer (or status for SET) and frees it.
bool check(void* reply, int type, long long value = 0) {
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return false;
  const bool ok = r->type == type && (type != REDIS_REPLY_INTEGER || r->integer == value);
  freeReplyObject(r);
  return ok;
}

bool raw_cycle(redisContext* c, const char* key, const char* token, bool evalsha,
               const std::string& sha) {
  if (!check(redisCommand(c, "SET %s %s NX PX 30000", key, token), REDIS_REPLY_STATUS)) {
    return false;
  }
  void* r = evalsha ? redisCommand(c, "EVALSHA %s 1 %s %s", sha.c_str(), key, token)
                    : redisCommand(c, "EVAL %s 1 %s %s", kCompareDelete, key, token);
  return check(r, REDIS_REPLY_INTEGER, 1);
}

std::string load_script(redisContext* c) {
  auto* r = static_cast<redisReply*>(redisCommand(c, "SCRIPT LOAD %s", kCompareDelete));
  std::string sha =
      r != nullptr && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "";
  freeReplyObject(r);
  return sha;
}

LeaseOptions lease_options(bool fence) {
  LeaseOptions o;
  o.fence = fence;
  return o;
}

// state.range(0): 1 = fenced (the default), 0 = fence=0 (plain SET NX PX acquire).
void BM_lease_cycle(benchmark::State& state) {
  RedisLease lease(options(), "bench:lease", lease_options(state.range(0) != 0));
  for (auto _ : state) {
    if (!lease.try_lock() || lease.release()) {
      state.SkipWithError(("lease cycle failed: " + lease.last_error()).c_str());
      break;
    }
  }
}
BENCHMARK(BM_lease_cycle)->ArgName("fence")->Arg(1)->Arg(0)->UseRealTime();

void raw_bench(benchmark::State& state, bool evalsha) {
  const Context c = raw_connect();
  if (!c) {
    state.SkipWithError("cannot connect");
    return;
  }
  const std::string sha = load_script(c.get());
  const char* token = "0123456789abcdef0123456789abcdef";
  for (auto _ : state) {
    if (!raw_cycle(c.get(), "bench:raw", token, evalsha, sha)) {
      state.SkipWithError("raw cycle failed");
      break;
    }
  }
}

void BM_raw_cycle(benchmark::State& state) { raw_bench(state, false); }
BENCHMARK(BM_raw_cycle)->UseRealTime();

void BM_raw_evalsha(benchmark::State& state) { raw_bench(state, true); }
BENCHMARK(BM_raw_evalsha)->UseRealTime();

void BM_lease_paired(benchmark::State& state) {
  const Context c = raw_connect();
  if (!c) {
    state.SkipWithError("cannot connect");
    return;
  }
  const std::string sha = load_script(c.get());
  RedisLease lease(options(), "bench:paired", lease_options(state.range(0) != 0));
  const char* token = "0123456789abcdef0123456789abcdef";
  bench::run_paired(
      state, 50, [&] { return raw_cycle(c.get(), "bench:paired-raw", token, false, sha); },
      [&] { return lease.try_lock() && !lease.release(); });
}
BENCHMARK(BM_lease_paired)->ArgName("fence")->Arg(1)->Arg(0)->UseManualTime();

int handoffs() {
  const char* env = std::getenv("LOCKSMITH_BENCH_HANDOFFS");
  const int n = env != nullptr ? std::atoi(env) : 0;
  return n > 0 ? n : 500;
}

// Whether thread `tid` of this process sleeps in poll(2) with a timeout (a waiter on its
// subscription; drain() polls with timeout 0): /proc/self/task/TID/syscall is
// "NR ARG1 ARG2 ARG3 ...", and poll's third argument is its timeout.
bool asleep_in_poll(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long nr = -1;
  std::string fds, nfds, timeout;
  if (!(in >> nr >> fds >> nfds >> timeout)) return false;
  return nr == SYS_poll && timeout != "0x0";
}

void BM_lease_handoff(benchmark::State& state) {
  LeaseOptions o;
  o.backstop.reset();  // only the release notice wakes the waiter
  RedisLease holder(options(), "bench:handoff", o);
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  bool stop = false;
  bool done = false;
  std::string error;
  Clock::time_point acquired_at;
  std::atomic<pid_t> tid{0};
  std::thread waiter([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    RedisLease w(options(), "bench:handoff", o);
    for (;;) {
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return go || stop; });
        if (stop) return;
        go = false;
      }
      const std::error_code ec = w.acquire(LockMode::exclusive, Clock::now() + 10s);
      const auto t = Clock::now();
      if (!ec) (void)w.release();
      const std::lock_guard lk(mu);
      acquired_at = t;
      if (ec) error = "waiter: " + ec.message() + " " + w.last_error();
      done = true;
      cv.notify_all();
    }
  });
  while (tid.load() == 0) std::this_thread::yield();
  // One handoff; its latency in seconds, or an error message. The first one (the waiter connects
  // and subscribes, and connect(2) waits in poll(2) too) is a warm-up.
  const auto handoff = [&](double& latency) -> std::string {
    if (!holder.try_lock()) return "holder: " + holder.last_error();
    {
      const std::lock_guard lk(mu);
      go = true;
      done = false;
    }
    cv.notify_all();
    // Bounded: the waiter is asleep in poll(2) on its subscription within a few round trips.
    const auto until = Clock::now() + 5s;
    while (!asleep_in_poll(tid.load()) && Clock::now() < until) {
      std::this_thread::yield();
    }
    const auto released_at = Clock::now();
    (void)holder.release();
    std::unique_lock lk(mu);
    if (!cv.wait_for(lk, 15s, [&] { return done; })) return "waiter did not get the lock";
    if (!error.empty()) return error;
    latency = std::chrono::duration<double>(acquired_at - released_at).count();
    return "";
  };
  std::vector<double> us;
  double latency = 0;
  std::string failed = handoff(latency);
  for (auto _ : state) {
    if (failed.empty()) failed = handoff(latency);
    if (!failed.empty()) {
      state.SkipWithError(failed.c_str());
      break;
    }
    state.SetIterationTime(latency);
    us.push_back(latency * 1e6);
  }
  {
    const std::lock_guard lk(mu);
    stop = true;
  }
  cv.notify_all();
  waiter.join();
  bench::report_percentiles(state, us);
}
BENCHMARK(BM_lease_handoff)->UseManualTime()->Iterations(handoffs());

}  // namespace
