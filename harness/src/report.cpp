// Report model: verdicts, summarize() (statistics and samples from a history) and the console
// table. The JSON/JUnit writers are in report_formats.cpp, the HTML page in report_html.cpp.
#include "locksmith/harness/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>
#include <utility>

#include "report_internal.hpp"

namespace locksmith::harness {
namespace report_detail {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Decodes one UTF-8 sequence at s[i]; returns its length and sets `cp`, or 0 when invalid
// (truncated, overlong, surrogate, beyond U+10FFFF).
std::size_t decode_utf8(std::string_view s, std::size_t i, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t len = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Calls `emit(cp, bytes)` for every code point of `s`, with U+FFFD for invalid sequences.
template <class Emit>
void for_each_code_point(std::string_view s, Emit&& emit) {
  std::size_t i = 0;
  while (i < s.size()) {
    char32_t cp = 0;
    const std::size_t len = decode_utf8(s, i, cp);
    if (len == 0) {
      emit(char32_t{0xFFFD}, kReplacement);
      ++i;
    } else {
      emit(cp, s.substr(i, len));
      i += len;
    }
  }
}

}  // namespace

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for_each_code_point(s, [&](char32_t, std::string_view bytes) { out += bytes; });
  return out;
}

std::string xml_escape(std::string_view s, bool attribute) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for_each_code_point(s, [&](char32_t cp, std::string_view bytes) {
    switch (cp) {
      case '&':
        out += "&amp;";
        return;
      case '<':
        out += "&lt;";
        return;
      case '>':
        out += "&gt;";
        return;
      case '"':
        out += "&quot;";
        return;
      case '\'':
        out += "&#39;";
        return;
      case '\t':
        out += attribute ? "&#9;" : "\t";
        return;
      case '\n':
        out += attribute ? "&#10;" : "\n";
        return;
      case '\r':
        out += "&#13;";
        return;
      default:
        break;
    }
    if (cp < 0x20 || cp == 0x7F || cp == 0xFFFE || cp == 0xFFFF) {
      out += kReplacement;
    } else {
      out += bytes;
    }
  });
  return out;
}

std::string console_safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for_each_code_point(s, [&](char32_t cp, std::string_view bytes) {
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
      out += '?';
    } else {
      out += bytes;
    }
  });
  return out;
}

std::string format_us(double us, bool ascii) {
  char buf[64];
  if (!std::isfinite(us)) return "-";
  if (us < 10) {
    std::snprintf(buf, sizeof buf, "%.1f %s", us, ascii ? "us" : "\xC2\xB5s");
  } else if (us < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f %s", us, ascii ? "us" : "\xC2\xB5s");
  } else if (us < 1e6) {
    std::snprintf(buf, sizeof buf, "%.3g ms", us / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g s", us / 1e6);
  }
  return buf;
}

const char* overall_verdict(const Report& r) noexcept {
  if (!r.no_verdict.empty()) return "NO VERDICT";
  bool any_safe = false;
  bool any_inconclusive = false;
  for (const auto& p : r.primitives) {
    if (p.verdict == PrimitiveVerdict::unsafe) return "UNSAFE";
    any_safe |= p.verdict == PrimitiveVerdict::safe;
    any_inconclusive |= p.verdict == PrimitiveVerdict::inconclusive;
  }
  if (any_inconclusive) return "INCONCLUSIVE";
  return any_safe ? "SAFE" : "UNSUPPORTED";
}

bool has_range(const Violation& v) noexcept { return v.from_ns != 0 || v.to_ns != 0; }

bool involved(const Interval& iv, const Violation& v) noexcept {
  if (!has_range(v)) return false;
  const std::uint64_t from = std::min(v.from_ns, v.to_ns);
  const std::uint64_t to = std::max(v.from_ns, v.to_ns);
  if (iv.start_ns > to || iv.end_ns < from) return false;
  return v.workers.empty() ||
         std::find(v.workers.begin(), v.workers.end(), iv.worker) != v.workers.end();
}

std::string number_text(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.6g", v);
  }
  return buf;
}

}  // namespace report_detail

