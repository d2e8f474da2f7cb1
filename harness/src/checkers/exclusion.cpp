// The exclusion family: exclusion, shared/exclusive compatibility, the semaphore bound. Each is a
// time-based sweep per host plus the clock-free occupancy evidence; power is contention.
#include <algorithm>
#include <string>

#include "analysis.hpp"

namespace locksmith::harness::checkers_detail {
namespace {

// Clock-free evidence against exclusion: occupancy witnesses that saw an incompatible holder, and
// owner marks in the guarded file overwritten by another holder.
void exclusion_witnesses(const Analysis& a, CheckResult& r) {
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
  r.metrics["witness_violations"] = static_cast<double>(witness_violations);
  r.metrics["witness_overwritten"] = static_cast<double>(overwritten);
}

}  // namespace

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
    const bool exclusive = x.mode == Mode::exclusive;
    if (exclusive ? excl.empty() && shared.empty() : excl.empty()) return;
    ++time_violations;
    overlapping_pairs += excl.size() + (exclusive ? shared.size() : 0);
    if (exclusive) {
      add_violation(r, overlap_violation(a, i, {&excl, &shared}, "overlap"));
    } else {
      add_violation(r, overlap_violation(a, i, {&excl}, "overlap"));
    }
  });
  exclusion_witnesses(a, r);
  const std::uint64_t contended = a.overlapping_attempts + a.refused_while_held;
  r.metrics["critical_sections"] = static_cast<double>(a.iv.size());
  r.metrics["operations"] = static_cast<double>(a.attempts.size());
  r.metrics["overlaps"] = static_cast<double>(time_violations);
  r.metrics["overlapping_pairs"] = static_cast<double>(overlapping_pairs);
  r.metrics["contended_attempts"] = static_cast<double>(contended);
  r.metrics["overlapping_attempts"] = static_cast<double>(a.overlapping_attempts);
  r.metrics["refused_while_held"] = static_cast<double>(a.refused_while_held);
  r.metrics["contended_handoffs"] = static_cast<double>(a.contended_handoffs);
  r.summary = std::to_string(a.iv.size()) + " critical sections on " + hosts_note(a) + ", " +
              std::to_string(contended) + " contended attempts (" +
              std::to_string(a.contended_handoffs) +
              " contended handoffs): " + std::to_string(time_violations) + " overlaps, " +
              std::to_string(static_cast<std::uint64_t>(r.metrics["witness_violations"])) +
              " occupancy witness violations, " +
              std::to_string(static_cast<std::uint64_t>(r.metrics["witness_overwritten"])) +
              " overwritten owner witnesses";
  set_verdict(r, contended >= kMinContendedAttempts,
              "only " + of_needed(contended, kMinContendedAttempts) +
                  " attempts made while another worker held the lock");
  return r;
}

// In the fenced scenario an expired lease lets a new holder in while the old one is paused:
// those overlaps are expected (the fence, not the lease, protects the resource) and are reported
// as information, not as violations; fenced-writes carries the verdict and its own floor.
CheckResult informational_exclusion(CheckResult r) {
  r.metrics["expired_lease_overlaps"] = r.metrics["overlaps"];
  r.summary +=
      " (informational in a fenced run: leases that expired under a paused holder "
      "may overlap; fenced-writes judges the resource)";
  r.violations.clear();
  r.violation_count = 0;
  if (r.verdict != Verdict::skipped) r.verdict = Verdict::pass;
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
  r.metrics["contended_mode_handoffs"] = static_cast<double>(a.contended_mode_handoffs);
  r.summary = std::to_string(shared_n) + " shared and " + std::to_string(a.iv.size() - shared_n) +
              " exclusive critical sections, " + std::to_string(a.contended_mode_handoffs) +
              " contended handoffs between modes: " + std::to_string(conflicts) +
              " reader/writer overlaps, " + std::to_string(witness_violations) +
              " occupancy witness violations; up to " + std::to_string(max_readers) +
              " readers at once";
  set_verdict(r, a.contended_mode_handoffs >= kMinModeHandoffs,
              "only " + of_needed(a.contended_mode_handoffs, kMinModeHandoffs) +
                  " grants to a worker held off by a holder of the other mode");
  return r;
}

CheckResult semaphore_impl(const History& h, const Analysis& a) {
  CheckResult r;
  r.name = "semaphore-bound";
  const std::size_t bound = std::max<std::uint32_t>(h.info.max_holders, 1);
  std::size_t max_seen = 0;
  std::uint64_t over = 0;
  std::uint64_t full = 0;
  sweep(a, [&](std::uint32_t i, const ActiveSet& excl, const ActiveSet& shared) {
    const std::size_t holders = excl.size() + shared.size() + 1;
    max_seen = std::max(max_seen, holders);
    full += holders == bound;
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
  r.metrics["full_entries"] = static_cast<double>(full);
  r.metrics["contended_attempts"] =
      static_cast<double>(a.overlapping_attempts + a.refused_while_held);
  r.metrics["witness_violations"] = static_cast<double>(witness_violations);
  r.summary = std::to_string(a.iv.size()) + " critical sections on " + hosts_note(a) + ", bound " +
              std::to_string(bound) + ": up to " + std::to_string(max_seen) + " at once (" +
              std::to_string(full) + " entries filled it), " + std::to_string(over) +
              " entries over the bound, " + std::to_string(witness_violations) +
              " occupancy witness violations";
  set_verdict(
      r, full >= kMinFullEntries,
      "the semaphore was filled to its bound only " + of_needed(full, kMinFullEntries) + " times");
  return r;
}

}  // namespace locksmith::harness::checkers_detail
