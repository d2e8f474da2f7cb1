// Redlock benchmarks against 3 and 5 redis-servers started for the run (loopback, no
// persistence):
//
// 1. BM_redlock_cycle/N: Redlock try_lock + unlock, uncontended, on N masters: N SET NX PX round
//    trips, then N compare-delete EVALSHAs, one master after another.
// 2. BM_lease_cycle_one_master: RedisLease try_lock + unlock on one of the same servers (two
//    round trips, with the fence INCR and the PUBLISH), for scale.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "locksmith/redis/lease.hpp"
#include "locksmith/redis/redlock.hpp"
#include "redis_server.hpp"

namespace {

using locksmith::redis::ConnectOptions;
using locksmith::redis::RedisLease;
using locksmith::redis::Redlock;
using locksmith::redis::RedlockOptions;
using locksmith::redis::testing::RedisServer;

// Five servers for the whole run, started on first use and killed at exit.
std::vector<std::unique_ptr<RedisServer>>& servers() {
  static std::vector<std::unique_ptr<RedisServer>> s = [] {
    std::vector<std::unique_ptr<RedisServer>> v;
    for (int i = 0; i < 5; ++i) v.push_back(std::make_unique<RedisServer>());
    return v;
  }();
  return s;
}

std::vector<ConnectOptions> masters(std::size_t n) {
  std::vector<ConnectOptions> out;
  for (std::size_t i = 0; i < n; ++i) {
    ConnectOptions o;
    o.host = servers()[i]->host();
    o.port = servers()[i]->port();
    out.push_back(o);
  }
  return out;
}

void BM_redlock_cycle(benchmark::State& state) {
  RedlockOptions o;
  o.ttl = std::chrono::seconds(30);
  Redlock lock(masters(static_cast<std::size_t>(state.range(0))), "bench:redlock", o);
  for (auto _ : state) {
    if (!lock.try_lock() || lock.release()) {
      state.SkipWithError(("redlock cycle failed: " + lock.last_error()).c_str());
      break;
    }
  }
  state.counters["masters"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_redlock_cycle)->Arg(3)->Arg(5)->UseRealTime();

void BM_lease_cycle_one_master(benchmark::State& state) {
  RedisLease lease(masters(1)[0], "bench:redlock-lease");
  for (auto _ : state) {
    if (!lease.try_lock() || lease.release()) {
      state.SkipWithError(("lease cycle failed: " + lease.last_error()).c_str());
      break;
    }
  }
}
BENCHMARK(BM_lease_cycle_one_master)->UseRealTime();

}  // namespace
