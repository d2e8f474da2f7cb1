#include "locksmith/harness/probe.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <stdexcept>
#include <system_error>

#include "locksmith/harness/engine.hpp"
#include "locksmith/harness/fs_probe.hpp"
#include "locksmith/mount.hpp"
#include "probe/probe_internal.hpp"

namespace locksmith::harness {
namespace {

struct Candidate {
  const char* name;
  const char* supported_fact;  // fs_probe fact deciding UNSUPPORTED
  double shared_ratio;         // a mix of readers and writers, where the primitive has readers
  // Time inside each critical section. The file-protocol locks poll (with backoff) where the
  // kernel cannot wake them: a longer hold makes their waiters meet a holder often enough for
  // the exclusion check's evidence floor within the probe's short run.
  int hold_us = 50;
  int think_us = 0;  // after each release (see StressOptions::think)
};

constexpr Candidate kCandidates[] = {
    {"flock", "flock_supported", 0.3},
    {"fcntl", "fcntl_supported", 0.3},
    {"ofd", "ofd_supported", 0.3},
    {"sem", "flock_supported", 0},
    // The file-protocol locks need no lock call from the filesystem, only atomic directory
    // operations: their stress runs are what shows whether those are atomic here.
    {"link", "link_nlink_2", 0, 200, 1000},
    {"mkdir", nullptr, 0, 200, 1000},
    {"dotlock", nullptr, 0, 200, 1000},
    // Whatever the filesystem supports (the auto_mechanism fact says which it chose).
    {"auto", nullptr, 0.3},
};

std::string spec_for(const std::string& name, const std::filesystem::path& dir) {
  if (name == "sem") return "sem:" + (dir / "locksmith-probe-sem").string() + "?max=2";
  return name + ":" + (dir / ("locksmith-probe-" + name + ".lock")).string();
}

const Fact* find_fact(const std::vector<Fact>& facts, const std::string& name) {
  for (const auto& f : facts) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// Refuses names in `only` that are no primitive, naming the ones there are.
void check_only(const std::vector<std::string>& only) {
  for (const auto& name : only) {
    const bool known = std::any_of(std::begin(kCandidates), std::end(kCandidates),
                                   [&name](const Candidate& c) { return name == c.name; });
    if (known) continue;
    std::string message = "--only: unknown primitive '" + name + "' (primitives: ";
    for (const auto& c : kCandidates) {
      if (&c != std::begin(kCandidates)) message += ", ";
      message += c.name;
    }
    message += ")";
    throw std::invalid_argument(message);
  }
}

// Where the stress runs keep their lock files: a fresh DIR/.locksmith-probe-XXXXXX (and the
// same name under the peer directory), removed with everything in it however the probe ends,
// so that probing a directory leaves nothing behind in it.
class StressArea {
 public:
  StressArea(const std::filesystem::path& dir, const std::filesystem::path& peer_dir) {
    local_ = probe::make_probe_directory(dir);
    if (peer_dir.empty()) return;
    peer_ = peer_dir / local_.filename();
    // Not there when the peer is no second mount of DIR: its workers then get lock files of
    // their own (peer_same_export says so), as they did before there was a subdirectory.
    std::error_code ec;
    if (!std::filesystem::is_directory(peer_, ec) && std::filesystem::create_directory(peer_, ec)) {
      made_peer_ = true;
    }
  }
  ~StressArea() {
    std::error_code ec;
    if (made_peer_) std::filesystem::remove_all(peer_, ec);
    std::filesystem::remove_all(local_, ec);
  }
  StressArea(const StressArea&) = delete;
  StressArea& operator=(const StressArea&) = delete;

  const std::filesystem::path& local() const { return local_; }
  const std::filesystem::path& peer() const { return peer_; }

 private:
  std::filesystem::path local_;
  std::filesystem::path peer_;
  bool made_peer_ = false;
};

// What the mount tables say against the kernel locks on the probed mount(s): a SAFE from
// processes on this one machine says nothing about other clients then.
std::vector<std::string> mount_warnings(const std::filesystem::path& dir,
                                        const std::filesystem::path& peer_dir) {
  std::vector<std::string> out;
  for (const std::filesystem::path* d : {&dir, &peer_dir}) {
    MountInfo m;
    if (d->empty() || identify_mount(*d, m)) continue;
    const std::string flock = known_local_only(m, Backend::flock);
    const std::string fcntl = known_local_only(m, Backend::posix);
    const std::string where = m.type + " mount " + m.mount_point;
    if (d == &peer_dir && !out.empty() && out.back().find(where) != std::string::npos) break;
    const auto warn = [&out, &where](const char* what, const std::string& why, const char* tail) {
      std::string line = what;
      line += " locks on the ";
      line += where;
      line += ": ";
      line += why;
      line += tail;
      out.push_back(std::move(line));
    };
    if (!flock.empty() && flock == fcntl) {
      warn("flock and fcntl", flock, "; auto: uses the link lock there");
    } else {
      if (!flock.empty()) warn("flock", flock, "");
      if (!fcntl.empty()) warn("fcntl", fcntl, "");
    }
  }
  return out;
}

// Runs of one primitive until its checks have enough evidence: 1, 2, 4 and 8 times --duration.
constexpr int kEvidenceAttempts = 4;

// One primitive's stress run in `area`: its verdict and evidence.
PrimitiveReport stress_primitive(const Candidate& c, const ProbeOptions& o, const StressArea& area,
                                 const std::vector<Fact>& facts) {
  PrimitiveReport p;
  p.name = c.name;
  p.spec = spec_for(c.name, area.local());
  const Fact* support = c.supported_fact == nullptr ? nullptr : find_fact(facts, c.supported_fact);
  if (support != nullptr && support->value != "yes") {
    p.verdict = PrimitiveVerdict::unsupported;
    p.reason = support->detail.empty() ? support->value : support->detail;
    return p;
  }
  StressOptions s;
  s.spec = p.spec;
  if (!o.peer_dir.empty()) s.peer_spec = spec_for(c.name, area.peer());
  s.workers = o.workers;
  s.duration = o.duration;
  s.shared_ratio = c.shared_ratio;
  s.hold = std::chrono::microseconds(c.hold_us);
  s.think = std::chrono::microseconds(c.think_us);
  s.acquire_timeout = std::chrono::milliseconds(2000);
  s.worker_exe = o.worker_exe;
  s.handle_signals = true;  // Ctrl-C stops the run and the probe, and both clean up
  if (o.progress) std::fprintf(stderr, "stress %-6s %s ...", c.name, p.spec.c_str());
  try {
    // Too little evidence is no verdict: a run that stayed below a check's floor (a polling
    // lock that rarely met contention) is run again for twice as long, a bounded number of times.
    for (int attempt = 1;; ++attempt) {
      StressResult r = run_stress(s);
      if (r.interrupted_by != 0) {
        throw EnvironmentError("interrupted by signal " + std::to_string(r.interrupted_by));
      }
      p = PrimitiveReport{};
      p.name = c.name;
      p.spec = spec_for(c.name, area.local());
      p.info = r.history.info;
      p.checks = std::move(r.checks);
      summarize(p, r.history);
      if (p.verdict != PrimitiveVerdict::inconclusive || attempt == kEvidenceAttempts) break;
      if (o.progress) std::fprintf(stderr, " (more evidence)");
      s.duration = s.duration ? std::optional(*s.duration * 2) : std::nullopt;
    }
  } catch (const LockFailed& e) {
    // The primitive could not even be exercised here (e.g. ENOLCK from every worker).
    p.verdict = PrimitiveVerdict::unsupported;
    p.reason = e.what();
  } catch (const LockError& e) {
    p.verdict = PrimitiveVerdict::unsupported;  // the spec cannot be opened here
    p.reason = e.what();
  }
  // Anything else (a full disk, an interrupted run, histories that do not add up) is no verdict:
  // it propagates, and the probe ends with an environment error naming it.
  if (o.progress) std::fprintf(stderr, " %s\n", to_string(p.verdict));
  return p;
}

}  // namespace

Report run_probe(const ProbeOptions& o) {
  check_only(o.only);
  Report report;
  report.command = "probe";
  const bool temporary = o.dir.empty();
  const std::filesystem::path dir = temporary ? make_temp_directory("locksmith-probe") : o.dir;
  struct Cleanup {
    std::filesystem::path dir;
    bool active;
    ~Cleanup() {
      std::error_code ec;
      if (active) std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir, temporary};
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw std::runtime_error("'" + dir.string() + "' is not a directory" +
                             (ec ? ": " + ec.message() : std::string()));
  }
  report.directory = std::filesystem::absolute(dir, ec).string();
  if (!o.peer_dir.empty()) {
    if (!std::filesystem::is_directory(o.peer_dir, ec)) {
      throw std::runtime_error("peer '" + o.peer_dir.string() + "' is not a directory");
    }
    report.peer_directory = std::filesystem::absolute(o.peer_dir, ec).string();
  }

  if (o.progress) std::fprintf(stderr, "probing semantics of %s ...\n", report.directory.c_str());
  report.facts = probe_semantics(dir, o.peer_dir.empty() ? nullptr : &o.peer_dir);

  report.warnings = mount_warnings(dir, o.peer_dir);
  const StressArea area(dir, o.peer_dir);
  for (const auto& c : kCandidates) {
    if (!o.only.empty() &&
        std::find(o.only.begin(), o.only.end(), std::string(c.name)) == o.only.end()) {
      continue;
    }
    report.primitives.push_back(stress_primitive(c, o, area, report.facts));
  }
  return report;
}

}  // namespace locksmith::harness
