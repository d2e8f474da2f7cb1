// Checkers over a recorded History. Everything here is a pure function of the history.
//
// How a history becomes critical sections, and what that proves:
// - A worker records `ok` after acquire returned and `release` before it calls release, so the
//   recorded interval [ok, release] lies inside the time the worker really held the lock. Two
//   recorded intervals that overlap therefore prove two real holders at once.
// - The controller records `crash` while the victim is frozen, before it sends SIGKILL, so the
//   victim held the lock at least until the crash event.
// - An interval with neither release nor crash ("open") is drawn up to the end of the history,
//   but a checker counts it only up to the last event its own worker recorded: past that we
//   cannot tell whether the worker still held the lock (it may have stopped recording when its
//   history file filled up, or died unrecorded), and a checker reports only what it can prove.
// - Clocks of different hosts are never compared: every time-based sweep runs per host.
// - Sweeps are O(n log n): intervals in start order, a min-heap of the ends of the active ones.
#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "locksmith/harness/checkers.hpp"

namespace locksmith::harness {
namespace {

constexpr double kNsPerMs = 1e6;
constexpr std::size_t kMaxNamed = 4;  // conflicting holders named in one violation

double to_ms(double ns) { return ns / kNsPerMs; }

std::string fmt_ms(double ms) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3f", ms);
  return buf;
}

const char* mode_name(Mode m) { return m == Mode::shared ? "shared" : "exclusive"; }

bool is_controller_event(EventType t) {
  return t == EventType::crash || t == EventType::pause || t == EventType::resume;
}

void add_violation(CheckResult& r, Violation v) {
  ++r.violation_count;
  if (r.violations.size() < kMaxViolations) r.violations.push_back(std::move(v));
}

void set_verdict(CheckResult& r) {
  r.verdict = r.violation_count > 0 ? Verdict::fail : Verdict::pass;
}

void skip(CheckResult& r, std::string why) {
  r.verdict = Verdict::skipped;
  r.summary = std::move(why);
}

// Percentile of `v` (which is reordered); 0 when empty.
double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const double rank = std::ceil(p * static_cast<double>(v.size()));  // nearest-rank, 1-based
  const std::size_t i = std::min(v.size(), static_cast<std::size_t>(std::max(rank, 1.0))) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

// One acquire attempt: invoke and its outcome (EventType::invoke when the outcome is unknown).
struct Attempt {
  std::uint32_t worker = 0;
  std::uint32_t op = 0;
  std::uint8_t host = 0;
  EventType outcome = EventType::invoke;
  bool paused = false;  // the controller paused the worker while it waited
  std::uint64_t invoke_ns = 0;
  std::uint64_t outcome_ns = 0;
  std::int64_t wait_ns = -1;  // what acquire was asked to wait
};

// A crash event, with what was going on on its host at that moment.
struct Crash {
  std::uint32_t victim = 0;
  std::uint8_t host = 0;
  std::uint64_t time_ns = 0;
  bool held = false;                   // the victim had an interval open at the crash
  bool same_host = true;               // recorded on the victim's own host (times comparable)
  std::vector<std::uint32_t> waiters;  // workers of that host with an acquire in progress
};

struct WorkerState {
  std::uint8_t host = 0;
  bool seen_own = false;
  std::uint64_t last_own_ns = 0;    // last event the worker itself recorded
  std::int64_t pending = -1;        // index into Analysis::attempts of the acquire in progress
  std::size_t pending_pos = 0;      // its position in the host's pending list
  std::vector<std::uint32_t> open;  // intervals begun and not yet ended
};

// Per-worker state, dense for the small ids the engine hands out.
class WorkerTable {
 public:
  WorkerState& get(std::uint32_t w) {
    if (w < kDirect) {
      if (w >= direct_.size()) direct_.resize(static_cast<std::size_t>(w) + 1, 0);
      std::uint32_t& slot = direct_[w];
      if (slot == 0) {
        states_.emplace_back();
        slot = static_cast<std::uint32_t>(states_.size());
      }
      return states_[slot - 1];
    }
    auto [it, fresh] = far_.try_emplace(w, 0);
    if (fresh) {
      states_.emplace_back();
      it->second = static_cast<std::uint32_t>(states_.size());
    }
    return states_[it->second - 1];
  }
  template <class F>
  void for_each(F&& f) {
    for (WorkerState& st : states_) f(st);
  }

 private:
  static constexpr std::uint32_t kDirect = 1u << 20;
  std::vector<std::uint32_t> direct_;  // id -> index + 1 (0: none yet)
  std::unordered_map<std::uint32_t, std::uint32_t> far_;
  std::vector<WorkerState> states_;
};

// Everything the checkers need, derived from the events in one pass.
struct Analysis {
  const std::vector<Event>* input = nullptr;
  bool use_copy = false;
  std::vector<Event> sorted_copy;         // when the input was not sorted by (host, time_ns)
  std::vector<Interval> iv;               // sorted by (host, start_ns)
  std::vector<std::uint64_t> proven_end;  // per interval: held at least until here
  std::vector<std::uint32_t> order;       // iv indices by (host, start, proven_end)
  std::vector<Attempt> attempts;
  std::vector<Crash> crashes;
  std::array<bool, 256> host_seen{};
  std::array<std::uint64_t, 256> host_first{};
  std::array<std::uint64_t, 256> host_last{};
  std::size_t hosts = 0;

  // The events sorted by (host, time_ns, worker).
  const std::vector<Event>& events() const { return use_copy ? sorted_copy : *input; }

