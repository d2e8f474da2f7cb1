// The analysis pass (see analysis.hpp) and the helpers the checker families share.
#include "analysis.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>

namespace locksmith::harness::checkers_detail {
namespace {

bool is_controller_event(EventType t) {
  return t == EventType::crash || t == EventType::pause || t == EventType::resume;
}

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

bool event_less(const Event& a, const Event& b) {
  if (a.host != b.host) return a.host < b.host;
  if (a.time_ns != b.time_ns) return a.time_ns < b.time_ns;
  return a.worker < b.worker;
}

bool event_sorted_less(const Event& a, const Event& b) {
  if (a.host != b.host) return a.host < b.host;
  return a.time_ns < b.time_ns;
}

// Builds an Analysis in one pass over the events; each event type has its own step.
class Analyser {
 public:
  explicit Analyser(Analysis& a) : a_(a) {}

  void run() {
    const std::vector<Event>& events = a_.events();
    note_worker_hosts(events);
    a_.iv.reserve(events.size() / 4 + 1);
    a_.proven_end.reserve(events.size() / 4 + 1);
    a_.attempts.reserve(events.size() / 4 + 1);
    for (const Event& e : events) step(e);
    finish_deferred_crashes();
    finish_open();
  }

 private:
  // Which host each worker records on, so that a crash recorded on another host (clocks not
  // comparable) can be told apart.
  void note_worker_hosts(const std::vector<Event>& events) {
    for (const Event& e : events) {
      if (is_controller_event(e.type)) continue;
      WorkerState& st = workers_.get(e.worker);
      if (!st.seen_own) {
        st.seen_own = true;
        st.host = e.host;
      }
    }
  }

  void step(const Event& e) {
    if (!a_.host_seen[e.host]) {
      a_.host_seen[e.host] = true;
      a_.host_first[e.host] = e.time_ns;
      ++a_.hosts;
    }
    a_.host_last[e.host] = std::max(a_.host_last[e.host], e.time_ns);
    WorkerState& st = workers_.get(e.worker);
    const std::uint64_t previous_own_ns = st.last_own_ns;
    if (!is_controller_event(e.type)) st.last_own_ns = e.time_ns;
    switch (e.type) {
      case EventType::invoke:
        on_invoke(e, st, previous_own_ns);
        break;
      case EventType::ok:
      case EventType::busy:
      case EventType::timeout:
      case EventType::fail:
        on_outcome(e, st);
        break;
      case EventType::release:
        a_.releases.push_back(&e);
        on_release(e, st);
        break;
      case EventType::crash:
        on_crash(e, st);
        break;
      case EventType::pause:
        if (st.pending >= 0) a_.attempts[static_cast<std::size_t>(st.pending)].paused = true;
        break;
      default:
        file_event(e);
        break;
    }
  }

  // Events the sections do not depend on, filed by family.
  void file_event(const Event& e) {
    switch (e.type) {
      case EventType::read:
        a_.reads.push_back(&e);
        break;
      case EventType::write:
        a_.writes.push_back(&e);
        break;
      case EventType::put:
        a_.puts.push_back(&e);
        break;
      case EventType::take:
        a_.takes.push_back(&e);
        break;
      case EventType::stored:
        a_.stored.push_back(&e);
        break;
      case EventType::fenced_write:
        a_.fenced_writes.push_back(&e);
        break;
      case EventType::lost:
        a_.losses.push_back(&e);
        break;
      case EventType::fault:
      case EventType::fault_end:
        a_.faults.push_back(&e);
        break;
      default:  // released, release_fail, resume: nothing to keep
        break;
    }
  }

  void clear_pending(std::uint32_t worker, WorkerState& st) {
    if (st.pending < 0) return;
    auto& list = pending_by_host_[a_.attempts[static_cast<std::size_t>(st.pending)].host];
    const std::size_t pos = st.pending_pos;
    if (pos < list.size() && list[pos] == worker) {
      list[pos] = list.back();
      list.pop_back();
      if (pos < list.size()) workers_.get(list[pos]).pending_pos = pos;
    }
    st.pending = -1;
  }

  void end_by_crash(WorkerState& st, std::uint64_t end) {
    for (std::uint32_t i : st.open) {
      Interval& x = a_.iv[i];
      x.ended_by_crash = true;
      x.end_ns = std::max(end, x.start_ns);
      a_.proven_end[i] = x.end_ns;
    }
    st.open.clear();
  }

