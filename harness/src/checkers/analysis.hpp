// The one analysis pass every checker reads: a History turned, once, into critical sections,
// acquire attempts, crashes, the events of each scenario family, and the contention measures
// the checkers' power floors use. Internal to the harness library.
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
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "locksmith/harness/checkers.hpp"
#include "locksmith/harness/history.hpp"

namespace locksmith::harness::checkers_detail {

inline constexpr double kNsPerMs = 1e6;
inline constexpr std::size_t kMaxNamed = 4;  // conflicting holders named in one violation

inline double to_ms(double ns) { return ns / kNsPerMs; }
std::string fmt_ms(double ms);
const char* mode_name(Mode m);

// One acquire attempt: invoke and its outcome (EventType::invoke when the outcome is unknown).
struct Attempt {
  std::uint32_t worker = 0;
  std::uint32_t op = 0;
  std::uint8_t host = 0;
  EventType outcome = EventType::invoke;
  bool paused = false;     // the controller paused the worker while it waited
  bool contended = false;  // its wait overlapped a critical section of another worker (same host)
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

  // The events of each scenario family, in (host, time) order (pointers into events()).
  std::vector<const Event*> releases;
  std::vector<const Event*> reads;
  std::vector<const Event*> writes;
  std::vector<const Event*> puts;
  std::vector<const Event*> takes;
  std::vector<const Event*> stored;
  std::vector<const Event*> fenced_writes;
  std::vector<const Event*> losses;
  std::vector<const Event*> faults;  // fault and fault_end

  // Contention (per host): see checkers.hpp.
  std::uint64_t overlapping_attempts = 0;     // acquisitions whose wait overlapped another's hold
  std::uint64_t refused_while_held = 0;       // busy / timeout while another worker held
  std::uint64_t contended_handoffs = 0;       // grant to a worker waiting on the previous holder
  std::uint64_t contended_mode_handoffs = 0;  // ... whose mode differs from that holder's

  // The events sorted by (host, time_ns, worker).
  const std::vector<Event>& events() const { return use_copy ? sorted_copy : *input; }

  // Milliseconds since the first event of the host, for messages.
  std::string at(std::uint8_t host, std::uint64_t t) const;
};

Analysis analyse(const History& h);

// ---- helpers shared by the checker families ----

void add_violation(CheckResult& r, Violation v);
// fail when there is a violation; else pass when `enough`, or inconclusive with `missing`
// appended to the summary.
void set_verdict(CheckResult& r, bool enough = true, const std::string& missing = {});
void skip(CheckResult& r, std::string why);
// Percentile of `v` (which is reordered); 0 when empty.
double percentile(std::vector<double>& v, double p);
std::string who(const Interval& x);
std::string hosts_note(const Analysis& a);
std::string count_holders(std::uint32_t writers, std::uint32_t readers);
// "3 of the 20 needed" for inconclusive summaries.
std::string of_needed(std::uint64_t have, std::uint64_t need);

// Active intervals of one host: a min-heap on proven end.
using Entry = std::pair<std::uint64_t, std::uint32_t>;  // (proven_end, interval)
class ActiveSet {
 public:
  void expire(std::uint64_t now);
  void add(std::uint64_t end, std::uint32_t i);
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
                            std::initializer_list<const ActiveSet*> sets, const std::string& what);
Violation witness_violation(const Analysis& a, const Interval& x, const std::string& saw);

// Spans [from, to] of workers on hosts, indexed to answer "did a span of a worker other than w,
// on host h, overlap [from, to]?" in O(log n).
class SpanIndex {
 public:
  struct Span {
    std::uint8_t host = 0;
    std::uint32_t worker = 0;
    std::uint64_t from = 0;
    std::uint64_t to = 0;
  };
  explicit SpanIndex(std::vector<Span> spans);
  // True when some span of another worker on `host` has from < to_ns and to > from_ns.
  bool overlaps_other(std::uint8_t host, std::uint32_t worker, std::uint64_t from_ns,
                      std::uint64_t to_ns) const;

 private:
  struct Best {  // the largest `to` among spans so far, and the largest of another worker
    std::uint64_t to1 = 0;
    std::uint32_t worker1 = 0;
    bool has1 = false;
    std::uint64_t to2 = 0;
    bool has2 = false;
  };
  std::vector<Span> spans_;  // by (host, from)
  std::vector<Best> prefix_;
};

// ---- the checker families (each file one family) ----

// exclusion.cpp
CheckResult exclusion_impl(const History& h, const Analysis& a);
CheckResult shared_exclusive_impl(const History& h, const Analysis& a);
CheckResult semaphore_impl(const History& h, const Analysis& a);
CheckResult informational_exclusion(CheckResult r);
// timing.cpp, liveness.cpp, loss_notice.cpp
CheckResult timeout_impl(const History& h, const Analysis& a, double slack_ms);
CheckResult release_after_crash_impl(const History& h, const Analysis& a, double bound_ms);
CheckResult liveness_impl(const History& h, const Analysis& a);
CheckResult loss_notice_impl(const History& h, const Analysis& a);
// data.cpp
CheckResult lost_updates_impl(const History& h, const Analysis& a,
                              std::optional<std::int64_t> final_value);
CheckResult atomic_visibility_impl(const History& h, const Analysis& a);
CheckResult exactly_once_impl(const History& h, const Analysis& a);
// fencing.cpp
CheckResult fencing_impl(const History& h, const Analysis& a);
CheckResult fenced_writes_impl(const History& h, const Analysis& a);

}  // namespace locksmith::harness::checkers_detail