  // Milliseconds since the first event of the host, for messages.
  std::string at(std::uint8_t host, std::uint64_t t) const {
    return "+" + fmt_ms(to_ms(static_cast<double>(t - std::min(t, host_first[host])))) + " ms";
  }
};

bool event_less(const Event& a, const Event& b) {
  if (a.host != b.host) return a.host < b.host;
  if (a.time_ns != b.time_ns) return a.time_ns < b.time_ns;
  return a.worker < b.worker;
}

bool event_sorted_less(const Event& a, const Event& b) {
  if (a.host != b.host) return a.host < b.host;
  return a.time_ns < b.time_ns;
}

Analysis analyse(const History& h) {
  Analysis a;
  a.input = &h.events;
  if (!std::is_sorted(h.events.begin(), h.events.end(), event_sorted_less)) {
    a.sorted_copy = h.events;
    std::stable_sort(a.sorted_copy.begin(), a.sorted_copy.end(), event_less);
    a.use_copy = true;
  }
  const std::vector<Event>& events = a.events();

  WorkerTable workers;
  // Which host each worker records on, so that a crash recorded on another host (clocks not
  // comparable) can be told apart.
  for (const Event& e : events) {
    if (is_controller_event(e.type)) continue;
    WorkerState& st = workers.get(e.worker);
    if (!st.seen_own) {
      st.seen_own = true;
      st.host = e.host;
    }
  }

  std::array<std::vector<std::uint32_t>, 256> pending_by_host;
  auto clear_pending = [&](std::uint32_t worker, WorkerState& st) {
    if (st.pending < 0) return;
    auto& list = pending_by_host[a.attempts[static_cast<std::size_t>(st.pending)].host];
    const std::size_t pos = st.pending_pos;
    if (pos < list.size() && list[pos] == worker) {
      list[pos] = list.back();
      list.pop_back();
      if (pos < list.size()) workers.get(list[pos]).pending_pos = pos;
    }
    st.pending = -1;
  };
  auto end_by_crash = [&](WorkerState& st, std::uint64_t end) {
    for (std::uint32_t i : st.open) {
      Interval& x = a.iv[i];
      x.ended_by_crash = true;
      x.end_ns = std::max(end, x.start_ns);
      a.proven_end[i] = x.end_ns;
    }
    st.open.clear();
  };

  std::vector<const Event*> deferred_crashes;
  a.iv.reserve(events.size() / 4 + 1);
  a.proven_end.reserve(events.size() / 4 + 1);
  a.attempts.reserve(events.size() / 4 + 1);

  for (const Event& e : events) {
    if (!a.host_seen[e.host]) {
      a.host_seen[e.host] = true;
      a.host_first[e.host] = e.time_ns;
      ++a.hosts;
    }
    a.host_last[e.host] = std::max(a.host_last[e.host], e.time_ns);
    WorkerState& st = workers.get(e.worker);
    const std::uint64_t previous_own_ns = st.last_own_ns;
    if (!is_controller_event(e.type)) st.last_own_ns = e.time_ns;

    switch (e.type) {
      case EventType::invoke: {
        // A worker acquires one lock at a time: a section still open when it starts another
        // acquire ended unrecorded, after the worker's previous record at the latest provable.
        for (std::uint32_t i : st.open) {
          Interval& x = a.iv[i];
          x.open = true;
          x.end_ns = std::max(previous_own_ns, x.start_ns);
          a.proven_end[i] = x.end_ns;
        }
        st.open.clear();
        clear_pending(e.worker, st);
        Attempt at;
        at.worker = e.worker;
        at.op = e.op;
        at.host = e.host;
        at.invoke_ns = e.time_ns;
        at.wait_ns = e.value;
        st.pending = static_cast<std::int64_t>(a.attempts.size());
        a.attempts.push_back(at);
        st.pending_pos = pending_by_host[e.host].size();
        pending_by_host[e.host].push_back(e.worker);
        break;
      }
      case EventType::ok:
      case EventType::busy:
      case EventType::timeout:
      case EventType::fail: {
        std::uint64_t invoke_ns = e.time_ns;
        if (st.pending >= 0) {
          Attempt& at = a.attempts[static_cast<std::size_t>(st.pending)];
          if (at.op == e.op) {
            at.outcome = e.type;
            at.outcome_ns = e.time_ns;
            invoke_ns = at.invoke_ns;
          }
          clear_pending(e.worker, st);
        }
        if (e.type != EventType::ok) break;
        Interval x;
        x.worker = e.worker;
        x.op = e.op;
        x.host = e.host;
        x.mode = e.mode;
        x.invoke_ns = invoke_ns;
        x.start_ns = e.time_ns;
        x.fence = e.value >= 0 ? e.value : -1;
        x.witness_writers = e.witness_writers;
        x.witness_readers = e.witness_readers;
        st.open.push_back(static_cast<std::uint32_t>(a.iv.size()));
        a.iv.push_back(x);
        a.proven_end.push_back(e.time_ns);
        break;
      }
      case EventType::release: {
        for (std::size_t k = st.open.size(); k-- > 0;) {
          const std::uint32_t i = st.open[k];
          Interval& x = a.iv[i];
          if (x.op != e.op) continue;
          x.end_ns = std::max(e.time_ns, x.start_ns);
          x.counter = e.value;
          x.witness_overwritten = e.aux == 1;
          a.proven_end[i] = x.end_ns;
          st.open.erase(st.open.begin() + static_cast<std::ptrdiff_t>(k));
          break;
        }
        break;
      }
      case EventType::crash: {
        if (st.seen_own && st.host != e.host) {
          deferred_crashes.push_back(&e);
          break;
        }
        Crash c;
        c.victim = e.worker;
        c.host = e.host;
        c.time_ns = e.time_ns;
        c.held = !st.open.empty();
        clear_pending(e.worker, st);
        c.waiters = pending_by_host[e.host];
        a.crashes.push_back(std::move(c));
        end_by_crash(st, e.time_ns);
        break;
      }
      case EventType::pause:
        if (st.pending >= 0) a.attempts[static_cast<std::size_t>(st.pending)].paused = true;
        break;
      case EventType::released:
      case EventType::release_fail:
      case EventType::resume:
      case EventType::read:
      case EventType::write:
      case EventType::put:
      case EventType::take:
      case EventType::stored:
      case EventType::fenced_write:
      case EventType::fault:
      case EventType::fault_end:
      case EventType::lost:
      case EventType::run_end:
      case EventType::header:
        break;
    }
  }

  // A crash recorded on another host's clock: the victim's open intervals end at its own last
  // event, the latest moment we know it was alive.
  for (const Event* e : deferred_crashes) {
    WorkerState& st = workers.get(e->worker);
    Crash c;
    c.victim = e->worker;
    c.host = e->host;
    c.time_ns = e->time_ns;
    c.held = !st.open.empty();
    c.same_host = false;
    clear_pending(e->worker, st);
    a.crashes.push_back(std::move(c));
    end_by_crash(st, st.last_own_ns);
  }

  // Still open at the end: drawn to the end of the host's history, proven only to the worker's
  // own last event.
  workers.for_each([&](WorkerState& st) {
    for (std::uint32_t i : st.open) {
      Interval& x = a.iv[i];
      x.open = true;
      x.end_ns = std::max(a.host_last[x.host], x.start_ns);
      a.proven_end[i] = std::max(st.last_own_ns, x.start_ns);
    }
    st.open.clear();
  });

  // Ties in start time go shortest first, so that an interval that ends exactly where another
  // begins is never taken for an overlap.
  a.order.resize(a.iv.size());
  for (std::size_t i = 0; i < a.order.size(); ++i) a.order[i] = static_cast<std::uint32_t>(i);
  auto key_less = [&](std::uint32_t x, std::uint32_t y) {
    const Interval& p = a.iv[x];
    const Interval& q = a.iv[y];
    if (p.host != q.host) return p.host < q.host;
    if (p.start_ns != q.start_ns) return p.start_ns < q.start_ns;
    return a.proven_end[x] < a.proven_end[y];
  };
  if (!std::is_sorted(a.order.begin(), a.order.end(), key_less)) {
    std::stable_sort(a.order.begin(), a.order.end(), key_less);
  }
  return a;
}

std::string who(const Interval& x) {
  return "worker " + std::to_string(x.worker) + " op " + std::to_string(x.op) + " (" +
         mode_name(x.mode) + ")";
}

// Active intervals of one host: a min-heap on proven end.
using Entry = std::pair<std::uint64_t, std::uint32_t>;  // (proven_end, interval)
class ActiveSet {
 public:
  void expire(std::uint64_t now) {
    while (!heap_.empty() && heap_.front().first <= now) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
      heap_.pop_back();
    }
  }
  void add(std::uint64_t end, std::uint32_t i) {
    heap_.emplace_back(end, i);
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  }
  void clear() { heap_.clear(); }
  std::size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }
  // After expire(now), every element is active at `now`.
  const std::vector<Entry>& items() const { return heap_; }

 private:
  std::vector<Entry> heap_;
};

