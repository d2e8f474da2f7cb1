// Checkers: pure functions over a History. Each returns a CheckResult; none reads the clock or
// the filesystem. A checker only reports a violation it can prove from the history: an operation
// whose outcome is unknown (invoke with no ok/busy/timeout/fail, e.g. the worker was killed) is
// never itself counted as a holder, but it does not end anybody else's interval either.
//
// Power: a check that saw too little to catch a broken lock says so. Every CheckResult states in
// its metrics how much evidence it had (see each checker below), and a check whose evidence is
// below its floor (the kMin* constants) is `inconclusive`, not `pass`, with a summary naming
// what was missing. A violation is always `fail`, however little else was seen.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "locksmith/harness/history.hpp"

namespace locksmith::harness {

// pass: enough evidence, no violation. fail: a violation (whatever the evidence). inconclusive:
// the check applies but saw less than its floor, so it could not have caught a broken lock.
// skipped: the check does not apply to this run.
enum class Verdict { pass, fail, skipped, inconclusive };
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

// ---- Power floors ----
// Contention is measured per host (clocks of different hosts are never compared). An attempt is
// "contended" when its wait (invoke to outcome) overlapped a critical section of another worker
// on its host: at that moment the lock had to make it wait or refuse it.
//
// exclusion: >= kMinContendedAttempts contended attempts (metric "contended_attempts" =
// "overlapping_attempts", acquisitions whose wait overlapped another worker's hold, plus
// "refused_while_held", busy/timeout answers given while another worker held the lock). Fewer
// means the workers barely met: a no-op lock could have produced the same history.
inline constexpr std::uint64_t kMinContendedAttempts = 20;
// shared-exclusive: >= kMinModeHandoffs "contended_mode_handoffs": grants of one mode to a worker
// that had been waiting while a holder of the other mode was inside (a writer held off by
// readers, or a reader by a writer). Without them the shared/exclusive rule was never tested.
inline constexpr std::uint64_t kMinModeHandoffs = 10;
// semaphore-bound: >= kMinFullEntries "full_entries": grants that brought the holders on a host
// up to the bound. A semaphore that was never full cannot have shown that it stops at its bound.
inline constexpr std::uint64_t kMinFullEntries = 10;
// timeout-accuracy: every timed-out acquire is a complete measurement; the check applies only
// when at least one acquire timed out (skipped otherwise), so it has no further floor.
// release-after-crash: >= kMinRecoveries "recoveries_measured": a holder killed while another
// worker waited, and the time to the next grant measured (or shown to exceed the bound). Kills
// that hit no holder, or no waiter, do not exercise recovery.
inline constexpr std::uint64_t kMinRecoveries = 1;
// lost-updates: >= kMinCounterHandoffs "counter_handoffs": consecutive counter values (the
// guarded file's own order, clock-free, across hosts) read by different workers. A counter
// incremented by one worker at a time, never handed over, cannot lose an update.
inline constexpr std::uint64_t kMinCounterHandoffs = 10;
// atomic-visibility: >= kMinRacingReads "racing_reads": reads (from the reader's previous record
// to this one) that overlapped a write in progress (from a writer's write record to its next
// record). A torn file can only be seen by a read that races a write.
inline constexpr std::uint64_t kMinRacingReads = 20;
// exactly-once: >= kMinTakenMessages "taken" messages claimed by consumers during the run, by
// >= 2 "consumers". Duplicated claims need two consumers competing for the same messages.
inline constexpr std::uint64_t kMinTakenMessages = 20;
// fencing: >= kMinTokenHandoffs "token_handoffs": exclusive grants with a token that followed,
// on the same host, a grant with a token to a different worker. A regression needs a handoff.
inline constexpr std::uint64_t kMinTokenHandoffs = 10;
// fenced-writes: >= kMinStaleAttempts "stale_attempts": writes that reached the resource with a
// token smaller than one it had accepted before (rejected, or accepted: a violation). Without a
// stale write the fence was never tested (run with --nemesis pause to expire leases).
inline constexpr std::uint64_t kMinStaleAttempts = 1;
// liveness: >= kMinLivenessAcquisitions acquisitions by >= 2 workers ("successes", "workers").
inline constexpr std::uint64_t kMinLivenessAcquisitions = 20;
// loss-notice: every lost event is a measurement; skipped when there is none.

// ---- Bounds ----
// Crash recovery and idle-while-waiting are judged against the lock's own bound: when it
// declares an expiry (RunInfo::expiry_bound_ns >= 0), max(default, expiry + kExpiryMarginMs +
// kExpiryMarginFraction * expiry), which allows for the waiters' polling and a loaded machine;
// otherwise the default (release-after-crash: bound_ms; liveness: kIdleWhileWaitingDefaultMs).
inline constexpr double kExpiryMarginMs = 1000;
inline constexpr double kExpiryMarginFraction = 0.1;
inline constexpr double kIdleWhileWaitingDefaultMs = 2000;
// The bound for a lock whose holder died: see above.
double recovery_bound_ms(const RunInfo& info, double default_ms);

// No two critical sections overlap where at least one is exclusive (time-based, per host), and
// the clock-free occupancy evidence never saw another holder incompatible with the entrant.
// Power: contended_attempts (kMinContendedAttempts), contended_handoffs, operations.
CheckResult check_exclusion(const History& h);
// Shared holders may overlap each other, never a writer (meaningful when info.shared_mix).
// Power: contended_mode_handoffs (kMinModeHandoffs).
CheckResult check_shared_exclusive(const History& h);
// At most info.max_holders concurrent holders (time-based sweep and occupancy evidence).
// Power: full_entries (kMinFullEntries).
CheckResult check_semaphore_bound(const History& h);
// A timed acquire that ended in timeout waited at least its timeout, and not more than
// timeout + max(slack_ms, 10 % of the timeout). Power: timeouts.
CheckResult check_timeout_accuracy(const History& h, double slack_ms = 100);
// After a holder was killed, the lock was granted to another worker (when one was waiting)
// within recovery_bound_ms(h.info, bound_ms): the lock's declared expiry plus a margin, or
// `bound_ms` for a lock the OS releases at death. Metrics: recovery_ms_max, recovery_ms_p50,
// bound_ms. Power: recoveries_measured (kMinRecoveries).
CheckResult check_release_after_crash(const History& h, double bound_ms = 2000);
// Counter values read inside critical sections are all distinct (a repeat is a lost update), and
// the final value equals the number of completed increments when `final_value` is given.
// Power: counter_handoffs (kMinCounterHandoffs).
CheckResult check_lost_updates(const History& h, std::optional<std::int64_t> final_value);
// Readers of an atomically replaced file only ever saw complete versions that had been (or were
// being) published. Power: racing_reads (kMinRacingReads).
CheckResult check_atomic_visibility(const History& h);
// FileStore hand-off: every message put was delivered exactly once (taken by one consumer, or
// found in cur/ after the run), never partial, and nothing was delivered that no one put. A
// message whose producer was killed while committing it may or may not exist (not a violation).
// Power: taken, consumers (kMinTakenMessages, 2).
CheckResult check_exactly_once(const History& h);
// Fencing tokens strictly increase in the order the lock was granted (skipped when no tokens).
// Power: token_handoffs (kMinTokenHandoffs).
CheckResult check_fencing(const History& h);
// The fenced resource (scenario fenced:SPEC): in the resource's own order, no write was accepted
// with a token smaller than one accepted before it. Metrics: accepted, rejected, stale_accepted.
// Power: stale_attempts (kMinStaleAttempts).
CheckResult check_fenced_writes(const History& h);
// Max / percentile waits, per-worker successes, starvation (a worker that kept trying and never
// got in while others did), handoffs between different workers, and the longest stretch during
// which nobody held the lock while a worker was waiting for it ("idle_while_waiting_ms_max"; a
// violation above recovery_bound_ms(h.info, kIdleWhileWaitingDefaultMs); waits of paused workers
// and time inside a server fault do not count). Power: successes, workers
// (kMinLivenessAcquisitions, 2).
CheckResult check_liveness(const History& h);
// Lost-lock notices: metrics told_count, told_ms_p50, told_ms_p99 (from the lost events'
// values). A violation when, in one op of a worker, a release that incremented the guarded
// counter (value >= 0) or a fenced_write comes after that op's lost event: the holder kept
// writing after it was told. Skipped when there is no lost event.
CheckResult check_loss_notice(const History& h);

// Every checker that applies to the run described by h.info.
std::vector<CheckResult> check_all(const History& h, std::optional<std::int64_t> final_counter);

}  // namespace locksmith::harness
