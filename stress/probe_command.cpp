#include "probe_command.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "cli_validators.hpp"
#include "locksmith/harness/probe.hpp"
#include "locksmith/mount.hpp"
#include "stress_command.hpp"

namespace locksmith::cli {

struct ProbeCommand::State {
  CLI::App* cmd = nullptr;
  harness::ProbeOptions options;  // what the options fill in directly
  ReportFiles files;
  std::string dir;
  std::string peer_dir;
  double duration = 1;
  std::vector<std::string> only;
  bool save = false;
  std::string verdicts;
};

ProbeCommand::ProbeCommand(CLI::App& app) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.cmd = app.add_subcommand(
      "probe",
      "Is locking safe on the filesystem holding DIR (default: a fresh temporary directory)?\n"
      "For every file primitive, a short stress run with competing processes gives a verdict\n"
      "SAFE / UNSAFE / UNSUPPORTED with its evidence; experiments show the filesystem's\n"
      "semantics (close releases fcntl locks, flock/fcntl interaction, fork, O_EXCL, link,\n"
      "rename). Both work in fresh subdirectories DIR/.locksmith-probe-XXXXXX, removed\n"
      "afterwards: DIR is left as it was. Exit 0 when nothing unsafe was seen, 1 on a\n"
      "violation, 2 on usage or environment errors.");
  s.cmd->add_option("dir", s.dir, "Directory on the filesystem to probe");
  s.cmd->add_option("--peer-dir", s.peer_dir,
                    "The same directory through a second mount of the same export: half\n"
                    "the workers use it (cross-client coherence, e.g. two NFS mounts)");
  s.cmd->add_option("--duration,-d", s.duration, "Seconds of stress per primitive (default 1)")
      ->check(positive_seconds());
  s.cmd->add_option("--workers,-w", s.options.workers, "Worker processes per primitive (4)")
      ->check(whole_number(1, 256));
  s.cmd
      ->add_option("--only", s.only,
                   "Probe only these primitives (flock, fcntl, ofd, sem, link, mkdir,\n"
                   "dotlock, auto)")
      ->delimiter(',');
  s.cmd->add_flag("--save", s.save,
                  "Save the verdicts for this mount (and the peer's), where `auto:` locks read\n"
                  "them: a mechanism found UNSAFE is not used there; a FUSE mount is trusted\n"
                  "for a mechanism found SAFE across two mounts (--peer-dir). Records are\n"
                  "ignored once the mount's options, source or the kernel change");
  s.cmd
      ->add_option("--verdicts", s.verdicts,
                   "The verdict store --save writes (default: $LOCKSMITH_VERDICTS, else\n"
                   "/var/lib/locksmith/verdicts for root, else\n"
                   "~/.local/state/locksmith/verdicts)")
      ->needs("--save");
  add_report_options(s.cmd, s.files);
}

ProbeCommand::~ProbeCommand() = default;

bool ProbeCommand::selected() const { return state_->cmd->parsed(); }

int ProbeCommand::run() const {
  const State& s = *state_;
  harness::ProbeOptions o = s.options;
  o.dir = s.dir;
  o.peer_dir = s.peer_dir;
  o.duration = std::chrono::milliseconds(static_cast<std::int64_t>(s.duration * 1000));
  o.only = s.only;
  o.progress = !s.files.quiet;
  std::optional<std::filesystem::path> save_to;
  if (s.save)
    save_to = s.verdicts.empty() ? VerdictStore::default_path() : std::filesystem::path(s.verdicts);
  return run_probe_command(o, s.files, save_to);
}

}  // namespace locksmith::cli
