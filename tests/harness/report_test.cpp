// Reports: summarize() statistics and samples on hand-made histories, the JSON schema fields,
// JUnit counts and well-formedness (checked by an independent XML parser), HTML and console
// escaping of hostile names. Check results are built by hand, so these tests do not depend on
// what the checkers find.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>

#include "locksmith/harness/report.hpp"
#include "test_support.hpp"

namespace locksmith::harness {
namespace {

Event ev(std::uint64_t t, std::uint32_t worker, std::uint32_t op, EventType type,
         std::int64_t value = -1) {
  Event e;
  e.time_ns = t;
  e.worker = worker;
  e.op = op;
  e.type = type;
  e.value = value;
  e.magic = kEventMagic;
  return e;
}

History sorted(History h) {
  std::stable_sort(h.events.begin(), h.events.end(), [](const Event& a, const Event& b) {
    return std::tie(a.host, a.time_ns, a.worker) < std::tie(b.host, b.time_ns, b.worker);
  });
  return h;
}

CheckResult check(const std::string& name, Verdict v, std::vector<Violation> violations = {},
                  std::uint64_t count = 0) {
  CheckResult c;
  c.name = name;
  c.verdict = v;
  c.summary = name + " checked";
  c.violations = std::move(violations);
  c.violation_count = std::max<std::uint64_t>(count, c.violations.size());
  return c;
}

Violation violation(const std::string& what, std::vector<std::uint32_t> workers, std::uint64_t from,
                    std::uint64_t to) {
  Violation v;
  v.what = what;
  v.workers = std::move(workers);
  v.from_ns = from;
  v.to_ns = to;
  return v;
}

// Two workers whose critical sections overlap in [4500, 5000], plus one busy, one timeout, one
// failure and one crash.
History small_history() {
  History h;
  h.info.kind = "broken-noop";
  h.info.spec = "broken:noop:/tmp/x";
  h.info.workers = 4;
  h.events = {
      ev(1000, 0, 1, EventType::invoke, -1),   ev(3000, 0, 1, EventType::ok),
      ev(5000, 0, 1, EventType::release, 1),   ev(5100, 0, 1, EventType::released),
      ev(2000, 1, 1, EventType::invoke, -1),   ev(4500, 1, 1, EventType::ok),
      ev(7000, 1, 1, EventType::release, 1),   ev(7100, 1, 1, EventType::released),
      ev(1500, 2, 1, EventType::invoke, 0),    ev(1600, 2, 1, EventType::busy),
      ev(8000, 3, 1, EventType::invoke, 1000), ev(9000, 3, 1, EventType::timeout),
      ev(10000, 2, 2, EventType::invoke, 0),   ev(10100, 2, 2, EventType::fail, 5),
      ev(11000, 3, 0, EventType::crash),
  };
  return sorted(h);
}

TEST(ReportTest, VerdictNamesAndExitCode) {
  EXPECT_STREQ(to_string(PrimitiveVerdict::safe), "SAFE");
  EXPECT_STREQ(to_string(PrimitiveVerdict::unsafe), "UNSAFE");
  EXPECT_STREQ(to_string(PrimitiveVerdict::unsupported), "UNSUPPORTED");
  Report r;
  EXPECT_EQ(r.exit_code(), 0);
  r.primitives.resize(2);
  r.primitives[0].verdict = PrimitiveVerdict::safe;
  r.primitives[1].verdict = PrimitiveVerdict::unsupported;
  EXPECT_EQ(r.exit_code(), 0);
  r.primitives[1].verdict = PrimitiveVerdict::unsafe;
  EXPECT_EQ(r.exit_code(), 1);
}

TEST(ReportTest, SummarizeComputesStatistics) {
  const History h = small_history();
  PrimitiveReport p;
  p.checks.push_back(check("exclusion", Verdict::fail,
                           {violation("w0 op 1 and w1 op 1 overlap", {0, 1}, 4500, 5000)}, 3));
  p.checks.push_back(check("liveness", Verdict::pass));
  p.checks.push_back(check("lost-updates", Verdict::fail, {}, 2));
  summarize(p, h);

  EXPECT_EQ(p.stats.at("operations"), 5);
  EXPECT_EQ(p.stats.at("acquired"), 2);
  EXPECT_EQ(p.stats.at("busy"), 1);
  EXPECT_EQ(p.stats.at("timeouts"), 1);
  EXPECT_EQ(p.stats.at("failures"), 1);
  EXPECT_EQ(p.stats.at("crashes"), 1);
  EXPECT_EQ(p.stats.at("overlaps"), 5);  // 3 + 2 violations in all checks
  // Waits: 3000 - 1000 = 2 µs and 4500 - 2000 = 2.5 µs (nearest rank).
  EXPECT_DOUBLE_EQ(p.stats.at("wait_p50_us"), 2.0);
  EXPECT_DOUBLE_EQ(p.stats.at("wait_p99_us"), 2.5);
  EXPECT_DOUBLE_EQ(p.stats.at("wait_max_us"), 2.5);
  // Two acquisitions in the 10 µs from the first event to the last.
  EXPECT_DOUBLE_EQ(p.stats.at("throughput_per_s"), 2 / 10e-6);
  ASSERT_EQ(p.wait_us.size(), 2u);
  EXPECT_DOUBLE_EQ(p.wait_us[0], 2.0);
  EXPECT_DOUBLE_EQ(p.wait_us[1], 2.5);
  ASSERT_EQ(p.timeline.size(), 2u);
  EXPECT_EQ(p.timeline[0].worker, 0u);
  EXPECT_EQ(p.timeline[1].worker, 1u);
  EXPECT_EQ(p.verdict, PrimitiveVerdict::unsafe);
  EXPECT_NE(p.reason.find("exclusion"), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find("lost-updates"), std::string::npos) << p.reason;
}

TEST(ReportTest, SummarizeVerdictSafeWhenNoCheckFailed) {
  PrimitiveReport p;
  p.checks.push_back(check("exclusion", Verdict::pass));
  p.checks.push_back(check("fencing", Verdict::skipped));
  summarize(p, small_history());
  EXPECT_EQ(p.verdict, PrimitiveVerdict::safe);
  EXPECT_EQ(p.stats.at("overlaps"), 0);
  EXPECT_TRUE(p.reason.empty());
}

TEST(ReportTest, SummarizeKeepsUnsupportedDecidedByCaller) {
  PrimitiveReport p;
  p.verdict = PrimitiveVerdict::unsupported;
  p.reason = "OFD locks are not available here";
  p.checks.push_back(check("exclusion", Verdict::fail, {}, 1));
  summarize(p, small_history());
  EXPECT_EQ(p.verdict, PrimitiveVerdict::unsupported);
  EXPECT_EQ(p.reason, "OFD locks are not available here");
  EXPECT_EQ(p.stats.at("acquired"), 2);  // statistics are still filled in
}

TEST(ReportTest, SummarizeOfEmptyHistory) {
  PrimitiveReport p;
  summarize(p, History{});
  EXPECT_EQ(p.stats.at("operations"), 0);
  EXPECT_EQ(p.stats.at("wait_p99_us"), 0);
  EXPECT_EQ(p.stats.at("throughput_per_s"), 0);
  EXPECT_TRUE(p.timeline.empty());
  EXPECT_TRUE(p.wait_us.empty());
  // No critical section, no evidence: never SAFE.
  EXPECT_EQ(p.verdict, PrimitiveVerdict::unsupported);
  EXPECT_NE(p.reason.find("no evidence"), std::string::npos) << p.reason;
}

// Two workers take turns 10000 times without overlapping; the violations name two spots far
// apart. The sample is bounded, yet both spots are in it, and the waits keep min and max.
TEST(ReportTest, SummarizeSamplesKeepViolationIntervals) {
  History h;
  h.info.workers = 2;
  constexpr std::uint32_t kOps = 10000;
  for (std::uint32_t k = 0; k < kOps; ++k) {
    const std::uint64_t t = 10000 + std::uint64_t{k} * 1000;
    const std::uint32_t w = k % 2;
    const std::uint64_t wait = k == 0 ? 1 : (k == kOps - 1 ? 900 : 1 + k % 500);
    h.events.push_back(ev(t - wait, w, k, EventType::invoke, -1));
    h.events.push_back(ev(t, w, k, EventType::ok));
    h.events.push_back(ev(t + 500, w, k, EventType::release, k));
    h.events.push_back(ev(t + 600, w, k, EventType::released));
  }
  h = sorted(h);
  const auto start = [](std::uint32_t k) { return 10000 + std::uint64_t{k} * 1000; };
  PrimitiveReport p;
  p.checks.push_back(check("exclusion", Verdict::fail,
                           {violation("early", {0, 1}, start(500) + 100, start(501) + 100),
                            violation("late", {1}, start(9501) + 10, start(9501) + 20)}));
  summarize(p, h);
  EXPECT_EQ(p.stats.at("critical_sections"), kOps);
  EXPECT_LE(p.timeline.size(), 3000u + 3u);
  EXPECT_GE(p.timeline.size(), 2000u);
  const auto has = [&](std::uint32_t worker, std::uint32_t op) {
    return std::any_of(p.timeline.begin(), p.timeline.end(),
                       [&](const Interval& iv) { return iv.worker == worker && iv.op == op; });
  };
  EXPECT_TRUE(has(0, 500));
  EXPECT_TRUE(has(1, 501));
  EXPECT_TRUE(has(1, 9501));
  EXPECT_FALSE(has(0, 9500)) << "worker 0 is not named by the late violation";
  EXPECT_TRUE(
      std::is_sorted(p.timeline.begin(), p.timeline.end(),
                     [](const Interval& a, const Interval& b) { return a.start_ns < b.start_ns; }));
  EXPECT_LE(p.wait_us.size(), 5000u);
  EXPECT_GE(p.wait_us.size(), 4000u);
  EXPECT_DOUBLE_EQ(*std::min_element(p.wait_us.begin(), p.wait_us.end()), 0.001);
  EXPECT_DOUBLE_EQ(*std::max_element(p.wait_us.begin(), p.wait_us.end()), 0.9);
  EXPECT_DOUBLE_EQ(p.stats.at("wait_max_us"), 0.9);
}

// A report with one primitive of each verdict, probe facts and hostile strings.
Report sample_report() {
  Report r;
  r.command = "probe";
  r.version = "0.1.0";
  r.host = "host-1";
  r.started_at = "2024-05-01T12:00:00Z";
  r.elapsed_s = 3.25;
  r.directory = "/mnt/nfs/<dir> & \"more\"";
  r.peer_directory = "/mnt/nfs2";
  r.facts = {{"fs_type", "nfs4", "from /proc/mounts"}, {"close_releases_fcntl", "yes", "x"}};

  PrimitiveReport broken;
  broken.name = "broken-noop";
  broken.spec = "broken:noop:/tmp/l";
  broken.verdict = PrimitiveVerdict::unsafe;
  broken.reason = "exclusion failed (7 violations)";
  broken.info.kind = "broken-noop";
  broken.info.workers = 4;
  broken.info.timeout_ns = 5'000'000'000;
  broken.info.start_ns = 1'234'567'890'123'456'789ULL;
  broken.checks.push_back(check(
      "exclusion", Verdict::fail,
      {violation("v1", {1, 2}, 1'234'567'890'123'456'789ULL, 1'234'567'890'123'456'999ULL),
       violation("v2", {2, 3}, 10, 20), violation("v3", {}, 30, 40), violation("v4", {1}, 50, 60)},
      7));
  broken.checks.back().metrics["critical_sections"] = 400;
  broken.checks.push_back(check("liveness", Verdict::pass));
  broken.checks.push_back(check("fencing", Verdict::skipped));
  broken.stats = {{"operations", 400}, {"acquired", 398}, {"wait_p50_us", 12.5}};

  PrimitiveReport ofd;
  ofd.name = "ofd";
  ofd.spec = "ofd:/tmp/l";
  ofd.verdict = PrimitiveVerdict::unsupported;
  ofd.reason = "EINVAL: no OFD locks";

  PrimitiveReport flock;
  flock.name = "flock";
  flock.spec = "flock:/tmp/l";
  flock.verdict = PrimitiveVerdict::safe;
  flock.checks.push_back(check("exclusion", Verdict::pass));
  flock.checks.push_back(check("lost-updates", Verdict::pass));

  r.primitives = {broken, ofd, flock};
  return r;
}

TEST(ReportTest, JsonCarriesEveryDocumentedField) {
  std::ostringstream out;
  write_json(sample_report(), out);
  const auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j.at("schema_version"), 1);
  EXPECT_EQ(j.at("command"), "probe");
  EXPECT_EQ(j.at("version"), "0.1.0");
  EXPECT_EQ(j.at("host"), "host-1");
  EXPECT_EQ(j.at("started_at"), "2024-05-01T12:00:00Z");
  EXPECT_DOUBLE_EQ(j.at("elapsed_s").get<double>(), 3.25);
  EXPECT_EQ(j.at("directory"), "/mnt/nfs/<dir> & \"more\"");
  EXPECT_EQ(j.at("peer_directory"), "/mnt/nfs2");
  EXPECT_EQ(j.at("verdict"), "UNSAFE");
  EXPECT_EQ(j.at("exit_code"), 1);
  ASSERT_EQ(j.at("facts").size(), 2u);
  EXPECT_EQ(j["facts"][0].at("name"), "fs_type");
  EXPECT_EQ(j["facts"][0].at("value"), "nfs4");
  EXPECT_EQ(j["facts"][0].at("detail"), "from /proc/mounts");
  ASSERT_EQ(j.at("primitives").size(), 3u);
  const auto& b = j["primitives"][0];
  EXPECT_EQ(b.at("name"), "broken-noop");
  EXPECT_EQ(b.at("spec"), "broken:noop:/tmp/l");
  EXPECT_EQ(b.at("verdict"), "UNSAFE");
  EXPECT_EQ(b.at("reason"), "exclusion failed (7 violations)");
  EXPECT_EQ(b.at("info").at("kind"), "broken-noop");
  EXPECT_EQ(b["info"].at("workers"), 4);
  EXPECT_EQ(b["info"].at("max_holders"), 1);
  EXPECT_EQ(b["info"].at("timeout_ns"), 5'000'000'000);
  EXPECT_EQ(b["info"].at("start_ns").get<std::uint64_t>(), 1'234'567'890'123'456'789ULL);
  for (const char* key : {"spec", "shared_mix", "duration_ns", "nemesis", "counter"}) {
    EXPECT_TRUE(b["info"].contains(key)) << key;
  }
  ASSERT_EQ(b.at("checks").size(), 3u);
  const auto& c = b["checks"][0];
  EXPECT_EQ(c.at("name"), "exclusion");
  EXPECT_EQ(c.at("verdict"), "fail");
  EXPECT_EQ(c.at("summary"), "exclusion checked");
  EXPECT_EQ(c.at("violation_count"), 7);
  ASSERT_EQ(c.at("violations").size(), 4u);
  EXPECT_EQ(c["violations"][0].at("what"), "v1");
  EXPECT_EQ(c["violations"][0].at("workers"), nlohmann::json::array({1, 2}));
  // Nanosecond times above 2^53 survive exactly.
  EXPECT_EQ(c["violations"][0].at("from_ns").get<std::uint64_t>(), 1'234'567'890'123'456'789ULL);
  EXPECT_EQ(c["violations"][0].at("to_ns").get<std::uint64_t>(), 1'234'567'890'123'456'999ULL);
  EXPECT_EQ(c.at("metrics").at("critical_sections"), 400);
  EXPECT_EQ(b["checks"][2].at("verdict"), "skipped");
  EXPECT_DOUBLE_EQ(b.at("stats").at("wait_p50_us").get<double>(), 12.5);
  EXPECT_EQ(b["stats"].at("acquired"), 398);
  EXPECT_FALSE(b.contains("timeline"));
  EXPECT_FALSE(b.contains("wait_us"));
  EXPECT_EQ(j["primitives"][1].at("verdict"), "UNSUPPORTED");
  EXPECT_EQ(j["primitives"][1].at("checks").size(), 0u);
  EXPECT_EQ(j["primitives"][2].at("verdict"), "SAFE");
}

// The probe's warnings (traps a SAFE does not cover) reach every reader: console, JSON, HTML.
TEST(ReportTest, WarningsAreShownInEveryFormat) {
  Report r = sample_report();
  r.warnings = {"flock locks on the nfs4 mount /mnt: local_lock=all <here>"};
  std::ostringstream console, json, html;
  write_console(r, console, false);
  EXPECT_NE(console.str().find("warning: flock locks on the nfs4 mount /mnt"), std::string::npos)
      << console.str();
  EXPECT_LT(console.str().find("warning:"), console.str().find("PRIMITIVE"))
      << "warnings come before the verdict table";
  write_json(r, json);
  const auto j = nlohmann::json::parse(json.str());
  ASSERT_EQ(j.at("warnings").size(), 1u);
  EXPECT_EQ(j["warnings"][0], r.warnings[0]);
  write_html(r, html);
  EXPECT_NE(html.str().find("<li>flock locks on the nfs4 mount /mnt: local_lock=all &lt;here&gt;"),
            std::string::npos);
  std::ostringstream none;
  write_json(sample_report(), none);
  EXPECT_EQ(nlohmann::json::parse(none.str()).at("warnings").size(), 0u);
}

TEST(ReportTest, JsonSurvivesInvalidUtf8AndNonFiniteNumbers) {
  Report r;
  r.command = "stress";
  PrimitiveReport p;
  p.name = "bad\xff\xfe name";
  p.spec = std::string("flock:/tmp/\x01\x02", 13);
  p.stats["throughput_per_s"] = std::numeric_limits<double>::infinity();
  r.primitives.push_back(p);
  std::ostringstream out;
  ASSERT_NO_THROW(write_json(r, out));
  const auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["primitives"][0].at("name"), "bad\xEF\xBF\xBD\xEF\xBF\xBD name");
  EXPECT_EQ(j["primitives"][0].at("spec"), std::string("flock:/tmp/\x01\x02", 13));
  EXPECT_TRUE(j["primitives"][0]["stats"].at("throughput_per_s").is_null());
  EXPECT_EQ(j.at("verdict"), "UNSUPPORTED");
  EXPECT_EQ(j.at("exit_code"), 0);
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Parses `xml` with Python's expat-based minidom (an independent, strict parser) and returns
// "tests failures skipped testcases failure-elements skipped-elements", or "" on a parse error.
std::string parse_junit_with_python(const std::string& xml) {
  test::TempDir dir;
  const auto file = dir / "junit.xml";
  const auto result = dir / "result.txt";
  std::ofstream(file) << xml;
  const std::string script =
      "import sys, xml.dom.minidom as m\n"
      "d = m.parse(sys.argv[1]); r = d.documentElement\n"
      "n = lambda t: len(d.getElementsByTagName(t))\n"
      "open(sys.argv[2], 'w').write(' '.join([r.getAttribute('tests'), r.getAttribute('failures'),"
      " r.getAttribute('skipped'), str(n('testcase')), str(n('failure')), str(n('skipped'))]))\n";
  std::ofstream(dir / "parse.py") << script;
  const std::string cmd = "timeout 30 /usr/bin/python3 '" + (dir / "parse.py").string() + "' '" +
                          file.string() + "' '" + result.string() + "'";
  if (std::system(cmd.c_str()) != 0) return "";
  return read_file(result);
}

TEST(ReportTest, JunitCountsTestsFailuresAndSkips) {
  std::ostringstream out;
  write_junit(sample_report(), out);
  const std::string xml = out.str();
  // broken-noop: 3 checks (1 failure, 1 skipped); ofd: one skipped "verdict" case; flock: 2 passes.
  EXPECT_EQ(parse_junit_with_python(xml), "6 1 2 6 1 2") << xml;
  EXPECT_NE(xml.find("<testsuite name=\"broken-noop\" tests=\"3\" failures=\"1\" errors=\"0\" "
                     "skipped=\"1\""),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<testcase classname=\"broken-noop\" name=\"exclusion\""), std::string::npos);
  EXPECT_NE(xml.find("<testcase classname=\"ofd\" name=\"verdict\""), std::string::npos);
  EXPECT_NE(xml.find("message=\"7 violations: exclusion checked\""), std::string::npos) << xml;
  // Every kept violation is listed, then the ones not kept are counted.
  for (const char* v : {"- v1", "- v2", "- v3", "- v4", "and 3 more"}) {
    EXPECT_NE(xml.find(v), std::string::npos) << v;
  }
}

TEST(ReportTest, JunitUnsafeWithoutFailingCheckStillFails) {
  Report r;
  r.command = "stress";
  PrimitiveReport p;
  p.name = "x";
  p.verdict = PrimitiveVerdict::unsafe;
  p.reason = "worker error";
  p.checks.push_back(check("exclusion", Verdict::pass));
  r.primitives.push_back(p);
  std::ostringstream out;
  write_junit(r, out);
  EXPECT_EQ(parse_junit_with_python(out.str()), "2 1 0 2 1 0") << out.str();
}

Report hostile_report() {
  Report r;
  r.command = "stress";
  r.host = "<host>";
  r.directory = "/tmp/a&b/\"c\"/<d>";
  r.facts = {{"</td><script>alert(1)</script>", "a'b", "\x1b[31mred"}};
  PrimitiveReport p;
  p.name = "<script>alert(1)</script>";
  p.spec = "flock:/tmp/x&y\"z'<w>\x01\xff";
  p.verdict = PrimitiveVerdict::unsafe;
  p.reason = "\x1b]0;pwned\x07 reason & <b>";
  p.checks.push_back(check("ex<c>lusion", Verdict::fail,
                           {violation("</script><img src=x onerror=alert(2)>", {1, 2}, 100, 200)}));
  Interval iv;
  iv.worker = 1;
  iv.start_ns = 50;
  iv.end_ns = 150;
  p.timeline.push_back(iv);
  p.wait_us = {1, 2, 3};
  r.primitives.push_back(p);
  return r;
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(ReportTest, HtmlEscapesHostileNames) {
  std::ostringstream out;
  write_html(hostile_report(), out);
  const std::string html = out.str();
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_EQ(html.find("<host>"), std::string::npos);
  EXPECT_EQ(html.find('\x1b'), std::string::npos);
  EXPECT_EQ(html.find('\x01'), std::string::npos);
  EXPECT_EQ(html.find('\xff'), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("/tmp/a&amp;b/&quot;c&quot;/&lt;d&gt;"), std::string::npos);
  EXPECT_NE(html.find("ex&lt;c&gt;lusion"), std::string::npos);
  // Exactly three script elements (error hook, data, renderer): no name can close or open one.
  EXPECT_EQ(count(html, "<script"), 3u);
  EXPECT_EQ(count(html, "</script>"), 3u);
  // The data blob carries the hostile text \u-escaped.
  EXPECT_NE(html.find("\\u003c/script\\u003e\\u003cimg"), std::string::npos);
}

TEST(ReportTest, HtmlIsSelfContained) {
  std::ostringstream out;
  write_html(sample_report(), out);
  const std::string html = out.str();
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
  EXPECT_EQ(html.find(" src="), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_NE(html.find("id=\"verdicts\""), std::string::npos);
  EXPECT_NE(html.find("id=\"facts\""), std::string::npos);
  EXPECT_NE(html.find("id=\"timeline-2\""), std::string::npos);
  EXPECT_NE(html.find("UNSUPPORTED"), std::string::npos);
  EXPECT_NE(html.find("close_releases_fcntl"), std::string::npos);
}

TEST(ReportTest, ConsoleShowsVerdictsFailingChecksAndFacts) {
  std::ostringstream out;
  write_console(sample_report(), out, false);
  const std::string text = out.str();
  for (const char* s :
       {"PRIMITIVE", "broken-noop", "UNSAFE", "ofd", "UNSUPPORTED", "flock", "SAFE",
        "EINVAL: no OFD locks", "FAIL exclusion", "* v1", "* v2", "* v3", "... and 4 more",
        "fs_type", "nfs4 (from /proc/mounts)", "verdict: UNSAFE (exit 1)"}) {
    EXPECT_NE(text.find(s), std::string::npos) << s << "\n" << text;
  }
  EXPECT_EQ(text.find("* v4"), std::string::npos) << "at most 3 violations per check";
  EXPECT_EQ(text.find("liveness"), std::string::npos) << "passing checks are not listed";
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no colour unless asked";
  // The verdict column is aligned: each primitive's verdict starts at the header's column.
  const auto column = text.find("VERDICT") - text.rfind('\n', text.find("VERDICT")) - 1;
  for (const char* row : {"broken-noop", "ofd  ", "flock"}) {
    const auto start = text.find(std::string("\n") + row) + 1;
    EXPECT_NE(std::string("SU").find(text[start + column]), std::string::npos) << row;
  }

  std::ostringstream colored;
  write_console(sample_report(), colored, true);
  EXPECT_NE(colored.str().find("\x1b[1;31mUNSAFE"), std::string::npos);
}

TEST(ReportTest, ConsoleNeutralisesControlCharacters) {
  std::ostringstream out;
  write_console(hostile_report(), out, false);
  const std::string text = out.str();
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find('\x07'), std::string::npos);
  EXPECT_NE(text.find("?]0;pwned? reason & <b>"), std::string::npos) << text;
}

}  // namespace
}  // namespace locksmith::harness
