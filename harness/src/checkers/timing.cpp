// The timing family: timeout accuracy, release after a crash, liveness (waits, starvation, the
// lock left idle while workers waited). Crash recovery and idleness are judged against the
// lock's declared expiry bound when it has one.
#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "analysis.hpp"

namespace locksmith::harness {

double recovery_bound_ms(const RunInfo& info, double default_ms) {
  if (info.expiry_bound_ns < 0) return default_ms;
  const double expiry_ms = checkers_detail::to_ms(static_cast<double>(info.expiry_bound_ns));
  return std::max(default_ms, expiry_ms + kExpiryMarginMs + kExpiryMarginFraction * expiry_ms);
}

namespace checkers_detail {

CheckResult timeout_impl(const History&, const Analysis& a, double slack_ms) {
  CheckResult r;
  r.name = "timeout-accuracy";
  std::vector<double> overshoot;
  std::uint64_t excused = 0;
  for (const Attempt& at : a.attempts) {
    if (at.outcome != EventType::timeout) continue;
    const double waited = static_cast<double>(at.outcome_ns) - static_cast<double>(at.invoke_ns);
    const std::string name = "worker " + std::to_string(at.worker) + " op " + std::to_string(at.op);
    auto violation = [&](std::string what) {
      Violation v;
      v.workers.push_back(at.worker);
      v.from_ns = at.invoke_ns;
      v.to_ns = at.outcome_ns;
      v.what = std::move(what);
      add_violation(r, std::move(v));
    };
    if (at.wait_ns < 0) {
      violation(name + " timed out after " + fmt_ms(to_ms(waited)) +
                " ms although it was asked to wait forever");
      continue;
    }
    const double wait = static_cast<double>(at.wait_ns);
    overshoot.push_back(to_ms(waited - wait));
    const double upper = wait + std::max(slack_ms * kNsPerMs, 0.1 * wait);
    if (waited < wait - 1 * kNsPerMs) {
      violation(name + " gave up after " + fmt_ms(to_ms(waited)) + " ms, before its " +
                fmt_ms(to_ms(wait)) + " ms timeout");
    } else if (waited > upper) {
      if (at.paused) {
        ++excused;  // the nemesis froze the waiter; its lateness is not the lock's
        continue;
      }
      violation(name + " gave up after " + fmt_ms(to_ms(waited)) + " ms, " +
                fmt_ms(to_ms(waited - wait)) + " ms past its " + fmt_ms(to_ms(wait)) +
                " ms timeout (allowed " + fmt_ms(to_ms(upper - wait)) + " ms)");
    }
  }
  const std::size_t n = overshoot.size();
  if (n == 0 && r.violation_count == 0) {
    skip(r, "no acquire timed out");
    return r;
  }
  const double max_over = n ? *std::max_element(overshoot.begin(), overshoot.end()) : 0;
  const double p99 = percentile(overshoot, 0.99);
  r.metrics["timeouts"] = static_cast<double>(n);
  r.metrics["max_overshoot_ms"] = max_over;
  r.metrics["p99_overshoot_ms"] = p99;
  r.metrics["paused_timeouts"] = static_cast<double>(excused);
  r.summary = std::to_string(n) + " timed-out acquires: overshoot max " + fmt_ms(max_over) +
              " ms, p99 " + fmt_ms(p99) + " ms (allowed max(" + fmt_ms(slack_ms) + " ms, 10%))";
  set_verdict(r);  // every timeout is a full measurement (checkers.hpp)
  return r;
}

namespace {

// Crashes in (host, time) order.
std::vector<std::size_t> crashes_by_time(const Analysis& a) {
  std::vector<std::size_t> by_time(a.crashes.size());
  for (std::size_t i = 0; i < by_time.size(); ++i) by_time[i] = i;
  std::sort(by_time.begin(), by_time.end(), [&](std::size_t x, std::size_t y) {
    const Crash& p = a.crashes[x];
    const Crash& q = a.crashes[y];
    return p.host != q.host ? p.host < q.host : p.time_ns < q.time_ns;
  });
  return by_time;
}

// Everybody killed within kGroupNs of crash by_time[k] on the same host: victims killed together
// (the threads of one process) are recorded a few ns apart.
std::vector<std::uint32_t> victims_around(const Analysis& a,
                                          const std::vector<std::size_t>& by_time, std::size_t k) {
  constexpr std::uint64_t kGroupNs = 1000000;
  const Crash& c = a.crashes[by_time[k]];
  std::vector<std::uint32_t> victims;
  for (std::size_t j = k; j-- > 0;) {
    const Crash& o = a.crashes[by_time[j]];
    if (o.host != c.host || c.time_ns - o.time_ns > kGroupNs) break;
    victims.push_back(o.victim);
  }
  for (std::size_t j = k; j < by_time.size(); ++j) {
    const Crash& o = a.crashes[by_time[j]];
    if (o.host != c.host || o.time_ns - c.time_ns > kGroupNs) break;
    victims.push_back(o.victim);
  }
  return victims;
}

// The first grant on the crash's host after it to a worker that is not a victim, or null.
const Interval* next_grant(const Analysis& a, const Crash& c,
                           const std::vector<std::uint32_t>& victims) {
  auto it = std::partition_point(a.order.begin(), a.order.end(), [&](std::uint32_t i) {
    const Interval& x = a.iv[i];
    return x.host < c.host || (x.host == c.host && x.start_ns <= c.time_ns);
  });
  for (; it != a.order.end() && a.iv[*it].host == c.host; ++it) {
    if (std::find(victims.begin(), victims.end(), a.iv[*it].worker) == victims.end()) {
      return &a.iv[*it];
    }
  }
  return nullptr;
}

}  // namespace

CheckResult release_after_crash_impl(const History& h, const Analysis& a, double default_ms) {
  CheckResult r;
  r.name = "release-after-crash";
  if (a.crashes.empty()) {
    skip(r, "no worker was killed");
    return r;
  }
  const double bound_ms = recovery_bound_ms(h.info, default_ms);
  const double bound_ns = bound_ms * kNsPerMs;
  const std::vector<std::size_t> by_time = crashes_by_time(a);
  std::uint64_t holding = 0;
  std::uint64_t with_waiters = 0;
  std::vector<double> recoveries;
  for (std::size_t k = 0; k < by_time.size(); ++k) {
    const Crash& c = a.crashes[by_time[k]];
    if (!c.held || !c.same_host) continue;
    ++holding;
    const std::vector<std::uint32_t> victims = victims_around(a, by_time, k);
    bool waiting = false;
    for (std::uint32_t w : c.waiters) {
      waiting = waiting || std::find(victims.begin(), victims.end(), w) == victims.end();
    }
    const Interval* next = next_grant(a, c, victims);
    const std::string victim = "worker " + std::to_string(c.victim) + " was killed holding the " +
                               "lock at " + a.at(c.host, c.time_ns) + " on host " +
                               std::to_string(c.host) + " with others waiting";
    if (next != nullptr) {
      const double recovery = static_cast<double>(next->start_ns - c.time_ns);
      recoveries.push_back(to_ms(recovery));
      with_waiters += waiting;
      if (!waiting || recovery <= bound_ns) continue;
      Violation v;
      v.workers = {c.victim, next->worker};
      v.from_ns = c.time_ns;
      v.to_ns = next->start_ns;
      v.what = victim + "; the next grant (" + who(*next) + ") came " + fmt_ms(to_ms(recovery)) +
               " ms later (bound " + fmt_ms(bound_ms) + " ms)";
      add_violation(r, std::move(v));
    } else if (waiting && static_cast<double>(a.host_last[c.host] - c.time_ns) > bound_ns) {
      ++with_waiters;
      Violation v;
      v.workers = {c.victim};
      v.from_ns = c.time_ns;
      v.to_ns = a.host_last[c.host];
      v.what = victim + ", and nobody was granted the lock in the " +
               fmt_ms(to_ms(static_cast<double>(v.to_ns - v.from_ns))) +
               " ms the history goes on (bound " + fmt_ms(bound_ms) + " ms)";
      add_violation(r, std::move(v));
    }
  }
  const double max_recovery =
      recoveries.empty() ? 0 : *std::max_element(recoveries.begin(), recoveries.end());
  const double p50 = percentile(recoveries, 0.5);
  r.metrics["crashes"] = static_cast<double>(a.crashes.size());
  r.metrics["crashes_holding"] = static_cast<double>(holding);
  r.metrics["recoveries"] = static_cast<double>(recoveries.size());
  r.metrics["recoveries_with_waiters"] = static_cast<double>(with_waiters);
  r.metrics["max_recovery_ms"] = max_recovery;
  r.metrics["recovery_ms_max"] = max_recovery;
  r.metrics["recovery_ms_p50"] = p50;
  r.metrics["bound_ms"] = bound_ms;
  r.summary = std::to_string(a.crashes.size()) + " workers killed, " + std::to_string(holding) +
              " holding the lock, " + std::to_string(with_waiters) +
              " with others waiting: time to the next grant max " + fmt_ms(max_recovery) +
              " ms, p50 " + fmt_ms(p50) + " ms (bound " + fmt_ms(bound_ms) + " ms" +
              (h.info.expiry_bound_ns >= 0 ? ", from the lock's expiry bound" : "") + ")";
  set_verdict(r, with_waiters >= kMinRecoveries,
              "no holder was killed while another worker waited for the lock, so recovery "
              "was not exercised");
  return r;
}

}  // namespace checkers_detail
}  // namespace locksmith::harness
