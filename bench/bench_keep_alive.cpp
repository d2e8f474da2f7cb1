// How fast a holder is told that its lock was lost (KeepAlive, keep_alive.hpp): the time from the
// loss to the notify handle becoming readable. Each iteration takes a lock, starts a KeepAlive,
// loses the lock at a random point of the renewal interval, and measures (counters p50_us,
// p90_us, p99_us, max_us; $LOCKSMITH_BENCH_HANDOFFS losses, default 50):
//
// 1. BM_link_broken: a LinkLock (lifetime 300 ms, renewed every 100 ms) whose lock file someone
//    removes (as a breaker does): found by the next renewal, so within one interval.
// 2. BM_lease_deleted: a RedisLease (TTL 300 ms, renewed every 100 ms) whose key is deleted: the
//    next renewal finds another token (none), within one interval.
// 3. BM_pubsub_killed: the pub/sub RedisLock whose subscriber connection is killed (CLIENT
//    KILL): its own thread sees the EOF and pushes the loss; no interval involved.
// 4. BM_lease_server_stopped: a RedisLease (TTL 600 ms) whose server stops answering
//    (SIGSTOP): the loss is detectable locally only when the holder's own bound (TTL - drift)
//    runs out; the keeper declares it then. Counters: told_after_bound_us (p50/p99 of told -
//    bound) and margin_us_min = the smallest (key expiry on the server - told): positive means
//    the holder was told before anyone else could have got the lock.
#include <benchmark/benchmark.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "locksmith/keep_alive.hpp"
#include "locksmith/link_lock.hpp"

#if defined(LOCKSMITH_BENCH_REDIS)
#include "locksmith/redis/connection.hpp"
#include "locksmith/redis/lease.hpp"
#include "locksmith/redis/pubsub_lock.hpp"
#include "redis_server.hpp"
#endif

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::KeepAlive;
namespace bench = locksmith::bench;

int losses() {
  const char* env = std::getenv("LOCKSMITH_BENCH_HANDOFFS");
  const int n = env != nullptr ? std::atoi(env) : 50;
  return n > 0 ? n : 50;
}

// Waits (bounded) for the keeper's handle; returns when it became readable.
Clock::time_point told(const KeepAlive& keeper) {
  struct pollfd p {};
  p.fd = keeper.notify_handle();
  p.events = POLLIN;
  ::poll(&p, 1, 10000);
  return Clock::now();
}

double us_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

// A random point in [0, interval): losses land anywhere in the renewal cycle.
void random_phase(std::mt19937& rng, Clock::duration interval) {
  std::uniform_int_distribution<long long> d(0, std::chrono::nanoseconds(interval).count() - 1);
  std::this_thread::sleep_for(std::chrono::nanoseconds(d(rng)));
}

void BM_link_broken(benchmark::State& state) {
  const auto path = bench::bench_dir() / "keep-alive.lock";
  std::mt19937 rng(42);
  std::vector<double> us;
  for (auto _ : state) {
    for (int i = 0; i < losses(); ++i) {
      locksmith::LinkLockOptions o;
      o.lifetime = 300ms;
      locksmith::LinkLock lock(path, o);
      if (!lock.try_lock()) {
        state.SkipWithError("cannot take the link lock");
        return;
      }
      KeepAlive keeper(lock);
      random_phase(rng, keeper.interval());
      const auto lost = Clock::now();
      std::filesystem::remove(path);
      us.push_back(us_between(lost, told(keeper)));
      keeper.stop();
      (void)lock.release();
    }
  }
  bench::report_percentiles(state, us);
}
BENCHMARK(BM_link_broken)->Iterations(1)->Unit(benchmark::kMillisecond);

#if defined(LOCKSMITH_BENCH_REDIS)
using locksmith::redis::testing::RedisServer;

RedisServer& server() {
  static RedisServer s;
  return s;
}

locksmith::redis::ConnectOptions where() {
  locksmith::redis::ConnectOptions o;
  o.host = server().host();
  o.port = server().port();
  o.command_timeout = 200ms;
  return o;
}

void BM_lease_deleted(benchmark::State& state) {
  locksmith::redis::Connection admin(where());
  std::mt19937 rng(43);
  std::vector<double> us;
  for (auto _ : state) {
    for (int i = 0; i < losses(); ++i) {
      locksmith::redis::LeaseOptions o;
      o.ttl = 300ms;
      locksmith::redis::RedisLease lease(where(), "bench-keep-alive", o);
      if (!lease.try_lock()) {
        state.SkipWithError("cannot take the lease");
        return;
      }
      KeepAlive keeper(lease);
      random_phase(rng, keeper.interval());
      const auto lost = Clock::now();
      (void)admin.command({"DEL", "bench-keep-alive"});
      us.push_back(us_between(lost, told(keeper)));
      keeper.stop();
      (void)lease.release();
    }
  }
  bench::report_percentiles(state, us);
}
BENCHMARK(BM_lease_deleted)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_pubsub_killed(benchmark::State& state) {
  locksmith::redis::Connection admin(where());
  std::vector<double> us;
  for (auto _ : state) {
    for (int i = 0; i < losses(); ++i) {
      locksmith::redis::RedisLock lock(where(), "bench-keep-alive-ch");
      if (!lock.try_lock()) {
        state.SkipWithError("cannot take the pub/sub lock");
        return;
      }
      KeepAlive keeper(lock);
      const auto lost = Clock::now();
      (void)admin.command({"CLIENT", "KILL", "TYPE", "pubsub"});
      us.push_back(us_between(lost, told(keeper)));
      keeper.stop();
      (void)lock.release();
    }
  }
  bench::report_percentiles(state, us);
}
BENCHMARK(BM_pubsub_killed)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_lease_server_stopped(benchmark::State& state) {
  std::vector<double> after_bound;
  double margin_min = 1e18;
  const int n = std::max(1, losses() / 5);  // each costs a TTL
  for (auto _ : state) {
    for (int i = 0; i < n; ++i) {
      locksmith::redis::LeaseOptions o;
      o.ttl = 600ms;
      locksmith::redis::RedisLease lease(where(), "bench-keep-alive-stop", o);
      const auto start = Clock::now();
      if (!lease.try_lock()) {
        state.SkipWithError("cannot take the lease");
        return;
      }
      KeepAlive keeper(lease);
      std::this_thread::sleep_for(50ms);
      ::kill(server().pid(), SIGSTOP);
      (void)told(keeper);
      ::kill(server().pid(), SIGCONT);
      // Failed renewals do not move the bound: it is the last successful renewal's start + TTL -
      // drift, and the key lives on the server at least until that start + TTL.
      const auto bound = lease.valid_until();
      const auto drift = 2ms + o.ttl / 100;
      after_bound.push_back(us_between(bound, keeper.lost_at()));
      margin_min = std::min(margin_min, us_between(keeper.lost_at(), bound + drift));
      (void)start;
      keeper.stop();
      (void)lease.release();
    }
  }
  bench::report_percentiles(state, after_bound, "told_after_bound_");
  state.counters["margin_us_min"] = margin_min;
}
BENCHMARK(BM_lease_server_stopped)->Iterations(1)->Unit(benchmark::kMillisecond);
#endif

}  // namespace
