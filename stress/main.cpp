// The locksmith command line.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "run_command.hpp"

namespace {

constexpr const char* kSpecHelp =
    "Lock specs: flock:PATH | fcntl:PATH | ofd:PATH | sem:DIR/NAME?max=N | PATH (= flock:PATH)\n"
    "  options after '?', joined by '&': shared=1, timeout=250ms|1.5s|2m, fail_when_locked=1,\n"
    "  perms=0644, follow_symlinks=1";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"locksmith: fast, verified file locking"};
  app.set_version_flag("--version", "locksmith 0.1.0");
  app.require_subcommand(1);
  app.footer(kSpecHelp);

  locksmith::cli::RunRequest run;
  double timeout = -1;
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "Acquire a lock, run COMMAND, release it. Exits with COMMAND's status; 75 when the lock was\n"
      "not acquired in time; 2 on a bad spec or a lock error; 126/127 when COMMAND cannot run;\n"
      "128+N when COMMAND was killed by signal N.");
  run_cmd->add_option("--lock,-l", run.spec, "Lock spec (see below)")->required();
  run_cmd->add_flag("--shared,-s", run.shared, "Take a shared (reader) lock");
  run_cmd
      ->add_option("--timeout,-t", timeout,
                   "Seconds to wait for the lock (0: do not wait; default: forever)")
      ->check(CLI::NonNegativeNumber);
  run_cmd->add_flag("--verbose,-v", run.verbose, "Say on stderr which lock was taken");
  run_cmd->add_option("command", run.command, "COMMAND [ARGS...] after --")->required();
  run_cmd->footer(kSpecHelp);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : locksmith::cli::kExitUsage;
  }
  if (*run_cmd) {
    if (timeout >= 0) run.timeout_seconds = timeout;
    return locksmith::cli::run_locked(run);
  }
  return locksmith::cli::kExitUsage;
}