using namespace report_detail;

const char* to_string(PrimitiveVerdict v) noexcept {
  switch (v) {
    case PrimitiveVerdict::safe:
      return "SAFE";
    case PrimitiveVerdict::unsafe:
      return "UNSAFE";
    case PrimitiveVerdict::unsupported:
      return "UNSUPPORTED";
    case PrimitiveVerdict::inconclusive:
      return "INCONCLUSIVE";
  }
  return "UNSUPPORTED";
}

int Report::exit_code() const noexcept {
  if (!no_verdict.empty()) return 2;
  bool inconclusive = false;
  for (const auto& p : primitives) {
    if (p.verdict == PrimitiveVerdict::unsafe) return 1;
    inconclusive |= p.verdict == PrimitiveVerdict::inconclusive;
  }
  // Not enough evidence is no verdict: CI must not read it as a pass.
  return inconclusive ? 2 : 0;
}

namespace {

// Nearest-rank percentile of sorted values (q in (0, 1]).
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// At most `n` values spread evenly over the sorted `values` (first and last always kept), so the
// sample has the same distribution shape, minimum and maximum.
std::vector<double> quantile_sample(const std::vector<double>& sorted, std::size_t n) {
  if (sorted.size() <= n) return sorted;
  std::vector<double> out;
  out.reserve(n);
  const double step = static_cast<double>(sorted.size() - 1) / static_cast<double>(n - 1);
  for (std::size_t k = 0; k < n; ++k) {
    out.push_back(sorted[static_cast<std::size_t>(std::llround(static_cast<double>(k) * step))]);
  }
  return out;
}

// The timeline sample: every interval involved in a violation (up to kTimelineViolationCap), plus
// a contiguous run of the others (in start order) around the first violation, or from the start
// of the run when there is none, up to kTimelineSample intervals in all.
std::vector<Interval> timeline_sample(std::vector<Interval> all,
                                      const std::vector<CheckResult>& checks) {
  std::stable_sort(all.begin(), all.end(), [](const Interval& a, const Interval& b) {
    return std::tie(a.host, a.start_ns) < std::tie(b.host, b.start_ns);
  });
  if (all.size() <= kTimelineSample) return all;
  std::vector<bool> keep(all.size(), false);
  std::size_t kept = 0;
  std::size_t first_violation = all.size();
  for (std::size_t i = 0; i < all.size() && kept < kTimelineViolationCap; ++i) {
    for (const auto& c : checks) {
      const bool hit = std::any_of(c.violations.begin(), c.violations.end(),
                                   [&](const Violation& v) { return involved(all[i], v); });
      if (hit) {
        keep[i] = true;
        ++kept;
        first_violation = std::min(first_violation, i);
        break;
      }
    }
  }
  const std::size_t budget = kept < kTimelineSample ? kTimelineSample - kept : 0;
  const std::size_t center = first_violation == all.size() ? 0 : first_violation;
  std::size_t begin = center > budget / 2 ? center - budget / 2 : 0;
  begin = std::min(begin, all.size() - std::min(all.size(), budget));
  for (std::size_t i = begin, added = 0; i < all.size() && added < budget; ++i) {
    if (!keep[i]) {
      keep[i] = true;
      ++added;
    }
  }
  std::vector<Interval> out;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (keep[i]) out.push_back(all[i]);
  }
  return out;
}

// What the events of one primitive's history add up to.
struct EventCounts {
  double operations = 0, acquired = 0, busy = 0, timeouts = 0, failures = 0, crashes = 0;
  double release_failures = 0, scenario_ops = 0;
  std::vector<double> waits_us;  // invoke to ok, sorted
  std::uint64_t longest_ns = 0;  // the longest host's span of events
};

