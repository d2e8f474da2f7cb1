// `locksmith probe` on the command line: is locking safe on the filesystem holding a directory?
// (run_probe_command, locksmith/harness/probe.hpp).
#pragma once

#include <memory>

namespace CLI {
class App;
}

namespace locksmith::cli {

class ProbeCommand {
 public:
  // Adds the `probe` subcommand and its options to `app`.
  explicit ProbeCommand(CLI::App& app);
  ProbeCommand(const ProbeCommand&) = delete;
  ProbeCommand& operator=(const ProbeCommand&) = delete;
  ~ProbeCommand();

  // Whether `probe` was given on the command line (after app.parse()).
  bool selected() const;
  // Runs it; returns the exit status (0 clean, 1 violation, 2 usage or environment error).
  int run() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace locksmith::cli
