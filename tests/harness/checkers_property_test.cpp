// Property tests: a simulator produces histories of a correctly working lock (exclusive,
// semaphore, shared/exclusive mix; several hosts with unrelated clocks; workers killed and
// paused by a nemesis) that no checker may flag; the same simulator with one injected fault
// (a grant that ignores the lock, a lying witness, an overwritten owner witness, a stale token,
// a repeated counter value) must be caught by the right checker, naming the right workers.
// Plus a scale test: a million-section history is checked in O(n log n).
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "locksmith/harness/checkers.hpp"
#include "locksmith/harness/history.hpp"

namespace locksmith::harness {
namespace {

constexpr std::uint64_t kMs = 1000000;

enum class Fault {
  none,
  overlap,          // one grant ignores the lock (witness left at 0: only clocks show it)
  overlap_witness,  // the same, with a truthful occupancy witness
};

struct SimOptions {
  std::uint32_t workers = 4;
  std::uint32_t hosts = 1;
  std::uint32_t max_holders = 1;  // > 1: a counting semaphore
  bool shared_mix = false;
  bool nemesis = false;  // kill and pause workers
  std::size_t steps = 150;
  Fault fault = Fault::none;
  std::uint64_t seed = 0;
};

struct SimResult {
  History history;
  std::optional<std::int64_t> final_counter;
  bool injected = false;
  std::uint32_t entrant = 0;               // the worker granted the lock wrongly
  std::vector<std::uint32_t> conflicting;  // incompatible holders on its host at that moment
  bool mixed = false;                      // a reader among writers or a writer among readers
};

// A discrete-event model of N workers on one lock. Time advances 1 ns .. 2 ms per step; each
// host adds its own offset to the clock, so raw times of different hosts are unrelated.
class Simulator {
 public:
  explicit Simulator(const SimOptions& o) : o_(o), rng_(o.seed) {
    for (std::uint32_t hidx = 0; hidx < o.hosts; ++hidx) {
      offset_.push_back(std::uniform_int_distribution<std::uint64_t>(0, 400 * kMs)(rng_));
    }
    for (std::uint32_t i = 0; i < o.workers; ++i) spawn();
    RunInfo& info = r_.history.info;
    info.kind = "sim";
    info.max_holders = o.max_holders;
    info.shared_mix = o.shared_mix;
    info.workers = o.workers;
    info.counter = o.max_holders == 1;
    info.nemesis = o.nemesis ? "kill,pause" : "";
  }

  SimResult run() {
    fault_at_ = o_.fault == Fault::none
                    ? o_.steps
                    : std::uniform_int_distribution<std::size_t>(0, o_.steps / 2)(rng_);
    for (std::size_t step = 0; step < o_.steps; ++step) {
      now_ += 1 + std::uniform_int_distribution<std::uint64_t>(0, 2 * kMs)(rng_);
      fire_timeouts();
      std::vector<std::size_t> alive;
      for (std::size_t i = 0; i < w_.size(); ++i) {
        if (w_[i].state != State::dead) alive.push_back(i);
      }
      const std::size_t i =
          alive[std::uniform_int_distribution<std::size_t>(0, alive.size() - 1)(rng_)];
      act(i, step);
    }
    // Workers finish their critical sections when a run stops; now and then leave some
    // holders open, as if their history files had filled up.
    if (o_.fault != Fault::none || chance(0.7)) {
      for (Worker& w : w_) {
        if (w.state == State::holding) release(w);
      }
    }
    if (o_.max_holders == 1) r_.final_counter = counter_;
    std::stable_sort(r_.history.events.begin(), r_.history.events.end(),
                     [](const Event& a, const Event& b) {
                       if (a.host != b.host) return a.host < b.host;
                       if (a.time_ns != b.time_ns) return a.time_ns < b.time_ns;
                       return a.worker < b.worker;
                     });
    return std::move(r_);
  }

 private:
  enum class State { idle, waiting, holding, silent, dead };
  struct Worker {
    std::uint32_t id = 0;
    std::uint8_t host = 0;
    State state = State::idle;
    std::uint32_t op = 0;
    Mode mode = Mode::exclusive;
    std::int64_t wait_ns = -1;
    std::uint64_t invoked = 0;
  };

  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  void spawn() {
    Worker w;
    w.id = next_id_++;
    w.host = static_cast<std::uint8_t>(w.id % o_.hosts);
    w_.push_back(w);
  }

