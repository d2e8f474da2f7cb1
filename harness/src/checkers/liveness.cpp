// Liveness (timing family): waits, per-worker successes, starvation, handoffs, and the longest
// stretch during which nobody held the lock while a worker was waiting for it.
//
// Idle while waiting, per host: the union of the workers' waits minus the union of the critical
// sections. A wait is an acquire from invoke to its outcome; a worker that retries within
// kRetryGapNs of a refusal (busy, timeout, error) is still waiting in between. Waits of paused
// workers do not count (a frozen waiter cannot take the lock), and sections count up to their
// drawn end (an open section as held to the end of the history), so idleness is never
// overstated. An idle stretch that overlaps a server fault (from the fault to its end plus the
// bound) is reported apart and not judged: the fault, not the lock, kept the waiters out.
#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "analysis.hpp"

namespace locksmith::harness::checkers_detail {
namespace {

constexpr std::uint64_t kRetryGapNs = 50000000;  // 50 ms

struct Segment {
  std::uint64_t from = 0;
  std::uint64_t to = 0;
};
using Segments = std::vector<Segment>;

struct HostSegments {
  Segments waiting;
  Segments held;
  Segments faults;
};

// Sorted, disjoint, touching segments joined.
Segments merged(Segments s) {
  std::sort(s.begin(), s.end(), [](const Segment& x, const Segment& y) { return x.from < y.from; });
  Segments out;
  for (const Segment& x : s) {
    if (!out.empty() && x.from <= out.back().to) {
      out.back().to = std::max(out.back().to, x.to);
    } else {
      out.push_back(x);
    }
  }
  return out;
}

void add_waits(const Analysis& a, std::map<std::uint8_t, HostSegments>& hosts) {
  struct Last {
    std::size_t index = 0;  // into the host's waiting list
    bool refused = false;
  };
  std::unordered_map<std::uint32_t, Last> last;
  for (const Attempt& at : a.attempts) {
    const bool known = at.outcome != EventType::invoke;
    Segments& waiting = hosts[at.host].waiting;
    auto it = last.find(at.worker);
    if (it != last.end() && it->second.refused && known && !at.paused) {
      Segment& prev = waiting[it->second.index];
      if (at.invoke_ns >= prev.to && at.invoke_ns - prev.to < kRetryGapNs) prev.to = at.invoke_ns;
    }
    if (!known || at.paused) {
      last.erase(at.worker);
      continue;
    }
    waiting.push_back({at.invoke_ns, std::max(at.outcome_ns, at.invoke_ns)});
    last[at.worker] = {waiting.size() - 1, at.outcome != EventType::ok};
  }
}

void add_faults(const Analysis& a, double bound_ns, std::map<std::uint8_t, HostSegments>& hosts) {
  const auto extra = static_cast<std::uint64_t>(bound_ns);
  for (std::size_t i = 0; i < a.faults.size(); ++i) {
    const Event& f = *a.faults[i];
    if (f.type != EventType::fault) continue;
    std::uint64_t end = f.time_ns;
    for (std::size_t j = i + 1; j < a.faults.size(); ++j) {
      const Event& g = *a.faults[j];
      if (g.host != f.host) break;
      if (g.type == EventType::fault_end && g.value == f.value && g.aux == f.aux) {
        end = g.time_ns;
        break;
      }
    }
    hosts[f.host].faults.push_back({f.time_ns, end + extra});
  }
}

struct IdleResult {
  std::uint64_t judged_max = 0;  // ns
  std::uint64_t excused_max = 0;
  std::vector<std::pair<std::uint8_t, Segment>> over;  // judged stretches over the bound
};

bool overlaps_any(const Segments& zones, const Segment& s) {
  auto it = std::upper_bound(zones.begin(), zones.end(), s.to,
                             [](std::uint64_t t, const Segment& z) { return t < z.from; });
  return it != zones.begin() && std::prev(it)->to > s.from;
}

void judge_idle(std::uint8_t host, const HostSegments& hs, double bound_ns, IdleResult& out) {
  const Segments waiting = merged(hs.waiting);
  const Segments held = merged(hs.held);
  const Segments zones = merged(hs.faults);
  auto judge = [&](Segment s) {
    if (s.to <= s.from) return;
    const std::uint64_t len = s.to - s.from;
    if (overlaps_any(zones, s)) {
      out.excused_max = std::max(out.excused_max, len);
      return;
    }
    out.judged_max = std::max(out.judged_max, len);
    if (static_cast<double>(len) > bound_ns) out.over.emplace_back(host, s);
  };
  std::size_t j = 0;
  for (const Segment& w : waiting) {
    while (j < held.size() && held[j].to <= w.from) ++j;
    std::uint64_t cursor = w.from;
    for (std::size_t k = j; k < held.size() && held[k].from < w.to; ++k) {
      if (held[k].from > cursor) judge({cursor, held[k].from});
      cursor = std::max(cursor, held[k].to);
    }
    if (cursor < w.to) judge({cursor, w.to});
  }
}

IdleResult idle_while_waiting(const Analysis& a, double bound_ns) {
  std::map<std::uint8_t, HostSegments> hosts;
  add_waits(a, hosts);
  for (const Interval& x : a.iv) hosts[x.host].held.push_back({x.start_ns, x.end_ns});
  add_faults(a, bound_ns, hosts);
  IdleResult out;
  for (const auto& [host, hs] : hosts) judge_idle(host, hs, bound_ns, out);
  return out;
}

struct Tally {
  struct Counts {
    std::uint64_t attempts = 0;
    std::uint64_t successes = 0;
  };
  std::unordered_map<std::uint32_t, Counts> per_worker;
  std::vector<double> waits;  // ms, of successful acquires
  std::uint64_t busy = 0, timeouts = 0, fails = 0, unknown = 0;
};

Tally tally(const Analysis& a) {
  Tally t;
  for (const Attempt& at : a.attempts) {
    Tally::Counts& c = t.per_worker[at.worker];
    ++c.attempts;
    switch (at.outcome) {
      case EventType::ok:
        ++c.successes;
        t.waits.push_back(
            to_ms(static_cast<double>(at.outcome_ns - std::min(at.outcome_ns, at.invoke_ns))));
        break;
      case EventType::busy:
        ++t.busy;
        break;
      case EventType::timeout:
        ++t.timeouts;
        break;
      case EventType::fail:
        ++t.fails;
        break;
      default:
        ++t.unknown;
        break;
    }
  }
  return t;
}

// Workers that kept trying and never got in while others did, as violations; returns how many.
std::size_t starvation(const Tally& t, CheckResult& r) {
  constexpr std::uint64_t kStarvedAttempts = 10;
  constexpr std::uint64_t kStarvedOthers = 100;
  const std::uint64_t successes = t.waits.size();
  std::vector<std::uint32_t> starved;
  for (const auto& [w, c] : t.per_worker) {
    if (c.successes == 0 && c.attempts >= kStarvedAttempts && successes >= kStarvedOthers) {
      starved.push_back(w);
    }
  }
  std::sort(starved.begin(), starved.end());
  for (std::uint32_t w : starved) {
    Violation v;
    v.workers = {w};
    v.what = "starvation: worker " + std::to_string(w) + " tried " +
             std::to_string(t.per_worker.at(w).attempts) + " times and never got the lock, while " +
             std::to_string(successes) + " acquisitions succeeded";
    add_violation(r, std::move(v));
  }
  return starved.size();
}

void idle_violations(const Analysis& a, const IdleResult& idle, double bound_ms, CheckResult& r) {
  for (const auto& [host, s] : idle.over) {
    Violation v;
    v.from_ns = s.from;
    v.to_ns = s.to;
    v.what = "nobody held the lock for " + fmt_ms(to_ms(static_cast<double>(s.to - s.from))) +
             " ms (from " + a.at(host, s.from) + " on host " + std::to_string(host) +
             ") while a worker was waiting for it (bound " + fmt_ms(bound_ms) + " ms)";
    add_violation(r, std::move(v));
  }
}

}  // namespace

CheckResult liveness_impl(const History& h, const Analysis& a) {
  CheckResult r;
  r.name = "liveness";
  if (a.attempts.empty()) {
    skip(r, "no acquire attempts");
    return r;
  }
  Tally t = tally(a);
  const std::uint64_t successes = t.waits.size();
  std::uint64_t handoffs = 0;
  for (std::size_t k = 1; k < a.order.size(); ++k) {
    const Interval& p = a.iv[a.order[k - 1]];
    const Interval& x = a.iv[a.order[k]];
    handoffs += p.host == x.host && p.worker != x.worker;
  }
  std::uint64_t min_s = ~std::uint64_t{0};
  std::uint64_t max_s = 0;
  std::uint64_t succeeding_workers = 0;
  for (const auto& [w, c] : t.per_worker) {
    min_s = std::min(min_s, c.successes);
    max_s = std::max(max_s, c.successes);
    succeeding_workers += c.successes > 0;
  }
  const std::size_t starved = starvation(t, r);
  const double bound_ms = recovery_bound_ms(h.info, kIdleWhileWaitingDefaultMs);
  const IdleResult idle = idle_while_waiting(a, bound_ms * kNsPerMs);
  idle_violations(a, idle, bound_ms, r);
  const double max_wait = t.waits.empty() ? 0 : *std::max_element(t.waits.begin(), t.waits.end());
  const double p50 = percentile(t.waits, 0.5);
  const double p99 = percentile(t.waits, 0.99);
  const double idle_ms = to_ms(static_cast<double>(idle.judged_max));
  r.metrics["attempts"] = static_cast<double>(a.attempts.size());
  r.metrics["successes"] = static_cast<double>(successes);
  r.metrics["busy"] = static_cast<double>(t.busy);
  r.metrics["timeouts"] = static_cast<double>(t.timeouts);
  r.metrics["fails"] = static_cast<double>(t.fails);
  r.metrics["unknown_outcomes"] = static_cast<double>(t.unknown);
  r.metrics["max_wait_ms"] = max_wait;
  r.metrics["p50_wait_ms"] = p50;
  r.metrics["p99_wait_ms"] = p99;
  r.metrics["workers"] = static_cast<double>(t.per_worker.size());
  r.metrics["min_worker_successes"] = static_cast<double>(min_s);
  r.metrics["max_worker_successes"] = static_cast<double>(max_s);
  r.metrics["handoffs"] = static_cast<double>(handoffs);
  r.metrics["starved_workers"] = static_cast<double>(starved);
  r.metrics["idle_while_waiting_ms_max"] = idle_ms;
  r.metrics["idle_during_faults_ms_max"] = to_ms(static_cast<double>(idle.excused_max));
  r.metrics["idle_bound_ms"] = bound_ms;
  r.summary = std::to_string(successes) + " of " + std::to_string(a.attempts.size()) +
              " acquires succeeded (" + std::to_string(t.per_worker.size()) +
              " workers, per worker " + std::to_string(min_s) + ".." + std::to_string(max_s) +
              "); wait p50 " + fmt_ms(p50) + " ms, p99 " + fmt_ms(p99) + " ms, max " +
              fmt_ms(max_wait) + " ms; " + std::to_string(handoffs) + " handoffs, " +
              std::to_string(starved) + " starved; idle while waited for up to " + fmt_ms(idle_ms) +
              " ms (bound " + fmt_ms(bound_ms) + " ms)";
  const bool enough = successes >= kMinLivenessAcquisitions && succeeding_workers >= 2;
  set_verdict(r, enough,
              "only " + of_needed(successes, kMinLivenessAcquisitions) + " acquisitions, by " +
                  std::to_string(succeeding_workers) + " worker(s) (2 needed)");
  return r;
}

}  // namespace locksmith::harness::checkers_detail
