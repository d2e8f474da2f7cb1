// Hand-written histories for every checker: each one passes a correct history and fails a
// broken one, naming the right workers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "locksmith/harness/checkers.hpp"
#include "locksmith/harness/history.hpp"
#include "locksmith/harness/report.hpp"

namespace locksmith::harness {
namespace {

constexpr std::uint64_t kMs = 1000000;
constexpr std::uint32_t kBackground = 30;  // sections Builder::evidence() adds

// Builds a history event by event; build() sorts it the way load_history does.
class Builder {
 public:
  Builder() { h_.info.kind = "test"; }

  Builder& ev(EventType type, std::uint32_t worker, std::uint32_t op, std::uint64_t t,
              std::int64_t value = -1, std::uint8_t host = 0, Mode mode = Mode::exclusive) {
    Event e;
    e.type = type;
    e.worker = worker;
    e.op = op;
    e.time_ns = t;
    e.value = value;
    e.host = host;
    e.mode = mode;
    e.magic = kEventMagic;
    h_.events.push_back(e);
    return *this;
  }
  Event& last() { return h_.events.back(); }
  Event& at(std::size_t i) { return h_.events.at(i); }
  std::vector<Event>& last_events() { return h_.events; }

  // invoke at t0, ok at t1, release at t2, released just after.
  Builder& cs(std::uint32_t worker, std::uint32_t op, std::uint64_t t0, std::uint64_t t1,
              std::uint64_t t2, Mode mode = Mode::exclusive, std::uint8_t host = 0,
              std::int64_t counter = -1, std::int64_t fence = -1) {
    ev(EventType::invoke, worker, op, t0, -1, host, mode);
    ev(EventType::ok, worker, op, t1, fence, host, mode);
    ev(EventType::release, worker, op, t2, counter, host, mode);
    ev(EventType::released, worker, op, t2 + 1, -1, host, mode);
    return *this;
  }
  // Evidence for the power floors, on host 9 (never compared with the hosts a test uses), far
  // later than anything else: kBackground sections of workers 100 and 101 taking turns, each
  // asking while the other holds (contended attempts and handoffs, acquisitions by 2 workers).
  // Counter values and fencing tokens count up from `counter` / `fence` when >= 0; `mixed`
  // alternates exclusive and shared sections (handoffs between modes).
  Builder& evidence(std::int64_t counter = -1, std::int64_t fence = -1, bool mixed = false) {
    constexpr std::uint64_t kBase = 1000000 * kMs;
    for (std::uint32_t k = 0; k < kBackground; ++k) {
      const std::uint64_t t = kBase + k * 10 * kMs;
      const Mode m = mixed && k % 2 == 1 ? Mode::shared : Mode::exclusive;
      const std::int64_t c = counter >= 0 && m == Mode::exclusive ? counter++ : -1;
      cs(100 + k % 2, 1000 + k, t - 8 * kMs, t, t + 5 * kMs, m, 9, c, fence >= 0 ? fence + k : -1);
    }
    return *this;
  }
  // A semaphore of `bound` filled to its bound kBackground times, on host 9.
  Builder& full_semaphore(std::uint32_t bound) {
    constexpr std::uint64_t kBase = 1000000 * kMs;
    for (std::uint32_t k = 0; k < kBackground; ++k) {
      const std::uint64_t t = kBase + k * 100 * kMs;
      for (std::uint32_t j = 0; j < bound; ++j) {
        cs(100 + j, 1000 + k, t, t + j * kMs + 1, t + 50 * kMs, Mode::exclusive, 9);
      }
    }
    return *this;
  }
  // A holder killed while another worker waited, and the lock granted 10 ms later (host 9).
  Builder& recovery() {
    constexpr std::uint64_t kBase = 2000000 * kMs;
    ev(EventType::invoke, 400, 0, kBase).ev(EventType::ok, 400, 0, kBase + 1);
    ev(EventType::invoke, 401, 0, kBase + kMs, -1, 9);
    ev(EventType::crash, 400, 0, kBase + 5 * kMs, -1, 9);
    ev(EventType::ok, 401, 0, kBase + 15 * kMs, -1, 9);
    ev(EventType::release, 401, 0, kBase + 16 * kMs, -1, 9);
    for (Event& e : h_.events) {
      if (e.worker == 400) e.host = 9;
    }
    return *this;
  }
  // kBackground writes by worker 200, each raced by a read of worker 201 (host 9); versions from
  // 10000.
  Builder& racing_reads() {
    constexpr std::uint64_t kBase = 3000000 * kMs;
    for (std::uint32_t k = 0; k < kBackground; ++k) {
      const std::uint64_t t = kBase + k * 10 * kMs;
      ev(EventType::write, 200, k, t, 10000 + k, 9)
          .ev(EventType::read, 201, k, t + 5 * kMs, 10000 + k, 9);
    }
    return *this;
  }
  // kBackground messages (ids from 10000) put by worker 300, taken by workers 301 and 303.
  Builder& messages() {
    constexpr std::uint64_t kBase = 4000000 * kMs;
    for (std::uint32_t k = 0; k < kBackground; ++k) {
      const std::uint64_t t = kBase + k * 10 * kMs;
      ev(EventType::put, 300, k, t, 10000 + k, 9)
          .ev(EventType::take, 301 + 2 * (k % 2), k, t + kMs, 10000 + k, 9);
    }
    return *this;
  }
  Builder& info(RunInfo i) {
    h_.info = std::move(i);
    return *this;
  }
  RunInfo& run() { return h_.info; }

  History build() const {
    History h = h_;
    std::stable_sort(h.events.begin(), h.events.end(), [](const Event& a, const Event& b) {
      if (a.host != b.host) return a.host < b.host;
      if (a.time_ns != b.time_ns) return a.time_ns < b.time_ns;
      return a.worker < b.worker;
    });
    return h;
  }