  void on_invoke(const Event& e, WorkerState& st, std::uint64_t previous_own_ns) {
    // A worker acquires one lock at a time: a section still open when it starts another
    // acquire ended unrecorded, after the worker's previous record at the latest provable.
    for (std::uint32_t i : st.open) {
      Interval& x = a_.iv[i];
      x.open = true;
      x.end_ns = std::max(previous_own_ns, x.start_ns);
      a_.proven_end[i] = x.end_ns;
    }
    st.open.clear();
    clear_pending(e.worker, st);
    Attempt at;
    at.worker = e.worker;
    at.op = e.op;
    at.host = e.host;
    at.invoke_ns = e.time_ns;
    at.wait_ns = e.value;
    st.pending = static_cast<std::int64_t>(a_.attempts.size());
    a_.attempts.push_back(at);
    st.pending_pos = pending_by_host_[e.host].size();
    pending_by_host_[e.host].push_back(e.worker);
  }

  void on_outcome(const Event& e, WorkerState& st) {
    std::uint64_t invoke_ns = e.time_ns;
    if (st.pending >= 0) {
      Attempt& at = a_.attempts[static_cast<std::size_t>(st.pending)];
      if (at.op == e.op) {
        at.outcome = e.type;
        at.outcome_ns = e.time_ns;
        invoke_ns = at.invoke_ns;
      }
      clear_pending(e.worker, st);
    }
    if (e.type != EventType::ok) return;
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
    st.open.push_back(static_cast<std::uint32_t>(a_.iv.size()));
    a_.iv.push_back(x);
    a_.proven_end.push_back(e.time_ns);
  }

  void on_release(const Event& e, WorkerState& st) {
    for (std::size_t k = st.open.size(); k-- > 0;) {
      const std::uint32_t i = st.open[k];
      Interval& x = a_.iv[i];
      if (x.op != e.op) continue;
      x.end_ns = std::max(e.time_ns, x.start_ns);
      x.counter = e.value;
      x.witness_overwritten = e.aux == 1;
      a_.proven_end[i] = x.end_ns;
      st.open.erase(st.open.begin() + static_cast<std::ptrdiff_t>(k));
      return;
    }
  }

  void on_crash(const Event& e, WorkerState& st) {
    if (st.seen_own && st.host != e.host) {
      deferred_crashes_.push_back(&e);
      return;
    }
    Crash c;
    c.victim = e.worker;
    c.host = e.host;
    c.time_ns = e.time_ns;
    c.held = !st.open.empty();
    clear_pending(e.worker, st);
    c.waiters = pending_by_host_[e.host];
    a_.crashes.push_back(std::move(c));
    end_by_crash(st, e.time_ns);
  }

  // A crash recorded on another host's clock: the victim's open intervals end at its own last
  // event, the latest moment we know it was alive.
  void finish_deferred_crashes() {
    for (const Event* e : deferred_crashes_) {
      WorkerState& st = workers_.get(e->worker);
      Crash c;
      c.victim = e->worker;
      c.host = e->host;
      c.time_ns = e->time_ns;
      c.held = !st.open.empty();
      c.same_host = false;
      clear_pending(e->worker, st);
      a_.crashes.push_back(std::move(c));
      end_by_crash(st, st.last_own_ns);
    }
  }

  // Still open at the end: drawn to the end of the host's history, proven only to the worker's
  // own last event.
  void finish_open() {
    workers_.for_each([&](WorkerState& st) {
      for (std::uint32_t i : st.open) {
        Interval& x = a_.iv[i];
        x.open = true;
        x.end_ns = std::max(a_.host_last[x.host], x.start_ns);
        a_.proven_end[i] = std::max(st.last_own_ns, x.start_ns);
      }
      st.open.clear();
    });
  }

  Analysis& a_;
  WorkerTable workers_;
  std::array<std::vector<std::uint32_t>, 256> pending_by_host_;
  std::vector<const Event*> deferred_crashes_;
};

// Ties in start time go shortest first, so that an interval that ends exactly where another
// begins is never taken for an overlap.
void sort_order(Analysis& a) {
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
}

// Contention: attempts whose wait overlapped another worker's proven hold, and handoffs to a
// worker that had been waiting while the previous holder was inside.
void measure_contention(Analysis& a) {
  std::vector<SpanIndex::Span> holds;
  holds.reserve(a.iv.size());
  for (std::size_t i = 0; i < a.iv.size(); ++i) {
    const Interval& x = a.iv[i];
    holds.push_back({x.host, x.worker, x.start_ns, a.proven_end[i]});
  }
  const SpanIndex index(std::move(holds));
  for (Attempt& at : a.attempts) {
    const bool refused = at.outcome == EventType::busy || at.outcome == EventType::timeout;
    if (at.outcome != EventType::ok && !refused) continue;
    // The lock is asked at some moment within [invoke, outcome]; for a refusal given at once,
    // that is a point.
    at.contended = index.overlaps_other(at.host, at.worker, at.invoke_ns,
                                        std::max(at.outcome_ns, at.invoke_ns + 1));
    if (at.contended) ++(refused ? a.refused_while_held : a.overlapping_attempts);
  }
  for (std::size_t k = 1; k < a.order.size(); ++k) {
    const std::uint32_t pi = a.order[k - 1];
    const Interval& p = a.iv[pi];
    const Interval& x = a.iv[a.order[k]];
    if (p.host != x.host || p.worker == x.worker) continue;
    if (x.invoke_ns >= a.proven_end[pi] || x.start_ns < a.proven_end[pi]) continue;
    ++a.contended_handoffs;
    a.contended_mode_handoffs += p.mode != x.mode;
  }
}

}  // namespace

std::string fmt_ms(double ms) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3f", ms);
  return buf;
}

