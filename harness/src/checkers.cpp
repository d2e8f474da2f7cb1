// The public checkers: each builds the one Analysis of its history (checkers/analysis.cpp) and
// runs its family's checker over it (checkers/exclusion.cpp, timing.cpp, liveness.cpp,
// loss_notice.cpp, data.cpp, fencing.cpp); check_all builds it once for all of them.
#include "locksmith/harness/checkers.hpp"

#include "checkers/analysis.hpp"

namespace locksmith::harness {

using namespace checkers_detail;

const char* to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::pass:
      return "pass";
    case Verdict::fail:
      return "fail";
    case Verdict::skipped:
      return "skipped";
    case Verdict::inconclusive:
      return "inconclusive";
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

CheckResult check_exactly_once(const History& h) { return exactly_once_impl(h, analyse(h)); }

CheckResult check_fencing(const History& h) { return fencing_impl(h, analyse(h)); }

CheckResult check_fenced_writes(const History& h) { return fenced_writes_impl(h, analyse(h)); }

CheckResult check_liveness(const History& h) { return liveness_impl(h, analyse(h)); }

CheckResult check_loss_notice(const History& h) { return loss_notice_impl(h, analyse(h)); }

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
  if (!a.reads.empty()) out.push_back(atomic_visibility_impl(h, a));
  if (!a.puts.empty()) out.push_back(exactly_once_impl(h, a));
  if (h.info.fenced || !a.fenced_writes.empty()) out.push_back(fenced_writes_impl(h, a));
  out.push_back(fencing_impl(h, a));
  out.push_back(liveness_impl(h, a));
  if (!a.losses.empty()) out.push_back(loss_notice_impl(h, a));
  return out;
}

}  // namespace locksmith::harness
