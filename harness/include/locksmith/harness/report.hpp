// Reports of stress and probe runs: console table, JSON (stable schema, docs/REPORT_SCHEMA.md),
// JUnit XML (one test case per primitive and check) and a self-contained HTML page (timeline of
// holders with violations highlighted, wait-latency histograms, verdict table).
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "locksmith/harness/checkers.hpp"
#include "locksmith/harness/history.hpp"

namespace locksmith::harness {

// A filesystem semantic found by experiment (probe), e.g. name "close_releases_fcntl",
// value "yes", detail "closing a second fd of the file dropped the process's fcntl lock".
struct Fact {
  std::string name;
  std::string value;  // "yes" / "no" / "error" / "unsupported" / free text (e.g. fs type)
  std::string detail;
};

// inconclusive: no check failed, but a check that applies saw less evidence than its floor
// (Verdict::inconclusive): the run could not have caught a broken lock, so it is not SAFE.
enum class PrimitiveVerdict { safe, unsafe, unsupported, inconclusive };
// "SAFE" / "UNSAFE" / "UNSUPPORTED" / "INCONCLUSIVE"
const char* to_string(PrimitiveVerdict v) noexcept;

struct PrimitiveReport {
  std::string name;  // "flock", "fcntl", "ofd", "sem", "broken-noop", ...
  std::string spec;
  PrimitiveVerdict verdict = PrimitiveVerdict::unsupported;
  std::string reason;  // why unsupported / unsafe, one line
  RunInfo info;
  std::vector<CheckResult> checks;
  // Statistics: "operations", "acquired", "busy", "timeouts", "failures", "crashes",
  // "throughput_per_s", "wait_p50_us", "wait_p99_us", "wait_max_us", "overlaps".
  std::map<std::string, double> stats;
  std::vector<Interval> timeline;  // a sample (at most a few thousand) for the HTML timeline
  std::vector<double> wait_us;     // acquire waits in µs (a sample) for histograms
};

struct Report {
  std::string command;     // "stress", "probe" or "check"
  std::string version;     // locksmith version
  std::string host;        // hostname
  std::string started_at;  // ISO 8601 UTC
  double elapsed_s = 0;
  std::string directory;  // probe: the directory tested
  std::string peer_directory;
  std::vector<Fact> facts;  // probe: filesystem type, mount options, semantics
  // probe: traps seen on this mount that a SAFE verdict does not cover (locks local to the
  // mount, ...), one line each; shown above the verdict table.
  std::vector<std::string> warnings;
  std::vector<PrimitiveReport> primitives;
  // Why there is no verdict at all (the run was interrupted, nothing was exercised, the
  // evidence did not add up); empty when there is one.
  std::string no_verdict;

  // 1 when a violation was seen; else 2 when there is no verdict (interrupted, nothing
  // exercised, evidence that does not add up) or a primitive is INCONCLUSIVE ("not enough
  // evidence"); else 0 (DESIGN.md exit codes). The console's verdict line shows this status.
  int exit_code() const noexcept;
};

// Fills verdict/stats/timeline/wait_us of `p` from its checks and history. The verdict is UNSAFE
// when a check failed, else INCONCLUSIVE when a check was inconclusive (the reason names each
// and what it missed), else SAFE — except that an UNSUPPORTED verdict set by the caller together
// with a `reason` is kept.
void summarize(PrimitiveReport& p, const History& h);

void write_console(const Report& r, std::ostream& out, bool color);
void write_json(const Report& r, std::ostream& out);
void write_junit(const Report& r, std::ostream& out);
void write_html(const Report& r, std::ostream& out);

}  // namespace locksmith::harness