EventCounts count_events(const History& h) {
  EventCounts n;
  // The last invoke of each (host, worker): ops of one worker are sequential.
  std::map<std::pair<std::uint8_t, std::uint32_t>, std::pair<std::uint32_t, std::uint64_t>> invoked;
  std::map<std::uint8_t, std::pair<std::uint64_t, std::uint64_t>> span;  // per host: first, last
  for (const Event& e : h.events) {
    auto [it, fresh] = span.try_emplace(e.host, e.time_ns, e.time_ns);
    if (!fresh) {
      it->second.first = std::min(it->second.first, e.time_ns);
      it->second.second = std::max(it->second.second, e.time_ns);
    }
    const auto key = std::make_pair(e.host, e.worker);
    switch (e.type) {
      case EventType::invoke:
        ++n.operations;
        invoked[key] = {e.op, e.time_ns};
        break;
      case EventType::read:  // the scenarios' operations: reads and writes, puts and takes
      case EventType::write:
      case EventType::put:
      case EventType::take:
        ++n.operations;
        ++n.scenario_ops;
        break;
      case EventType::ok: {
        ++n.acquired;
        const auto inv = invoked.find(key);
        if (inv != invoked.end() && inv->second.first == e.op && e.time_ns >= inv->second.second) {
          n.waits_us.push_back(static_cast<double>(e.time_ns - inv->second.second) / 1e3);
        }
        break;
      }
      case EventType::busy:
        ++n.busy;
        break;
      case EventType::timeout:
        ++n.timeouts;
        break;
      case EventType::fail:
        ++n.failures;
        break;
      case EventType::release_fail:
        ++n.release_failures;
        break;
      case EventType::crash:
        ++n.crashes;
        break;
      default:
        break;
    }
  }
  for (const auto& [host, range] : span)
    n.longest_ns = std::max(n.longest_ns, range.second - range.first);
  if (n.longest_ns == 0 && h.info.duration_ns > 0) {
    n.longest_ns = static_cast<std::uint64_t>(h.info.duration_ns);
  }
  std::sort(n.waits_us.begin(), n.waits_us.end());
  return n;
}

// UNSUPPORTED with a reason was decided by the caller (the primitive could not run here) and is
// kept; otherwise the checks decide, and too little evidence is never SAFE.
void decide_verdict(PrimitiveReport& p, const EventCounts& n) {
  if (p.verdict == PrimitiveVerdict::unsupported && !p.reason.empty()) return;
  std::string failed;
  std::string inconclusive;
  for (const auto& c : p.checks) {
    if (c.verdict == Verdict::inconclusive) {
      if (!inconclusive.empty()) inconclusive += "; ";
      inconclusive += c.name + " inconclusive";
      const auto why = c.summary.find("inconclusive: ");
      if (why != std::string::npos) inconclusive += " (" + c.summary.substr(why + 14) + ")";
    }
    if (c.verdict != Verdict::fail) continue;
    if (!failed.empty()) failed += "; ";
    failed += c.name + " failed (" + std::to_string(c.violation_count) + " violation" +
              (c.violation_count == 1 ? "" : "s") + ")";
  }
  if (failed.empty() && n.acquired == 0 && n.scenario_ops == 0) {
    // Nothing was exercised: no evidence either way (e.g. every acquire timed out).
    p.verdict = PrimitiveVerdict::unsupported;
    if (p.reason.empty()) {
      p.reason = "no critical section was entered (" +
                 std::to_string(static_cast<long>(n.operations)) +
                 " attempts): no evidence either way";
    }
  } else if (failed.empty() && !inconclusive.empty()) {
    // Too little evidence is not SAFE: the run could not have caught a broken lock.
    p.verdict = PrimitiveVerdict::inconclusive;
    if (p.reason.empty()) p.reason = "not enough evidence: " + inconclusive;
  } else if (failed.empty()) {
    p.verdict = PrimitiveVerdict::safe;
  } else {
    p.verdict = PrimitiveVerdict::unsafe;
    if (p.reason.empty()) p.reason = failed;
  }
}

}  // namespace

