#include "report_output.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>

namespace locksmith::cli {
namespace {

bool write_file(const std::string& path, const char* what,
                void (*writer)(const harness::Report&, std::ostream&),
                const harness::Report& report) {
  std::ofstream out(path);
  if (out) writer(report, out);
  out.close();
  if (!out) {
    std::fprintf(stderr, "locksmith: cannot write %s report '%s': %s\n", what, path.c_str(),
                 std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int emit_report(harness::Report& report, const ReportFiles& files) {
  report.version = "0.1.0";
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) report.host = host;
  if (report.started_at.empty()) report.started_at = utc_now();
  if (!files.quiet) harness::write_console(report, std::cout, ::isatty(STDOUT_FILENO) != 0);
  bool ok = true;
  if (!files.json.empty()) ok &= write_file(files.json, "JSON", harness::write_json, report);
  if (!files.junit.empty()) ok &= write_file(files.junit, "JUnit", harness::write_junit, report);
  if (!files.html.empty()) ok &= write_file(files.html, "HTML", harness::write_html, report);
  if (!ok) return 2;
  return report.exit_code();
}

}  // namespace locksmith::cli
