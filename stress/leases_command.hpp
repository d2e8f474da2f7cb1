// `locksmith leases`: the lease registry on Redis (locksmith/redis/registry.hpp) from the shell.
#pragma once

#include <memory>

namespace CLI {
class App;
}

namespace locksmith::cli {

// Exit statuses of `locksmith leases`.
inline constexpr int kLeasesOk = 0;
inline constexpr int kLeasesBusy = 1;    // held by someone else, not the owner, no such lease
                                         // (release --force of a missing lease too)
inline constexpr int kLeasesUsage = 2;   // bad arguments
inline constexpr int kLeasesServer = 3;  // the server failed (unreachable, auth, script error)

class LeasesCommand {
 public:
  // Adds the `leases` subcommand (and its list|show|acquire|keep-alive|extend|release) to `app`.
  explicit LeasesCommand(CLI::App& app);
  LeasesCommand(const LeasesCommand&) = delete;
  LeasesCommand& operator=(const LeasesCommand&) = delete;
  ~LeasesCommand();

  // Whether `leases` was given on the command line (after app.parse()).
  bool selected() const;
  // Runs it; returns the exit status.
  int run() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace locksmith::cli