// Calls on_entry(i, exclusive_active, shared_active) for every interval in (host, start)
// order, with the sets of intervals of the same host active when it began.
template <class F>
void sweep(const Analysis& a, F&& on_entry) {
  ActiveSet excl;
  ActiveSet shared;
  int host = -1;
  for (std::uint32_t i : a.order) {
    const Interval& x = a.iv[i];
    if (x.host != host) {
      host = x.host;
      excl.clear();
      shared.clear();
    }
    excl.expire(x.start_ns);
    shared.expire(x.start_ns);
    on_entry(i, excl, shared);
    (x.mode == Mode::shared ? shared : excl).add(a.proven_end[i], i);
  }
}

// A violation for interval `i` entering while the holders in `sets` were active.
Violation overlap_violation(const Analysis& a, std::uint32_t i,
                            std::initializer_list<const ActiveSet*> sets, const std::string& what) {
  const Interval& x = a.iv[i];
  std::vector<std::uint32_t> others;
  std::size_t total = 0;
  for (const ActiveSet* s : sets) {
    total += s->size();
    for (const Entry& en : s->items()) {
      if (others.size() < kMaxNamed) others.push_back(en.second);
    }
  }
  Violation v;
  v.workers.push_back(x.worker);
  const Interval& first = a.iv[others.front()];
  std::uint64_t to = a.proven_end[i];
  for (std::uint32_t o : others) to = std::min(to, std::max(a.proven_end[o], x.start_ns));
  v.from_ns = x.start_ns;
  v.to_ns = std::max(to, x.start_ns);
  v.what = what + ": " + who(x) + " was granted the lock at " + a.at(x.host, x.start_ns) +
           " on host " + std::to_string(x.host) + " while " + who(first) + " held it (since " +
           a.at(first.host, first.start_ns) + ")";
  for (std::size_t k = 1; k < others.size(); ++k) v.what += ", " + who(a.iv[others[k]]);
  if (total > others.size()) {
    v.what += " and " + std::to_string(total - others.size()) + " more";
  }
  v.what += "; overlap " + fmt_ms(to_ms(static_cast<double>(v.to_ns - v.from_ns))) + " ms";
  for (std::uint32_t o : others) {
    if (std::find(v.workers.begin(), v.workers.end(), a.iv[o].worker) == v.workers.end()) {
      v.workers.push_back(a.iv[o].worker);
    }
  }
  return v;
}

Violation witness_violation(const Analysis& a, const Interval& x, const std::string& saw) {
  Violation v;
  v.workers.push_back(x.worker);
  v.from_ns = x.start_ns;
  v.to_ns = x.end_ns;
  v.what = "occupancy witness: " + who(x) + " entered at " + a.at(x.host, x.start_ns) +
           " on host " + std::to_string(x.host) + " and saw " + saw + " inside";
  return v;
}

std::string count_holders(std::uint32_t writers, std::uint32_t readers) {
  std::string s;
  if (writers > 0) s += std::to_string(writers) + " exclusive holder" + (writers > 1 ? "s" : "");
  if (readers > 0) {
    if (!s.empty()) s += " and ";
    s += std::to_string(readers) + " shared holder" + (readers > 1 ? "s" : "");
  }
  return s;
}

std::string hosts_note(const Analysis& a) {
  return a.hosts == 1 ? "1 host" : std::to_string(a.hosts) + " hosts";
}

CheckResult exclusion_impl(const History& h, const Analysis& a) {
  CheckResult r;
  r.name = "exclusion";
  if (h.info.max_holders > 1) {
    skip(r, "not applicable: a semaphore admits " + std::to_string(h.info.max_holders) +
                " holders (see semaphore-bound)");
    return r;
  }
  std::uint64_t overlapping_pairs = 0;
  std::uint64_t time_violations = 0;
  sweep(a, [&](std::uint32_t i, const ActiveSet& excl, const ActiveSet& shared) {
    const Interval& x = a.iv[i];
    const bool conflict =
        x.mode == Mode::exclusive ? !excl.empty() || !shared.empty() : !excl.empty();
    if (!conflict) return;
    ++time_violations;
    overlapping_pairs += excl.size() + (x.mode == Mode::exclusive ? shared.size() : 0);
    if (x.mode == Mode::exclusive) {
      add_violation(r, overlap_violation(a, i, {&excl, &shared}, "overlap"));
    } else {
      add_violation(r, overlap_violation(a, i, {&excl}, "overlap"));
    }
  });
  std::uint64_t witness_violations = 0;
  std::uint64_t overwritten = 0;
  for (const Interval& x : a.iv) {
    const bool bad_witness = x.mode == Mode::exclusive ? x.witness_writers + x.witness_readers > 0
                                                       : x.witness_writers > 0;
    if (bad_witness) {
      ++witness_violations;
      add_violation(
          r, witness_violation(a, x,
                               count_holders(x.witness_writers,
                                             x.mode == Mode::exclusive ? x.witness_readers : 0)));
    }
    if (x.witness_overwritten) {
      ++overwritten;
      Violation v;
      v.workers.push_back(x.worker);
      v.from_ns = x.start_ns;
      v.to_ns = x.end_ns;
      v.what = "owner witness: " + who(x) + " (from " + a.at(x.host, x.start_ns) + " on host " +
               std::to_string(x.host) +
               ") found its owner mark in the guarded file overwritten by another holder";
      add_violation(r, std::move(v));
    }
  }
  r.metrics["critical_sections"] = static_cast<double>(a.iv.size());
  r.metrics["overlaps"] = static_cast<double>(time_violations);
  r.metrics["overlapping_pairs"] = static_cast<double>(overlapping_pairs);
  r.metrics["witness_violations"] = static_cast<double>(witness_violations);
  r.metrics["witness_overwritten"] = static_cast<double>(overwritten);
  r.summary = std::to_string(a.iv.size()) + " critical sections on " + hosts_note(a) + ": " +
              std::to_string(time_violations) + " overlaps, " + std::to_string(witness_violations) +
              " occupancy witness violations, " + std::to_string(overwritten) +
              " overwritten owner witnesses";
  set_verdict(r);
  return r;
}