 private:
  History h_;
};

bool names(const Violation& v, std::initializer_list<std::uint32_t> workers) {
  for (std::uint32_t w : workers) {
    if (std::find(v.workers.begin(), v.workers.end(), w) == v.workers.end()) return false;
  }
  return true;
}

bool mentions(const Violation& v, const std::string& s) {
  return v.what.find(s) != std::string::npos;
}

TEST(Verdict, Names) {
  EXPECT_STREQ(to_string(Verdict::pass), "pass");
  EXPECT_STREQ(to_string(Verdict::fail), "fail");
  EXPECT_STREQ(to_string(Verdict::skipped), "skipped");
}

// ---- intervals ----

TEST(Intervals, ReleasedCrashedOpenAndUnknown) {
  Builder b;
  b.cs(1, 0, 10, 20, 30, Mode::exclusive, 0, 7, 42);
  b.last().aux = 0;
  b.ev(EventType::invoke, 2, 0, 25).ev(EventType::ok, 2, 0, 35);  // killed while holding
  b.ev(EventType::crash, 2, 0, 50);
  b.ev(EventType::invoke, 3, 0, 40);  // killed waiting: unknown outcome, no interval
  b.ev(EventType::crash, 3, 0, 55);
  b.ev(EventType::invoke, 4, 0, 60).ev(EventType::ok, 4, 0, 70);  // never released
  b.ev(EventType::invoke, 5, 0, 80).ev(EventType::busy, 5, 0, 81);
  b.ev(EventType::invoke, 5, 1, 100);
  const History h = b.build();
  const std::vector<Interval> iv = intervals(h);
  ASSERT_EQ(iv.size(), 3u);
  EXPECT_EQ(iv[0].worker, 1u);
  EXPECT_EQ(iv[0].invoke_ns, 10u);
  EXPECT_EQ(iv[0].start_ns, 20u);
  EXPECT_EQ(iv[0].end_ns, 30u);
  EXPECT_EQ(iv[0].counter, 7);
  EXPECT_EQ(iv[0].fence, 42);
  EXPECT_FALSE(iv[0].open);
  EXPECT_FALSE(iv[0].ended_by_crash);
  EXPECT_EQ(iv[1].worker, 2u);
  EXPECT_EQ(iv[1].end_ns, 50u);
  EXPECT_TRUE(iv[1].ended_by_crash);
  EXPECT_FALSE(iv[1].open);
  EXPECT_EQ(iv[2].worker, 4u);
  EXPECT_TRUE(iv[2].open);
  EXPECT_EQ(iv[2].end_ns, 100u);  // the last event of the history
}

TEST(Intervals, SortedByHostThenStartAndCarryEvidence) {
  Builder b;
  b.cs(1, 0, 0, 500, 600, Mode::exclusive, 1);
  b.cs(2, 0, 0, 100, 200, Mode::shared, 1);
  b.cs(3, 0, 0, 900, 950, Mode::exclusive, 0);
  History h = b.build();
  for (Event& e : h.events) {
    if (e.worker == 2 && e.type == EventType::ok) e.witness_readers = 3;
    if (e.worker == 1 && e.type == EventType::release) e.aux = 1;
  }
  const auto iv = intervals(h);
  ASSERT_EQ(iv.size(), 3u);
  EXPECT_EQ(iv[0].worker, 3u);
  EXPECT_EQ(iv[1].worker, 2u);
  EXPECT_EQ(iv[1].mode, Mode::shared);
  EXPECT_EQ(iv[1].witness_readers, 3u);
  EXPECT_EQ(iv[2].worker, 1u);
  EXPECT_TRUE(iv[2].witness_overwritten);
}

// ---- exclusion ----

TEST(Exclusion, SequentialAndTouchingSectionsPass) {
  Builder b;
  b.cs(1, 0, 0, 10, 20).cs(2, 0, 5, 20, 30).cs(1, 1, 21, 31, 40);  // 20: release then ok
  b.evidence();
  const CheckResult r = check_exclusion(b.build());
  EXPECT_EQ(r.name, "exclusion");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.violation_count, 0u);
  EXPECT_EQ(r.metrics.at("critical_sections"), 3 + kBackground);
}

TEST(Exclusion, OverlapIsReportedWithWorkersOpsAndTimes) {
  Builder b;
  b.cs(1, 0, 0, 10 * kMs, 30 * kMs).cs(2, 4, 0, 20 * kMs, 40 * kMs);
  const CheckResult r = check_exclusion(b.build());
  ASSERT_EQ(r.verdict, Verdict::fail);
  ASSERT_EQ(r.violation_count, 1u);
  const Violation& v = r.violations.at(0);
  EXPECT_TRUE(names(v, {1, 2})) << v.what;
  EXPECT_TRUE(mentions(v, "worker 2 op 4")) << v.what;
  EXPECT_TRUE(mentions(v, "worker 1 op 0")) << v.what;
  EXPECT_EQ(v.from_ns, 20 * kMs);
  EXPECT_EQ(v.to_ns, 30 * kMs);
}

TEST(Exclusion, NestedSectionIsAnOverlap) {
  Builder b;
  b.cs(1, 0, 0, 10, 100).cs(2, 0, 0, 50, 60).cs(3, 0, 0, 100, 110);
  const CheckResult r = check_exclusion(b.build());
  EXPECT_EQ(r.violation_count, 1u);
  EXPECT_TRUE(names(r.violations.at(0), {1, 2}));
}

TEST(Exclusion, SharedHoldersMayOverlapButNotAWriter) {
  Builder ok;
  ok.cs(1, 0, 0, 10, 50, Mode::shared).cs(2, 0, 0, 20, 60, Mode::shared).cs(3, 0, 0, 60, 70);
  ok.evidence();
  EXPECT_EQ(check_exclusion(ok.build()).verdict, Verdict::pass);

  Builder bad;
  bad.cs(1, 0, 0, 10, 50, Mode::shared).cs(2, 0, 0, 20, 60, Mode::shared).cs(3, 0, 0, 55, 70);
  const CheckResult r = check_exclusion(bad.build());
  ASSERT_EQ(r.violation_count, 1u);
  EXPECT_TRUE(names(r.violations.at(0), {3, 2}));

  Builder reader_in_writer;
  reader_in_writer.cs(1, 0, 0, 10, 50).cs(2, 0, 0, 20, 30, Mode::shared);
  EXPECT_EQ(check_exclusion(reader_in_writer.build()).violation_count, 1u);
}

TEST(Exclusion, OccupancyWitnessIsClockFreeEvidence) {
  Builder b;
  b.cs(1, 0, 0, 10, 20).cs(2, 0, 0, 30, 40).evidence();
  History h = b.build();
  EXPECT_EQ(check_exclusion(h).verdict, Verdict::pass);
  for (Event& e : h.events) {
    if (e.worker == 2 && e.type == EventType::ok) e.witness_writers = 1;
  }
  const CheckResult r = check_exclusion(h);
  ASSERT_EQ(r.violation_count, 1u);
  EXPECT_EQ(r.violations.at(0).workers, std::vector<std::uint32_t>{2});
  EXPECT_TRUE(mentions(r.violations.at(0), "1 exclusive holder")) << r.violations.at(0).what;
  EXPECT_EQ(r.metrics.at("witness_violations"), 1);
}

TEST(Exclusion, ReadersSeenByAWriterAndWritersSeenByAReaderAreViolations) {
  Builder b;
  b.cs(1, 0, 0, 10, 20, Mode::shared).cs(2, 0, 0, 30, 40, Mode::shared).cs(3, 0, 0, 50, 60);
  b.evidence();
  History h = b.build();
  for (Event& e : h.events) {
    if (e.type != EventType::ok) continue;
    if (e.worker == 1) e.witness_readers = 2;  // a reader seeing readers is fine
  }
  EXPECT_EQ(check_exclusion(h).verdict, Verdict::pass);
  for (Event& e : h.events) {
    if (e.type != EventType::ok) continue;
    if (e.worker == 2) e.witness_writers = 1;
    if (e.worker == 3) e.witness_readers = 1;
  }
  const CheckResult r = check_exclusion(h);
  EXPECT_EQ(r.violation_count, 2u);
}

TEST(Exclusion, OverwrittenOwnerWitnessIsAViolation) {
  Builder b;
  b.cs(1, 0, 0, 10, 20).cs(2, 3, 0, 30, 40);
  History h = b.build();
  for (Event& e : h.events) {
    if (e.worker == 2 && e.type == EventType::release) e.aux = 1;
  }
  const CheckResult r = check_exclusion(h);
  ASSERT_EQ(r.violation_count, 1u);
  EXPECT_TRUE(mentions(r.violations.at(0), "worker 2 op 3"));
  EXPECT_EQ(r.metrics.at("witness_overwritten"), 1);
}

TEST(Exclusion, SkippedForASemaphore) {
  Builder b;
  b.run().max_holders = 3;
  b.cs(1, 0, 0, 10, 50).cs(2, 0, 0, 20, 60);
  EXPECT_EQ(check_exclusion(b.build()).verdict, Verdict::skipped);
}

TEST(Exclusion, SameTimesOnDifferentHostsAreNeverCompared) {
  Builder b;
  b.cs(1, 0, 0, 10, 50, Mode::exclusive, 0).cs(2, 0, 0, 10, 50, Mode::exclusive, 1);
  b.cs(3, 0, 0, 20, 30, Mode::exclusive, 2).evidence();
  const CheckResult r = check_exclusion(b.build());
  EXPECT_EQ(r.verdict, Verdict::pass) << (r.violations.empty() ? "" : r.violations[0].what);
  // ... but an overlap within one of those hosts still is.
  b.cs(4, 0, 0, 25, 35, Mode::exclusive, 2);
  const CheckResult bad = check_exclusion(b.build());
  ASSERT_EQ(bad.violation_count, 1u);
  EXPECT_TRUE(names(bad.violations.at(0), {3, 4}));
}

TEST(Exclusion, KilledHolderEndsAtItsCrash) {
  Builder b;
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10);
  b.ev(EventType::invoke, 2, 0, 5);
  b.ev(EventType::crash, 1, 0, 100);
  b.ev(EventType::ok, 2, 0, 150).ev(EventType::release, 2, 0, 160);
  b.evidence();
  EXPECT_EQ(check_exclusion(b.build()).verdict, Verdict::pass);

  // A grant before the crash (the victim still held the lock) is an overlap.
  Builder bad;
  bad.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10);
  bad.ev(EventType::invoke, 2, 0, 5).ev(EventType::ok, 2, 0, 90);
  bad.ev(EventType::crash, 1, 0, 100);
  bad.ev(EventType::release, 2, 0, 160);
  const CheckResult r = check_exclusion(bad.build());
  ASSERT_EQ(r.violation_count, 1u);
  EXPECT_TRUE(names(r.violations.at(0), {1, 2}));
}

