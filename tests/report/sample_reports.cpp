#include "sample_reports.hpp"

#include <algorithm>
#include <stdexcept>
#include <tuple>
#include <vector>

namespace locksmith::test {
namespace {

using harness::Event;
using harness::EventType;
using harness::History;

Event event(std::uint64_t t, std::uint32_t worker, std::uint32_t op, EventType type,
            std::int64_t value = -1) {
  Event e;
  e.time_ns = t;
  e.worker = worker;
  e.op = op;
  e.type = type;
  e.value = value;
  e.magic = harness::kEventMagic;
  return e;
}

// `ops` critical sections of 40 µs handed round-robin between `workers` workers; each worker
// invokes its next acquire as soon as it released the previous one. With `broken`, every 25th
// section starts 15 µs before the previous one ends and reads the same counter value.
History synthetic_history(bool broken, std::uint32_t workers, std::uint32_t ops) {
  History h;
  h.info.spec = broken ? "broken:noop:/tmp/locksmith-demo.lock" : "flock:/tmp/locksmith-demo.lock";
  h.info.kind = broken ? "broken-noop" : "flock";
  h.info.workers = workers;
  h.info.timeout_ns = 5'000'000'000;
  h.info.start_ns = 1'000'000'000;
  h.info.counter = true;
  constexpr std::uint64_t kGap = 5'000, kOverlap = 15'000;
  std::uint64_t t = h.info.start_ns + 10'000;
  std::vector<std::uint64_t> next_invoke(workers, h.info.start_ns);
  std::vector<std::uint32_t> next_op(workers, 0);
  std::int64_t counter = 0;
  for (std::uint32_t k = 0; k < ops; ++k) {
    const std::uint32_t w = k % workers;
    // Hold times between 20 and 200 µs, spread deterministically, so waits vary too.
    const std::uint64_t hold = 20'000 + (std::uint64_t{k} * 7919 % 181) * 1'000;
    const bool overlap = broken && k > 0 && k % 25 == 0;
    const std::uint64_t start = overlap ? t - kGap - kOverlap : t;
    const std::uint32_t op = next_op[w]++;
    h.events.push_back(
        event(std::min(next_invoke[w], start), w, op, EventType::invoke, 5'000'000'000));
    h.events.push_back(event(start, w, op, EventType::ok));
    if (!overlap) ++counter;
    h.events.push_back(event(start + hold, w, op, EventType::release, counter));
    h.events.push_back(event(start + hold + 500, w, op, EventType::released));
    next_invoke[w] = start + hold + 1000;
    t = start + hold + kGap;
  }
  h.info.duration_ns = static_cast<std::int64_t>(t - h.info.start_ns);
  std::stable_sort(h.events.begin(), h.events.end(), [](const Event& a, const Event& b) {
    return std::tie(a.host, a.time_ns, a.worker) < std::tie(b.host, b.time_ns, b.worker);
  });
  return h;
}

harness::PrimitiveReport judged(const History& h) {
  harness::PrimitiveReport p;
  p.name = h.info.kind;
  p.spec = h.info.spec;
  p.info = h.info;
  p.checks = harness::check_all(h, std::nullopt);
  harness::summarize(p, h);
  return p;
}

harness::Report base(const std::string& command) {
  harness::Report r;
  r.command = command;
  r.version = "0.1.0";
  r.host = "testhost";
  r.started_at = "2024-05-01T12:00:00Z";
  r.elapsed_s = 1.5;
  return r;
}

}  // namespace

harness::Report sample_report(const std::string& kind) {
  if (kind == "clean" || kind == "broken") {
    harness::Report r = base("stress");
    r.primitives.push_back(judged(synthetic_history(kind == "broken", 4, 400)));
    return r;
  }
  if (kind == "hostile") {
    harness::Report r = base("probe");
    r.host = "<host> & \"co\"";
    r.directory = "/tmp/</script><script>alert(1)</script>/a&b\"c'd";
    r.facts.push_back({"</td><b>fs</b>", "<i>yes</i>", "\x1b[31m & ' \" \x01"});
    harness::PrimitiveReport p = judged(synthetic_history(true, 3, 120));
    p.name = "<img src=x onerror=alert(1)>";
    p.spec = "flock:/tmp/<x>&\"y\"/\xff\xfe.lock";
    for (auto& c : p.checks) {
      for (auto& v : c.violations) v.what = "</script><svg onload=alert(2)> " + v.what;
    }
    r.primitives.push_back(std::move(p));
    return r;
  }
  if (kind == "multi") {
    harness::Report r = base("probe");
    r.directory = "/mnt/nfs/probe";
    r.peer_directory = "/mnt/nfs2/probe";
    r.facts = {{"fs_type", "nfs4", "from /proc/self/mounts"},
               {"close_releases_fcntl", "yes", "closing a second fd dropped the fcntl lock"},
               {"flock_fcntl_interact", "no", ""}};
    r.primitives.push_back(judged(synthetic_history(false, 4, 300)));
    r.primitives.push_back(judged(synthetic_history(true, 4, 300)));
    harness::PrimitiveReport ofd;
    ofd.name = "ofd";
    ofd.spec = "ofd:/mnt/nfs/probe/ofd.lock";
    ofd.verdict = harness::PrimitiveVerdict::unsupported;
    ofd.reason = "F_OFD_SETLK: Invalid argument";
    r.primitives.push_back(std::move(ofd));
    return r;
  }
  throw std::invalid_argument("unknown sample report '" + kind + "'");
}

}  // namespace locksmith::test
