// Checkers: pure functions over a History. Each returns a CheckResult; none reads the clock or
// the filesystem. A checker only reports a violation it can prove from the history: an operation
// whose outcome is unknown (invoke with no ok/busy/timeout/fail, e.g. the worker was killed) is
// never itself counted as a holder, but it does not end anybody else's interval either.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "locksmith/harness/history.hpp"

namespace locksmith::harness {

enum class Verdict { pass, fail, skipped };
const char* to_string(Verdict v) noexcept;

struct Violation {
  std::string what;  // one sentence, names workers and ops
  std::vector<std::uint32_t> workers;
  std::uint64_t from_ns = 0;  // time range for the timeline
  std::uint64_t to_ns = 0;
};

struct CheckResult {
  std::string name;  // "exclusion", "shared-exclusive", "semaphore-bound", ...
  Verdict verdict = Verdict::skipped;
  std::string summary;                // one line: what was checked, how much
  std::vector<Violation> violations;  // at most kMaxViolations kept; `violation_count` has all
  std::uint64_t violation_count = 0;
  std::map<std::string, double> metrics;  // e.g. "critical_sections", "max_wait_ms"
};

inline constexpr std::size_t kMaxViolations = 100;

// A critical section: from the ok of an acquire to the release event (or the crash of its worker,
// or the end of the history when neither came).
struct Interval {
  std::uint32_t worker = 0;
  std::uint32_t op = 0;
  std::uint8_t host = 0;
  Mode mode = Mode::exclusive;
  std::uint64_t invoke_ns = 0;  // when acquire was called
  std::uint64_t start_ns = 0;   // ok
  std::uint64_t end_ns = 0;     // release (or crash / end of history)
  bool ended_by_crash = false;
  bool open = false;  // no release and no crash seen
  std::int64_t fence = -1;
  std::int64_t counter = -1;  // counter value read inside
  bool witness_overwritten = false;
  std::uint32_t witness_writers = 0;
  std::uint32_t witness_readers = 0;
};

// The critical sections of `h`, sorted by (host, start_ns).
std::vector<Interval> intervals(const History& h);

// No two critical sections overlap where at least one is exclusive (time-based, per host), and
// the clock-free occupancy evidence never saw another holder incompatible with the entrant.
CheckResult check_exclusion(const History& h);
// Shared holders may overlap each other, never a writer (meaningful when info.shared_mix).
CheckResult check_shared_exclusive(const History& h);
// At most info.max_holders concurrent holders (time-based sweep and occupancy evidence).
CheckResult check_semaphore_bound(const History& h);
// A timed acquire that ended in timeout waited at least its timeout, and not more than
// timeout + max(slack_ms, 10 % of the timeout).
CheckResult check_timeout_accuracy(const History& h, double slack_ms = 100);
// After a holder was killed, the lock was granted to another worker (when one was waiting)
// within `bound_ms`.
CheckResult check_release_after_crash(const History& h, double bound_ms = 2000);
// Counter values read inside critical sections are all distinct (a repeat is a lost update), and
// the final value equals the number of completed increments when `final_value` is given.
CheckResult check_lost_updates(const History& h, std::optional<std::int64_t> final_value);
// Readers of an atomically replaced file only ever saw complete versions that had been (or were
// being) published.
CheckResult check_atomic_visibility(const History& h);
// FileStore hand-off: every message put was delivered exactly once (taken by one consumer, or
// found in cur/ after the run), never partial, and nothing was delivered that no one put. A
// message whose producer was killed while committing it may or may not exist (not a violation).
CheckResult check_exactly_once(const History& h);
// Fencing tokens strictly increase in the order the lock was granted (skipped when no tokens).
CheckResult check_fencing(const History& h);
// The fenced resource (scenario fenced:SPEC): in the resource's own order, no write was accepted
// with a token smaller than one accepted before it. Metrics: accepted, rejected, stale_accepted.
CheckResult check_fenced_writes(const History& h);
// Max / percentile waits, per-worker successes, starvation (a worker that kept trying and never
// got in while others did), handoffs between different workers.
CheckResult check_liveness(const History& h);

// Every checker that applies to the run described by h.info.
std::vector<CheckResult> check_all(const History& h, std::optional<std::int64_t> final_counter);

}  // namespace locksmith::harness