TEST(Exclusion, UnknownOutcomeIsNeverAViolation) {
  // Worker 2 invoked while 1 held and was killed before any outcome: it may or may not have
  // got the lock, so it proves nothing, and it does not end worker 1's interval either.
  Builder b;
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10);
  b.ev(EventType::invoke, 2, 0, 20);
  b.ev(EventType::crash, 2, 0, 30);
  b.ev(EventType::release, 1, 0, 40).ev(EventType::released, 1, 0, 41);
  b.cs(3, 0, 35, 45, 50);
  Builder enough = b;
  enough.evidence();
  EXPECT_EQ(check_exclusion(enough.build()).verdict, Verdict::pass);
  const History h = b.build();
  for (const CheckResult& r : check_all(h, std::nullopt)) {
    EXPECT_NE(r.verdict, Verdict::fail) << r.name << ": " << r.summary;
  }
  // Worker 1 still counts until 40: worker 3 entering at 35 would overlap it.
  Builder bad = b;
  bad.cs(4, 0, 33, 35, 36);
  EXPECT_EQ(check_exclusion(bad.build()).violation_count, 1u);
}

TEST(Exclusion, OpenIntervalCountsOnlyUpToItsWorkersLastEvent) {
  // Worker 1 recorded ok and nothing after (its history file filled up, say). Past its last
  // record we cannot prove it still held the lock, so later holders are not flagged...
  Builder b;
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10);
  b.cs(2, 0, 5, 20, 30).cs(3, 0, 25, 40, 50);
  History h = b.build();
  Builder enough = b;
  enough.evidence();
  EXPECT_EQ(check_exclusion(enough.build()).verdict, Verdict::pass);
  const auto iv = intervals(h);
  ASSERT_FALSE(iv.empty());
  EXPECT_TRUE(iv[0].open);
  EXPECT_EQ(iv[0].end_ns, 51u);  // drawn to the end of the history
  // ... but a holder it proves was inside when it got the lock is.
  Builder bad;
  bad.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10);
  bad.cs(2, 0, 0, 5, 30);
  const CheckResult r = check_exclusion(bad.build());
  ASSERT_EQ(r.violation_count, 1u);
  EXPECT_TRUE(names(r.violations.at(0), {1, 2}));
}

TEST(Exclusion, SectionLeftOpenBeforeTheNextAcquireEndsAtTheWorkersPreviousRecord) {
  // Worker 1's release record is missing, yet it went on to acquire again at 40: its first
  // section ended somewhere after 10 and is not stretched over worker 2's [20, 30].
  Builder b;
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10);
  b.cs(2, 0, 5, 20, 30).cs(1, 1, 40, 45, 50);
  const History h = b.build();
  Builder enough = b;
  enough.evidence();
  EXPECT_EQ(check_exclusion(enough.build()).verdict, Verdict::pass);
  const auto iv = intervals(h);
  ASSERT_EQ(iv.size(), 3u);
  EXPECT_TRUE(iv[0].open);
  EXPECT_EQ(iv[0].end_ns, 10u);
}

TEST(Exclusion, KeepsAtMostMaxViolationsButCountsAll) {
  Builder b;
  // A no-op lock: 300 sections that all overlap their predecessor.
  for (std::uint32_t i = 0; i < 300; ++i) b.cs(i % 3, i, i * 10, i * 10 + 1, i * 10 + 25);
  const CheckResult r = check_exclusion(b.build());
  EXPECT_EQ(r.verdict, Verdict::fail);
  EXPECT_EQ(r.violation_count, 299u);
  EXPECT_EQ(r.violations.size(), kMaxViolations);
}

TEST(Exclusion, UnsortedInputIsSortedFirst) {
  Builder b;
  b.cs(1, 0, 0, 10, 30).cs(2, 0, 0, 20, 40);
  History h = b.build();
  std::reverse(h.events.begin(), h.events.end());
  EXPECT_EQ(check_exclusion(h).violation_count, 1u);
}

// ---- shared / exclusive ----

TEST(SharedExclusive, ReadersTogetherPassWritersAmongReadersFail) {
  Builder b;
  b.run().shared_mix = true;
  b.cs(1, 0, 0, 10, 50, Mode::shared).cs(2, 0, 0, 20, 60, Mode::shared);
  b.cs(3, 0, 0, 30, 55, Mode::shared).cs(4, 0, 0, 60, 80);
  b.evidence(-1, -1, true);
  const CheckResult r = check_shared_exclusive(b.build());
  EXPECT_EQ(r.name, "shared-exclusive");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.metrics.at("max_concurrent_readers"), 3);
  EXPECT_EQ(r.metrics.at("reader_overlaps"), 2);

  b.cs(5, 0, 0, 70, 90, Mode::shared);  // a reader while writer 4 holds
  const CheckResult bad = check_shared_exclusive(b.build());
  ASSERT_EQ(bad.violation_count, 1u);
  EXPECT_TRUE(names(bad.violations.at(0), {4, 5}));
}

TEST(SharedExclusive, WriterEnteringAmongReadersAndWitnesses) {
  Builder b;
  b.cs(1, 0, 0, 10, 50, Mode::shared).cs(2, 0, 0, 20, 30);
  const CheckResult r = check_shared_exclusive(b.build());
  ASSERT_EQ(r.violation_count, 1u);
  EXPECT_TRUE(names(r.violations.at(0), {1, 2}));

  Builder w;
  w.cs(1, 0, 0, 10, 20, Mode::shared).cs(2, 0, 0, 30, 40);
  History h = w.build();
  for (Event& e : h.events) {
    if (e.type == EventType::ok) e.witness_writers = e.worker == 1 ? 1 : 0;
  }
  const CheckResult wr = check_shared_exclusive(h);
  ASSERT_EQ(wr.violation_count, 1u);
  EXPECT_EQ(wr.violations.at(0).workers, std::vector<std::uint32_t>{1});
}

TEST(SharedExclusive, SkippedWithoutSharedSections) {
  Builder b;
  b.cs(1, 0, 0, 10, 20);
  EXPECT_EQ(check_shared_exclusive(b.build()).verdict, Verdict::skipped);
}

// ---- semaphore bound ----

TEST(SemaphoreBound, AtMostMaxHolders) {
  Builder b;
  b.run().max_holders = 3;
  b.cs(1, 0, 0, 10, 100).cs(2, 0, 0, 20, 100).cs(3, 0, 0, 30, 100).cs(4, 0, 0, 100, 120);
  b.full_semaphore(3);
  const CheckResult r = check_semaphore_bound(b.build());
  EXPECT_EQ(r.name, "semaphore-bound");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.metrics.at("max_concurrent"), 3);

  b.cs(5, 0, 0, 40, 50);  // a fourth holder inside [30, 100)
  const CheckResult bad = check_semaphore_bound(b.build());
  ASSERT_EQ(bad.violation_count, 1u);
  EXPECT_TRUE(names(bad.violations.at(0), {5, 1, 2, 3})) << bad.violations.at(0).what;
  EXPECT_EQ(bad.metrics.at("max_concurrent"), 4);
}

TEST(SemaphoreBound, WitnessAndHosts) {
  Builder b;
  b.run().max_holders = 2;
  b.cs(1, 0, 0, 10, 100, Mode::exclusive, 0).cs(2, 0, 0, 10, 100, Mode::exclusive, 1);
  b.cs(3, 0, 0, 10, 100, Mode::exclusive, 2).cs(4, 0, 0, 20, 100, Mode::exclusive, 0);
  b.full_semaphore(2);
  History h = b.build();
  for (Event& e : h.events) {
    if (e.type == EventType::ok && e.worker == 4) e.witness_writers = 1;
  }
  EXPECT_EQ(check_semaphore_bound(h).verdict, Verdict::pass);
  for (Event& e : h.events) {
    if (e.type == EventType::ok && e.worker == 4) e.witness_writers = 2;
  }
  const CheckResult r = check_semaphore_bound(h);
  ASSERT_EQ(r.violation_count, 1u);
  EXPECT_EQ(r.violations.at(0).workers, std::vector<std::uint32_t>{4});
}

// ---- timeout accuracy ----

