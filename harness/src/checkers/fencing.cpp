// The fencing family: fencing-token order at the lock, and the fenced resource's own log.
#include <algorithm>
#include <string>
#include <vector>

#include "analysis.hpp"

namespace locksmith::harness::checkers_detail {
namespace {

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

struct TokenOrder {
  const Analysis& a;
  bool ordered;
  bool expiring;
  // The time after which x's grant happened, and whether p's grant provably precedes x's.
  std::uint64_t granted_after(const Interval& x) const {
    return expiring ? x.invoke_ns : x.start_ns;
  }
  bool before(const Interval& p, const Interval& x) const {
    return ordered && p.host == x.host && p.start_ns < granted_after(x);
  }
};

// Grants whose token is not above every token granted provably before them; returns how many.
std::uint64_t regressions(const TokenOrder& o, const std::vector<std::uint32_t>& tokens,
                          CheckResult& r) {
  const Analysis& a = o.a;
  std::vector<std::uint32_t> by_grant = tokens;  // (host, granted_after)
  std::stable_sort(by_grant.begin(), by_grant.end(), [&](std::uint32_t x, std::uint32_t y) {
    const Interval& p = a.iv[x];
    const Interval& q = a.iv[y];
    return p.host != q.host ? p.host < q.host : o.granted_after(p) < o.granted_after(q);
  });
  std::uint64_t count = 0;
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
      if (p.host > host || (p.host == host && p.start_ns >= o.granted_after(x))) break;
      if (p.host == host && p.fence > best) {
        best = p.fence;
        best_i = tokens[next];
      }
    }
    if (best < 0 || x.fence > best) continue;
    ++count;
    const Interval& p = a.iv[best_i];
    Violation v;
    v.workers = {x.worker};
    if (p.worker != x.worker) v.workers.push_back(p.worker);
    v.from_ns = p.start_ns;
    v.to_ns = x.start_ns;
    v.what = who(x) + " was granted token " + std::to_string(x.fence) + " at " +
             a.at(host, x.start_ns) + " on host " + std::to_string(host) +
             (o.expiring ? " (asked at " + a.at(host, x.invoke_ns) + ")" : std::string()) +
             ", after " + who(p) + " had been granted token " + std::to_string(p.fence) + " at " +
             a.at(host, p.start_ns);
    add_violation(r, std::move(v));
  }
  return count;
}

// Repeated tokens the ordering rule did not already cover; returns how many.
std::uint64_t repeats(const TokenOrder& o, const std::vector<std::uint32_t>& tokens,
                      CheckResult& r) {
  const Analysis& a = o.a;
  std::vector<std::uint32_t> by_token = tokens;
  std::stable_sort(by_token.begin(), by_token.end(),
                   [&](std::uint32_t x, std::uint32_t y) { return a.iv[x].fence < a.iv[y].fence; });
  std::uint64_t count = 0;
  for (std::size_t k = 1; k < by_token.size(); ++k) {
    const Interval& p = a.iv[by_token[k - 1]];
    const Interval& x = a.iv[by_token[k]];
    if (p.fence != x.fence) continue;
    if (o.before(p, x) || o.before(x, p)) continue;  // counted as a regression
    ++count;
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
  return count;
}

}  // namespace

CheckResult fencing_impl(const History& h, const Analysis& a) {
  CheckResult r;
  r.name = "fencing";
  std::vector<std::uint32_t> tokens;  // exclusive intervals carrying a token, in (host, start)
  std::uint64_t any = 0;
  std::uint64_t handoffs = 0;
  for (std::uint32_t i : a.order) {
    if (a.iv[i].fence < 0) continue;
    ++any;
    if (a.iv[i].mode != Mode::exclusive) continue;
    if (!tokens.empty()) {
      const Interval& p = a.iv[tokens.back()];
      handoffs += p.host == a.iv[i].host && p.worker != a.iv[i].worker;
    }
    tokens.push_back(i);
  }
  if (any == 0) {
    skip(r, "no grant carried a fencing token");
    return r;
  }
  const TokenOrder order{a, h.info.max_holders <= 1, expiring_kind(h.info.kind)};
  const std::uint64_t regressed = order.ordered ? regressions(order, tokens, r) : 0;
  const std::uint64_t repeated = repeats(order, tokens, r);
  r.metrics["tokens"] = static_cast<double>(any);
  r.metrics["ordered_tokens"] = static_cast<double>(tokens.size());
  r.metrics["token_handoffs"] = static_cast<double>(handoffs);
  r.metrics["regressions"] = static_cast<double>(regressed);
  r.metrics["repeats"] = static_cast<double>(repeated);
  r.summary = std::to_string(tokens.size()) + " exclusive grants with fencing tokens (" +
              std::to_string(handoffs) + " handed between workers)" +
              (order.ordered ? " checked for strict increase per host" : " checked for repeats") +
              ": " + std::to_string(regressed) + " out of order, " + std::to_string(repeated) +
              " repeated";
  set_verdict(r, handoffs >= kMinTokenHandoffs,
              "tokens passed between different workers only " +
                  of_needed(handoffs, kMinTokenHandoffs) + " times");
  return r;
}

// The fenced resource's log, in the resource's own order (its sequence numbers, not clocks): an
// accepted write whose token is smaller than one accepted before it is a stale write that got
// through. Rejected writes are the fence doing its job.
CheckResult fenced_writes_impl(const History&, const Analysis& a) {
  CheckResult r;
  r.name = "fenced-writes";
  std::vector<const Event*> writes = a.fenced_writes;
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
  const std::uint64_t stale_attempts = rejected + stale;
  r.metrics["writes"] = static_cast<double>(writes.size());
  r.metrics["accepted"] = static_cast<double>(accepted);
  r.metrics["rejected"] = static_cast<double>(rejected);
  r.metrics["stale_accepted"] = static_cast<double>(stale);
  r.metrics["stale_attempts"] = static_cast<double>(stale_attempts);
  r.metrics["unrecorded"] = std::max(0.0, unrecorded);
  r.summary = std::to_string(writes.size()) +
              " writes to the fenced resource: " + std::to_string(accepted) + " accepted, " +
              std::to_string(rejected) + " rejected as stale, " + std::to_string(stale) +
              " stale writes accepted";
  set_verdict(r, stale_attempts >= kMinStaleAttempts,
              "no write came with an outdated token, so the fence was never tested (expire "
              "leases under their holders, e.g. --nemesis pause)");
  return r;
}

}  // namespace locksmith::harness::checkers_detail