void summarize(PrimitiveReport& p, const History& h) {
  const EventCounts n = count_events(h);
  double violations = 0;
  for (const auto& c : p.checks) violations += static_cast<double>(c.violation_count);
  std::vector<Interval> all = intervals(h);
  p.stats["operations"] = n.operations;
  p.stats["acquired"] = n.acquired;
  p.stats["busy"] = n.busy;
  p.stats["timeouts"] = n.timeouts;
  p.stats["failures"] = n.failures;
  p.stats["release_failures"] = n.release_failures;
  p.stats["crashes"] = n.crashes;
  p.stats["critical_sections"] = static_cast<double>(all.size());
  p.stats["throughput_per_s"] =
      n.longest_ns > 0 ? n.acquired / (static_cast<double>(n.longest_ns) / 1e9) : 0.0;
  p.stats["wait_p50_us"] = percentile(n.waits_us, 0.50);
  p.stats["wait_p99_us"] = percentile(n.waits_us, 0.99);
  p.stats["wait_max_us"] = n.waits_us.empty() ? 0.0 : n.waits_us.back();
  p.stats["overlaps"] = violations;
  p.wait_us = quantile_sample(n.waits_us, kWaitSample);
  p.timeline = timeline_sample(std::move(all), p.checks);
  decide_verdict(p, n);
}

// ---------------------------------------------------------------------------------------------
// Console

namespace {

constexpr const char* kReset = "\x1b[0m";
constexpr const char* kBold = "\x1b[1m";
constexpr const char* kDim = "\x1b[2m";
constexpr const char* kRed = "\x1b[1;31m";
constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kMagenta = "\x1b[1;35m";

// Display width of console-safe UTF-8 text (code points; the names here are not CJK).
std::size_t width(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }));
}

const char* verdict_color(PrimitiveVerdict v) {
  switch (v) {
    case PrimitiveVerdict::safe:
      return kGreen;
    case PrimitiveVerdict::unsafe:
      return kRed;
    case PrimitiveVerdict::unsupported:
      return kYellow;
    case PrimitiveVerdict::inconclusive:
      return kMagenta;
  }
  return "";
}

double stat(const PrimitiveReport& p, const char* key) {
  const auto it = p.stats.find(key);
  return it == p.stats.end() ? 0.0 : it->second;
}

struct Cell {
  std::string text;
  const char* color = nullptr;
};

// Prints rows of cells left-aligned in columns two spaces apart; the last column is not padded.
void print_table(std::ostream& out, const std::vector<std::vector<Cell>>& rows, bool color,
                 const char* indent) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t c = 0; c < row.size(); ++c) {
      widths[c] = std::max(widths[c], width(row[c].text));
    }
  }
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::string line = indent;
    const auto& row = rows[r];
    for (std::size_t c = 0; c < row.size(); ++c) {
      const bool last = c + 1 == row.size();
      const char* col = r == 0 ? kBold : row[c].color;
      if (color && col != nullptr) {
        line += col;
        line += row[c].text;
        line += kReset;
      } else {
        line += row[c].text;
      }
      if (!last) line.append(widths[c] - width(row[c].text) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  }
}

struct Paint {
  bool color;
  std::string operator()(const char* col, const std::string& text) const {
    return color ? std::string(col) + text + kReset : text;
  }
};

void console_header(const Report& r, std::ostream& out, const Paint& paint) {
  std::string head = "locksmith " + console_safe(r.command);
  if (!r.host.empty()) head += " on " + console_safe(r.host);
  if (!r.started_at.empty()) head += ", " + console_safe(r.started_at);
  char elapsed[32];
  std::snprintf(elapsed, sizeof elapsed, ", %.2f s", r.elapsed_s);
  head += elapsed;
  out << paint(kBold, head) << '\n';
  if (!r.directory.empty()) out << "directory: " << console_safe(r.directory) << '\n';
  if (!r.peer_directory.empty())
    out << "peer directory: " << console_safe(r.peer_directory) << '\n';
  out << '\n';
}