Builder timed(std::int64_t wait_ns, std::uint64_t waited_ns) {
  Builder b;
  b.ev(EventType::invoke, 1, 0, 1000, wait_ns).ev(EventType::timeout, 1, 0, 1000 + waited_ns, 110);
  return b;
}

TEST(TimeoutAccuracy, WithinBoundsPasses) {
  const CheckResult r = check_timeout_accuracy(timed(500 * kMs, 520 * kMs).build());
  EXPECT_EQ(r.name, "timeout-accuracy");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_DOUBLE_EQ(r.metrics.at("max_overshoot_ms"), 20);
  EXPECT_DOUBLE_EQ(r.metrics.at("p99_overshoot_ms"), 20);
  // 1 ms of clock granularity is tolerated below the timeout.
  EXPECT_EQ(check_timeout_accuracy(timed(500 * kMs, 499 * kMs + 500000).build()).verdict,
            Verdict::pass);
  // 10 % of a long timeout is more than the 100 ms slack.
  EXPECT_EQ(check_timeout_accuracy(timed(5000 * kMs, 5400 * kMs).build()).verdict, Verdict::pass);
}

TEST(TimeoutAccuracy, EarlyLateAndForeverFail) {
  const CheckResult early = check_timeout_accuracy(timed(500 * kMs, 400 * kMs).build());
  ASSERT_EQ(early.violation_count, 1u);
  EXPECT_TRUE(mentions(early.violations.at(0), "before its")) << early.violations.at(0).what;
  EXPECT_EQ(early.violations.at(0).workers, std::vector<std::uint32_t>{1});

  const CheckResult late = check_timeout_accuracy(timed(500 * kMs, 650 * kMs).build());
  ASSERT_EQ(late.violation_count, 1u);
  EXPECT_TRUE(mentions(late.violations.at(0), "past its")) << late.violations.at(0).what;
  // A tighter slack catches smaller overshoots.
  EXPECT_EQ(check_timeout_accuracy(timed(100 * kMs, 140 * kMs).build(), 20).verdict, Verdict::fail);
  EXPECT_EQ(check_timeout_accuracy(timed(500 * kMs, 540 * kMs).build(), 20).verdict,
            Verdict::pass);  // 10 % of 500 ms

  const CheckResult forever = check_timeout_accuracy(timed(-1, 10 * kMs).build());
  ASSERT_EQ(forever.violation_count, 1u);
  EXPECT_TRUE(mentions(forever.violations.at(0), "forever"));
}

TEST(TimeoutAccuracy, PausedWaiterIsExcusedAndNoTimeoutsIsSkipped) {
  Builder b = timed(500 * kMs, 900 * kMs);
  b.ev(EventType::pause, 1, 0, 100 * kMs).ev(EventType::resume, 1, 0, 500 * kMs);
  const CheckResult r = check_timeout_accuracy(b.build());
  EXPECT_EQ(r.verdict, Verdict::pass);
  EXPECT_EQ(r.metrics.at("paused_timeouts"), 1);

  Builder none;
  none.cs(1, 0, 0, 10, 20).ev(EventType::invoke, 2, 0, 5, 0).ev(EventType::busy, 2, 0, 6);
  EXPECT_EQ(check_timeout_accuracy(none.build()).verdict, Verdict::skipped);
}

// ---- release after crash ----

TEST(ReleaseAfterCrash, RecoveryWithinBoundPasses) {
  Builder b;
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10 * kMs);
  b.ev(EventType::invoke, 2, 0, 20 * kMs);
  b.ev(EventType::crash, 1, 0, 100 * kMs);
  b.ev(EventType::ok, 2, 0, 150 * kMs).ev(EventType::release, 2, 0, 160 * kMs);
  const CheckResult r = check_release_after_crash(b.build(), 2000);
  EXPECT_EQ(r.name, "release-after-crash");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_DOUBLE_EQ(r.metrics.at("max_recovery_ms"), 50);
  EXPECT_DOUBLE_EQ(r.metrics.at("recovery_ms_max"), 50);
  EXPECT_DOUBLE_EQ(r.metrics.at("recovery_ms_p50"), 50);
  EXPECT_EQ(r.metrics.at("recoveries_with_waiters"), 1);
  EXPECT_EQ(r.metrics.at("crashes_holding"), 1);
  // The same recovery is too slow for a 40 ms bound.
  const CheckResult tight = check_release_after_crash(b.build(), 40);
  ASSERT_EQ(tight.violation_count, 1u);
  EXPECT_TRUE(names(tight.violations.at(0), {1, 2}));
}

TEST(ReleaseAfterCrash, SlowRecoveryWithoutWaitersIsOnlyAMetric) {
  Builder b;
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10 * kMs);
  b.ev(EventType::crash, 1, 0, 100 * kMs);
  b.cs(2, 0, 4000 * kMs, 4000 * kMs, 4001 * kMs);
  // Recovery with nobody waiting does not exercise it: alone, that is inconclusive.
  EXPECT_EQ(check_release_after_crash(b.build(), 2000).verdict, Verdict::inconclusive);
  b.recovery();
  const CheckResult r = check_release_after_crash(b.build(), 2000);
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_DOUBLE_EQ(r.metrics.at("max_recovery_ms"), 3900);
}

TEST(ReleaseAfterCrash, NeverReleasedWhileOthersWaitFails) {
  Builder b;
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10 * kMs);
  b.ev(EventType::invoke, 2, 0, 20 * kMs, 1000 * kMs);
  b.ev(EventType::crash, 1, 0, 100 * kMs);
  b.ev(EventType::timeout, 2, 0, 1020 * kMs);
  b.ev(EventType::invoke, 2, 1, 1021 * kMs, 1000 * kMs);
  b.ev(EventType::timeout, 2, 1, 2021 * kMs);
  b.ev(EventType::invoke, 2, 2, 2022 * kMs, 1000 * kMs);
  b.ev(EventType::timeout, 2, 2, 3022 * kMs);
  const CheckResult r = check_release_after_crash(b.build(), 2000);
  ASSERT_EQ(r.violation_count, 1u);
  EXPECT_TRUE(mentions(r.violations.at(0), "nobody was granted")) << r.violations.at(0).what;

  // A history that stops before the bound proves nothing: no violation, and not a pass either.
  Builder short_run;
  short_run.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10 * kMs);
  short_run.ev(EventType::invoke, 2, 0, 20 * kMs);
  short_run.ev(EventType::crash, 1, 0, 100 * kMs);
  const CheckResult s = check_release_after_crash(short_run.build(), 2000);
  EXPECT_EQ(s.violation_count, 0u);
  EXPECT_EQ(s.verdict, Verdict::inconclusive) << s.summary;
}

TEST(ReleaseAfterCrash, CrashOfANonHolderIsNotMeasuredAndNoCrashIsSkipped) {
  Builder b;
  b.cs(1, 0, 0, 10, 20);
  EXPECT_EQ(check_release_after_crash(b.build()).verdict, Verdict::skipped);
  b.ev(EventType::invoke, 2, 0, 30).ev(EventType::crash, 2, 0, 40);
  b.ev(EventType::invoke, 3, 0, 35);
  b.cs(1, 1, 5000 * kMs, 5000 * kMs, 5001 * kMs);
  b.recovery();  // one measured recovery (10 ms), on host 9
  const CheckResult r = check_release_after_crash(b.build(), 10);
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.metrics.at("crashes"), 2);
  EXPECT_EQ(r.metrics.at("crashes_holding"), 1);  // only the recovery's
}

TEST(ReleaseAfterCrash, ThreadsKilledTogetherAreNotWaitersForEachOther) {
  // Worker 1 holds; its sibling thread 2 waits; both die together; nobody else wants the lock.
  Builder b;
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10 * kMs);
  b.ev(EventType::invoke, 2, 0, 20 * kMs);
  b.ev(EventType::crash, 1, 0, 100 * kMs).ev(EventType::crash, 2, 0, 100 * kMs + 50);
  b.cs(3, 0, 9000 * kMs, 9000 * kMs, 9001 * kMs);
  b.recovery();
  const CheckResult r = check_release_after_crash(b.build(), 2000);
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.metrics.at("recoveries_with_waiters"), 1);  // only the recovery's
}

// ---- lost updates ----

