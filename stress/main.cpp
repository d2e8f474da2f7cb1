// The locksmith command line.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli_validators.hpp"
#include "leases_command.hpp"
#include "locksmith/harness/engine.hpp"
#include "run_command.hpp"
#include "stress_command.hpp"

namespace {

constexpr const char* kSpecHelp =
    "Lock specs: flock:PATH | fcntl:PATH | ofd:PATH | sem:DIR/NAME?max=N | PATH (= flock:PATH)\n"
    "  | link:PATH (flufl.lock) | mkdir:PATH (lockfile) | pidfile:PATH (lockfile)\n"
    "  | dotlock:PATH (liblockfile) | auto:PATH (flock, else fcntl, else link: what works here)\n"
    "  | redis://[USER:PASSWORD@]HOST:PORT/KEY?ttl=30s&refresh=1 (redis-py Lock, fenced)\n"
    "  | redis+pubsub://HOST:PORT/CHANNEL (portalocker RedisLock)\n"
    "  | redlock://H1:P1,H2:P2,H3:P3/KEY?ttl=10s (Redlock over N masters)\n"
    "  options after '?', joined by '&': shared=1, timeout=250ms|1.5s|2m, fail_when_locked=1,\n"
    "  perms=0644, follow_symlinks=1, keep_open=1 (flock, fcntl, ofd), lifetime=15s (link, auto),\n"
    "  slop=10s (link), stale=off|auto, stale_grace=10s (mkdir, pidfile), stale_age=5m (dotlock)\n"
    "Scenarios (stress only): atomic:PATH  writers replace PATH atomically, readers check each "
    "read\n"
    "  | filestore:DIR  producers and consumers hand messages over a FileStore, each exactly once\n"
    "  | fenced:redis://HOST:PORT/KEY?ttl=50ms  lease holders write to a resource that rejects\n"
    "    stale fencing tokens (judged by fenced-writes)\n"
    "Deliberately broken locks (stress only; the checkers must catch them):\n"
    "  broken:noop:PATH | broken:create:PATH | broken:fcntl-threads:PATH | broken:atomic:PATH\n"
    "  | broken:filestore:DIR | broken:fenced:redis://... (the resource accepts stale tokens)";

void add_report_options(CLI::App* cmd, locksmith::cli::ReportFiles& files) {
  cmd->add_option("--json", files.json, "Write the report as JSON (docs/REPORT_SCHEMA.md)");
  cmd->add_option("--junit", files.junit, "Write a JUnit XML report (one case per check)");
  cmd->add_option("--html", files.html, "Write a self-contained HTML report");
  cmd->add_flag("--quiet,-q", files.quiet, "No console report");
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
  app.footer(kSpecHelp);

  // run
  locksmith::cli::RunRequest run;
  double timeout = -1;
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "Acquire a lock, run COMMAND, release it. Exits with COMMAND's status; 75 when the lock was\n"
      "not acquired in time; 76 when the lock was lost while COMMAND ran; 2 on a bad spec or a\n"
      "lock error; 126/127 when COMMAND cannot run; 128+N when COMMAND was killed by signal N,\n"
      "or when locksmith got SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 (N) while waiting for\n"
      "the lock: it stops waiting and removes the files its lock made (link claim, dotlock\n"
      "temporary file).\n"
      "COMMAND runs in its own process group and is killed if `run` itself dies (even by\n"
      "SIGKILL). A lock that can expire (link, dotlock, redis://, redlock://, redis+pubsub://)\n"
      "is kept alive while COMMAND runs (every lifetime/3 or TTL/3; pub/sub: its connection is\n"
      "watched); when it is lost anyway, `run` says so at once and stops COMMAND's process\n"
      "group: SIGTERM, then SIGKILL after --kill-after seconds (--on-lost chooses).");
  run_cmd->add_option("--lock,-l", run.spec, "Lock spec (see below)")->required();
  run_cmd->add_flag("--shared,-s", run.shared, "Take a shared (reader) lock");
  run_cmd
      ->add_option("--timeout,-t", timeout,
                   "Seconds to wait for the lock (0: do not wait; default: forever)")
      ->check(
          locksmith::cli::seconds_or_zero("do not wait", "leave --timeout out to wait forever"));
  run_cmd->add_flag("--verbose,-v", run.verbose, "Say on stderr which lock was taken");
  double keep_alive = -1;
  auto* keep_alive_opt = run_cmd
                             ->add_option("--keep-alive", keep_alive,
                                          "Seconds between renewals of an expiring lock (default: "
                                          "a third of its\nlifetime or TTL)")
                             ->check(locksmith::cli::positive_seconds());
  bool no_keep_alive = false;
  run_cmd
      ->add_flag("--no-keep-alive", no_keep_alive,
                 "Do not renew the lock: it may expire while COMMAND runs (then exit 76)")
      ->excludes(keep_alive_opt);
  std::string on_lost = "term";
  run_cmd
      ->add_option("--on-lost", on_lost,
                   "What to do to COMMAND when the lock is lost: term (SIGTERM to its process\n"
                   "group, SIGKILL after --kill-after; default), kill (SIGKILL at once), ignore\n"
                   "(let it finish; still exit 76)")
      ->check(CLI::IsMember({"term", "kill", "ignore"}));
  run_cmd
      ->add_option("--kill-after", run.kill_after_seconds,
                   "Seconds between SIGTERM and SIGKILL when the lock is lost (default 5)")
      ->check(locksmith::cli::seconds_or_zero("SIGKILL at once"));
  run_cmd->add_option("command", run.command, "COMMAND [ARGS...] after --")->required();
  run_cmd->footer(kSpecHelp);

