// `locksmith check` on the command line: re-check recorded histories (run_check_command).
#pragma once

#include <memory>

namespace CLI {
class App;
}

namespace locksmith::cli {

class CheckCommand {
 public:
  // Adds the `check` subcommand and its options to `app`.
  explicit CheckCommand(CLI::App& app);
  CheckCommand(const CheckCommand&) = delete;
  CheckCommand& operator=(const CheckCommand&) = delete;
  ~CheckCommand();

  // Whether `check` was given on the command line (after app.parse()).
  bool selected() const;
  // Runs it; returns the exit status (0 clean, 1 violation, 2 usage or environment error).
  int run() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace locksmith::cli