TEST(LostUpdates, DistinctValuesAndFinalCount) {
  Builder b;
  b.run().counter = true;
  b.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, 0).cs(2, 0, 0, 30, 40, Mode::exclusive, 0, 1);
  b.cs(1, 1, 0, 50, 60, Mode::exclusive, 0, 2);
  b.evidence(3);  // values 3 .. 3 + kBackground - 1
  const History h = b.build();
  constexpr std::int64_t kFinal = 3 + kBackground;
  const CheckResult r = check_lost_updates(h, kFinal);
  EXPECT_EQ(r.name, "lost-updates");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.metrics.at("increments"), kFinal);
  EXPECT_EQ(check_lost_updates(h, std::nullopt).verdict, Verdict::pass);
  EXPECT_EQ(check_lost_updates(h, kFinal - 1).verdict, Verdict::fail);
  EXPECT_EQ(check_lost_updates(h, kFinal + 1).verdict, Verdict::fail);
}

TEST(LostUpdates, RepeatedValueNamesBothOperations) {
  Builder b;
  b.cs(1, 7, 0, 10, 30, Mode::exclusive, 0, 5).cs(2, 9, 0, 20, 40, Mode::exclusive, 0, 5);
  b.cs(3, 0, 0, 50, 60, Mode::exclusive, 0, 6);
  const CheckResult r = check_lost_updates(b.build(), 7);
  ASSERT_GE(r.violation_count, 1u);
  const Violation& v = r.violations.at(0);
  EXPECT_TRUE(names(v, {1, 2}));
  EXPECT_TRUE(mentions(v, "worker 1 op 7") && mentions(v, "worker 2 op 9")) << v.what;
  EXPECT_TRUE(mentions(v, "value 5")) << v.what;
}

TEST(LostUpdates, CrashInsideTheSectionMayOrMayNotHaveWritten) {
  // The last holder was killed inside: it may or may not have written its increment. Values
  // 0 .. k0 - 1 are the evidence (host 9; the counter's order needs no clock).
  constexpr std::int64_t k0 = kBackground;
  Builder b;
  b.evidence(0);
  b.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, k0);
  b.ev(EventType::invoke, 2, 0, 25).ev(EventType::ok, 2, 0, 30).ev(EventType::crash, 2, 0, 40);
  const History h = b.build();
  EXPECT_EQ(check_lost_updates(h, k0 + 1).verdict, Verdict::pass);
  EXPECT_EQ(check_lost_updates(h, k0 + 2).verdict, Verdict::pass);
  EXPECT_EQ(check_lost_updates(h, k0 + 3).verdict, Verdict::fail);
  EXPECT_EQ(check_lost_updates(h, k0).verdict, Verdict::fail);
  EXPECT_EQ(check_lost_updates(h, k0 + 2).metrics.at("unknown_increments"), 1);

  // A later holder read k0 + 2, so the victim did write; the final value must then be k0 + 3.
  b.cs(3, 0, 35, 50, 60, Mode::exclusive, 0, k0 + 2);
  const History later = b.build();
  EXPECT_EQ(check_lost_updates(later, k0 + 3).verdict, Verdict::pass);
  const CheckResult r = check_lost_updates(later, k0 + 2);
  ASSERT_EQ(r.verdict, Verdict::fail);
  EXPECT_TRUE(mentions(r.violations.at(0), "largest value read")) << r.violations.at(0).what;
}

TEST(LostUpdates, SkippedWithoutCounter) {
  Builder b;
  b.cs(1, 0, 0, 10, 20);
  EXPECT_EQ(check_lost_updates(b.build(), std::nullopt).verdict, Verdict::skipped);
}

// ---- atomic visibility ----

TEST(AtomicVisibility, CompletePublishedVersionsPass) {
  Builder b;
  b.ev(EventType::write, 1, 0, 10, 1).ev(EventType::write, 1, 1, 20, 2);
  b.ev(EventType::read, 2, 0, 15, 1)
      .ev(EventType::read, 2, 1, 25, 2)
      .ev(EventType::read, 3, 0, 26, 2);
  b.racing_reads();
  const CheckResult r = check_atomic_visibility(b.build());
  EXPECT_EQ(r.name, "atomic-visibility");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.metrics.at("reads"), 3 + kBackground);
  EXPECT_EQ(r.metrics.at("versions"), 2 + kBackground);
}

TEST(AtomicVisibility, PartialAndUnpublishedReadsFail) {
  Builder b;
  b.ev(EventType::write, 1, 0, 10, 1);
  b.ev(EventType::read, 2, 4, 15, 1);
  b.last().aux = 1;
  b.ev(EventType::read, 3, 6, 16, 9);
  const CheckResult r = check_atomic_visibility(b.build());
  ASSERT_EQ(r.violation_count, 2u);
  EXPECT_TRUE(mentions(r.violations.at(0), "worker 2 op 4")) << r.violations.at(0).what;
  EXPECT_TRUE(mentions(r.violations.at(0), "partial"));
  EXPECT_TRUE(mentions(r.violations.at(1), "version 9")) << r.violations.at(1).what;
  EXPECT_EQ(r.metrics.at("partial_reads"), 1);
}

TEST(AtomicVisibility, SkippedWithoutReads) {
  Builder b;
  b.ev(EventType::write, 1, 0, 10, 1);
  EXPECT_EQ(check_atomic_visibility(b.build()).verdict, Verdict::skipped);
}

// ---- exactly once (FileStore) ----

TEST(ExactlyOnce, EachMessageTakenOnceOrStoredPasses) {
  Builder b;
  b.ev(EventType::put, 0, 0, 10, 100)
      .ev(EventType::put, 0, 1, 11, 101)
      .ev(EventType::put, 2, 0, 12, 200);
  b.ev(EventType::take, 1, 0, 20, 100).ev(EventType::take, 3, 0, 21, 200);
  // 101's consumer was killed before recording: the controller found it in cur/.
  b.ev(EventType::stored, 9, 0, 50, 100).ev(EventType::stored, 9, 1, 50, 101);
  b.ev(EventType::stored, 9, 2, 50, 200);
  b.messages();
  const CheckResult r = check_exactly_once(b.build());
  EXPECT_EQ(r.name, "exactly-once");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.metrics.at("messages"), 3 + kBackground);
  EXPECT_EQ(r.metrics.at("delivered"), 3 + kBackground);
}

TEST(ExactlyOnce, DuplicatesPartialLostAndPhantomsFail) {
  Builder b;
  b.ev(EventType::put, 0, 0, 10, 100).ev(EventType::put, 0, 1, 11, 101);
  b.ev(EventType::put, 0, 2, 12, 102);
  b.ev(EventType::take, 1, 0, 20, 100).ev(EventType::take, 3, 0, 21, 100);  // twice
  b.ev(EventType::take, 1, 1, 22, 101);
  b.last().aux = 1;                      // partial
  b.ev(EventType::take, 3, 1, 23, 777);  // never put
  // 102: never taken and not in cur/ -> lost
  const CheckResult r = check_exactly_once(b.build());
  EXPECT_EQ(r.verdict, Verdict::fail);
  EXPECT_EQ(r.metrics.at("duplicates"), 1);
  EXPECT_EQ(r.metrics.at("partial"), 1);
  EXPECT_EQ(r.metrics.at("lost"), 1);
  EXPECT_EQ(r.metrics.at("phantom"), 1);
  ASSERT_EQ(r.violation_count, 4u);
  EXPECT_TRUE(mentions(r.violations.at(0), "delivered 2 times (workers 1, 3)"))
      << r.violations.at(0).what;
  EXPECT_TRUE(mentions(r.violations.at(1), "partial")) << r.violations.at(1).what;
  EXPECT_TRUE(mentions(r.violations.at(2), "message 102")) << r.violations.at(2).what;
  EXPECT_TRUE(mentions(r.violations.at(3), "no producer put it")) << r.violations.at(3).what;
}

TEST(ExactlyOnce, AProducersLastMessageIsUncertainAfterItsCrash) {
  Builder b;
  b.ev(EventType::put, 0, 0, 10, 100).ev(EventType::put, 0, 1, 11, 101);
  b.ev(EventType::crash, 0, 0, 12, 0);
  b.ev(EventType::take, 1, 0, 20, 100);
  b.messages();
  const CheckResult r = check_exactly_once(b.build());
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.metrics.at("uncertain"), 1);
  EXPECT_EQ(r.metrics.at("lost"), 0);
}

