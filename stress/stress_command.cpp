#include "stress_command.hpp"

#include <cstdio>
#include <exception>

#include "locksmith/error.hpp"
#include "run_command.hpp"

namespace locksmith::cli {

int run_stress_command(const harness::StressOptions& options, const ReportFiles& files) {
  harness::Report report;
  report.command = "stress";
  report.started_at = utc_now();
  harness::StressResult result;
  try {
    result = harness::run_stress(options);
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
  harness::summarize(p, result.history);
  report.primitives.push_back(std::move(p));
  if (!options.run_dir.empty() && !files.quiet) {
    std::printf("histories kept in %s (re-check with: locksmith check %s)\n",
                result.run_dir.c_str(), result.run_dir.c_str());
  }
  return emit_report(report, files);
}

int run_check_command(const std::vector<std::string>& dirs, const ReportFiles& files) {
  harness::Report report;
  report.command = "check";
  std::vector<std::filesystem::path> paths(dirs.begin(), dirs.end());
  harness::History history;
  try {
    history = harness::load_history(paths);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith check: %s\n", e.what());
    return kExitUsage;
  }
  if (history.events.empty()) {
    std::fprintf(stderr, "locksmith check: no events in %zu director%s\n", dirs.size(),
                 dirs.size() == 1 ? "y" : "ies");
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