  void emit(const Worker& w, EventType type, std::int64_t value = -1, std::int64_t aux = 0,
            std::uint32_t writers = 0, std::uint32_t readers = 0) {
    Event e;
    e.time_ns = ++now_ + offset_[w.host];
    e.worker = w.id;
    e.op = w.op;
    e.type = type;
    e.mode = w.mode;
    e.host = w.host;
    e.magic = kEventMagic;
    e.value = value;
    e.aux = aux;
    e.witness_writers = writers;
    e.witness_readers = readers;
    r_.history.events.push_back(e);
  }

  bool holds(const Worker& w) const {
    return w.state == State::holding || w.state == State::silent;
  }

  bool compatible(const Worker& a, const Worker& b) const {
    if (o_.max_holders > 1) return true;  // counted, not excluded
    return a.mode == Mode::shared && b.mode == Mode::shared;
  }

  bool grantable(const Worker& w) const {
    std::uint32_t holders = 0;
    for (const Worker& o : w_) {
      if (!holds(o)) continue;
      ++holders;
      if (!compatible(w, o)) return false;
    }
    return o_.max_holders <= 1 || holders < o_.max_holders;
  }

  // The occupancy witness: other holders on the same host (shared memory is per machine).
  void witness(const Worker& w, std::uint32_t& writers, std::uint32_t& readers) const {
    writers = readers = 0;
    for (const Worker& o : w_) {
      if (o.id == w.id || o.host != w.host || !holds(o)) continue;
      (o.mode == Mode::shared ? readers : writers) += 1;
    }
  }

  void grant(Worker& w, bool truthful_witness) {
    std::uint32_t writers = 0;
    std::uint32_t readers = 0;
    if (truthful_witness) witness(w, writers, readers);
    if (o_.nemesis && chance(0.05)) {
      w.state = State::silent;  // got the lock, killed before it could record ok
      return;
    }
    emit(w, EventType::ok, ++token_, 0, writers, readers);
    w.state = State::holding;
  }

  void fire_timeouts() {
    for (Worker& w : w_) {
      if (w.state == State::waiting && w.wait_ns > 0 &&
          now_ >= w.invoked + static_cast<std::uint64_t>(w.wait_ns)) {
        emit(w, EventType::timeout, 110);
        w.state = State::idle;
        ++w.op;
      }
    }
  }

  // Tries to grant `w` against the lock once, if the fault is due and it would conflict with
  // a recorded holder on its own host.
  bool inject(Worker& w, std::size_t step) {
    if (r_.injected || o_.fault == Fault::none || step < fault_at_ || grantable(w)) return false;
    std::vector<std::uint32_t> conflicting;
    std::uint32_t same_host_holders = 0;
    for (const Worker& o : w_) {
      if (o.id == w.id || o.host != w.host || !holds(o)) continue;
      ++same_host_holders;
      if (o.state == State::holding && !compatible(w, o)) {
        conflicting.push_back(o.id);
        r_.mixed = r_.mixed || o.mode != w.mode;
      }
    }
    if (o_.max_holders > 1) {
      // Over the bound on this host, with every holder recorded.
      bool all_recorded = true;
      for (const Worker& o : w_) all_recorded = all_recorded && o.state != State::silent;
      if (same_host_holders < o_.max_holders || !all_recorded) return false;
      for (const Worker& o : w_) {
        if (o.id != w.id && o.host == w.host && o.state == State::holding) {
          conflicting.push_back(o.id);
        }
      }
    } else if (conflicting.empty()) {
      return false;
    }
    r_.injected = true;
    r_.entrant = w.id;
    r_.conflicting = conflicting;
    std::uint32_t writers = 0;
    std::uint32_t readers = 0;
    if (o_.fault == Fault::overlap_witness) witness(w, writers, readers);
    emit(w, EventType::ok, ++token_, 0, writers, readers);
    w.state = State::holding;
    return true;
  }