TEST(ExactlyOnce, SkippedWithoutPuts) {
  Builder b;
  b.ev(EventType::take, 1, 0, 10, 1);
  EXPECT_EQ(check_exactly_once(b.build()).verdict, Verdict::skipped);
}

// ---- fencing ----

TEST(Fencing, StrictlyIncreasingTokensPass) {
  Builder b;
  b.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, -1, 3).cs(2, 0, 0, 30, 40, Mode::exclusive, 0, -1, 4);
  b.cs(1, 1, 0, 50, 60, Mode::exclusive, 0, -1, 9);
  b.evidence(-1, 1000);
  const CheckResult r = check_fencing(b.build());
  EXPECT_EQ(r.name, "fencing");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_EQ(r.metrics.at("tokens"), 3 + kBackground);
}

TEST(Fencing, RegressionOrRepeatFails) {
  Builder b;
  b.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, -1, 5).cs(2, 3, 0, 30, 40, Mode::exclusive, 0, -1, 4);
  const CheckResult r = check_fencing(b.build());
  ASSERT_EQ(r.violation_count, 1u);
  EXPECT_TRUE(names(r.violations.at(0), {1, 2}));
  EXPECT_TRUE(mentions(r.violations.at(0), "worker 2 op 3")) << r.violations.at(0).what;

  Builder rep;
  rep.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, -1, 5).cs(2, 0, 0, 30, 40, Mode::exclusive, 0, -1, 5);
  EXPECT_EQ(check_fencing(rep.build()).violation_count, 1u);
}

// A lease can expire under a holder stopped between its grant and its ok event: its ok may then
// come after a later, larger grant's. For leases only a grant asked for after another's ok is
// provably later.
TEST(Fencing, LeasesAreOrderedFromTheAcquireCall) {
  const auto late_ok = [](const char* kind) {
    Builder b;
    b.run().kind = kind;
    // Worker 1 asks at 5 and is granted 4, but records ok only at 30; worker 2 asks at 10, is
    // granted 5 (worker 1's lease expired) and records ok at 12.
    b.cs(2, 0, 10, 12, 20, Mode::exclusive, 0, -1, 5)
        .cs(1, 0, 5, 30, 40, Mode::exclusive, 0, -1, 4);
    b.evidence(-1, 1000);
    return check_fencing(b.build());
  };
  EXPECT_EQ(late_ok("redis").verdict, Verdict::pass) << late_ok("redis").summary;
  EXPECT_EQ(late_ok("fenced").verdict, Verdict::pass);
  EXPECT_EQ(late_ok("flock").verdict, Verdict::fail);  // a lock that excludes orders by ok

  // Asked for after the other's ok and still granted a smaller token: a regression for leases too.
  Builder b;
  b.run().kind = "redis";
  b.cs(2, 0, 10, 12, 20, Mode::exclusive, 0, -1, 5).cs(1, 0, 13, 30, 40, Mode::exclusive, 0, -1, 4);
  const CheckResult r = check_fencing(b.build());
  ASSERT_EQ(r.violation_count, 1u) << r.summary;
  EXPECT_TRUE(mentions(r.violations.at(0), "asked at")) << r.violations.at(0).what;
  // And a repeated token is caught either way.
  Builder rep;
  rep.run().kind = "redis";
  rep.cs(2, 0, 10, 12, 20, Mode::exclusive, 0, -1, 5)
      .cs(1, 0, 5, 30, 40, Mode::exclusive, 0, -1, 5);
  EXPECT_EQ(check_fencing(rep.build()).violation_count, 1u);
}

TEST(Fencing, HostsAreNotOrderedButRepeatsAcrossHostsAreCaught) {
  Builder b;
  b.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, -1, 8).cs(2, 0, 0, 30, 40, Mode::exclusive, 1, -1, 2);
  b.cs(3, 0, 0, 50, 60, Mode::exclusive, 1, -1, 9);
  b.evidence(-1, 1000);
  EXPECT_EQ(check_fencing(b.build()).verdict, Verdict::pass);
  b.cs(4, 0, 0, 70, 80, Mode::exclusive, 1, -1, 8);  // 8 again, on host 1 (also a regression)
  const CheckResult r = check_fencing(b.build());
  EXPECT_EQ(r.violation_count, 2u);
  bool repeat_named = false;
  for (const Violation& v : r.violations) repeat_named = repeat_named || names(v, {1, 4});
  EXPECT_TRUE(repeat_named);
}

TEST(Fencing, SemaphoreGrantsAreNotOrderedAndNoTokensIsSkipped) {
  Builder b;
  b.run().max_holders = 2;
  b.cs(1, 0, 0, 10, 50, Mode::exclusive, 0, -1, 6).cs(2, 0, 0, 20, 60, Mode::exclusive, 0, -1, 5);
  b.evidence(-1, 1000);
  EXPECT_EQ(check_fencing(b.build()).verdict, Verdict::pass);

  Builder none;
  none.cs(1, 0, 0, 10, 20);
  EXPECT_EQ(check_fencing(none.build()).verdict, Verdict::skipped);
}

// ---- liveness ----

TEST(Liveness, Metrics) {
  Builder b;
  b.cs(1, 0, 0, 10 * kMs, 11 * kMs).cs(2, 0, 5 * kMs, 11 * kMs, 12 * kMs);
  b.cs(2, 1, 12 * kMs, 13 * kMs, 14 * kMs).cs(1, 1, 12 * kMs, 40 * kMs, 41 * kMs);
  b.ev(EventType::invoke, 3, 0, 0, 0).ev(EventType::busy, 3, 0, 1);
  // Alone that is too little to judge liveness...
  EXPECT_EQ(check_liveness(b.build()).verdict, Verdict::inconclusive);
  // ... with kBackground more acquisitions (each waiting 8 ms, on host 9), enough.
  b.evidence();
  const CheckResult r = check_liveness(b.build());
  EXPECT_EQ(r.name, "liveness");
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_DOUBLE_EQ(r.metrics.at("max_wait_ms"), 28);
  EXPECT_DOUBLE_EQ(r.metrics.at("p50_wait_ms"), 8);
  EXPECT_EQ(r.metrics.at("successes"), 4 + kBackground);
  EXPECT_EQ(r.metrics.at("attempts"), 5 + kBackground);
  EXPECT_EQ(r.metrics.at("busy"), 1);
  // 1 -> 2, (2 -> 2), 2 -> 1, then 100 -> 101 -> 100 ... on host 9
  EXPECT_EQ(r.metrics.at("handoffs"), 2 + kBackground - 1);
  // Worker 1 waited from 12 to 40 ms; the lock was free from 14 ms.
  EXPECT_DOUBLE_EQ(r.metrics.at("idle_while_waiting_ms_max"), 26);
  EXPECT_EQ(r.metrics.at("min_worker_successes"), 0);
  EXPECT_EQ(r.metrics.at("max_worker_successes"), kBackground / 2);  // 100 and 101
}

TEST(Liveness, StarvationFailsOnlyWhenClear) {
  Builder b;
  std::uint64_t t = 0;
  for (std::uint32_t i = 0; i < 100; ++i, t += 10) b.cs(1 + i % 2, i, t, t + 1, t + 5);
  for (std::uint32_t i = 0; i < 9; ++i) {
    b.ev(EventType::invoke, 9, i, 2 * i + 1, 0).ev(EventType::busy, 9, i, 2 * i + 2);
  }
  EXPECT_EQ(check_liveness(b.build()).verdict, Verdict::pass);  // 9 attempts: not yet
  b.ev(EventType::invoke, 9, 9, 50, 0).ev(EventType::busy, 9, 9, 51);
  const CheckResult r = check_liveness(b.build());
  ASSERT_EQ(r.verdict, Verdict::fail);
  EXPECT_EQ(r.violations.at(0).workers, std::vector<std::uint32_t>{9});
  EXPECT_EQ(r.metrics.at("starved_workers"), 1);
}

// ---- power: inconclusive below the floor ----

// n sections of workers 1 and 2 taking turns, each asking while the other holds (host 0).
Builder turns(std::uint32_t n) {
  Builder b;
  for (std::uint32_t k = 0; k < n; ++k) {
    const std::uint64_t t = 100 * kMs + k * 10 * kMs;
    b.cs(1 + k % 2, k, t - 8 * kMs, t, t + 5 * kMs);
  }
  return b;
}