CheckResult shared_exclusive_impl(const History&, const Analysis& a) {
  CheckResult r;
  r.name = "shared-exclusive";
  std::uint64_t shared_n = 0;
  for (const Interval& x : a.iv) shared_n += x.mode == Mode::shared;
  if (shared_n == 0) {
    skip(r, "no shared critical sections");
    return r;
  }
  std::uint64_t conflicts = 0;
  std::uint64_t reader_overlaps = 0;
  std::size_t max_readers = 0;
  sweep(a, [&](std::uint32_t i, const ActiveSet& excl, const ActiveSet& shared) {
    const Interval& x = a.iv[i];
    if (x.mode == Mode::shared) {
      max_readers = std::max(max_readers, shared.size() + 1);
      if (!shared.empty()) ++reader_overlaps;
      if (!excl.empty()) {
        ++conflicts;
        add_violation(r, overlap_violation(a, i, {&excl}, "reader with writer"));
      }
    } else if (!shared.empty()) {
      ++conflicts;
      add_violation(r, overlap_violation(a, i, {&shared}, "writer with readers"));
    }
  });
  std::uint64_t witness_violations = 0;
  for (const Interval& x : a.iv) {
    if (x.mode == Mode::shared && x.witness_writers > 0) {
      ++witness_violations;
      add_violation(r, witness_violation(a, x, count_holders(x.witness_writers, 0)));
    } else if (x.mode == Mode::exclusive && x.witness_readers > 0) {
      ++witness_violations;
      add_violation(r, witness_violation(a, x, count_holders(0, x.witness_readers)));
    }
  }
  r.metrics["shared_sections"] = static_cast<double>(shared_n);
  r.metrics["exclusive_sections"] = static_cast<double>(a.iv.size() - shared_n);
  r.metrics["max_concurrent_readers"] = static_cast<double>(max_readers);
  r.metrics["reader_overlaps"] = static_cast<double>(reader_overlaps);
  r.metrics["witness_violations"] = static_cast<double>(witness_violations);
  r.summary = std::to_string(shared_n) + " shared and " + std::to_string(a.iv.size() - shared_n) +
              " exclusive critical sections: " + std::to_string(conflicts) +
              " reader/writer overlaps, " + std::to_string(witness_violations) +
              " occupancy witness violations; up to " + std::to_string(max_readers) +
              " readers at once";
  set_verdict(r);
  return r;
}

CheckResult semaphore_impl(const History& h, const Analysis& a) {
  CheckResult r;
  r.name = "semaphore-bound";
  const std::size_t bound = std::max<std::uint32_t>(h.info.max_holders, 1);
  std::size_t max_seen = 0;
  std::uint64_t over = 0;
  sweep(a, [&](std::uint32_t i, const ActiveSet& excl, const ActiveSet& shared) {
    const std::size_t holders = excl.size() + shared.size() + 1;
    max_seen = std::max(max_seen, holders);
    if (holders <= bound) return;
    ++over;
    add_violation(r, overlap_violation(a, i, {&excl, &shared},
                                       std::to_string(holders) + " holders at once (bound " +
                                           std::to_string(bound) + ")"));
  });
  std::uint64_t witness_violations = 0;
  for (const Interval& x : a.iv) {
    const std::uint64_t seen = std::uint64_t{x.witness_writers} + x.witness_readers;
    if (seen + 1 > bound) {
      ++witness_violations;
      add_violation(r, witness_violation(a, x,
                                         count_holders(x.witness_writers, x.witness_readers) +
                                             " (bound " + std::to_string(bound) + ")"));
    }
  }
  r.metrics["critical_sections"] = static_cast<double>(a.iv.size());
  r.metrics["max_holders"] = static_cast<double>(bound);
  r.metrics["max_concurrent"] = static_cast<double>(max_seen);
  r.metrics["witness_violations"] = static_cast<double>(witness_violations);
  r.summary = std::to_string(a.iv.size()) + " critical sections on " + hosts_note(a) + ", bound " +
              std::to_string(bound) + ": up to " + std::to_string(max_seen) + " at once, " +
              std::to_string(over) + " entries over the bound, " +
              std::to_string(witness_violations) + " occupancy witness violations";
  set_verdict(r);
  return r;
}

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
  set_verdict(r);
  return r;
}

CheckResult release_after_crash_impl(const History&, const Analysis& a, double bound_ms) {
  CheckResult r;
  r.name = "release-after-crash";
  if (a.crashes.empty()) {
    skip(r, "no worker was killed");
    return r;
  }
  // Victims killed together (the threads of one process) are recorded a few ns apart.
  constexpr std::uint64_t kGroupNs = 1000000;
  std::vector<std::size_t> by_time(a.crashes.size());
  for (std::size_t i = 0; i < by_time.size(); ++i) by_time[i] = i;
  std::sort(by_time.begin(), by_time.end(), [&](std::size_t x, std::size_t y) {
    const Crash& p = a.crashes[x];
    const Crash& q = a.crashes[y];
    return p.host != q.host ? p.host < q.host : p.time_ns < q.time_ns;
  });
  const double bound_ns = bound_ms * kNsPerMs;
  std::uint64_t holding = 0;
  std::uint64_t measured = 0;
  double max_recovery = 0;
  for (std::size_t k = 0; k < by_time.size(); ++k) {
    const Crash& c = a.crashes[by_time[k]];
    if (!c.held || !c.same_host) continue;
    ++holding;
    // Everybody killed within kGroupNs of this crash on the same host counts as a victim.
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
    auto is_victim = [&](std::uint32_t w) {
      return std::find(victims.begin(), victims.end(), w) != victims.end();
    };
    bool waiting = false;
    for (std::uint32_t w : c.waiters) waiting = waiting || !is_victim(w);
    // The first grant on this host after the crash to someone else.
    auto it = std::partition_point(a.order.begin(), a.order.end(), [&](std::uint32_t i) {
      const Interval& x = a.iv[i];
      return x.host < c.host || (x.host == c.host && x.start_ns <= c.time_ns);
    });
    const Interval* next = nullptr;
    for (; it != a.order.end() && a.iv[*it].host == c.host; ++it) {
      if (!is_victim(a.iv[*it].worker)) {
        next = &a.iv[*it];
        break;
      }
    }
    const std::string victim = "worker " + std::to_string(c.victim);
    if (next != nullptr) {
      const double recovery = static_cast<double>(next->start_ns - c.time_ns);
      ++measured;
      max_recovery = std::max(max_recovery, recovery);
      if (waiting && recovery > bound_ns) {
        Violation v;
        v.workers = {c.victim, next->worker};
        v.from_ns = c.time_ns;
        v.to_ns = next->start_ns;
        v.what = victim + " was killed holding the lock at " + a.at(c.host, c.time_ns) +
                 " on host " + std::to_string(c.host) + " with others waiting; the next grant (" +
                 who(*next) + ") came " + fmt_ms(to_ms(recovery)) + " ms later (bound " +
                 fmt_ms(bound_ms) + " ms)";
        add_violation(r, std::move(v));
      }
    } else if (waiting && static_cast<double>(a.host_last[c.host] - c.time_ns) > bound_ns) {
      Violation v;
      v.workers = {c.victim};
      v.from_ns = c.time_ns;
      v.to_ns = a.host_last[c.host];
      v.what = victim + " was killed holding the lock at " + a.at(c.host, c.time_ns) + " on host " +
               std::to_string(c.host) +
               " with others waiting, and nobody was granted the lock in the " +
               fmt_ms(to_ms(static_cast<double>(v.to_ns - v.from_ns))) +
               " ms the history goes on (bound " + fmt_ms(bound_ms) + " ms)";
      add_violation(r, std::move(v));
    }
  }
  r.metrics["crashes"] = static_cast<double>(a.crashes.size());
  r.metrics["crashes_holding"] = static_cast<double>(holding);
  r.metrics["recoveries"] = static_cast<double>(measured);
  r.metrics["max_recovery_ms"] = to_ms(max_recovery);
  r.summary = std::to_string(a.crashes.size()) + " workers killed, " + std::to_string(holding) +
              " holding the lock: max time to the next grant " + fmt_ms(to_ms(max_recovery)) +
              " ms (bound " + fmt_ms(bound_ms) + " ms)";
  set_verdict(r);
  return r;
}

