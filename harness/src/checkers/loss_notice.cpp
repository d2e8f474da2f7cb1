// Lost-lock notices (timing family): how soon holders were told their lock was lost, and whether
// a holder went on writing after it was told.
#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "analysis.hpp"

namespace locksmith::harness::checkers_detail {
namespace {

// A write by a holder that had already been told its lock was lost.
Violation written_after_notice(const Analysis& a, const Event& lost, const Event& write,
                               const char* what) {
  Violation v;
  v.workers = {write.worker};
  v.from_ns = lost.time_ns;
  v.to_ns = write.time_ns;
  v.what = "worker " + std::to_string(write.worker) + " op " + std::to_string(write.op) +
           " was told at " + a.at(lost.host, lost.time_ns) + " on host " +
           std::to_string(lost.host) + " that its lock was lost, and then " + what + " at " +
           a.at(write.host, write.time_ns);
  return v;
}

}  // namespace

CheckResult loss_notice_impl(const History&, const Analysis& a) {
  CheckResult r;
  r.name = "loss-notice";
  if (a.losses.empty()) {
    skip(r, "no holder was told its lock was lost");
    return r;
  }
  // The first notice of each (worker, op); events of one worker keep their recorded order, so
  // a later position in events() is a later event of that worker.
  std::map<std::pair<std::uint32_t, std::uint32_t>, const Event*> first;
  std::vector<double> told_ms;
  for (const Event* e : a.losses) {
    first.try_emplace({e->worker, e->op}, e);
    if (e->value >= 0) told_ms.push_back(to_ms(static_cast<double>(e->value)));
  }
  std::uint64_t kept_writing = 0;
  const auto judge = [&](const std::vector<const Event*>& events, bool counted, const char* what) {
    for (const Event* e : events) {
      if (counted && e->value < 0) continue;  // a release that did not increment the counter
      const auto it = first.find({e->worker, e->op});
      if (it == first.end() || e < it->second) continue;
      ++kept_writing;
      add_violation(r, written_after_notice(a, *it->second, *e, what));
    }
  };
  judge(a.releases, true, "incremented the guarded counter");
  judge(a.fenced_writes, false, "wrote to the fenced resource");
  const double p50 = percentile(told_ms, 0.5);
  const double p99 = percentile(told_ms, 0.99);
  r.metrics["told_count"] = static_cast<double>(a.losses.size());
  r.metrics["told_with_latency"] = static_cast<double>(told_ms.size());
  r.metrics["told_ms_p50"] = p50;
  r.metrics["told_ms_p99"] = p99;
  r.metrics["writes_after_notice"] = static_cast<double>(kept_writing);
  r.summary = std::to_string(a.losses.size()) + " holders told their lock was lost (" +
              std::to_string(told_ms.size()) + " with a known delay: p50 " + fmt_ms(p50) +
              " ms, p99 " + fmt_ms(p99) + " ms); " + std::to_string(kept_writing) +
              " wrote after being told";
  set_verdict(r);  // every notice is a measurement (checkers.hpp)
  return r;
}

}  // namespace locksmith::harness::checkers_detail
