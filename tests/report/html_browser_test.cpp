// The HTML report in a real browser: headless Chromium loads the page from a file, the inline
// script draws the timelines and histograms, and --dump-dom hands back the DOM after the load.
// The page's own error hook (window.onerror, unhandled rejections, CSP violations, console.error)
// writes into <pre id="js-errors">, and Chromium's console log on stderr must stay empty.
//
// Chromium is required: install it (Debian package `chromium`, see ci/install-deps.sh) or point
// LOCKSMITH_CHROMIUM at a binary. LOCKSMITH_SKIP_BROWSER_TESTS=1 skips these tests explicitly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "sample_reports.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace locksmith::test {
namespace {

std::string find_chromium() {
  if (const char* env = std::getenv("LOCKSMITH_CHROMIUM"); env != nullptr && *env != '\0') {
    return env;
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
      const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  return "";
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Page {
  std::string dom;
  std::string log;  // Chromium's stderr
  int status = -1;
};

// Loads `html` in headless Chromium (a fresh profile, no network services) and returns the DOM
// after the load. Bounded by timeout(1): 60 s, then SIGKILL 5 s later.
Page load(const std::string& chromium, const std::filesystem::path& html, const TempDir& dir) {
  const auto profile = dir / "profile";
  const auto err = dir / "stderr.txt";
  std::filesystem::create_directories(profile);
  std::vector<std::string> args = {"timeout",
                                   "-k",
                                   "5",
                                   "60",
                                   chromium,
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-quic",
                                   "--no-first-run",
                                   "--disable-background-networking",
                                   "--disable-component-update",
                                   "--disable-sync",
                                   "--user-data-dir=" + profile.string(),
                                   "--enable-logging=stderr",
                                   "--v=0",
                                   "--dump-dom",
                                   "file://" + html.string()};
  Page page;
  locksmith::test::SpawnOptions o;
  o.search_path = true;
  o.err = locksmith::test::Stdio::file;
  o.stderr_file = err.string();
  try {
    // Bounded twice: timeout(1) kills Chromium after 65 s at the latest, and run() waits 70 s.
    const auto done = locksmith::test::run(args, o, std::chrono::seconds(70));
    if (done.exit && *done.exit >= 0) page.status = *done.exit;
    page.dom = done.out;
  } catch (const std::system_error& e) {
    page.log = e.what();  // timeout(1) could not be run
    return page;
  }
  page.log = read_file(err);
  return page;
}

std::size_t count_matches(const std::string& s, const std::regex& re) {
  return static_cast<std::size_t>(
      std::distance(std::sregex_iterator(s.begin(), s.end(), re), std::sregex_iterator()));
}

// Lines where Chromium logged a console message of the page (any level).
std::string console_lines(const std::string& log) {
  std::stringstream in(log);
  std::string line, found;
  while (std::getline(in, line)) {
    if (line.find(":CONSOLE") != std::string::npos) found += line + "\n";
  }
  return found;
}

std::string attribute(const std::string& dom, const std::string& id, const std::string& name) {
  const std::regex re("<div id=\"" + id + "\"[^>]*\\s" + name + "=\"([^\"]*)\"");
  std::smatch m;
  return std::regex_search(dom, m, re) ? m[1].str() : std::string("<missing>");
}

class HtmlInBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* skip = std::getenv("LOCKSMITH_SKIP_BROWSER_TESTS");
        skip != nullptr && std::string(skip) == "1") {
      GTEST_SKIP() << "LOCKSMITH_SKIP_BROWSER_TESTS=1";
    }
    chromium_ = find_chromium();
    ASSERT_FALSE(chromium_.empty())
        << "no chromium on PATH: install the Debian package 'chromium' (ci/install-deps.sh), set "
           "LOCKSMITH_CHROMIUM, or set LOCKSMITH_SKIP_BROWSER_TESTS=1 to skip";
  }

