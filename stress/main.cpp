// The locksmith command line: one class per subcommand (its options and how it runs); this file
// only picks the one that was asked for.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "check_command.hpp"
#include "cli_common.hpp"
#include "leases_command.hpp"
#include "locksmith/harness/engine.hpp"
#include "probe_command.hpp"
#include "run_command.hpp"
#include "stress_subcommand.hpp"

namespace {

// CLI11 answers a misspelt command with "A subcommand is required". The top level takes no
// option with a value, so its first word that is no option is the command: say when it is none.
bool is_unknown_command(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word.empty() || word.front() == '-') continue;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) {
      if (sub->get_name() == word) return false;
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    std::fprintf(stderr, "locksmith: unknown command '%s' (commands: %s)\n", argv[i],
                 names.c_str());
    return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  locksmith::harness::register_schemes();  // redis:// and friends, where this build has them
  // Worker processes re-execute this binary; they are not a user-facing command.
  if ((argc == 4 || argc == 5) && std::string(argv[1]) == "__worker") {
    return locksmith::harness::worker_main(argv[2], static_cast<std::uint32_t>(std::atoi(argv[3])),
                                           argc == 5 ? std::atoll(argv[4]) : 0);
  }

  CLI::App app{"locksmith: fast, verified file locking"};
  app.set_version_flag("--version", "locksmith 0.1.0");
  app.require_subcommand(1);
  app.footer(locksmith::cli::kSpecHelp);
  const locksmith::cli::RunCommand run(app);
  const locksmith::cli::StressCommand stress(app);
  const locksmith::cli::CheckCommand check(app);
  const locksmith::cli::ProbeCommand probe(app);
  const locksmith::cli::LeasesCommand leases(app);

  if (is_unknown_command(app, argc, argv)) return locksmith::cli::kExitUsage;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : locksmith::cli::kExitUsage;
  }
  if (run.selected()) return run.run();
  if (stress.selected()) return stress.run();
  if (check.selected()) return check.run();
  if (probe.selected()) return probe.run();
  if (leases.selected()) return leases.run();
  return locksmith::cli::kExitUsage;
}