CheckResult lost_updates_impl(const History&, const Analysis& a,
                              std::optional<std::int64_t> final_value) {
  CheckResult r;
  r.name = "lost-updates";
  std::vector<std::uint32_t> reads;
  std::uint64_t unknown = 0;
  for (std::uint32_t i = 0; i < a.iv.size(); ++i) {
    const Interval& x = a.iv[i];
    if (x.counter >= 0) {
      reads.push_back(i);
    } else if (x.mode == Mode::exclusive && (x.ended_by_crash || x.open)) {
      ++unknown;  // may or may not have written its increment
    }
  }
  if (reads.empty() && !final_value) {
    skip(r, "no counter values recorded");
    return r;
  }
  std::stable_sort(reads.begin(), reads.end(), [&](std::uint32_t x, std::uint32_t y) {
    return a.iv[x].counter < a.iv[y].counter;
  });
  std::uint64_t repeats = 0;
  std::size_t distinct = 0;
  for (std::size_t k = 0; k < reads.size(); ++k) {
    if (k == 0 || a.iv[reads[k]].counter != a.iv[reads[k - 1]].counter) {
      ++distinct;
      continue;
    }
    std::size_t first_k = k - 1;
    while (first_k > 0 && a.iv[reads[first_k - 1]].counter == a.iv[reads[k]].counter) --first_k;
    const Interval& p = a.iv[reads[first_k]];
    const Interval& q = a.iv[reads[k]];
    ++repeats;
    Violation v;
    v.workers = {p.worker};
    if (q.worker != p.worker) v.workers.push_back(q.worker);
    v.from_ns = std::min(p.start_ns, q.start_ns);
    v.to_ns = std::max(p.end_ns, q.end_ns);
    v.what = "lost update: " + who(p) + " (host " + std::to_string(p.host) + ", " +
             a.at(p.host, p.start_ns) + ") and " + who(q) + " (host " + std::to_string(q.host) +
             ", " + a.at(q.host, q.start_ns) + ") both read counter value " +
             std::to_string(q.counter);
    add_violation(r, std::move(v));
  }
  const std::uint64_t completed = reads.size();
  const std::int64_t max_read = reads.empty() ? -1 : a.iv[reads.back()].counter;
  if (final_value) {
    const std::int64_t f = *final_value;
    const auto lo = static_cast<std::int64_t>(completed);
    const auto hi = static_cast<std::int64_t>(completed + unknown);
    if (f < lo || f > hi) {
      Violation v;
      v.what =
          "final counter " + std::to_string(f) + " but " + std::to_string(completed) +
          " increments completed" +
          (unknown > 0 ? " and " + std::to_string(unknown) + " were cut short by a crash" +
                             " (expected " + std::to_string(lo) + ".." + std::to_string(hi) + ")"
                       : " (expected exactly that)");
      add_violation(r, std::move(v));
    }
    if (max_read >= f) {
      Violation v;
      v.what = "final counter " + std::to_string(f) + " is not above the largest value read, " +
               std::to_string(max_read);
      add_violation(r, std::move(v));
    }
    r.metrics["final_value"] = static_cast<double>(f);
  }
  r.metrics["increments"] = static_cast<double>(completed);
  r.metrics["unknown_increments"] = static_cast<double>(unknown);
  r.metrics["distinct_values"] = static_cast<double>(distinct);
  r.metrics["repeated_values"] = static_cast<double>(repeats);
  r.summary = std::to_string(completed) + " increments, " + std::to_string(distinct) +
              " distinct values read, " + std::to_string(repeats) + " repeats" +
              (unknown > 0 ? ", " + std::to_string(unknown) + " cut short by a crash" : "") +
              (final_value ? ", final value " + std::to_string(*final_value) : "");
  set_verdict(r);
  return r;
}

CheckResult atomic_visibility_impl(const History&, const Analysis& a) {
  CheckResult r;
  r.name = "atomic-visibility";
  std::vector<std::int64_t> written;
  std::uint64_t reads = 0;
  for (const Event& e : a.events()) {
    if (e.type == EventType::write) written.push_back(e.value);
    reads += e.type == EventType::read;
  }
  if (reads == 0) {
    skip(r, "no reads recorded");
    return r;
  }
  std::sort(written.begin(), written.end());
  written.erase(std::unique(written.begin(), written.end()), written.end());
  std::uint64_t partial = 0;
  std::uint64_t unknown = 0;
  for (const Event& e : a.events()) {
    if (e.type != EventType::read) continue;
    const std::string name = "worker " + std::to_string(e.worker) + " op " + std::to_string(e.op);
    Violation v;
    v.workers = {e.worker};
    v.from_ns = e.time_ns;
    v.to_ns = e.time_ns;
    if (e.aux == 1) {
      ++partial;
      v.what = name + " read partial or corrupt content (version " + std::to_string(e.value) +
               ") at " + a.at(e.host, e.time_ns) + " on host " + std::to_string(e.host);
      add_violation(r, std::move(v));
    } else if (!std::binary_search(written.begin(), written.end(), e.value)) {
      ++unknown;
      v.what = name + " read version " + std::to_string(e.value) + " at " +
               a.at(e.host, e.time_ns) + " on host " + std::to_string(e.host) +
               ", which no writer published";
      add_violation(r, std::move(v));
    }
  }
  r.metrics["reads"] = static_cast<double>(reads);
  r.metrics["versions"] = static_cast<double>(written.size());
  r.metrics["partial_reads"] = static_cast<double>(partial);
  r.metrics["unknown_versions"] = static_cast<double>(unknown);
  r.summary = std::to_string(reads) + " reads of " + std::to_string(written.size()) +
              " published versions: " + std::to_string(partial) + " partial, " +
              std::to_string(unknown) + " of unpublished versions";
  set_verdict(r);
  return r;
}

