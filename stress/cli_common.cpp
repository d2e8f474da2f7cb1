#include "cli_common.hpp"

#include <CLI/CLI.hpp>

namespace locksmith::cli {

const char* const kSpecHelp =
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

void add_report_options(CLI::App* cmd, ReportFiles& files) {
  cmd->add_option("--json", files.json, "Write the report as JSON (docs/REPORT_SCHEMA.md)");
  cmd->add_option("--junit", files.junit, "Write a JUnit XML report (one case per check)");
  cmd->add_option("--html", files.html, "Write a self-contained HTML report");
  cmd->add_flag("--quiet,-q", files.quiet, "No console report");
}

}  // namespace locksmith::cli
