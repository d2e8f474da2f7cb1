// Writing a harness report to the console and to the files the user asked for.
#pragma once

#include <string>

#include "locksmith/harness/report.hpp"

namespace locksmith::cli {

struct ReportFiles {
  std::string json;
  std::string junit;
  std::string html;
  bool quiet = false;
};

// Fills version/host/started_at, prints the console table (unless quiet) and writes the files.
// Returns the exit code: the report's (0/1), or 2 when a file cannot be written.
int emit_report(harness::Report& report, const ReportFiles& files);

// ISO 8601 UTC timestamp of now.
std::string utc_now();

}  // namespace locksmith::cli