// Tokens of exclusive grants strictly increase in grant order on each host. For a lock that
// excludes, grant order is ok order: the earlier holder recorded ok before it released, the later
// after it acquired. A lease can expire under its holder, so there a grant (somewhere between the
// acquire call and the ok event) is provably later than another only when its acquire was called
// after the other's ok: a holder stopped between its grant and its ok event can outlive its lease
// and record its ok after a later, larger grant's. Shared grants, and grants of a semaphore, may
// be concurrent and so are not ordered; for them, and across hosts, only a repeated token is
// provable.
bool expiring_kind(const std::string& kind) {
  return kind == "redis" || kind == "redlock" || kind == "fenced" || kind == "broken-fenced";
}

CheckResult fencing_impl(const History& h, const Analysis& a) {
  CheckResult r;
  r.name = "fencing";
  std::vector<std::uint32_t> tokens;  // exclusive intervals carrying a token, in (host, start)
  std::uint64_t any = 0;
  for (std::uint32_t i : a.order) {
    if (a.iv[i].fence < 0) continue;
    ++any;
    if (a.iv[i].mode == Mode::exclusive) tokens.push_back(i);
  }
  if (any == 0) {
    skip(r, "no grant carried a fencing token");
    return r;
  }
  const bool ordered = h.info.max_holders <= 1;
  const bool expiring = expiring_kind(h.info.kind);
  // The time after which x's grant happened, and whether p's grant provably precedes x's.
  const auto granted_after = [&](const Interval& x) { return expiring ? x.invoke_ns : x.start_ns; };
  const auto before = [&](const Interval& p, const Interval& x) {
    return ordered && p.host == x.host && p.start_ns < granted_after(x);
  };
  std::uint64_t regressions = 0;
  if (ordered) {
    std::vector<std::uint32_t> by_grant = tokens;  // (host, granted_after)
    std::stable_sort(by_grant.begin(), by_grant.end(), [&](std::uint32_t x, std::uint32_t y) {
      const Interval& p = a.iv[x];
      const Interval& q = a.iv[y];
      return p.host != q.host ? p.host < q.host : granted_after(p) < granted_after(q);
    });
    std::size_t next = 0;      // into tokens: grants provably before the current one
    std::int64_t best = -1;    // the largest of their tokens
    std::uint32_t best_i = 0;  // and its interval
    std::uint8_t host = 0;
    for (const std::uint32_t xi : by_grant) {
      const Interval& x = a.iv[xi];
      if (x.host != host) {
        host = x.host;
        best = -1;
      }
      for (; next < tokens.size(); ++next) {
        const Interval& p = a.iv[tokens[next]];
        if (p.host > host || (p.host == host && p.start_ns >= granted_after(x))) break;
        if (p.host == host && p.fence > best) {
          best = p.fence;
          best_i = tokens[next];
        }
      }
      if (best < 0 || x.fence > best) continue;
      ++regressions;
      const Interval& p = a.iv[best_i];
      Violation v;
      v.workers = {x.worker};
      if (p.worker != x.worker) v.workers.push_back(p.worker);
      v.from_ns = p.start_ns;
      v.to_ns = x.start_ns;
      v.what = who(x) + " was granted token " + std::to_string(x.fence) + " at " +
               a.at(host, x.start_ns) + " on host " + std::to_string(host) +
               (expiring ? " (asked at " + a.at(host, x.invoke_ns) + ")" : std::string()) +
               ", after " + who(p) + " had been granted token " + std::to_string(p.fence) + " at " +
               a.at(host, p.start_ns);
      add_violation(r, std::move(v));
    }
  }
  // Repeated tokens the ordering rule above did not already cover.
  std::vector<std::uint32_t> by_token = tokens;
  std::stable_sort(by_token.begin(), by_token.end(),
                   [&](std::uint32_t x, std::uint32_t y) { return a.iv[x].fence < a.iv[y].fence; });
  std::uint64_t repeats = 0;
  for (std::size_t k = 1; k < by_token.size(); ++k) {
    const Interval& p = a.iv[by_token[k - 1]];
    const Interval& x = a.iv[by_token[k]];
    if (p.fence != x.fence) continue;
    if (before(p, x) || before(x, p)) continue;  // counted as a regression above
    ++repeats;
    Violation v;
    v.workers = {p.worker};
    if (x.worker != p.worker) v.workers.push_back(x.worker);
    v.from_ns = std::min(p.start_ns, x.start_ns);
    v.to_ns = std::max(p.start_ns, x.start_ns);
    v.what = who(p) + " (host " + std::to_string(p.host) + ") and " + who(x) + " (host " +
             std::to_string(x.host) + ") were both granted fencing token " +
             std::to_string(x.fence);
    add_violation(r, std::move(v));
  }
  r.metrics["tokens"] = static_cast<double>(any);
  r.metrics["ordered_tokens"] = static_cast<double>(tokens.size());
  r.metrics["regressions"] = static_cast<double>(regressions);
  r.metrics["repeats"] = static_cast<double>(repeats);
  r.summary = std::to_string(tokens.size()) + " exclusive grants with fencing tokens" +
              (ordered ? " checked for strict increase per host" : " checked for repeats") + ": " +
              std::to_string(regressions) + " out of order, " + std::to_string(repeats) +
              " repeated";
  set_verdict(r);
  return r;
}

