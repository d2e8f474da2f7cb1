#include "check_command.hpp"

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "stress_command.hpp"

namespace locksmith::cli {

struct CheckCommand::State {
  CLI::App* cmd = nullptr;
  std::vector<std::string> dirs;
  ReportFiles files;
};

CheckCommand::CheckCommand(CLI::App& app) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.cmd = app.add_subcommand(
      "check",
      "Re-check recorded histories (one directory per host, from `stress --history-dir`).\n"
      "Exit 0 when clean, 1 when a violation was seen, 2 on usage or environment errors.");
  s.cmd->add_option("dirs", s.dirs, "History directories")->required();
  add_report_options(s.cmd, s.files);
}

CheckCommand::~CheckCommand() = default;

bool CheckCommand::selected() const { return state_->cmd->parsed(); }

int CheckCommand::run() const { return run_check_command(state_->dirs, state_->files); }

}  // namespace locksmith::cli
