// `locksmith stress` on the command line: its options, turned into StressOptions. Running the
// scenario and reporting on it is run_stress_command (stress_command.hpp), kept apart so that the
// command line and the engine side change independently.
#pragma once

#include <memory>

namespace CLI {
class App;
}

namespace locksmith::cli {

class StressCommand {
 public:
  // Adds the `stress` subcommand and its options to `app`.
  explicit StressCommand(CLI::App& app);
  StressCommand(const StressCommand&) = delete;
  StressCommand& operator=(const StressCommand&) = delete;
  ~StressCommand();

  // Whether `stress` was given on the command line (after app.parse()).
  bool selected() const;
  // Runs it; returns the exit status (0 clean, 1 violation, 2 usage or environment error).
  int run() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace locksmith::cli