void console_table(const Report& r, std::ostream& out, bool color) {
  std::vector<std::vector<Cell>> rows;
  rows.push_back({{"PRIMITIVE"},
                  {"VERDICT"},
                  {"OPS"},
                  {"ACQUIRED"},
                  {"WAIT P50"},
                  {"WAIT P99"},
                  {"VIOLATIONS"},
                  {"REASON"}});
  for (const auto& p : r.primitives) {
    const bool ran = p.verdict != PrimitiveVerdict::unsupported || !p.stats.empty();
    const auto count = [&](const char* key) {
      return ran ? number_text(stat(p, key)) : std::string("-");
    };
    const auto wait = [&](const char* key) {
      return ran && stat(p, "acquired") > 0 ? format_us(stat(p, key), true) : std::string("-");
    };
    rows.push_back({{console_safe(p.name)},
                    {to_string(p.verdict), verdict_color(p.verdict)},
                    {count("operations")},
                    {count("acquired")},
                    {wait("wait_p50_us")},
                    {wait("wait_p99_us")},
                    {count("overlaps"), stat(p, "overlaps") > 0 ? kRed : nullptr},
                    {console_safe(p.reason)}});
  }
  print_table(out, rows, color, "");
}

// The failing checks with their first violations, then the checks that saw too little to judge.
void console_checks(const Report& r, std::ostream& out, const Paint& paint) {
  for (const auto& p : r.primitives) {
    bool header = false;
    for (const auto& c : p.checks) {
      if (c.verdict != Verdict::fail) continue;
      if (!header) {
        out << '\n' << paint(kBold, console_safe(p.name) + ": failing checks") << '\n';
        header = true;
      }
      out << "  " << paint(kRed, "FAIL") << ' ' << console_safe(c.name);
      if (!c.summary.empty()) out << " - " << console_safe(c.summary);
      out << '\n';
      constexpr std::size_t kShown = 3;
      const std::size_t shown = std::min(kShown, c.violations.size());
      for (std::size_t i = 0; i < shown; ++i) {
        out << "    * " << console_safe(c.violations[i].what) << '\n';
      }
      const std::uint64_t total = std::max<std::uint64_t>(c.violation_count, c.violations.size());
      if (total > shown) {
        out << paint(kDim, "    ... and " + std::to_string(total - shown) + " more") << '\n';
      }
    }
  }
  for (const auto& p : r.primitives) {
    bool header = false;
    for (const auto& c : p.checks) {
      if (c.verdict != Verdict::inconclusive) continue;
      if (!header) {
        out << '\n' << paint(kBold, console_safe(p.name) + ": inconclusive checks") << '\n';
        header = true;
      }
      out << "  " << paint(kMagenta, "INCONCLUSIVE") << ' ' << console_safe(c.name);
      if (!c.summary.empty()) out << " - " << console_safe(c.summary);
      out << '\n';
    }
  }
}

void console_facts(const Report& r, std::ostream& out, const Paint& paint) {
  if (r.facts.empty()) return;
  out << '\n' << paint(kBold, "Filesystem facts") << '\n';
  std::vector<std::vector<Cell>> facts;
  facts.push_back({{"FACT"}, {"VALUE"}});
  for (const auto& f : r.facts) {
    std::string value = console_safe(f.value);
    if (!f.detail.empty()) value += " (" + console_safe(f.detail) + ")";
    facts.push_back({{console_safe(f.name)}, {value}});
  }
  print_table(out, facts, paint.color, "  ");
}

}  // namespace

void write_console(const Report& r, std::ostream& out, bool color) {
  const Paint paint{color};
  console_header(r, out, paint);
  for (const auto& w : r.warnings) out << paint(kYellow, "warning: ") << console_safe(w) << '\n';
  if (!r.warnings.empty()) out << '\n';
  console_table(r, out, color);
  console_checks(r, out, paint);
  console_facts(r, out, paint);
  const std::string overall = overall_verdict(r);
  const char* col = overall == "UNSAFE"         ? kRed
                    : overall == "SAFE"         ? kGreen
                    : overall == "INCONCLUSIVE" ? kMagenta
                                                : kYellow;
  out << '\n' << "verdict: " << paint(col, overall);
  if (!r.no_verdict.empty()) out << " - " << console_safe(r.no_verdict);
  out << " (exit " << r.exit_code() << ")" << '\n';
}

}  // namespace locksmith::harness