  // stress
  locksmith::harness::StressOptions stress;
  locksmith::cli::ReportFiles stress_files;
  double duration = 0;
  std::uint64_t iterations = 0;
  std::string nemesis;
  std::int64_t hold_us = 50;
  double acquire_timeout = 2;
  std::string history_dir;
  CLI::App* stress_cmd = app.add_subcommand(
      "stress",
      "Run competing worker processes on one lock, record what each saw, and check the\n"
      "histories (exclusion, shared/exclusive, semaphore bound, timeouts, crash recovery, lost\n"
      "updates, liveness). Exit 0 when clean, 1 when a violation was seen, 2 on usage or\n"
      "environment errors.");
  stress_cmd->add_option("--lock,-l", stress.spec, "Lock spec (see below)")->required();
  stress_cmd->add_option("--workers,-w", stress.workers, "Worker processes (default 4)")
      ->check(locksmith::cli::whole_number(1, 256));
  auto* dur = stress_cmd->add_option("--duration,-d", duration, "Seconds to run")
                  ->check(locksmith::cli::positive_seconds());
  auto* iters = stress_cmd
                    ->add_option("--iterations,-n", iterations,
                                 "Critical sections per worker (instead of --duration)")
                    ->check(locksmith::cli::whole_number(1, 1'000'000'000'000));
  dur->excludes(iters);
  stress_cmd->add_option("--nemesis", nemesis,
                         "Faults to inject, comma-separated: kill (SIGKILL a holder inside its\n"
                         "critical section), pause (SIGSTOP a holder for --pause-for, e.g. past\n"
                         "its lease TTL), redis-kill (CLIENT KILL every normal and pubsub client\n"
                         "of the lock's server(s)), redis-restart (SIGTERM a local redis-server\n"
                         "and start it again), redis-stop (SIGSTOP one local server, a random\n"
                         "Redlock master, for --pause-for)");
  double nemesis_interval = 0.3;
  double pause_for = 0.2;
  stress_cmd
      ->add_option("--nemesis-interval", nemesis_interval, "Seconds between faults (default 0.3)")
      ->check(locksmith::cli::positive_seconds());
  stress_cmd
      ->add_option("--pause-for", pause_for,
                   "Seconds a pause / redis-stop fault lasts (default 0.2)")
      ->check(locksmith::cli::positive_seconds());
  stress_cmd->add_option("--hold-us", hold_us, "Microseconds inside each critical section (50)")
      ->check(locksmith::cli::whole_number(0, 3'600'000'000));
  stress_cmd
      ->add_option("--timeout,-t", acquire_timeout,
                   "Seconds each acquire may wait (default 2; 0: do not wait)")
      ->check(locksmith::cli::seconds_or_zero("do not wait"));
  stress_cmd
      ->add_option("--shared-ratio", stress.shared_ratio,
                   "Fraction of acquisitions taken shared (0..1, default 0)")
      ->check(locksmith::cli::fraction());
  stress_cmd
      ->add_option("--threads", stress.threads,
                   "Threads per worker process (default 1; 4 for broken:fcntl-threads)")
      ->check(locksmith::cli::whole_number(1, 256));
  stress_cmd->add_option("--history-dir", history_dir,
                         "Keep the histories in this directory (for `locksmith check`)");
  std::string rendezvous;
  std::uint32_t hosts = 1;
  std::uint32_t host_index = 0;
  stress_cmd->add_option("--rendezvous", rendezvous,
                         "Multi-host run: a fresh directory on the shared filesystem where the\n"
                         "controllers of all hosts meet; each keeps its histories in host-K/");
  stress_cmd->add_option("--hosts", hosts, "Multi-host run: how many hosts take part")
      ->check(locksmith::cli::whole_number(1, 200));
  stress_cmd->add_option("--host-index", host_index, "Multi-host run: this host's index, 0..N-1")
      ->check(locksmith::cli::whole_number(0, 199));
  bool no_progress = false;
  stress_cmd->add_flag("--no-progress", no_progress, "Do not draw a progress bar");
  add_report_options(stress_cmd, stress_files);
  stress_cmd->footer(kSpecHelp);

  // check
  std::vector<std::string> check_dirs;
  locksmith::cli::ReportFiles check_files;
  CLI::App* check_cmd = app.add_subcommand(
      "check",
      "Re-check recorded histories (one directory per host, from `stress --history-dir`).\n"
      "Exit 0 when clean, 1 when a violation was seen, 2 on usage or environment errors.");
  check_cmd->add_option("dirs", check_dirs, "History directories")->required();
  add_report_options(check_cmd, check_files);

  // probe
  locksmith::harness::ProbeOptions probe;
  locksmith::cli::ReportFiles probe_files;
  std::string probe_dir;
  std::string peer_dir;
  double probe_duration = 1;
  std::vector<std::string> only;
  CLI::App* probe_cmd = app.add_subcommand(
      "probe",
      "Is locking safe on the filesystem holding DIR (default: a fresh temporary directory)?\n"
      "For every file primitive, a short stress run with competing processes gives a verdict\n"
      "SAFE / UNSAFE / UNSUPPORTED with its evidence; experiments show the filesystem's\n"
      "semantics (close releases fcntl locks, flock/fcntl interaction, fork, O_EXCL, link,\n"
      "rename). Exit 0 when nothing unsafe was seen, 1 on a violation, 2 on usage or\n"
      "environment errors.");
  probe_cmd->add_option("dir", probe_dir, "Directory on the filesystem to probe");
  probe_cmd->add_option("--peer-dir", peer_dir,
                        "The same directory through a second mount of the same export: half\n"
                        "the workers use it (cross-client coherence, e.g. two NFS mounts)");
  probe_cmd
      ->add_option("--duration,-d", probe_duration, "Seconds of stress per primitive (default 1)")
      ->check(locksmith::cli::positive_seconds());
  probe_cmd->add_option("--workers,-w", probe.workers, "Worker processes per primitive (4)")
      ->check(locksmith::cli::whole_number(1, 256));
  probe_cmd
      ->add_option("--only", only,
                   "Probe only these primitives (flock, fcntl, ofd, sem, link, mkdir,\n"
                   "dotlock)")
      ->delimiter(',');
  add_report_options(probe_cmd, probe_files);

  // leases
  const locksmith::cli::LeasesCommand leases(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : locksmith::cli::kExitUsage;
  }
  if (*run_cmd) {
    if (timeout >= 0) run.timeout_seconds = timeout;
    if (keep_alive > 0) run.keep_alive_seconds = keep_alive;
    run.keep_alive = !no_keep_alive;
    run.on_lost = on_lost == "kill"     ? locksmith::cli::OnLost::kill
                  : on_lost == "ignore" ? locksmith::cli::OnLost::ignore
                                        : locksmith::cli::OnLost::term;
    return locksmith::cli::run_locked(run);
  }
  if (*stress_cmd) {
    if (*dur) {
      stress.duration = std::chrono::milliseconds(static_cast<std::int64_t>(duration * 1000));
    } else if (*iters) {
      stress.iterations = iterations;
    } else {
      stress.duration = std::chrono::milliseconds(5000);
    }
    for (std::size_t at = 0; at <= nemesis.size() && !nemesis.empty();) {
      const auto comma = nemesis.find(',', at);
      const std::string item = nemesis.substr(at, comma - at);
      if (item == "kill") {
        stress.nemesis_kill = true;
      } else if (item == "pause") {
        stress.nemesis_pause = true;
      } else if (item == "redis-kill") {
        stress.nemesis_redis_kill = true;
      } else if (item == "redis-restart") {
        stress.nemesis_redis_restart = true;
      } else if (item == "redis-stop") {
        stress.nemesis_redis_stop = true;
      } else if (!item.empty()) {
        std::fprintf(stderr,
                     "locksmith stress: unknown nemesis '%s' (known: kill, pause, "
                     "redis-kill, redis-restart, redis-stop)\n",
                     item.c_str());
        return locksmith::cli::kExitUsage;
      }
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
    stress.nemesis_interval =
        std::chrono::milliseconds(static_cast<std::int64_t>(nemesis_interval * 1000));
    stress.pause_for = std::chrono::milliseconds(static_cast<std::int64_t>(pause_for * 1000));
    stress.hold = std::chrono::microseconds(hold_us);
    stress.acquire_timeout =
        std::chrono::milliseconds(static_cast<std::int64_t>(acquire_timeout * 1000));
    stress.run_dir = history_dir;
    stress.rendezvous = rendezvous;
    stress.hosts = hosts;
    stress.host = static_cast<std::uint8_t>(host_index);
    stress.progress = !no_progress;
    return locksmith::cli::run_stress_command(stress, stress_files);
  }
  if (*probe_cmd) {
    probe.dir = probe_dir;
    probe.peer_dir = peer_dir;
    probe.duration = std::chrono::milliseconds(static_cast<std::int64_t>(probe_duration * 1000));
    probe.only = only;
    probe.progress = !probe_files.quiet;
    return locksmith::cli::run_probe_command(probe, probe_files);
  }
  if (*check_cmd) return locksmith::cli::run_check_command(check_dirs, check_files);
  if (leases.selected()) return leases.run();
  return locksmith::cli::kExitUsage;
}
