// What several `locksmith` subcommands share on the command line: the lock spec help and the
// report options.
#pragma once

#include "report_output.hpp"

namespace CLI {
class App;
}

namespace locksmith::cli {

// The lock specs, scenarios and broken locks the commands take (the footer of `run`, `stress`
// and of the top-level help).
extern const char* const kSpecHelp;

// --json, --junit, --html, --quiet into `files`.
void add_report_options(CLI::App* cmd, ReportFiles& files);

}  // namespace locksmith::cli