  // Renders the sample report `kind` and checks what every page must satisfy: it loaded, the
  // script ran to its end, no error reached the page's hook or the console, and every
  // primitive that ran got a timeline and a histogram drawn by the script.
  Page render(const std::string& kind, std::size_t charts) {
    const auto html = dir_ / (kind + ".html");
    {
      std::ofstream out(html);
      harness::write_html(sample_report(kind), out);
    }
    Page page = load(chromium_, html, dir_);
    EXPECT_EQ(page.status, 0) << page.log;
    EXPECT_NE(page.dom.find("id=\"verdicts\""), std::string::npos) << page.dom.substr(0, 2000);
    EXPECT_NE(page.dom.find("<pre id=\"js-errors\"></pre>"), std::string::npos)
        << "errors in the page:\n"
        << page.dom.substr(std::min(page.dom.size(), page.dom.find("<pre id=\"js-errors\"")), 2000);
    EXPECT_EQ(console_lines(page.log), "");
    EXPECT_NE(page.dom.find(">rendered</div>"), std::string::npos) << "the script did not finish";
    EXPECT_EQ(attribute(page.dom, "render-status", "data-timelines"), std::to_string(charts));
    EXPECT_EQ(attribute(page.dom, "render-status", "data-histograms"), std::to_string(charts));
    EXPECT_EQ(count_matches(page.dom, std::regex("<svg[^>]*class=\"timeline-svg\"")), charts);
    return page;
  }

  TempDir dir_;
  std::string chromium_;
};

const std::regex kViolationClass("class=\"[^\"]*\\bviolation\\b[^\"]*\"");
const std::regex kVerdictRow(
    "<tr><td><a href=\"#primitive-[0-9]+\">([^<]*)</a></td>.*?"
    "class=\"verdict [a-z-]+\">([A-Z]+)</span>");

TEST_F(HtmlInBrowser, BrokenRunShowsViolationsInTheTimeline) {
  const Page page = render("broken", 1);
  const std::size_t marked = count_matches(page.dom, kViolationClass);
  EXPECT_GT(marked, 0u);
  EXPECT_EQ(attribute(page.dom, "render-status", "data-violation-elements"),
            std::to_string(marked));
  EXPECT_GT(count_matches(page.dom, std::regex("class=\"vmark\"")), 0u);
  std::smatch row;
  ASSERT_TRUE(std::regex_search(page.dom, row, kVerdictRow));
  EXPECT_EQ(row[1].str(), "broken-noop");
  EXPECT_EQ(row[2].str(), "UNSAFE");
  EXPECT_GT(count_matches(page.dom, std::regex("<rect class=\"iv ex")), 100u);
  EXPECT_GT(count_matches(page.dom, std::regex("<rect class=\"bar\"")), 0u);
}

TEST_F(HtmlInBrowser, CleanRunHasNoViolationMarks) {
  const Page page = render("clean", 1);
  EXPECT_EQ(count_matches(page.dom, kViolationClass), 0u);
  EXPECT_EQ(count_matches(page.dom, std::regex("class=\"vmark\"")), 0u);
  EXPECT_EQ(attribute(page.dom, "render-status", "data-violation-elements"), "0");
  std::smatch row;
  ASSERT_TRUE(std::regex_search(page.dom, row, kVerdictRow));
  EXPECT_EQ(row[2].str(), "SAFE");
  EXPECT_GT(count_matches(page.dom, std::regex("<rect class=\"iv ex")), 100u);
}

TEST_F(HtmlInBrowser, HostileNamesStayText) {
  const Page page = render("hostile", 1);
  // Only the page's own three scripts exist, and no element came from a name.
  EXPECT_EQ(count_matches(page.dom, std::regex("<script")), 3u);
  EXPECT_EQ(page.dom.find("<img"), std::string::npos);
  EXPECT_EQ(page.dom.find("<i>yes"), std::string::npos);
  EXPECT_EQ(count_matches(page.dom, std::regex("<svg")), 2u);  // timeline + histogram only
  EXPECT_NE(page.dom.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  EXPECT_GT(count_matches(page.dom, kViolationClass), 0u);
}

TEST_F(HtmlInBrowser, ProbeReportWithSeveralPrimitives) {
  const Page page = render("multi", 2);  // the unsupported one has nothing to draw
  std::vector<std::string> verdicts;
  for (auto it = std::sregex_iterator(page.dom.begin(), page.dom.end(), kVerdictRow);
       it != std::sregex_iterator(); ++it) {
    verdicts.push_back((*it)[1].str() + "=" + (*it)[2].str());
  }
  EXPECT_EQ(verdicts,
            (std::vector<std::string>{"flock=SAFE", "broken-noop=UNSAFE", "ofd=UNSUPPORTED"}));
  EXPECT_NE(page.dom.find("id=\"facts\""), std::string::npos);
  EXPECT_NE(page.dom.find("No critical section was recorded."), std::string::npos);
  EXPECT_GT(count_matches(page.dom, kViolationClass), 0u);
}

}  // namespace
}  // namespace locksmith::test
