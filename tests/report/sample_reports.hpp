// Reports of synthetic runs for the HTML browser test and the make_report generator: a history is
// built by hand (workers taking turns on a lock, or overlapping when the lock is "broken") and
// judged by the real checkers, so the page shows what a real run would show.
#pragma once

#include <string>

#include "locksmith/harness/report.hpp"

namespace locksmith::test {

// "clean": four workers take turns, never overlapping. "broken": the same, but every 25th
// critical section overlaps the previous one (and reads the same counter value). "hostile": a
// broken run whose names, paths and facts contain markup, quotes and control characters.
// "multi": a probe-like report with several primitives (safe, unsafe, unsupported) and facts.
// Throws std::invalid_argument for any other kind.
harness::Report sample_report(const std::string& kind);

}  // namespace locksmith::test