// The fenced resource's log, in the resource's own order (its sequence numbers, not clocks): an
// accepted write whose token is smaller than one accepted before it is a stale write that got
// through. Rejected writes are the fence doing its job.
CheckResult fenced_writes_impl(const History&, const Analysis& a) {
  CheckResult r;
  r.name = "fenced-writes";
  std::vector<const Event*> writes;
  for (const Event& e : a.events()) {
    if (e.type == EventType::fenced_write) writes.push_back(&e);
  }
  if (writes.empty()) {
    skip(r, "no write reached the fenced resource");
    return r;
  }
  const auto seq = [](const Event* e) { return e->aux < 0 ? -e->aux : e->aux; };
  std::stable_sort(writes.begin(), writes.end(),
                   [&](const Event* x, const Event* y) { return seq(x) < seq(y); });
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  std::uint64_t stale = 0;
  const Event* best = nullptr;  // the accepted write with the largest token so far
  for (const Event* e : writes) {
    if (e->aux < 0) {
      ++rejected;
      continue;
    }
    ++accepted;
    if (best != nullptr && e->value < best->value) {
      ++stale;
      Violation v;
      v.workers = {e->worker};
      if (best->worker != e->worker) v.workers.push_back(best->worker);
      v.from_ns = std::min(best->time_ns, e->time_ns);
      v.to_ns = std::max(best->time_ns, e->time_ns);
      v.what = "stale write accepted: worker " + std::to_string(e->worker) + " op " +
               std::to_string(e->op) + " wrote with token " + std::to_string(e->value) +
               " (resource write #" + std::to_string(seq(e)) + ") after worker " +
               std::to_string(best->worker) + " op " + std::to_string(best->op) +
               " had written with token " + std::to_string(best->value) + " (write #" +
               std::to_string(seq(best)) + ")";
      add_violation(r, std::move(v));
      continue;
    }
    if (best == nullptr || e->value > best->value) best = e;
  }
  // Writes the resource saw but no worker recorded (a holder killed in between) leave gaps.
  const std::int64_t last = seq(writes.back());
  const double unrecorded = static_cast<double>(last) - static_cast<double>(writes.size());
  r.metrics["writes"] = static_cast<double>(writes.size());
  r.metrics["accepted"] = static_cast<double>(accepted);
  r.metrics["rejected"] = static_cast<double>(rejected);
  r.metrics["stale_accepted"] = static_cast<double>(stale);
  r.metrics["unrecorded"] = std::max(0.0, unrecorded);
  r.summary = std::to_string(writes.size()) +
              " writes to the fenced resource: " + std::to_string(accepted) + " accepted, " +
              std::to_string(rejected) + " rejected as stale, " + std::to_string(stale) +
              " stale writes accepted";
  set_verdict(r);
  return r;
}

// In the fenced scenario an expired lease lets a new holder in while the old one is paused:
// those overlaps are expected (the fence, not the lease, protects the resource) and are reported
// as information, not as violations.
CheckResult informational_exclusion(CheckResult r) {
  r.metrics["expired_lease_overlaps"] = r.metrics["overlaps"];
  r.summary +=
      " (informational in a fenced run: leases that expired under a paused holder "
      "may overlap; fenced-writes judges the resource)";
  r.violations.clear();
  r.violation_count = 0;
  set_verdict(r);
  return r;
}

CheckResult liveness_impl(const History&, const Analysis& a) {
  CheckResult r;
  r.name = "liveness";
  if (a.attempts.empty()) {
    skip(r, "no acquire attempts");
    return r;
  }
  constexpr std::uint64_t kStarvedAttempts = 10;
  constexpr std::uint64_t kStarvedOthers = 100;
  struct Counts {
    std::uint64_t attempts = 0;
    std::uint64_t successes = 0;
  };
  std::unordered_map<std::uint32_t, Counts> per_worker;
  std::vector<double> waits;
  std::uint64_t busy = 0, timeouts = 0, fails = 0, unknown = 0;
  for (const Attempt& at : a.attempts) {
    Counts& c = per_worker[at.worker];
    ++c.attempts;
    switch (at.outcome) {
      case EventType::ok:
        ++c.successes;
        waits.push_back(
            to_ms(static_cast<double>(at.outcome_ns - std::min(at.outcome_ns, at.invoke_ns))));
        break;
      case EventType::busy:
        ++busy;
        break;
      case EventType::timeout:
        ++timeouts;
        break;
      case EventType::fail:
        ++fails;
        break;
      default:
        ++unknown;
        break;
    }
  }
  std::uint64_t successes = waits.size();
  std::uint64_t handoffs = 0;
  for (std::size_t k = 1; k < a.order.size(); ++k) {
    const Interval& p = a.iv[a.order[k - 1]];
    const Interval& x = a.iv[a.order[k]];
    handoffs += p.host == x.host && p.worker != x.worker;
  }
  std::uint64_t min_s = ~std::uint64_t{0};
  std::uint64_t max_s = 0;
  std::vector<std::uint32_t> starved;
  for (const auto& [w, c] : per_worker) {
    min_s = std::min(min_s, c.successes);
    max_s = std::max(max_s, c.successes);
    if (c.successes == 0 && c.attempts >= kStarvedAttempts && successes >= kStarvedOthers) {
      starved.push_back(w);
    }
  }
  std::sort(starved.begin(), starved.end());
  for (std::uint32_t w : starved) {
    Violation v;
    v.workers = {w};
    v.what = "starvation: worker " + std::to_string(w) + " tried " +
             std::to_string(per_worker[w].attempts) + " times and never got the lock, while " +
             std::to_string(successes) + " acquisitions succeeded";
    add_violation(r, std::move(v));
  }
  const double max_wait = waits.empty() ? 0 : *std::max_element(waits.begin(), waits.end());
  const double p50 = percentile(waits, 0.5);
  const double p99 = percentile(waits, 0.99);
  r.metrics["attempts"] = static_cast<double>(a.attempts.size());
  r.metrics["successes"] = static_cast<double>(successes);
  r.metrics["busy"] = static_cast<double>(busy);
  r.metrics["timeouts"] = static_cast<double>(timeouts);
  r.metrics["fails"] = static_cast<double>(fails);
  r.metrics["unknown_outcomes"] = static_cast<double>(unknown);
  r.metrics["max_wait_ms"] = max_wait;
  r.metrics["p50_wait_ms"] = p50;
  r.metrics["p99_wait_ms"] = p99;
  r.metrics["workers"] = static_cast<double>(per_worker.size());
  r.metrics["min_worker_successes"] = static_cast<double>(min_s);
  r.metrics["max_worker_successes"] = static_cast<double>(max_s);
  r.metrics["handoffs"] = static_cast<double>(handoffs);
  r.metrics["starved_workers"] = static_cast<double>(starved.size());
  r.summary = std::to_string(successes) + " of " + std::to_string(a.attempts.size()) +
              " acquires succeeded (" + std::to_string(per_worker.size()) +
              " workers, per worker " + std::to_string(min_s) + ".." + std::to_string(max_s) +
              "); wait p50 " + fmt_ms(p50) + " ms, p99 " + fmt_ms(p99) + " ms, max " +
              fmt_ms(max_wait) + " ms; " + std::to_string(handoffs) + " handoffs, " +
              std::to_string(starved.size()) + " starved";
  set_verdict(r);
  return r;
}

}  // namespace

const char* to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::pass:
      return "pass";
    case Verdict::fail:
      return "fail";
    case Verdict::skipped:
      return "skipped";
  }
  return "unknown";
}

std::vector<Interval> intervals(const History& h) { return analyse(h).iv; }

CheckResult check_exclusion(const History& h) { return exclusion_impl(h, analyse(h)); }