  void act(std::size_t i, std::size_t step) {
    Worker& w = w_[i];
    switch (w.state) {
      case State::idle: {
        w.mode = o_.shared_mix && chance(0.5) ? Mode::shared : Mode::exclusive;
        const double pick = std::uniform_real_distribution<double>(0, 1)(rng_);
        w.wait_ns = pick < 0.2 ? 0
                    : pick < 0.5
                        ? -1
                        : static_cast<std::int64_t>(
                              std::uniform_int_distribution<std::uint64_t>(1, 20)(rng_) * kMs);
        w.invoked = now_ + 1;
        emit(w, EventType::invoke, w.wait_ns);
        if (w.wait_ns == 0) {
          if (grantable(w)) {
            grant(w, true);
          } else {
            emit(w, EventType::busy, 11);
            ++w.op;
          }
        } else {
          w.state = State::waiting;
        }
        break;
      }
      case State::waiting:
        if (inject(w, step)) break;
        if (grantable(w)) {
          grant(w, true);
        } else if (o_.nemesis && chance(0.03)) {
          kill(w);  // killed while waiting: unknown outcome
        }
        break;
      case State::holding:
        if (o_.nemesis && chance(0.08)) {
          if (o_.max_holders == 1 && w.mode == Mode::exclusive && chance(0.5)) ++counter_;
          kill(w);
        } else if (o_.nemesis && chance(0.08)) {
          emit(w, EventType::pause);
          now_ += std::uniform_int_distribution<std::uint64_t>(1, 5 * kMs)(rng_);
          emit(w, EventType::resume);
        } else {
          release(w);
        }
        break;
      case State::silent:
        kill(w);
        break;
      case State::dead:
        break;
    }
  }

  void release(Worker& w) {
    now_ += 1 + std::uniform_int_distribution<std::uint64_t>(0, kMs)(rng_);
    const bool counts = o_.max_holders == 1 && w.mode == Mode::exclusive;
    emit(w, EventType::release, counts ? counter_ : -1);
    if (counts) ++counter_;
    emit(w, EventType::released);
    w.state = State::idle;
    ++w.op;
  }

  void kill(Worker& w) {
    emit(w, EventType::crash);
    w.state = State::dead;
    spawn();
  }