TEST(Power, ExclusionInconclusiveBelowTheFloorPassAboveFailOnAViolationWithLittlePower) {
  const CheckResult low = check_exclusion(turns(kMinContendedAttempts).build());
  EXPECT_EQ(low.verdict, Verdict::inconclusive) << low.summary;
  EXPECT_EQ(low.metrics.at("contended_attempts"), kMinContendedAttempts - 1);  // first: no wait
  EXPECT_NE(low.summary.find("inconclusive: only 19 of the 20 needed"), std::string::npos)
      << low.summary;
  const CheckResult high = check_exclusion(turns(kMinContendedAttempts + 1).build());
  EXPECT_EQ(high.verdict, Verdict::pass) << high.summary;
  EXPECT_EQ(high.metrics.at("contended_handoffs"), kMinContendedAttempts);
  EXPECT_EQ(high.metrics.at("overlapping_attempts"), kMinContendedAttempts);

  // Uncontended sections prove nothing, however many.
  Builder apart;
  for (std::uint32_t k = 0; k < 100; ++k) apart.cs(1 + k % 2, k, k * 10, k * 10 + 1, k * 10 + 2);
  EXPECT_EQ(check_exclusion(apart.build()).verdict, Verdict::inconclusive);

  // Busy answers given while another worker held the lock are contention too.
  Builder tries;
  tries.cs(1, 0, 0, 10, 100000);
  for (std::uint32_t k = 0; k < kMinContendedAttempts; ++k) {
    tries.ev(EventType::invoke, 2, k, 20 + k * 10, 0).ev(EventType::busy, 2, k, 21 + k * 10);
  }
  const CheckResult refused = check_exclusion(tries.build());
  EXPECT_EQ(refused.verdict, Verdict::pass) << refused.summary;
  EXPECT_EQ(refused.metrics.at("refused_while_held"), kMinContendedAttempts);

  // One overlap in two sections is a failure, with no power to speak of.
  Builder bad;
  bad.cs(1, 0, 0, 10, 30).cs(2, 0, 0, 20, 40);
  EXPECT_EQ(check_exclusion(bad.build()).verdict, Verdict::fail);
}

TEST(Power, EveryFloorHasItsInconclusiveCase) {
  Builder sem;
  sem.run().max_holders = 2;
  sem.cs(1, 0, 0, 10, 20).cs(2, 0, 0, 15, 25);
  EXPECT_EQ(check_semaphore_bound(sem.build()).verdict, Verdict::inconclusive);

  Builder mixed;
  mixed.cs(1, 0, 0, 10, 20, Mode::shared).cs(2, 0, 0, 30, 40);
  EXPECT_EQ(check_shared_exclusive(mixed.build()).verdict, Verdict::inconclusive);

  Builder counter;
  counter.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, 0).cs(2, 0, 0, 30, 40, Mode::exclusive, 0, 1);
  EXPECT_EQ(check_lost_updates(counter.build(), 2).verdict, Verdict::inconclusive);
  // ... and a repeat in two sections is a failure.
  Builder repeat;
  repeat.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, 0).cs(2, 0, 0, 30, 40, Mode::exclusive, 0, 0);
  EXPECT_EQ(check_lost_updates(repeat.build(), std::nullopt).verdict, Verdict::fail);

  // The failing CI run: 4 messages put, 4 delivered is no evidence of exactly-once.
  Builder few;
  for (std::int64_t id = 0; id < 4; ++id) {
    few.ev(EventType::put, 0, 0, 10 + id, id).ev(EventType::take, 1 + id % 2, 0, 20 + id, id);
  }
  const CheckResult once = check_exactly_once(few.build());
  EXPECT_EQ(once.verdict, Verdict::inconclusive) << once.summary;
  EXPECT_EQ(once.metrics.at("taken"), 4);
  EXPECT_EQ(once.metrics.at("consumers"), 2);
  Builder one_consumer;
  one_consumer.messages();
  for (Event& e : one_consumer.last_events()) {
    if (e.type == EventType::take) e.worker = 301;
  }
  EXPECT_EQ(check_exactly_once(one_consumer.build()).verdict, Verdict::inconclusive);

  Builder reads;
  reads.ev(EventType::write, 1, 0, 10, 1).ev(EventType::read, 2, 0, 15, 1);
  const CheckResult vis = check_atomic_visibility(reads.build());
  EXPECT_EQ(vis.verdict, Verdict::inconclusive) << vis.summary;
  Builder torn = reads;
  torn.ev(EventType::read, 2, 1, 16, 1);
  torn.last().aux = 1;
  EXPECT_EQ(check_atomic_visibility(torn.build()).verdict, Verdict::fail);

  Builder tokens;
  tokens.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, -1, 3)
      .cs(2, 0, 0, 30, 40, Mode::exclusive, 0, -1, 4);
  EXPECT_EQ(check_fencing(tokens.build()).verdict, Verdict::inconclusive);

  // Fenced writes: without a stale write the fence was never tested.
  Builder fenced;
  for (std::int64_t k = 1; k <= 5; ++k) fenced.ev(EventType::fenced_write, 1, 0, 10 * k, k);
  for (std::size_t i = 0; i < 5; ++i) fenced.at(i).aux = static_cast<std::int64_t>(i) + 1;
  EXPECT_EQ(check_fenced_writes(fenced.build()).verdict, Verdict::inconclusive);
  fenced.ev(EventType::fenced_write, 2, 0, 60, 2);
  fenced.last().aux = -6;  // rejected: the fence did its job
  const CheckResult fw = check_fenced_writes(fenced.build());
  EXPECT_EQ(fw.verdict, Verdict::pass) << fw.summary;
  EXPECT_EQ(fw.metrics.at("stale_attempts"), 1);
}

TEST(Power, InconclusiveCheckMakesThePrimitiveInconclusiveAndExitTwo) {
  const History h = turns(3).build();
  PrimitiveReport p;
  p.name = "flock";
  p.checks = check_all(h, std::nullopt);
  summarize(p, h);
  EXPECT_EQ(p.verdict, PrimitiveVerdict::inconclusive);
  EXPECT_STREQ(to_string(p.verdict), "INCONCLUSIVE");
  EXPECT_NE(p.reason.find("exclusion inconclusive"), std::string::npos) << p.reason;
  Report r;
  r.command = "stress";
  r.primitives.push_back(p);
  EXPECT_EQ(r.exit_code(), 2);
  std::ostringstream junit;
  write_junit(r, junit);
  EXPECT_NE(junit.str().find("<skipped message=\"INCONCLUSIVE: "), std::string::npos)
      << junit.str();
  std::ostringstream console;
  write_console(r, console, false);
  EXPECT_NE(console.str().find("verdict: INCONCLUSIVE (exit 2)"), std::string::npos)
      << console.str();
  // A failure elsewhere still makes it UNSAFE (exit 1).
  r.primitives.push_back(p);
  r.primitives.back().verdict = PrimitiveVerdict::unsafe;
  EXPECT_EQ(r.exit_code(), 1);
}

// ---- crash recovery against the lock's expiry bound ----

// Worker 1 killed holding at 100 ms while worker 2 waits; worker 2 is granted at `next_ms`.
Builder killed_holder(std::uint64_t next_ms) {
  Builder b;
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10 * kMs);
  b.ev(EventType::invoke, 2, 0, 20 * kMs);
  b.ev(EventType::crash, 1, 0, 100 * kMs);
  b.ev(EventType::ok, 2, 0, next_ms * kMs).ev(EventType::release, 2, 0, (next_ms + 1) * kMs);
  return b;
}

