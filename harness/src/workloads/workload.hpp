// Workload: what the workers of a stress run do, and what the controller prepares, drains, checks
// and cleans up around them. One per scenario, registered by spec prefix the way lock schemes
// are: lock (any lock spec), atomic:, filestore:, fenced: (and their broken: twins).
//
// The rule every workload keeps: it touches no user data it did not create (it refuses a path
// that is already there when it would have to overwrite it), and cleanup() removes everything
// it made, after an interrupted or failed run too.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "../engine_internal.hpp"
#include "locksmith/harness/checkers.hpp"
#include "locksmith/harness/engine.hpp"

namespace locksmith::harness::detail {

class Workload {
 public:
  virtual ~Workload() = default;
  virtual const char* name() const noexcept = 0;

  // Controller, before run.json is written: validates the options, fills in what the workload
  // and its lock declare (kind, counter, guard, max_holders, expiry_bound_ns, ...) and creates
  // what the workers need. Throws std::invalid_argument for bad options, std::runtime_error /
  // std::system_error naming the path for environment failures.
  virtual void prepare(RunConfig& cfg, const StressOptions& o,
                       const std::filesystem::path& run_dir) = 0;
  // Controller, after run.json is saved, before the workers start.
  virtual void start(const RunConfig& /*cfg*/, Recorder& /*controller*/) {}
  // One worker thread's loop. Returns the worker's exit code (0 = ok).
  virtual int work(WorkerContext& ctx) = 0;
  // Controller, after every worker ended (not after an interrupted run).
  virtual void drain(const RunConfig& /*cfg*/, Recorder& /*controller*/, StressResult& /*result*/) {
  }
  // Controller, always at the end: removes what prepare() and the workers made.
  virtual void cleanup(const RunConfig& /*cfg*/) noexcept {}
  // The checks that judge this workload.
  virtual std::vector<CheckResult> check(const History& h,
                                         std::optional<std::int64_t> final_counter) const {
    return check_all(h, final_counter);
  }
};

// The workload of a spec, by prefix.
std::unique_ptr<Workload> make_workload(std::string_view spec);

// The entries of a directory when a run began, so that cleanup removes only what the run made.
class Leftovers {
 public:
  // Remembers what `dir` holds now (nothing when it does not exist).
  void snapshot(const std::filesystem::path& dir);
  // Removes the entries of the directory that were not there at the snapshot and whose names
  // start with one of `prefixes` (files, or directories with their contents).
  void remove_new(const std::vector<std::string>& prefixes) const noexcept;

 private:
  std::filesystem::path dir_;
  std::set<std::string> before_;
  bool taken_ = false;
};

}  // namespace locksmith::harness::detail