  SimOptions o_;
  std::mt19937_64 rng_;
  std::vector<std::uint64_t> offset_;
  std::vector<Worker> w_;
  std::uint32_t next_id_ = 1;
  std::uint64_t now_ = 1000 * kMs;
  std::int64_t counter_ = 0;
  std::int64_t token_ = 0;
  std::size_t fault_at_ = 0;
  SimResult r_;
};

// Random options of every kind of run the simulator knows.
SimOptions gen_options(Fault fault) {
  SimOptions o;
  o.seed = *rc::gen::arbitrary<std::uint64_t>();
  o.workers = *rc::gen::inRange<std::uint32_t>(2, 7);
  o.hosts = *rc::gen::inRange<std::uint32_t>(1, 4);
  o.max_holders = *rc::gen::element<std::uint32_t>(1, 1, 2, 3);
  o.shared_mix = o.max_holders == 1 && *rc::gen::arbitrary<bool>();
  o.nemesis = *rc::gen::arbitrary<bool>();
  // Under 100 grants: the starvation rule needs 100 successes, so it cannot fire by chance.
  o.steps = *rc::gen::inRange<std::size_t>(10, 180);
  o.fault = fault;
  return o;
}

std::string describe(const CheckResult& r) {
  std::string s = r.name + " " + to_string(r.verdict) + ": " + r.summary;
  for (const Violation& v : r.violations) s += "\n  " + v.what;
  return s;
}

const CheckResult* find(const std::vector<CheckResult>& rs, const std::string& name) {
  for (const CheckResult& r : rs) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

// The result of the checker `name`, which must have run.
const CheckResult& result(const std::vector<CheckResult>& rs, const std::string& name) {
  const CheckResult* r = find(rs, name);
  if (r == nullptr) throw std::runtime_error("checker " + name + " did not run");
  return *r;
}

// What a simulated history exercises, so that the generator is known to reach every situation
// the checkers must not misjudge.
struct Coverage {
  bool crash_holding = false;
  bool unknown_outcome = false;
  bool timeouts = false;
  bool open = false;
  bool readers_overlap = false;
  bool semaphore_full = false;
  bool cross_host_raw_overlap = false;  // would be an overlap if clocks were compared
};

Coverage coverage(const SimOptions& o, const SimResult& sim) {
  Coverage c;
  const auto results = check_all(sim.history, sim.final_counter);
  if (const CheckResult* r = find(results, "release-after-crash")) {
    c.crash_holding = r->metrics.at("crashes_holding") > 0;
  }
  c.unknown_outcome = result(results, "liveness").metrics.at("unknown_outcomes") > 0;
  c.timeouts = result(results, "timeout-accuracy").verdict == Verdict::pass;
  if (const CheckResult* r = find(results, "shared-exclusive")) {
    c.readers_overlap = r->metrics.count("reader_overlaps") && r->metrics.at("reader_overlaps") > 0;
  }
  if (const CheckResult* r = find(results, "semaphore-bound")) {
    c.semaphore_full = r->metrics.at("max_concurrent") == o.max_holders;
  }
  const auto iv = intervals(sim.history);
  for (std::size_t i = 0; i < iv.size(); ++i) {
    c.open = c.open || iv[i].open;
    for (std::size_t j = i + 1; j < iv.size() && !c.cross_host_raw_overlap; ++j) {
      c.cross_host_raw_overlap = iv[i].host != iv[j].host && !iv[i].open && !iv[j].open &&
                                 iv[i].start_ns < iv[j].end_ns && iv[j].start_ns < iv[i].end_ns;
    }
  }
  return c;
}

RC_GTEST_PROP(CheckersProperty, CorrectLockHistoriesAreNeverFlagged, ()) {
  const SimOptions o = gen_options(Fault::none);
  const SimResult sim = Simulator(o).run();
  const auto results = check_all(sim.history, sim.final_counter);
  for (const CheckResult& r : results) {
    RC_ASSERT_FALSE(r.verdict == Verdict::fail);
    RC_ASSERT(r.violation_count == 0u);
  }
  // The exclusion checks really looked at something: pass exactly when they saw the contention
  // their floor asks for, inconclusive (never pass) below it.
  const bool semaphore = o.max_holders > 1;
  const CheckResult& ex = result(results, semaphore ? "semaphore-bound" : "exclusion");
  const double power = ex.metrics.at(semaphore ? "full_entries" : "contended_attempts");
  const auto floor = static_cast<double>(semaphore ? kMinFullEntries : kMinContendedAttempts);
  RC_ASSERT(ex.verdict == (power >= floor ? Verdict::pass : Verdict::inconclusive));
  RC_CLASSIFY(power < floor, "below the power floor");
  RC_TAG(o.max_holders > 1 ? "semaphore" : o.shared_mix ? "shared-mix" : "exclusive");
  const Coverage c = coverage(o, sim);
  RC_CLASSIFY(c.crash_holding, "killed holder");
  RC_CLASSIFY(c.cross_host_raw_overlap, "cross-host raw overlap");
  RC_CLASSIFY(c.open, "open interval");
}

RC_GTEST_PROP(CheckersProperty, InjectedOverlapIsFoundNamingBothWorkers, ()) {
  const Fault fault = *rc::gen::element(Fault::overlap, Fault::overlap_witness);
  SimOptions o = gen_options(fault);
  o.steps = *rc::gen::inRange<std::size_t>(60, 180);
  if (o.max_holders > 1) o.hosts = 1;  // the bound is per host: keep every holder on one
  const SimResult sim = Simulator(o).run();
  RC_PRE(sim.injected);  // the lock was never contended at a moment the fault could strike
  const auto results = check_all(sim.history, sim.final_counter);
  const char* name = o.max_holders > 1 ? "semaphore-bound" : "exclusion";
  const CheckResult& r = result(results, name);
  RC_ASSERT(r.verdict == Verdict::fail);
  bool named = false;
  for (const Violation& v : r.violations) {
    const bool has_entrant =
        std::find(v.workers.begin(), v.workers.end(), sim.entrant) != v.workers.end();
    bool has_holder = false;
    for (std::uint32_t c : sim.conflicting) {
      has_holder =
          has_holder || std::find(v.workers.begin(), v.workers.end(), c) != v.workers.end();
    }
    named = named || (has_entrant && has_holder);
  }
  RC_ASSERT(named);
  if (fault == Fault::overlap) {
    // Only clocks show it, and it is exactly one grant.
    RC_ASSERT(r.violation_count == 1u);
  } else {
    RC_ASSERT(r.metrics.at("witness_violations") == 1.0);
  }
  // Mixed pairs are also the shared/exclusive checker's business.
  if (o.shared_mix) {
    RC_ASSERT((result(results, "shared-exclusive").verdict == Verdict::fail) == sim.mixed);
  }
  RC_TAG(name);
}

RC_GTEST_PROP(CheckersProperty, LyingWitnessOrOverwrittenOwnerIsFound, ()) {
  SimOptions o = gen_options(Fault::none);
  o.steps = *rc::gen::inRange<std::size_t>(30, 180);
  SimResult sim = Simulator(o).run();
  std::vector<std::size_t> oks;
  std::vector<std::size_t> releases;
  for (std::size_t i = 0; i < sim.history.events.size(); ++i) {
    const Event& e = sim.history.events[i];
    if (e.type == EventType::ok) oks.push_back(i);
    if (e.type == EventType::release) releases.push_back(i);
  }
  const bool overwrite = o.max_holders == 1 && !releases.empty() && *rc::gen::arbitrary<bool>();
  RC_PRE(overwrite || !oks.empty());
  std::uint32_t victim = 0;
  if (overwrite) {
    Event& e = sim.history.events[*rc::gen::elementOf(releases)];
    e.aux = 1;
    victim = e.worker;
  } else {
    Event& e = sim.history.events[*rc::gen::elementOf(oks)];
    e.witness_writers = std::max<std::uint32_t>(o.max_holders, 1);  // one too many
    victim = e.worker;
  }
  const auto results = check_all(sim.history, sim.final_counter);
  const CheckResult& r = result(results, o.max_holders > 1 ? "semaphore-bound" : "exclusion");
  RC_ASSERT(r.verdict == Verdict::fail);
  RC_ASSERT(r.violation_count == 1u);
  RC_ASSERT(r.violations.at(0).workers == std::vector<std::uint32_t>{victim});
}

RC_GTEST_PROP(CheckersProperty, StaleTokenOrRepeatedCounterIsFound, ()) {
  SimOptions o = gen_options(Fault::none);
  o.max_holders = 1;
  o.shared_mix = false;
  o.steps = *rc::gen::inRange<std::size_t>(40, 180);
  SimResult sim = Simulator(o).run();
  auto& ev = sim.history.events;
  if (*rc::gen::arbitrary<bool>()) {
    // A token no larger than the one granted just before it on the same host.
    std::vector<std::pair<std::size_t, std::size_t>> pairs;  // (earlier ok, later ok)
    std::vector<std::size_t> last_ok(256, ev.size());
    for (std::size_t i = 0; i < ev.size(); ++i) {
      if (ev[i].type != EventType::ok) continue;
      if (last_ok[ev[i].host] != ev.size()) pairs.emplace_back(last_ok[ev[i].host], i);
      last_ok[ev[i].host] = i;
    }
    RC_PRE(!pairs.empty());
    const auto [p, x] = *rc::gen::elementOf(pairs);
    ev[x].value = ev[p].value - *rc::gen::inRange<std::int64_t>(0, 2);
    const CheckResult r = check_fencing(sim.history);
    RC_ASSERT(r.verdict == Verdict::fail);
    bool named = false;
    for (const Violation& v : r.violations) {
      named = named ||
              (std::find(v.workers.begin(), v.workers.end(), ev[x].worker) != v.workers.end() &&
               std::find(v.workers.begin(), v.workers.end(), ev[p].worker) != v.workers.end());
    }
    RC_ASSERT(named);
  } else {
    std::vector<std::size_t> releases;
    for (std::size_t i = 0; i < ev.size(); ++i) {
      if (ev[i].type == EventType::release && ev[i].value >= 0) releases.push_back(i);
    }
    RC_PRE(releases.size() >= 2u);
    const std::size_t a = *rc::gen::elementOf(releases);
    const std::size_t b = *rc::gen::elementOf(releases);
    RC_PRE(a != b);
    ev[b].value = ev[a].value;
    const CheckResult r = check_lost_updates(sim.history, std::nullopt);
    RC_ASSERT(r.verdict == Verdict::fail);
    RC_ASSERT(r.violation_count == 1u);
    const auto& names = r.violations.at(0).workers;
    RC_ASSERT(std::find(names.begin(), names.end(), ev[a].worker) != names.end());
    RC_ASSERT(std::find(names.begin(), names.end(), ev[b].worker) != names.end());
  }
}

TEST(CheckersSimulator, ReachesEverySituation) {
  Coverage any;
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.workers = 2 + seed % 5;
    o.hosts = 1 + seed % 3;
    o.max_holders = seed % 4 == 0 ? 2 + seed % 2 : 1;
    o.shared_mix = o.max_holders == 1 && seed % 2 == 1;
    o.nemesis = seed % 3 != 0;
    o.steps = 170;
    const SimResult sim = Simulator(o).run();
    const Coverage c = coverage(o, sim);
    for (const CheckResult& r : check_all(sim.history, sim.final_counter)) {
      ASSERT_NE(r.verdict, Verdict::fail) << "seed " << seed << ": " << describe(r);
    }
    any.crash_holding = any.crash_holding || c.crash_holding;
    any.unknown_outcome = any.unknown_outcome || c.unknown_outcome;
    any.timeouts = any.timeouts || c.timeouts;
    any.open = any.open || c.open;
    any.readers_overlap = any.readers_overlap || c.readers_overlap;
    any.semaphore_full = any.semaphore_full || c.semaphore_full;
    any.cross_host_raw_overlap = any.cross_host_raw_overlap || c.cross_host_raw_overlap;
  }
  EXPECT_TRUE(any.crash_holding);
  EXPECT_TRUE(any.unknown_outcome);
  EXPECT_TRUE(any.timeouts);
  EXPECT_TRUE(any.open);
  EXPECT_TRUE(any.readers_overlap);
  EXPECT_TRUE(any.semaphore_full);
  EXPECT_TRUE(any.cross_host_raw_overlap);
}

// ---- scale ----

// n sections by 8 workers on one host, each worker invoking while the previous holder is
// inside; `overlap_at` (if < n) starts that section before the previous one ends.
History big_history(std::size_t n, std::size_t overlap_at) {
  History h;
  h.info.kind = "sim";
  h.info.workers = 8;
  h.events.reserve(4 * n);
  const std::uint64_t base = 1000 * kMs;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t t = base + 100 * i;
    const auto w = static_cast<std::uint32_t>(i % 8);
    const auto op = static_cast<std::uint32_t>(i / 8);
    const std::uint64_t ok = i == overlap_at ? t - 60 : t;  // the previous one ends at t - 50
    auto push = [&](EventType type, std::uint64_t time, std::int64_t value) {
      Event e;
      e.time_ns = time;
      e.worker = w;
      e.op = op;
      e.type = type;
      e.magic = kEventMagic;
      e.value = value;
      h.events.push_back(e);
    };
    push(EventType::invoke, t - 95, -1);
    push(EventType::ok, ok, static_cast<std::int64_t>(i) + 1);
    push(EventType::release, t + 50, static_cast<std::int64_t>(i));
    push(EventType::released, t + 60, -1);
  }
  std::stable_sort(h.events.begin(), h.events.end(),
                   [](const Event& a, const Event& b) { return a.time_ns < b.time_ns; });
  return h;
}

#ifdef NDEBUG
constexpr std::size_t kScaleSections = 1000000;
#else
constexpr std::size_t kScaleSections = 200000;
#endif

TEST(CheckersScale, MillionSectionsInNLogN) {
  const std::size_t n = kScaleSections;
  {
    const History h = big_history(n, n);
    const auto t0 = std::chrono::steady_clock::now();
    const auto results = check_all(h, static_cast<std::int64_t>(n));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("check_all over %zu critical sections (%zu events): %.3f s\n", n, h.events.size(),
                s);
    RecordProperty("check_all_seconds", std::to_string(s));
    for (const CheckResult& r : results) EXPECT_NE(r.verdict, Verdict::fail) << describe(r);
    EXPECT_EQ(result(results, "exclusion").metrics.at("critical_sections"), static_cast<double>(n));
    EXPECT_EQ(result(results, "liveness").metrics.at("handoffs"), static_cast<double>(n - 1));
  }
  {
    const std::size_t at = n - n / 3;
    const History h = big_history(n, at);
    const auto t0 = std::chrono::steady_clock::now();
    const CheckResult r = check_exclusion(h);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("check_exclusion with one overlap: %.3f s\n", s);
    ASSERT_EQ(r.violation_count, 1u) << describe(r);
    const auto& v = r.violations.at(0).workers;
    EXPECT_EQ(v, (std::vector<std::uint32_t>{static_cast<std::uint32_t>(at % 8),
                                             static_cast<std::uint32_t>((at - 1) % 8)}));
  }
}

}  // namespace
}  // namespace locksmith::harness
