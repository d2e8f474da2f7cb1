// A worker process: `<exe> __worker RUN_DIR PROCESS_INDEX CONTROLLER_PID`. Reads run.json, maps
// the shared state, and runs the workload's loop on each of its threads. It dies with its
// controller (PR_SET_PDEATHSIG on Linux; elsewhere it stops when the controller is gone), so a
// killed `stress` leaves no workers behind.
#include <signal.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "engine_internal.hpp"
#include "locksmith/harness/engine.hpp"
#include "workloads/workload.hpp"

namespace locksmith::harness {

namespace {

int worker_thread(detail::Workload& workload, const RunConfig& cfg,
                  const std::filesystem::path& run_dir, detail::SharedState& shared,
                  std::uint32_t process_index, std::uint32_t slot) {
  const std::uint32_t id = cfg.first_worker_id + slot;
  try {
    Recorder rec(run_dir / ("history-" + std::to_string(id) + ".bin"),
                 cfg.iterations > 0 ? cfg.iterations * 8 + 64 : std::size_t{1} << 22,
                 {cfg.run_id, cfg.host, id});
    // Odd-numbered processes reach the lock through the peer mount, when there is one.
    const bool peer = process_index % 2 == 1 && !cfg.peer_spec.empty();
    detail::WorkerContext ctx{cfg,
                              peer ? cfg.peer_spec : cfg.spec,
                              peer ? cfg.peer_guard : cfg.guard,
                              run_dir,
                              shared,
                              slot,
                              id,
                              rec};
    shared.ready.fetch_add(1);
    const int code = workload.work(ctx);
    if (rec.error() != 0) {
      std::fprintf(stderr, "locksmith worker %u: cannot extend its history file: %s\n", id,
                   std::strerror(rec.error()));
      return 3;
    }
    return code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith worker %u: %s\n", id, e.what());
    return 3;
  }
}

}  // namespace

int worker_main(const std::filesystem::path& run_dir, std::uint32_t process_index,
                std::int64_t controller_pid) {
#if defined(__linux__)
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
  if (controller_pid > 0 && ::getppid() != static_cast<pid_t>(controller_pid)) {
    return 2;  // the controller died before we could ask to die with it
  }
  try {
    const RunConfig cfg = RunConfig::load(run_dir / "run.json");
    detail::SharedMap shared(run_dir / "state.bin", false);
    const std::uint32_t base = process_index * cfg.threads;
    if (base + cfg.threads > detail::kMaxSlots) {
      std::fprintf(stderr, "locksmith worker: too many workers (max %u)\n", detail::kMaxSlots);
      return 2;
    }
    auto workload = detail::make_workload(cfg.spec);
    if (cfg.threads == 1)
      return worker_thread(*workload, cfg, run_dir, *shared, process_index, base);
    std::vector<int> codes(cfg.threads, 0);
    std::vector<std::thread> threads;
    for (std::uint32_t t = 0; t < cfg.threads; ++t) {
      threads.emplace_back([&, t] {
        codes[t] = worker_thread(*workload, cfg, run_dir, *shared, process_index, base + t);
      });
    }
    for (auto& t : threads) t.join();
    return *std::max_element(codes.begin(), codes.end());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith worker: %s\n", e.what());
    return 2;
  }
}

}  // namespace locksmith::harness
