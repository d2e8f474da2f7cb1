#include "stress_subcommand.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "cli_common.hpp"
#include "cli_validators.hpp"
#include "locksmith/harness/engine.hpp"
#include "run_command.hpp"
#include "stress_command.hpp"

namespace locksmith::cli {

struct StressCommand::State {
  CLI::App* cmd = nullptr;
  CLI::Option* duration_opt = nullptr;
  CLI::Option* iterations_opt = nullptr;
  harness::StressOptions options;  // what the options fill in directly
  ReportFiles files;
  double duration = 0;
  std::uint64_t iterations = 0;
  std::string nemesis;
  double nemesis_interval = 0.3;
  double pause_for = 0.2;
  std::int64_t hold_us = 50;
  double acquire_timeout = 2;
  std::string history_dir;
  std::string rendezvous;
  std::uint32_t hosts = 1;
  std::uint32_t host_index = 0;
  bool no_progress = false;
};

namespace {

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// Sets the nemesis flags of `o` from "kill,pause,..."; false (after saying so) on an unknown one.
bool parse_nemesis(const std::string& list, harness::StressOptions& o) {
  for (std::size_t at = 0; at <= list.size() && !list.empty();) {
    const auto comma = list.find(',', at);
    const std::string item = list.substr(at, comma - at);
    if (item == "kill") {
      o.nemesis_kill = true;
    } else if (item == "pause") {
      o.nemesis_pause = true;
    } else if (item == "redis-kill") {
      o.nemesis_redis_kill = true;
    } else if (item == "redis-restart") {
      o.nemesis_redis_restart = true;
    } else if (item == "redis-stop") {
      o.nemesis_redis_stop = true;
    } else if (!item.empty()) {
      std::fprintf(stderr,
                   "locksmith stress: unknown nemesis '%s' (known: kill, pause, "
                   "redis-kill, redis-restart, redis-stop)\n",
                   item.c_str());
      return false;
    }
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return true;
}

}  // namespace

StressCommand::StressCommand(CLI::App& app) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.cmd = app.add_subcommand(
      "stress",
      "Run competing worker processes on one lock, record what each saw, and check the\n"
      "histories (exclusion, shared/exclusive, semaphore bound, timeouts, crash recovery, lost\n"
      "updates, liveness). Exit 0 when clean, 1 when a violation was seen, 2 on usage or\n"
      "environment errors.");
  s.cmd->add_option("--lock,-l", s.options.spec, "Lock spec (see below)")->required();
  s.cmd->add_option("--workers,-w", s.options.workers, "Worker processes (default 4)")
      ->check(whole_number(1, 256));
  s.duration_opt =
      s.cmd->add_option("--duration,-d", s.duration, "Seconds to run")->check(positive_seconds());
  s.iterations_opt = s.cmd
                         ->add_option("--iterations,-n", s.iterations,
                                      "Critical sections per worker (instead of --duration)")
                         ->check(whole_number(1, 1'000'000'000'000));
  s.duration_opt->excludes(s.iterations_opt);
  s.cmd->add_option("--nemesis", s.nemesis,
                    "Faults to inject, comma-separated: kill (SIGKILL a holder inside its\n"
                    "critical section), pause (SIGSTOP a holder for --pause-for, e.g. past\n"
                    "its lease TTL), redis-kill (CLIENT KILL every normal and pubsub client\n"
                    "of the lock's server(s)), redis-restart (SIGTERM a local redis-server\n"
                    "and start it again), redis-stop (SIGSTOP one local server, a random\n"
                    "Redlock master, for --pause-for)");
  s.cmd
      ->add_option("--nemesis-interval", s.nemesis_interval, "Seconds between faults (default 0.3)")
      ->check(positive_seconds());
  s.cmd
      ->add_option("--pause-for", s.pause_for,
                   "Seconds a pause / redis-stop fault lasts (default 0.2)")
      ->check(positive_seconds());
  s.cmd->add_option("--hold-us", s.hold_us, "Microseconds inside each critical section (50)")
      ->check(whole_number(0, 3'600'000'000));
  s.cmd
      ->add_option("--timeout,-t", s.acquire_timeout,
                   "Seconds each acquire may wait (default 2; 0: do not wait)")
      ->check(seconds_or_zero("do not wait"));
  s.cmd
      ->add_option("--shared-ratio", s.options.shared_ratio,
                   "Fraction of acquisitions taken shared (0..1, default 0)")
      ->check(fraction());
  s.cmd
      ->add_option("--threads", s.options.threads,
                   "Threads per worker process (default 1; 4 for broken:fcntl-threads)")
      ->check(whole_number(1, 256));
  s.cmd->add_option("--history-dir", s.history_dir,
                    "Keep the histories in this directory (for `locksmith check`)");
  s.cmd->add_option("--rendezvous", s.rendezvous,
                    "Multi-host run: a fresh directory on the shared filesystem where the\n"
                    "controllers of all hosts meet; each keeps its histories in host-K/");
  s.cmd->add_option("--hosts", s.hosts, "Multi-host run: how many hosts take part")
      ->check(whole_number(1, 200));
  s.cmd->add_option("--host-index", s.host_index, "Multi-host run: this host's index, 0..N-1")
      ->check(whole_number(0, 199));
  s.cmd->add_flag("--no-progress", s.no_progress, "Do not draw a progress bar");
  add_report_options(s.cmd, s.files);
  s.cmd->footer(kSpecHelp);
}

StressCommand::~StressCommand() = default;

bool StressCommand::selected() const { return state_->cmd->parsed(); }

int StressCommand::run() const {
  const State& s = *state_;
  harness::StressOptions o = s.options;
  if (*s.duration_opt) {
    o.duration = to_ms(s.duration);
  } else if (*s.iterations_opt) {
    o.iterations = s.iterations;
  } else {
    o.duration = std::chrono::milliseconds(5000);
  }
  if (!parse_nemesis(s.nemesis, o)) return kExitUsage;
  o.nemesis_interval = to_ms(s.nemesis_interval);
  o.pause_for = to_ms(s.pause_for);
  o.hold = std::chrono::microseconds(s.hold_us);
  o.acquire_timeout = to_ms(s.acquire_timeout);
  o.run_dir = s.history_dir;
  o.rendezvous = s.rendezvous;
  o.hosts = s.hosts;
  o.host = static_cast<std::uint8_t>(s.host_index);
  o.progress = !s.no_progress;
  return run_stress_command(o, s.files);
}

}  // namespace locksmith::cli
