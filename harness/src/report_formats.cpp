// Machine-readable reports: JSON (schema in docs/REPORT_SCHEMA.md) and JUnit XML.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "locksmith/harness/report.hpp"
#include "report_internal.hpp"

namespace locksmith::harness {

using namespace report_detail;
using ordered_json = nlohmann::ordered_json;

namespace {

// Bump when a field changes meaning or disappears; adding fields keeps the version.
constexpr int kSchemaVersion = 1;

ordered_json number_map(const std::map<std::string, double>& values) {
  ordered_json out = ordered_json::object();
  for (const auto& [key, value] : values) {
    // NaN and infinities have no JSON form; they are written as null.
    out[valid_utf8(key)] = std::isfinite(value) ? ordered_json(value) : ordered_json(nullptr);
  }
  return out;
}

ordered_json info_json(const RunInfo& i) {
  ordered_json out;
  out["spec"] = valid_utf8(i.spec);
  out["kind"] = valid_utf8(i.kind);
  out["max_holders"] = i.max_holders;
  out["shared_mix"] = i.shared_mix;
  out["workers"] = i.workers;
  out["timeout_ns"] = i.timeout_ns;
  out["duration_ns"] = i.duration_ns;
  out["start_ns"] = i.start_ns;
  out["nemesis"] = valid_utf8(i.nemesis);
  out["counter"] = i.counter;
  out["fenced"] = i.fenced;
  out["expiry_bound_ns"] = i.expiry_bound_ns;
  return out;
}

ordered_json check_json(const CheckResult& c) {
  ordered_json out;
  out["name"] = valid_utf8(c.name);
  out["verdict"] = to_string(c.verdict);
  out["summary"] = valid_utf8(c.summary);
  out["violation_count"] = c.violation_count;
  ordered_json violations = ordered_json::array();
  for (const auto& v : c.violations) {
    ordered_json j;
    j["what"] = valid_utf8(v.what);
    j["workers"] = v.workers;
    j["from_ns"] = v.from_ns;
    j["to_ns"] = v.to_ns;
    violations.push_back(std::move(j));
  }
  out["violations"] = std::move(violations);
  out["metrics"] = number_map(c.metrics);
  return out;
}

}  // namespace

void write_json(const Report& r, std::ostream& out) {
  ordered_json j;
  j["schema_version"] = kSchemaVersion;
  j["command"] = valid_utf8(r.command);
  j["version"] = valid_utf8(r.version);
  j["host"] = valid_utf8(r.host);
  j["started_at"] = valid_utf8(r.started_at);
  j["elapsed_s"] = std::isfinite(r.elapsed_s) ? ordered_json(r.elapsed_s) : ordered_json(nullptr);
  j["directory"] = valid_utf8(r.directory);
  j["peer_directory"] = valid_utf8(r.peer_directory);
  j["verdict"] = overall_verdict(r);
  if (!r.no_verdict.empty()) j["no_verdict"] = r.no_verdict;
  ordered_json warnings = ordered_json::array();
  for (const auto& w : r.warnings) warnings.push_back(valid_utf8(w));
  j["warnings"] = std::move(warnings);
  ordered_json facts = ordered_json::array();
  for (const auto& f : r.facts) {
    facts.push_back({{"name", valid_utf8(f.name)},
                     {"value", valid_utf8(f.value)},
                     {"detail", valid_utf8(f.detail)}});
  }
  j["facts"] = std::move(facts);
  ordered_json primitives = ordered_json::array();
  for (const auto& p : r.primitives) {
    ordered_json pj;
    pj["name"] = valid_utf8(p.name);
    pj["spec"] = valid_utf8(p.spec);
    pj["verdict"] = to_string(p.verdict);
    pj["reason"] = valid_utf8(p.reason);
    pj["info"] = info_json(p.info);
    ordered_json checks = ordered_json::array();
    for (const auto& c : p.checks) checks.push_back(check_json(c));
    pj["checks"] = std::move(checks);
    pj["stats"] = number_map(p.stats);
    primitives.push_back(std::move(pj));
  }
  j["primitives"] = std::move(primitives);
  j["exit_code"] = r.exit_code();
  // Every string was made valid UTF-8 above; `replace` is a second line of defence.
  out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

// ---------------------------------------------------------------------------------------------
// JUnit XML: <testsuites> with one <testsuite> per primitive and one <testcase> per check
// (classname = primitive, name = check). A primitive without checks gets one test case named
// "verdict"; so does an UNSAFE primitive none of whose checks failed (the reason is the message).

namespace {

struct Case {
  std::string name;
  enum { pass, fail, skip } outcome = pass;
  std::string message;
  std::string body;
};

std::string violation_text(const CheckResult& c) {
  std::string body = c.summary + "\n";
  for (const auto& v : c.violations) {
    body += "- " + v.what;
    if (!v.workers.empty()) {
      body += " [workers";
      for (const auto w : v.workers) body += " " + std::to_string(w);
      body += "]";
    }
    if (has_range(v)) {
      body += " [" + std::to_string(v.from_ns) + ".." + std::to_string(v.to_ns) + " ns]";
    }
    body += "\n";
  }
  if (c.violation_count > c.violations.size()) {
    body += "... and " + std::to_string(c.violation_count - c.violations.size()) + " more\n";
  }
  return body;
}

std::vector<Case> cases_of(const PrimitiveReport& p) {
  std::vector<Case> cases;
  const bool unsupported = p.verdict == PrimitiveVerdict::unsupported;
  bool any_failed = false;
  for (const auto& c : p.checks) {
    Case k;
    k.name = c.name;
    if (unsupported || c.verdict == Verdict::skipped) {
      k.outcome = Case::skip;
      k.message = unsupported && !p.reason.empty() ? p.reason : c.summary;
    } else if (c.verdict == Verdict::inconclusive) {
      // Not a pass: JUnit has no "not enough evidence", and a skip is the honest nearest.
      k.outcome = Case::skip;
      k.message = "INCONCLUSIVE: " + c.summary;
    } else if (c.verdict == Verdict::fail) {
      k.outcome = Case::fail;
      k.message = std::to_string(c.violation_count) + " violation" +
                  (c.violation_count == 1 ? "" : "s") + ": " + c.summary;
      k.body = violation_text(c);
      any_failed = true;
    } else {
      k.body = c.summary;
    }
    cases.push_back(std::move(k));
  }
  const bool unexplained_unsafe = p.verdict == PrimitiveVerdict::unsafe && !any_failed;
  if (p.checks.empty() || unexplained_unsafe) {
    Case k;
    k.name = "verdict";
    k.message = p.reason;
    if (unsupported) k.outcome = Case::skip;
    if (p.verdict == PrimitiveVerdict::unsafe) {
      k.outcome = Case::fail;
      k.body = p.reason;
    }
    cases.push_back(std::move(k));
  }
  return cases;
}

}  // namespace

void write_junit(const Report& r, std::ostream& out) {
  std::vector<std::vector<Case>> suites;
  std::size_t tests = 0, failures = 0, skipped = 0;
  for (const auto& p : r.primitives) {
    suites.push_back(cases_of(p));
    for (const auto& k : suites.back()) {
      ++tests;
      failures += k.outcome == Case::fail ? 1 : 0;
      skipped += k.outcome == Case::skip ? 1 : 0;
    }
  }
  const auto attr = [](std::string_view s) { return xml_escape(s, true); };
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out << "<testsuites name=\"" << attr("locksmith " + r.command) << "\" tests=\"" << tests
      << "\" failures=\"" << failures << "\" errors=\"0\" skipped=\"" << skipped << "\" time=\""
      << number_text(r.elapsed_s) << "\">\n";
  for (std::size_t i = 0; i < r.primitives.size(); ++i) {
    const PrimitiveReport& p = r.primitives[i];
    const auto& cases = suites[i];
    const auto n_fail = std::count_if(cases.begin(), cases.end(),
                                      [](const Case& k) { return k.outcome == Case::fail; });
    const auto n_skip = std::count_if(cases.begin(), cases.end(),
                                      [](const Case& k) { return k.outcome == Case::skip; });
    const double seconds = p.info.duration_ns > 0 ? static_cast<double>(p.info.duration_ns) / 1e9
                                                  : (r.primitives.size() == 1 ? r.elapsed_s : 0);
    out << "  <testsuite name=\"" << attr(p.name) << "\" tests=\"" << cases.size()
        << "\" failures=\"" << n_fail << "\" errors=\"0\" skipped=\"" << n_skip << "\" time=\""
        << number_text(seconds) << "\" hostname=\"" << attr(r.host) << "\">\n";
    out << "    <properties>\n";
    const auto property = [&](std::string_view name, std::string_view value) {
      out << "      <property name=\"" << attr(name) << "\" value=\"" << attr(value) << "\"/>\n";
    };
    property("spec", p.spec);
    property("verdict", to_string(p.verdict));
    if (!p.reason.empty()) property("reason", p.reason);
    if (!r.directory.empty()) property("directory", r.directory);
    if (!r.started_at.empty()) property("started_at", r.started_at);
    out << "    </properties>\n";
    for (const auto& k : cases) {
      out << "    <testcase classname=\"" << attr(p.name) << "\" name=\"" << attr(k.name)
          << "\" time=\"0\"";
      if (k.outcome == Case::pass && k.body.empty()) {
        out << "/>\n";
        continue;
      }
      out << ">\n";
      if (k.outcome == Case::fail) {
        out << "      <failure message=\"" << attr(k.message) << "\" type=\"violation\">"
            << xml_escape(k.body) << "</failure>\n";
      } else if (k.outcome == Case::skip) {
        out << "      <skipped message=\"" << attr(k.message) << "\"/>\n";
      } else {
        out << "      <system-out>" << xml_escape(k.body) << "</system-out>\n";
      }
      out << "    </testcase>\n";
    }
    out << "  </testsuite>\n";
  }
  out << "</testsuites>\n";
}

}  // namespace locksmith::harness