TEST(ReleaseAfterCrash, JudgedAgainstTheDeclaredExpiryBound) {
  // A link lock broken after its 10 s lifetime: UNSAFE for a lock the OS releases at death...
  Builder b = killed_holder(10100);
  EXPECT_EQ(check_release_after_crash(b.build(), 2000).verdict, Verdict::fail);
  // ... correct for one that declares a 10 s expiry (bound 10 s + 1 s + 10 %).
  b.run().expiry_bound_ns = 10000 * static_cast<std::int64_t>(kMs);
  const CheckResult r = check_release_after_crash(b.build(), 2000);
  EXPECT_EQ(r.verdict, Verdict::pass) << r.summary;
  EXPECT_DOUBLE_EQ(r.metrics.at("bound_ms"), 12000);
  EXPECT_DOUBLE_EQ(r.metrics.at("recovery_ms_max"), 10000);
  EXPECT_DOUBLE_EQ(r.metrics.at("recovery_ms_p50"), 10000);
  EXPECT_DOUBLE_EQ(recovery_bound_ms(b.run(), 2000), 12000);
  // Past the expiry bound it is a violation again.
  Builder late = killed_holder(12200);
  late.run().expiry_bound_ns = 10000 * static_cast<std::int64_t>(kMs);
  const CheckResult over = check_release_after_crash(late.build(), 2000);
  ASSERT_EQ(over.violation_count, 1u) << over.summary;
  EXPECT_TRUE(mentions(over.violations.at(0), "bound 12000.000 ms")) << over.violations.at(0).what;
  // A tiny expiry never tightens the default.
  RunInfo tiny;
  tiny.expiry_bound_ns = 10 * static_cast<std::int64_t>(kMs);
  EXPECT_DOUBLE_EQ(recovery_bound_ms(tiny, 2000), 2000);
}

// ---- liveness: idle while waiting ----

TEST(Liveness, NobodyHoldingWhileWorkersWaitFailsPastTheBound) {
  // Worker 1 killed holding at 100 ms; worker 2 times out again and again (1 s each, retrying at
  // once) until it is granted at 9800 ms: nobody held the lock for 9.7 s while it waited.
  Builder b;
  b.evidence();
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10 * kMs);
  b.ev(EventType::crash, 1, 0, 100 * kMs);
  std::uint64_t t = 50 * kMs;
  std::uint32_t op = 0;
  for (; t + 1000 * kMs < 9800 * kMs; t += 1000 * kMs + 10000, ++op) {
    b.ev(EventType::invoke, 2, op, t, 1000 * static_cast<std::int64_t>(kMs));
    b.ev(EventType::timeout, 2, op, t + 1000 * kMs);
  }
  b.ev(EventType::invoke, 2, op, t, 1000 * static_cast<std::int64_t>(kMs));
  b.ev(EventType::ok, 2, op, 9800 * kMs).ev(EventType::release, 2, op, 9801 * kMs);
  const CheckResult r = check_liveness(b.build());
  ASSERT_EQ(r.verdict, Verdict::fail) << r.summary;
  EXPECT_NEAR(r.metrics.at("idle_while_waiting_ms_max"), 9700, 0.001);
  EXPECT_TRUE(mentions(r.violations.at(0), "nobody held the lock for 9700.000 ms"))
      << r.violations.at(0).what;
  // With a declared 10 s expiry that is the lock working as designed.
  b.run().expiry_bound_ns = 10000 * static_cast<std::int64_t>(kMs);
  const CheckResult ok = check_liveness(b.build());
  EXPECT_EQ(ok.verdict, Verdict::pass) << ok.summary;
  EXPECT_DOUBLE_EQ(ok.metrics.at("idle_bound_ms"), 12000);
  // A paused waiter is not waiting for the lock.
  Builder paused = b;
  paused.run().expiry_bound_ns = -1;
  for (std::uint32_t k = 0; k <= op; ++k) {
    paused.ev(EventType::pause, 2, k, 50 * kMs + k * (1000 * kMs + 10000) + 1);
  }
  const CheckResult frozen = check_liveness(paused.build());
  EXPECT_EQ(frozen.verdict, Verdict::pass) << frozen.summary;
  // Time inside a server fault (and the bound after it) is reported apart, not judged.
  Builder fault = b;
  fault.run().expiry_bound_ns = -1;
  fault.ev(EventType::fault, 9999, 0, 90 * kMs, 1).ev(EventType::fault_end, 9999, 0, 95 * kMs, 1);
  const CheckResult during = check_liveness(fault.build());
  EXPECT_EQ(during.verdict, Verdict::pass) << during.summary;
  EXPECT_NEAR(during.metrics.at("idle_during_faults_ms_max"), 9700, 0.001);
}

// ---- loss notice ----

TEST(LossNotice, MetricsAndWritesAfterTheNotice) {
  Builder b;
  // Worker 1 told 3 ms after the loss, stops writing: fine.
  b.ev(EventType::invoke, 1, 0, 0).ev(EventType::ok, 1, 0, 10);
  b.ev(EventType::lost, 1, 0, 20, 3 * static_cast<std::int64_t>(kMs));
  b.ev(EventType::release, 1, 0, 30, -1).ev(EventType::released, 1, 0, 31);
  // Worker 2 told (delay unknown), then incremented the counter anyway.
  b.ev(EventType::invoke, 2, 0, 40).ev(EventType::ok, 2, 0, 50);
  b.ev(EventType::lost, 2, 0, 60, -1);
  b.ev(EventType::release, 2, 0, 70, 5);
  // Worker 3 wrote to the fenced resource after being told 9 ms late.
  b.ev(EventType::invoke, 3, 4, 80).ev(EventType::ok, 3, 4, 90);
  b.ev(EventType::lost, 3, 4, 100, 9 * static_cast<std::int64_t>(kMs));
  b.ev(EventType::fenced_write, 3, 4, 110, 7);
  b.last().aux = 1;
  // Worker 4 incremented, then was told: the write came before the notice.
  b.ev(EventType::invoke, 4, 0, 120).ev(EventType::ok, 4, 0, 130);
  b.ev(EventType::release, 4, 0, 140, 6).ev(EventType::lost, 4, 0, 150, 1);
  const CheckResult r = check_loss_notice(b.build());
  EXPECT_EQ(r.name, "loss-notice");
  ASSERT_EQ(r.verdict, Verdict::fail) << r.summary;
  ASSERT_EQ(r.violation_count, 2u);
  EXPECT_TRUE(names(r.violations.at(0), {2}));
  EXPECT_TRUE(mentions(r.violations.at(0), "incremented the guarded counter"))
      << r.violations.at(0).what;
  EXPECT_TRUE(mentions(r.violations.at(1), "worker 3 op 4")) << r.violations.at(1).what;
  EXPECT_EQ(r.metrics.at("told_count"), 4);
  EXPECT_DOUBLE_EQ(r.metrics.at("told_ms_p50"), 3);
  EXPECT_DOUBLE_EQ(r.metrics.at("told_ms_p99"), 9);
  EXPECT_STREQ(to_string(EventType::lost), "lost");

  Builder none;
  none.cs(1, 0, 0, 10, 20);
  EXPECT_EQ(check_loss_notice(none.build()).verdict, Verdict::skipped);
  const auto names_run = check_all(b.build(), std::nullopt);
  EXPECT_EQ(names_run.back().name, "loss-notice");
}

// ---- check_all ----

std::vector<std::string> names_of(const std::vector<CheckResult>& rs) {
  std::vector<std::string> out;
  for (const CheckResult& r : rs) out.push_back(r.name);
  return out;
}

TEST(CheckAll, PicksTheCheckersThatApply) {
  Builder b;
  b.run().counter = true;
  b.cs(1, 0, 0, 10, 20, Mode::exclusive, 0, 0);
  using V = std::vector<std::string>;
  EXPECT_EQ(names_of(check_all(b.build(), 1)),
            (V{"exclusion", "timeout-accuracy", "lost-updates", "fencing", "liveness"}));

  Builder s = b;
  s.run().max_holders = 3;
  s.run().counter = false;
  s.run().shared_mix = true;
  s.ev(EventType::invoke, 2, 0, 30).ev(EventType::crash, 2, 0, 31);
  s.ev(EventType::read, 3, 0, 40, 1).ev(EventType::write, 3, 1, 39, 1);
  EXPECT_EQ(names_of(check_all(s.build(), std::nullopt)),
            (V{"shared-exclusive", "semaphore-bound", "timeout-accuracy", "release-after-crash",
               "atomic-visibility", "fencing", "liveness"}));

  const auto all = check_all(b.build(), 1);
  for (const CheckResult& r : all) EXPECT_NE(r.verdict, Verdict::fail) << r.name;
  EXPECT_EQ(all[1].verdict, Verdict::skipped);  // no timeouts
  const auto wrong = check_all(b.build(), 5);
  EXPECT_EQ(wrong[2].verdict, Verdict::fail);
}

}  // namespace
}  // namespace locksmith::harness
