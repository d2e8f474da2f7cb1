// The data family: lost updates of the guarded counter, atomic-write visibility, FileStore
// exactly-once delivery. Their evidence is the data itself (counter values, versions, message
// ids), so most of it is clock-free.
#include <algorithm>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "analysis.hpp"

namespace locksmith::harness::checkers_detail {
namespace {

// The final counter must lie between the completed increments and those plus the ones cut short,
// and above every value read.
void check_final_value(CheckResult& r, std::int64_t f, std::uint64_t completed,
                       std::uint64_t unknown, std::int64_t max_read) {
  const auto lo = static_cast<std::int64_t>(completed);
  const auto hi = static_cast<std::int64_t>(completed + unknown);
  if (f < lo || f > hi) {
    Violation v;
    v.what = "final counter " + std::to_string(f) + " but " + std::to_string(completed) +
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

// Repeated values among `reads` (sorted by counter value) as violations; returns how many, and
// counts in `distinct` the distinct values and in `handoffs` the consecutive distinct values
// read by different workers.
std::uint64_t repeated_values(const Analysis& a, const std::vector<std::uint32_t>& reads,
                              CheckResult& r, std::size_t& distinct, std::uint64_t& handoffs) {
  std::uint64_t repeats = 0;
  for (std::size_t k = 0; k < reads.size(); ++k) {
    const Interval& q = a.iv[reads[k]];
    if (k == 0 || q.counter != a.iv[reads[k - 1]].counter) {
      ++distinct;
      handoffs += k > 0 && a.iv[reads[k - 1]].worker != q.worker;
      continue;
    }
    std::size_t first_k = k - 1;
    while (first_k > 0 && a.iv[reads[first_k - 1]].counter == q.counter) --first_k;
    const Interval& p = a.iv[reads[first_k]];
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
  return repeats;
}

}  // namespace

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
  std::size_t distinct = 0;
  std::uint64_t handoffs = 0;
  const std::uint64_t repeats = repeated_values(a, reads, r, distinct, handoffs);
  const std::uint64_t completed = reads.size();
  const std::int64_t max_read = reads.empty() ? -1 : a.iv[reads.back()].counter;
  if (final_value) check_final_value(r, *final_value, completed, unknown, max_read);
  r.metrics["increments"] = static_cast<double>(completed);
  r.metrics["unknown_increments"] = static_cast<double>(unknown);
  r.metrics["distinct_values"] = static_cast<double>(distinct);
  r.metrics["repeated_values"] = static_cast<double>(repeats);
  r.metrics["counter_handoffs"] = static_cast<double>(handoffs);
  r.summary = std::to_string(completed) + " increments (" + std::to_string(handoffs) +
              " handed between workers), " + std::to_string(distinct) + " distinct values read, " +
              std::to_string(repeats) + " repeats" +
              (unknown > 0 ? ", " + std::to_string(unknown) + " cut short by a crash" : "") +
              (final_value ? ", final value " + std::to_string(*final_value) : "");
  set_verdict(r, handoffs >= kMinCounterHandoffs,
              "the counter passed between different workers only " +
                  of_needed(handoffs, kMinCounterHandoffs) + " times");
  return r;
}

namespace {

// Reads whose window (from the reader's previous record) overlapped a write in progress (from a
// writer's write record to its next one).
std::uint64_t racing_reads(const Analysis& a) {
  std::vector<SpanIndex::Span> spans;
  std::unordered_map<std::uint32_t, std::size_t> last_write;  // writer -> index in spans
  for (const Event* w : a.writes) {
    const auto it = last_write.find(w->worker);
    if (it != last_write.end()) spans[it->second].to = std::max(spans[it->second].to, w->time_ns);
    spans.push_back({w->host, w->worker, w->time_ns, w->time_ns + 1});
    last_write[w->worker] = spans.size() - 1;
  }
  const SpanIndex index(std::move(spans));
  std::unordered_map<std::uint32_t, std::uint64_t> previous;  // reader -> its previous read
  std::uint64_t racing = 0;
  for (const Event* e : a.reads) {
    const auto [it, fresh] = previous.try_emplace(e->worker, e->time_ns);
    const std::uint64_t from = fresh ? e->time_ns : it->second;
    it->second = e->time_ns;
    racing += index.overlaps_other(e->host, e->worker, from, std::max(e->time_ns, from + 1));
  }
  return racing;
}

}  // namespace

CheckResult atomic_visibility_impl(const History&, const Analysis& a) {
  CheckResult r;
  r.name = "atomic-visibility";
  if (a.reads.empty()) {
    skip(r, "no reads recorded");
    return r;
  }
  std::vector<std::int64_t> written;
  written.reserve(a.writes.size());
  for (const Event* e : a.writes) written.push_back(e->value);
  std::sort(written.begin(), written.end());
  written.erase(std::unique(written.begin(), written.end()), written.end());
  std::uint64_t partial = 0;
  std::uint64_t unknown = 0;
  for (const Event* e : a.reads) {
    const std::string name = "worker " + std::to_string(e->worker) + " op " + std::to_string(e->op);
    Violation v;
    v.workers = {e->worker};
    v.from_ns = e->time_ns;
    v.to_ns = e->time_ns;
    if (e->aux == 1) {
      ++partial;
      v.what = name + " read partial or corrupt content (version " + std::to_string(e->value) +
               ") at " + a.at(e->host, e->time_ns) + " on host " + std::to_string(e->host);
      add_violation(r, std::move(v));
    } else if (!std::binary_search(written.begin(), written.end(), e->value)) {
      ++unknown;
      v.what = name + " read version " + std::to_string(e->value) + " at " +
               a.at(e->host, e->time_ns) + " on host " + std::to_string(e->host) +
               ", which no writer published";
      add_violation(r, std::move(v));
    }
  }
  const std::uint64_t racing = racing_reads(a);
  r.metrics["reads"] = static_cast<double>(a.reads.size());
  r.metrics["versions"] = static_cast<double>(written.size());
  r.metrics["partial_reads"] = static_cast<double>(partial);
  r.metrics["unknown_versions"] = static_cast<double>(unknown);
  r.metrics["racing_reads"] = static_cast<double>(racing);
  r.summary = std::to_string(a.reads.size()) + " reads (" + std::to_string(racing) +
              " racing a write) of " + std::to_string(written.size()) +
              " published versions: " + std::to_string(partial) + " partial, " +
              std::to_string(unknown) + " of unpublished versions";
  set_verdict(r, racing >= kMinRacingReads,
              "only " + of_needed(racing, kMinRacingReads) + " reads overlapped a write");
  return r;
}

namespace {

struct Message {
  std::uint32_t producer = 0;
  bool put = false;
  bool stored = false;
  std::vector<const Event*> takes;
};

struct Delivery {
  std::uint64_t delivered = 0, duplicates = 0, partial = 0, lost = 0, phantom = 0, uncertain = 0;
};

void violation_at(CheckResult& r, std::string what, std::vector<std::uint32_t> workers,
                  std::uint64_t at) {
  Violation v;
  v.what = std::move(what);
  v.workers = std::move(workers);
  v.from_ns = at;
  v.to_ns = at;
  add_violation(r, std::move(v));
}

// Judges one message; `last_put_crashed` when its producer was killed right after putting it.
void judge_message(const Analysis& a, std::int64_t id, const Message& m, bool last_put_crashed,
                   CheckResult& r, Delivery& d) {
  const std::string name = "message " + std::to_string(id);
  for (const Event* t : m.takes) {
    if (t->aux != 1) continue;
    ++d.partial;
    violation_at(r,
                 "worker " + std::to_string(t->worker) + " took " + name +
                     " with partial or corrupt content at " + a.at(t->host, t->time_ns),
                 {t->worker}, t->time_ns);
  }
  if (!m.put) {
    ++d.phantom;
    const std::uint32_t w = m.takes.empty() ? 0 : m.takes.front()->worker;
    violation_at(
        r,
        name + " was " + (m.takes.empty() ? "found in cur/" : "taken") + " but no producer put it",
        {w}, m.takes.empty() ? 0 : m.takes.front()->time_ns);
    return;
  }
  if (m.takes.size() > 1) {
    ++d.duplicates;
    std::string names;
    std::vector<std::uint32_t> workers;
    for (const Event* t : m.takes) {
      if (!names.empty()) names += ", ";
      names += std::to_string(t->worker);
      workers.push_back(t->worker);
    }
    violation_at(r,
                 name + " was delivered " + std::to_string(m.takes.size()) + " times (workers " +
                     names + ")",
                 workers, m.takes[1]->time_ns);
  }
  if (!m.takes.empty() || m.stored) {
    ++d.delivered;
  } else if (last_put_crashed) {
    ++d.uncertain;  // its producer was killed while committing it
  } else {
    ++d.lost;
    violation_at(r,
                 name + " put by worker " + std::to_string(m.producer) +
                     " was never delivered and is not in cur/",
                 {m.producer}, 0);
  }
}

}  // namespace

CheckResult exactly_once_impl(const History&, const Analysis& a) {
  CheckResult r;
  r.name = "exactly-once";
  if (a.puts.empty()) {
    skip(r, "no messages were put");
    return r;
  }
  std::unordered_map<std::int64_t, Message> messages;
  std::unordered_map<std::uint32_t, std::int64_t> last_put;  // per producer
  for (const Event* e : a.puts) {
    Message& m = messages[e->value];
    m.put = true;
    m.producer = e->worker;
    last_put[e->worker] = e->value;
  }
  std::unordered_set<std::uint32_t> consumers;
  for (const Event* e : a.takes) {
    messages[e->value].takes.push_back(e);
    consumers.insert(e->worker);
  }
  for (const Event* e : a.stored) messages[e->value].stored = true;
  std::unordered_set<std::uint32_t> crashed;
  for (const Crash& c : a.crashes) crashed.insert(c.victim);
  std::vector<std::int64_t> ids;
  ids.reserve(messages.size());
  for (const auto& [id, m] : messages) ids.push_back(id);
  std::sort(ids.begin(), ids.end());  // violations in a stable order
  Delivery d;
  std::uint64_t taken = 0;
  for (const std::int64_t id : ids) {
    const Message& m = messages.at(id);
    taken += m.put && !m.takes.empty();
    const bool last_crashed = m.put && crashed.count(m.producer) && last_put[m.producer] == id;
    judge_message(a, id, m, last_crashed, r, d);
  }
  r.metrics["messages"] = static_cast<double>(a.puts.size());
  r.metrics["delivered"] = static_cast<double>(d.delivered);
  r.metrics["taken"] = static_cast<double>(taken);
  r.metrics["consumers"] = static_cast<double>(consumers.size());
  r.metrics["duplicates"] = static_cast<double>(d.duplicates);
  r.metrics["partial"] = static_cast<double>(d.partial);
  r.metrics["lost"] = static_cast<double>(d.lost);
  r.metrics["phantom"] = static_cast<double>(d.phantom);
  r.metrics["uncertain"] = static_cast<double>(d.uncertain);
  r.summary = std::to_string(a.puts.size()) + " messages put, " + std::to_string(d.delivered) +
              " delivered (" + std::to_string(taken) + " taken by " +
              std::to_string(consumers.size()) + " consumers): " + std::to_string(d.duplicates) +
              " more than once, " + std::to_string(d.partial) + " partial, " +
              std::to_string(d.lost) + " lost, " + std::to_string(d.phantom) + " never put" +
              (d.uncertain > 0 ? ", " + std::to_string(d.uncertain) + " cut short by a crash" : "");
  set_verdict(r, taken >= kMinTakenMessages && consumers.size() >= 2,
              "only " + of_needed(taken, kMinTakenMessages) + " messages taken, by " +
                  std::to_string(consumers.size()) + " consumer(s) (2 needed)");
  return r;
}

}  // namespace locksmith::harness::checkers_detail
