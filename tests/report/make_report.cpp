// Writes a sample report (see sample_reports.hpp) in every format, to look at by eye:
//   locksmith_make_report broken /tmp/r    ->  /tmp/r.html /tmp/r.json /tmp/r.xml, table on stdout
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>

#include "sample_reports.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s clean|broken|hostile|multi OUTPUT_PREFIX\n", argv[0]);
    return 2;
  }
  try {
    const auto report = locksmith::test::sample_report(argv[1]);
    const std::string prefix = argv[2];
    std::ofstream html(prefix + ".html"), json(prefix + ".json"), junit(prefix + ".xml");
    locksmith::harness::write_html(report, html);
    locksmith::harness::write_json(report, json);
    locksmith::harness::write_junit(report, junit);
    locksmith::harness::write_console(report, std::cout, false);
    if (!html || !json || !junit) {
      std::fprintf(stderr, "cannot write %s.*\n", prefix.c_str());
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
