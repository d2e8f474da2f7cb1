#include "stress_command.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>

#include "locksmith/error.hpp"
#include "locksmith/mount.hpp"
#include "run_command.hpp"

namespace locksmith::cli {

namespace {

// Whether every report file can be written, checked before a long run rather than after it. A
// file that did not exist is created empty and removed again.
bool report_paths_writable(const ReportFiles& files, const char* command) {
  for (const std::string* path : {&files.json, &files.junit, &files.html}) {
    if (path->empty()) continue;
    const bool existed = std::filesystem::exists(*path);
    std::FILE* f = std::fopen(path->c_str(), "a");
    if (f == nullptr) {
      std::fprintf(stderr, "locksmith %s: cannot write report '%s': %s\n", command, path->c_str(),
                   std::strerror(errno));
      return false;
    }
    std::fclose(f);
    if (!existed) std::remove(path->c_str());
  }
  return true;
}

const char* signal_name(int signo) {
  switch (signo) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "a signal";
  }
}

}  // namespace

int run_stress_command(harness::StressOptions options, const ReportFiles& files) {
  if (!report_paths_writable(files, "stress")) return kExitUsage;
  harness::Report report;
  report.command = "stress";
  report.started_at = utc_now();
  harness::StressResult result;
  options.handle_signals = true;
  try {
    result = harness::run_stress(options);
  } catch (const harness::EnvironmentError& e) {
    std::fprintf(stderr, "locksmith stress: environment error, no verdict: %s\n", e.what());
    return kExitUsage;
  } catch (const LockError& e) {  // a bad spec: usage, not the environment
    std::fprintf(stderr, "locksmith stress: %s\n", e.what());
    return kExitUsage;
  } catch (const std::system_error& e) {  // a file of the run could not be made or written
    std::fprintf(stderr, "locksmith stress: environment error, no verdict: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith stress: %s\n", e.what());
    return kExitUsage;
  }
  report.elapsed_s = result.elapsed_s;
  harness::PrimitiveReport p;
  p.name = result.history.info.kind;
  p.spec = options.spec;
  p.info = result.history.info;
  p.checks = result.checks;
  if (result.interrupted_by != 0) {
    char after[32];
    std::snprintf(after, sizeof after, "%.1fs", result.elapsed_s);
    report.no_verdict =
        std::string("interrupted by ") + signal_name(result.interrupted_by) + " after " + after;
    p.verdict = harness::PrimitiveVerdict::unsupported;
    p.reason = report.no_verdict;
  } else {
    harness::summarize(p, result.history);
  }
  if (report.no_verdict.empty() && p.verdict == harness::PrimitiveVerdict::unsupported) {
    // Nothing was exercised: that is no verdict, and CI must not read it as a pass.
    report.no_verdict = "no evidence: " + p.reason;
  }
  report.primitives.push_back(std::move(p));
  if (!options.rendezvous.empty() && !files.quiet) {
    std::printf(
        "host %u histories in %s; once every host is done, check them together with:\n"
        "  locksmith check %s\n",
        static_cast<unsigned>(options.host), result.run_dir.c_str(), options.rendezvous.c_str());
  } else if (!options.run_dir.empty() && !files.quiet) {
    std::printf("histories kept in %s (re-check with: locksmith check %s)\n",
                result.run_dir.c_str(), result.run_dir.c_str());
  }
  return emit_report(report, files);
}

namespace {

// Saves the report's verdicts for the probed mount and, with a peer directory, for the peer's
// mount too (a mechanism that fails across the two fails on each). Says what it did.
bool save_verdicts(const harness::Report& report, const std::filesystem::path& store_path) {
  std::vector<std::pair<std::string, std::string>> dirs = {
      {report.directory, report.peer_directory}};
  if (!report.peer_directory.empty()) dirs.emplace_back(report.peer_directory, report.directory);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  VerdictStore store(store_path);
  for (const auto& [dir, peer_dir] : dirs) {
    MountInfo mount;
    MountInfo peer;
    std::error_code ec = identify_mount(dir, mount);
    if (!ec && !peer_dir.empty()) ec = identify_mount(peer_dir, peer);
    if (ec) {
      std::fprintf(stderr,
                   "locksmith probe: cannot save verdicts: cannot identify the mount of '%s': %s\n",
                   dir.c_str(), ec.message().c_str());
      return false;
    }
    std::vector<SavedVerdict> verdicts;
    for (const auto& p : report.primitives) {
      verdicts.push_back({p.name, harness::to_string(p.verdict), now, p.reason,
                          peer_dir.empty() ? std::string() : peer.mount_point});
    }
    if ((ec = store.update(mount, verdicts))) {
      std::fprintf(stderr, "locksmith probe: cannot save verdicts in '%s': %s\n",
                   store.file().string().c_str(), ec.message().c_str());
      return false;
    }
    std::fprintf(stderr, "locksmith probe: saved %zu verdicts for %s mount %s (%s) in %s\n",
                 verdicts.size(), mount.type.c_str(), mount.mount_point.c_str(),
                 mount.source.c_str(), store.file().string().c_str());
  }
  return true;
}

}  // namespace

int run_probe_command(const harness::ProbeOptions& options, const ReportFiles& files,
                      const std::optional<std::filesystem::path>& save_to) {
  if (!report_paths_writable(files, "probe")) return kExitUsage;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string started = utc_now();
  harness::Report report;
  try {
    report = harness::run_probe(options);
  } catch (const harness::EnvironmentError& e) {
    std::fprintf(stderr, "locksmith probe: environment error, no verdict: %s\n", e.what());
    return kExitUsage;
  } catch (const LockError& e) {
    std::fprintf(stderr, "locksmith probe: %s\n", e.what());
    return kExitUsage;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "locksmith probe: environment error, no verdict: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith probe: %s\n", e.what());
    return kExitUsage;
  }
  report.started_at = started;
  report.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int status = emit_report(report, files);
  if (!save_to || !report.no_verdict.empty()) return status;
  return save_verdicts(report, *save_to) ? status : kExitUsage;
}

int run_check_command(const std::vector<std::string>& dirs, const ReportFiles& files) {
  harness::Report report;
  report.command = "check";
  // A rendezvous directory of a multi-host run stands for its host-* directories.
  std::vector<std::filesystem::path> paths;
  for (const auto& d : dirs) {
    std::vector<std::filesystem::path> hosts;
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(d) / "run.json", ec)) {
      for (const auto& entry : std::filesystem::directory_iterator(d, ec)) {
        if (entry.path().filename().string().rfind("host-", 0) == 0) hosts.push_back(entry.path());
      }
    }
    std::sort(hosts.begin(), hosts.end());
    if (hosts.empty()) {
      paths.emplace_back(d);
    } else {
      paths.insert(paths.end(), hosts.begin(), hosts.end());
    }
  }
  harness::History history;
  try {
    history = harness::load_history(paths);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith check: environment error, no verdict: %s\n", e.what());
    return kExitUsage;
  }
  if (history.events.empty()) {
    std::fprintf(stderr, "locksmith check: no events in %zu director%s\n", paths.size(),
                 paths.size() == 1 ? "y" : "ies");
    return kExitUsage;
  }
  harness::PrimitiveReport p;
  p.name = history.info.kind.empty() ? "unknown" : history.info.kind;
  p.spec = history.info.spec;
  p.info = history.info;
  p.checks = harness::check_all(history, std::nullopt);
  harness::summarize(p, history);
  report.primitives.push_back(std::move(p));
  return emit_report(report, files);
}

}  // namespace locksmith::cli