CheckResult check_shared_exclusive(const History& h) {
  return shared_exclusive_impl(h, analyse(h));
}

CheckResult check_semaphore_bound(const History& h) { return semaphore_impl(h, analyse(h)); }

CheckResult check_timeout_accuracy(const History& h, double slack_ms) {
  return timeout_impl(h, analyse(h), slack_ms);
}

CheckResult check_release_after_crash(const History& h, double bound_ms) {
  return release_after_crash_impl(h, analyse(h), bound_ms);
}

CheckResult check_lost_updates(const History& h, std::optional<std::int64_t> final_value) {
  return lost_updates_impl(h, analyse(h), final_value);
}

CheckResult check_atomic_visibility(const History& h) {
  return atomic_visibility_impl(h, analyse(h));
}

CheckResult check_fencing(const History& h) { return fencing_impl(h, analyse(h)); }

CheckResult exactly_once_impl(const History&, const Analysis& a) {
  CheckResult r;
  r.name = "exactly-once";
  struct Message {
    std::uint32_t producer = 0;
    bool put = false;
    bool stored = false;
    std::vector<const Event*> takes;
  };
  std::unordered_map<std::int64_t, Message> messages;
  std::unordered_map<std::uint32_t, std::int64_t> last_put;  // per producer
  std::unordered_set<std::uint32_t> crashed;
  std::uint64_t puts = 0;
  for (const Event& e : a.events()) {
    switch (e.type) {
      case EventType::put: {
        Message& m = messages[e.value];
        m.put = true;
        m.producer = e.worker;
        last_put[e.worker] = e.value;
        ++puts;
        break;
      }
      case EventType::take:
        messages[e.value].takes.push_back(&e);
        break;
      case EventType::stored:
        messages[e.value].stored = true;
        break;
      case EventType::crash:
        crashed.insert(e.worker);
        break;
      default:
        break;
    }
  }
  if (puts == 0) {
    skip(r, "no messages were put");
    return r;
  }
  std::uint64_t delivered = 0, duplicates = 0, partial = 0, lost = 0, phantom = 0, uncertain = 0;
  auto violation = [&](std::string what, std::vector<std::uint32_t> workers, std::uint64_t at) {
    Violation v;
    v.what = std::move(what);
    v.workers = std::move(workers);
    v.from_ns = at;
    v.to_ns = at;
    add_violation(r, std::move(v));
  };
  std::vector<std::int64_t> ids;
  ids.reserve(messages.size());
  for (const auto& [id, m] : messages) ids.push_back(id);
  std::sort(ids.begin(), ids.end());  // violations in a stable order
  for (const std::int64_t id : ids) {
    const Message& m = messages.at(id);
    const std::string name = "message " + std::to_string(id);
    for (const Event* t : m.takes) {
      if (t->aux == 1) {
        ++partial;
        violation("worker " + std::to_string(t->worker) + " took " + name +
                      " with partial or corrupt content at " + a.at(t->host, t->time_ns),
                  {t->worker}, t->time_ns);
      }
    }
    if (!m.put) {
      ++phantom;
      const std::uint32_t w = m.takes.empty() ? 0 : m.takes.front()->worker;
      violation(name + " was " + (m.takes.empty() ? "found in cur/" : "taken") +
                    " but no producer put it",
                {w}, m.takes.empty() ? 0 : m.takes.front()->time_ns);
      continue;
    }
    if (m.takes.size() > 1) {
      ++duplicates;
      std::string who;
      std::vector<std::uint32_t> workers;
      for (const Event* t : m.takes) {
        if (!who.empty()) who += ", ";
        who += std::to_string(t->worker);
        workers.push_back(t->worker);
      }
      std::string what = name;
      what.append(" was delivered ").append(std::to_string(m.takes.size()));
      what.append(" times (workers ").append(who).append(")");
      violation(std::move(what), workers, m.takes[1]->time_ns);
    }
    if (!m.takes.empty() || m.stored) {
      ++delivered;
    } else if (crashed.count(m.producer) && last_put[m.producer] == id) {
      ++uncertain;  // its producer was killed while committing it
    } else {
      ++lost;
      violation(name + " put by worker " + std::to_string(m.producer) +
                    " was never delivered and is not in cur/",
                {m.producer}, 0);
    }
  }
  r.metrics["messages"] = static_cast<double>(puts);
  r.metrics["delivered"] = static_cast<double>(delivered);
  r.metrics["duplicates"] = static_cast<double>(duplicates);
  r.metrics["partial"] = static_cast<double>(partial);
  r.metrics["lost"] = static_cast<double>(lost);
  r.metrics["phantom"] = static_cast<double>(phantom);
  r.metrics["uncertain"] = static_cast<double>(uncertain);
  r.summary = std::to_string(puts) + " messages put, " + std::to_string(delivered) +
              " delivered: " + std::to_string(duplicates) + " more than once, " +
              std::to_string(partial) + " partial, " + std::to_string(lost) + " lost, " +
              std::to_string(phantom) + " never put" +
              (uncertain > 0 ? ", " + std::to_string(uncertain) + " cut short by a crash" : "");
  set_verdict(r);
  return r;
}

CheckResult check_exactly_once(const History& h) { return exactly_once_impl(h, analyse(h)); }

CheckResult check_liveness(const History& h) { return liveness_impl(h, analyse(h)); }

CheckResult check_fenced_writes(const History& h) { return fenced_writes_impl(h, analyse(h)); }

std::vector<CheckResult> check_all(const History& h, std::optional<std::int64_t> final_counter) {
  const Analysis a = analyse(h);
  std::vector<CheckResult> out;
  if (h.info.max_holders <= 1) {
    out.push_back(h.info.fenced ? informational_exclusion(exclusion_impl(h, a))
                                : exclusion_impl(h, a));
  }
  if (h.info.shared_mix) out.push_back(shared_exclusive_impl(h, a));
  if (h.info.max_holders > 1) out.push_back(semaphore_impl(h, a));
  out.push_back(timeout_impl(h, a, 100));
  if (!a.crashes.empty()) out.push_back(release_after_crash_impl(h, a, 2000));
  if (h.info.counter) out.push_back(lost_updates_impl(h, a, final_counter));
  bool reads = false;
  bool puts = false;
  bool fenced_writes = false;
  for (const Event& e : a.events()) {
    reads = reads || e.type == EventType::read;
    puts = puts || e.type == EventType::put;
    fenced_writes = fenced_writes || e.type == EventType::fenced_write;
  }
  if (reads) out.push_back(atomic_visibility_impl(h, a));
  if (puts) out.push_back(exactly_once_impl(h, a));
  if (h.info.fenced || fenced_writes) out.push_back(fenced_writes_impl(h, a));
  out.push_back(fencing_impl(h, a));
  out.push_back(liveness_impl(h, a));
  return out;
}

}  // namespace locksmith::harness