const char* mode_name(Mode m) { return m == Mode::shared ? "shared" : "exclusive"; }

std::string Analysis::at(std::uint8_t host, std::uint64_t t) const {
  return "+" + fmt_ms(to_ms(static_cast<double>(t - std::min(t, host_first[host])))) + " ms";
}

Analysis analyse(const History& h) {
  Analysis a;
  a.input = &h.events;
  if (!std::is_sorted(h.events.begin(), h.events.end(), event_sorted_less)) {
    a.sorted_copy = h.events;
    std::stable_sort(a.sorted_copy.begin(), a.sorted_copy.end(), event_less);
    a.use_copy = true;
  }
  Analyser(a).run();
  sort_order(a);
  measure_contention(a);
  return a;
}

SpanIndex::SpanIndex(std::vector<Span> spans) : spans_(std::move(spans)) {
  std::stable_sort(spans_.begin(), spans_.end(), [](const Span& x, const Span& y) {
    return x.host != y.host ? x.host < y.host : x.from < y.from;
  });
  prefix_.resize(spans_.size());
  Best best;
  for (std::size_t i = 0; i < spans_.size(); ++i) {
    const Span& s = spans_[i];
    if (i > 0 && spans_[i - 1].host != s.host) best = Best{};
    if (!best.has1 || s.to > best.to1) {
      // The old leader becomes the runner-up unless it is the same worker.
      if (best.has1 && best.worker1 != s.worker) {
        best.to2 = best.to1;
        best.has2 = true;
      }
      best.to1 = s.to;
      best.worker1 = s.worker;
      best.has1 = true;
    } else if (s.worker != best.worker1 && (!best.has2 || s.to > best.to2)) {
      best.to2 = s.to;
      best.has2 = true;
    }
    prefix_[i] = best;
  }
}

bool SpanIndex::overlaps_other(std::uint8_t host, std::uint32_t worker, std::uint64_t from_ns,
                               std::uint64_t to_ns) const {
  // The last span of `host` that began before to_ns.
  const auto end =
      std::lower_bound(spans_.begin(), spans_.end(), std::make_pair(host, to_ns),
                       [](const Span& s, const std::pair<std::uint8_t, std::uint64_t>& key) {
                         return s.host != key.first ? s.host < key.first : s.from < key.second;
                       });
  if (end == spans_.begin()) return false;
  const std::size_t i = static_cast<std::size_t>(end - spans_.begin()) - 1;
  if (spans_[i].host != host) return false;
  const Best& b = prefix_[i];
  if (b.has1 && b.worker1 != worker) return b.to1 > from_ns;
  return b.has2 && b.to2 > from_ns;
}

void add_violation(CheckResult& r, Violation v) {
  ++r.violation_count;
  if (r.violations.size() < kMaxViolations) r.violations.push_back(std::move(v));
}

void set_verdict(CheckResult& r, bool enough, const std::string& missing) {
  if (r.violation_count > 0) {
    r.verdict = Verdict::fail;
  } else if (enough) {
    r.verdict = Verdict::pass;
  } else {
    r.verdict = Verdict::inconclusive;
    r.summary += "; inconclusive: " + missing;
  }
}

void skip(CheckResult& r, std::string why) {
  r.verdict = Verdict::skipped;
  r.summary = std::move(why);
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const double rank = std::ceil(p * static_cast<double>(v.size()));  // nearest-rank, 1-based
  const std::size_t i = std::min(v.size(), static_cast<std::size_t>(std::max(rank, 1.0))) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

std::string who(const Interval& x) {
  return "worker " + std::to_string(x.worker) + " op " + std::to_string(x.op) + " (" +
         mode_name(x.mode) + ")";
}

std::string hosts_note(const Analysis& a) {
  return a.hosts == 1 ? "1 host" : std::to_string(a.hosts) + " hosts";
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

std::string of_needed(std::uint64_t have, std::uint64_t need) {
  return std::to_string(have) + " of the " + std::to_string(need) + " needed";
}

void ActiveSet::expire(std::uint64_t now) {
  while (!heap_.empty() && heap_.front().first <= now) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    heap_.pop_back();
  }
}

void ActiveSet::add(std::uint64_t end, std::uint32_t i) {
  heap_.emplace_back(end, i);
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
}

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

}  // namespace locksmith::harness::checkers_detail
