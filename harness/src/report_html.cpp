// The HTML report: one self-contained page (inline CSS and JS, no external resource; a Content
// Security Policy forbids any). The text (header, verdict table, facts, checks, violations) is
// rendered here, escaped; the timelines and histograms are drawn as SVG by the inline script from
// a JSON blob in <script type="application/json" id="report-data">. The script reports its own
// errors into <pre id="js-errors"> and writes the number of drawn violation elements into
// <div id="render-status">, which is what the browser test reads.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "locksmith/harness/report.hpp"
#include "report_internal.hpp"

namespace locksmith::harness {

using namespace report_detail;
using json = nlohmann::json;

namespace {

// Violations shown in the page per check (all of them are in the JSON report).
constexpr std::size_t kListedViolations = 20;
// Histogram bins per decade of wait time.
constexpr int kBinsPerDecade = 4;

std::string esc(std::string_view s) { return xml_escape(s, true); }

const char* verdict_class(PrimitiveVerdict v) {
  switch (v) {
    case PrimitiveVerdict::safe:
      return "v-safe";
    case PrimitiveVerdict::unsafe:
      return "v-unsafe";
    case PrimitiveVerdict::unsupported:
      return "v-unsupported";
    case PrimitiveVerdict::inconclusive:
      return "v-inconclusive";
  }
  return "v-unsupported";
}

const char* check_class(Verdict v) {
  switch (v) {
    case Verdict::pass:
      return "v-safe";
    case Verdict::fail:
      return "v-unsafe";
    case Verdict::skipped:
      return "v-unsupported";
    case Verdict::inconclusive:
      return "v-inconclusive";
  }
  return "v-unsupported";
}

double stat(const PrimitiveReport& p, const char* key) {
  const auto it = p.stats.find(key);
  return it == p.stats.end() ? 0.0 : it->second;
}

std::string ns_text(std::int64_t ns) {
  if (ns < 0) return "forever";
  return format_us(static_cast<double>(ns) / 1e3);
}

// Log-scale histogram of waits in µs: bin edges 10^(k/kBinsPerDecade), plus a first bin [0, 1)
// when some waits were shorter than a microsecond.
json histogram(const std::vector<double>& waits) {
  json h;
  h["e"] = json::array();
  h["n"] = json::array();
  if (waits.empty()) return h;
  const double lo = *std::min_element(waits.begin(), waits.end());
  const double hi = *std::max_element(waits.begin(), waits.end());
  const bool below_one = lo < 1.0;
  const int kmin = below_one ? 0 : static_cast<int>(std::floor(kBinsPerDecade * std::log10(lo)));
  const int kmax = std::max(
      kmin + 1, static_cast<int>(std::floor(kBinsPerDecade * std::log10(std::max(hi, 1.0)))) + 1);
  std::vector<double> edges;
  if (below_one) edges.push_back(0);
  for (int k = kmin; k <= kmax; ++k) edges.push_back(std::pow(10.0, k / double{kBinsPerDecade}));
  std::vector<std::uint64_t> counts(edges.size() - 1, 0);
  for (const double w : waits) {
    // upper_bound finds the first edge above w; the bin is the one before it.
    auto idx =
        static_cast<std::size_t>(std::upper_bound(edges.begin(), edges.end(), w) - edges.begin());
    idx = std::clamp<std::size_t>(idx, 1, counts.size());
    ++counts[idx - 1];
  }
  h["e"] = edges;
  h["n"] = counts;
  return h;
}

// The timeline data of one primitive for the script: lanes (one per host/worker), intervals with
// times relative to their host's first event, and the violations that have a time range.
json timeline_data(const PrimitiveReport& p) {
  std::map<std::pair<std::uint8_t, std::uint32_t>, std::size_t> lane_of;
  std::map<std::uint8_t, std::uint64_t> t0;
  for (const auto& iv : p.timeline) {
    lane_of.emplace(std::make_pair(iv.host, iv.worker), 0);
    const std::uint64_t first =
        iv.invoke_ns != 0 ? std::min(iv.invoke_ns, iv.start_ns) : iv.start_ns;
    auto [it, fresh] = t0.try_emplace(iv.host, first);
    if (!fresh) it->second = std::min(it->second, first);
  }
  // Workers named by violations get a lane even when none of their intervals was kept.
  std::vector<const Violation*> ranged;
  std::vector<std::string> ranged_check;
  for (const auto& c : p.checks) {
    for (const auto& v : c.violations) {
      if (!has_range(v)) continue;
      ranged.push_back(&v);
      ranged_check.push_back(c.name);
      for (const auto w : v.workers) {
        const bool known = std::any_of(lane_of.begin(), lane_of.end(),
                                       [&](const auto& kv) { return kv.first.second == w; });
        if (!known) lane_of.emplace(std::make_pair(std::uint8_t{0}, w), 0);
      }
    }
  }
  const bool multi_host = t0.size() > 1;
  json lanes = json::array();
  std::size_t next = 0;
  for (auto& [key, lane] : lane_of) {
    lane = next++;
    lanes.push_back(
        valid_utf8((multi_host ? "h" + std::to_string(key.first) + " " : std::string()) + "w" +
                   std::to_string(key.second)));
  }
  std::uint64_t base = UINT64_MAX;
  for (const auto& [host, t] : t0) base = std::min(base, t);
  if (base == UINT64_MAX) {
    for (const auto* v : ranged) base = std::min({base, v->from_ns, v->to_ns});
  }
  if (base == UINT64_MAX) base = 0;
  const auto rel = [&](std::uint8_t host, std::uint64_t t) -> std::int64_t {
    const auto it = t0.find(host);
    const std::uint64_t origin = it == t0.end() ? base : it->second;
    return t >= origin ? static_cast<std::int64_t>(t - origin) : 0;
  };

  json ivs = json::array();
  std::int64_t end = 0;
  for (const auto& iv : p.timeline) {
    int flags = iv.mode == Mode::shared ? 1 : 0;
    json involved_in = json::array();
    for (std::size_t k = 0; k < ranged.size(); ++k) {
      if (involved(iv, *ranged[k])) involved_in.push_back(k);
    }
    if (!involved_in.empty()) flags |= 2;
    if (iv.ended_by_crash) flags |= 4;
    if (iv.open) flags |= 8;
    const std::int64_t start = rel(iv.host, iv.start_ns);
    const std::int64_t stop = std::max(start, rel(iv.host, iv.end_ns));
    const std::int64_t invoke =
        iv.invoke_ns != 0 ? std::min(start, rel(iv.host, iv.invoke_ns)) : start;
    end = std::max(end, stop);
    ivs.push_back(json::array({lane_of[{iv.host, iv.worker}], start, stop, flags, iv.op, invoke,
                               iv.fence, std::move(involved_in)}));
  }
  json vs = json::array();
  for (std::size_t k = 0; k < ranged.size(); ++k) {
    const Violation& v = *ranged[k];
    // A violation has no host; it is placed on the clock of the host of its first worker.
    std::uint8_t host = 0;
    json lanes_of_v = json::array();
    for (const auto w : v.workers) {
      for (const auto& [key, lane] : lane_of) {
        if (key.second == w) {
          if (lanes_of_v.empty()) host = key.first;
          lanes_of_v.push_back(lane);
        }
      }
    }
    const std::int64_t from = rel(host, std::min(v.from_ns, v.to_ns));
    const std::int64_t to = std::max(from, rel(host, std::max(v.from_ns, v.to_ns)));
    end = std::max(end, to);
    vs.push_back({{"c", valid_utf8(ranged_check[k])},
                  {"w", valid_utf8(v.what)},
                  {"f", from},
                  {"t", to},
                  {"l", std::move(lanes_of_v)}});
  }
  json out;
  out["lanes"] = std::move(lanes);
  out["iv"] = std::move(ivs);
  out["v"] = std::move(vs);
  out["end"] = end;
  out["multi_host"] = multi_host;
  out["shown"] = p.timeline.size();
  out["total"] = stat(p, "critical_sections");
  out["hist"] = histogram(p.wait_us);
  return out;
}

// JSON that is safe inside a <script> element: '<', '>' and '&' only occur inside JSON strings,
// where \u escapes mean the same characters, so "</script>" can never appear.
std::string script_json(const json& j) {
  const std::string raw = j.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(raw.size());
  for (const char ch : raw) {
    switch (ch) {
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

constexpr const char* kStyle = R"CSS(
:root{--bg:#fff;--fg:#1d2330;--muted:#667085;--line:#d9dde5;--safe:#18794e;--unsafe:#c8102e;
--unsup:#a15c00;--inconclusive:#6941c6;--ex:#3465a4;--sh:#4e9a06;--lane:#f5f7fa}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1400px;padding:16px 24px;font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:4px 0 8px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:16px 0 6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
table{border-collapse:collapse;margin:6px 0 10px;width:100%}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:700;font-size:12px;
color:#fff}
.v-safe{background:var(--safe)}.v-unsafe{background:var(--unsafe)}.v-unsupported{background:var(--unsup)}
.v-inconclusive{background:var(--inconclusive)}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:6px 0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;word-break:break-all}
.muted{color:var(--muted)}.reason{font-weight:600}
section.primitive{border-top:2px solid var(--line);margin-top:24px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
ol.violations{margin:4px 0 10px;padding-left:24px}ol.violations li{margin:2px 0}
button{font:inherit;font-size:12px;padding:0 6px;margin-left:6px;cursor:pointer}
.chart{overflow-x:auto;border:1px solid var(--line);border-radius:4px;padding:4px;margin:6px 0}
.chart svg{display:block;max-width:100%;height:auto}
.scroll{overflow-x:auto}td.num,td.nowrap{white-space:nowrap}#verdicts{font-size:13px}#verdicts td.reason-cell{min-width:18em}
svg text{font-size:11px;fill:var(--muted)}
svg .lane-bg{fill:var(--lane)}svg .iv.ex{fill:var(--ex)}svg .iv.sh{fill:var(--sh);opacity:.75}
svg .iv.crash{stroke:#000;stroke-dasharray:2 1}svg .iv.open{opacity:.5}
svg .iv.violation{fill:var(--unsafe);opacity:1}
svg .vmark{fill:var(--unsafe);opacity:.15;cursor:pointer}
svg .vtick{fill:var(--unsafe);cursor:pointer}
svg .wait{stroke:#98a2b3;stroke-width:1}
svg .axis{stroke:#98a2b3;stroke-width:1}svg .grid{stroke:#e4e7ec;stroke-width:1}
svg .bar{fill:var(--ex)}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:middle}
#js-errors{color:var(--unsafe);border:1px solid var(--unsafe);padding:6px;white-space:pre-wrap}
#js-errors:empty{display:none}
)CSS";

// Installed first, so that errors anywhere later (including a script that fails to parse) end up
// in the page, where a headless browser test can read them.
constexpr const char* kErrorHook = R"JS(
(function () {
  'use strict';
  var pending = [];
  function add(message) {
    var box = document.getElementById('js-errors');
    if (!box) { pending.push(message); return; }
    while (pending.length) box.textContent += pending.shift() + '\n';
    box.textContent += message + '\n';
  }
  window.locksmithReportError = add;
  window.addEventListener('error', function (e) {
    add('error: ' + (e.message || e.type) + (e.filename ? ' (' + e.filename + ':' + e.lineno + ')' : ''));
  });
  window.addEventListener('unhandledrejection', function (e) { add('unhandled rejection: ' + e.reason); });
  document.addEventListener('securitypolicyviolation', function (e) {
    add('blocked by the content security policy: ' + e.blockedURI);
  });
  var consoleError = console.error;
  console.error = function () {
    add('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return consoleError.apply(console, arguments);
  };
})();
)JS";

constexpr const char* kRender = R"JS(
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';
  var data = JSON.parse(document.getElementById('report-data').textContent);

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, anchor) {
    var t = el('text', { x: x, y: y, 'text-anchor': anchor || 'start' }, parent);
    t.textContent = s;
    return t;
  }
  function tip(parent, s) { el('title', {}, parent).textContent = s; }
  function dur(ns) {
    var us = ns / 1e3;
    if (us < 10) return us.toFixed(1) + ' \u00b5s';
    if (us < 1000) return us.toFixed(0) + ' \u00b5s';
    if (us < 1e6) return (us / 1e3).toPrecision(3) + ' ms';
    return (us / 1e6).toPrecision(3) + ' s';
  }
  function usText(us) { return dur(us * 1e3); }
  function niceStep(span, n) {
    var raw = span / n, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  var W = 1100, G = 70, R = 12, LANE = 16, TOP = 26;

  function drawTimeline(pi, from, to) {
    var d = data.primitives[pi], box = document.getElementById('timeline-' + pi);
    if (!box) return;
    while (box.firstChild) box.removeChild(box.firstChild);
    if (!d.iv.length && !d.v.length) {
      box.textContent = 'No critical section was recorded.';
      return;
    }
    if (!(to > from)) to = from + 1000;
    var lanes = d.lanes.length, H = TOP + lanes * LANE + 8;
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'class': 'timeline-svg',
                          'aria-label': 'holders of the lock over time' }, box);
    var x = function (t) { return G + (t - from) / (to - from) * (W - G - R); };
    var clampX = function (t) { return x(Math.max(from, Math.min(to, t))); };
    for (var l = 0; l < lanes; ++l) {
      if (l % 2 === 0) el('rect', { 'class': 'lane-bg', x: G, y: TOP + l * LANE, width: W - G - R, height: LANE }, svg);
      text(svg, G - 6, TOP + l * LANE + 12, d.lanes[l], 'end');
    }
    var step = niceStep(to - from, 8);
    for (var t = Math.ceil(from / step) * step; t <= to; t += step) {
      el('line', { 'class': 'grid', x1: x(t), x2: x(t), y1: TOP - 4, y2: H - 8 }, svg);
      text(svg, x(t), TOP - 8, dur(t), 'middle');
    }
    el('line', { 'class': 'axis', x1: G, x2: W - R, y1: TOP - 4, y2: TOP - 4 }, svg);
    // Violation marks under the bars: a band over the lanes of the workers involved.
    d.v.forEach(function (v, k) {
      if (v.t < from || v.f > to) return;
      var x0 = clampX(v.f), w = Math.max(clampX(v.t) - x0, 2);
      var ls = v.l.length ? v.l : d.lanes.map(function (_, i) { return i; });
      var lo = Math.min.apply(null, ls), hi = Math.max.apply(null, ls);
      var mark = el('rect', { 'class': 'vmark', x: x0, y: TOP + lo * LANE, width: w,
                              height: (hi - lo + 1) * LANE, 'data-v': k }, svg);
      tip(mark, v.c + ': ' + v.w);
      var tick = el('path', { 'class': 'vtick', d: 'M' + x0 + ' ' + (TOP - 4) + 'l-4 -7h8z', 'data-v': k }, svg);
      tip(tick, v.c + ': ' + v.w);
    });
    d.iv.forEach(function (iv) {
      var lane = iv[0], s = iv[1], e = iv[2], flags = iv[3], inv = iv[5];
      if (e < from || inv > to) return;
      var y = TOP + lane * LANE;
      if (inv < s && s >= from) {
        el('line', { 'class': 'wait', x1: clampX(inv), x2: clampX(s), y1: y + LANE / 2, y2: y + LANE / 2 }, svg);
      }
      if (s > to) return;
      var cls = 'iv ' + (flags & 1 ? 'sh' : 'ex') + (flags & 2 ? ' violation' : '') +
                (flags & 4 ? ' crash' : '') + (flags & 8 ? ' open' : '');
      var x0 = clampX(s);
      var bar = el('rect', { 'class': cls, x: x0, y: y + 2, width: Math.max(clampX(e) - x0, 1), height: LANE - 4 }, svg);
      var label = d.lanes[lane] + ' op ' + iv[4] + ' (' + (flags & 1 ? 'shared' : 'exclusive') + '): held ' +
                  dur(e - s) + ' from ' + dur(s) + ', waited ' + dur(s - inv);
      if (iv[6] >= 0) label += ', fence ' + iv[6];
      if (flags & 4) label += ', ended by the crash of its worker';
      if (flags & 8) label += ', never released';
      iv[7].forEach(function (k) { label += '\n\u26a0 ' + d.v[k].c + ': ' + d.v[k].w; });
      tip(bar, label);
    });
  }

  function drawHistogram(pi) {
    var d = data.primitives[pi], box = document.getElementById('histogram-' + pi);
    if (!box) return;
    var edges = d.hist.e, counts = d.hist.n;
    if (!counts.length) { box.textContent = 'No acquisition was recorded.'; return; }
    var HW = 640, HH = 190, L = 50, B = 34, T = 10, bins = counts.length;
    var max = Math.max.apply(null, counts) || 1;
    var svg = el('svg', { viewBox: '0 0 ' + HW + ' ' + HH, width: HW, height: HH, role: 'img', 'class': 'histogram-svg',
                          'aria-label': 'acquire wait histogram' }, box);
    var bw = (HW - L - 10) / bins, ph = HH - B - T;
    el('line', { 'class': 'axis', x1: L, x2: HW - 10, y1: HH - B, y2: HH - B }, svg);
    el('line', { 'class': 'axis', x1: L, x2: L, y1: T, y2: HH - B }, svg);
    text(svg, L - 4, T + 8, String(max), 'end');
    text(svg, L - 4, HH - B, '0', 'end');
    counts.forEach(function (n, i) {
      var h = n / max * ph;
      var bar = el('rect', { 'class': 'bar', x: L + i * bw + 1, y: HH - B - h, width: Math.max(bw - 2, 1), height: h }, svg);
      tip(bar, usText(edges[i]) + ' \u2013 ' + usText(edges[i + 1]) + ': ' + n);
    });
    var every = Math.max(1, Math.ceil((bins + 1) / 10));
    for (var i = 0; i <= bins; i += every) text(svg, L + i * bw, HH - B + 14, usText(edges[i]), 'middle');
    text(svg, (L + HW) / 2, HH - 4, 'acquire wait (log scale)', 'middle');
  }

  function fullRange(d) { return [0, Math.max(d.end, 1)]; }

  data.primitives.forEach(function (d, pi) {
    var r = fullRange(d);
    drawTimeline(pi, r[0], r[1]);
    drawHistogram(pi);
  });

  document.addEventListener('click', function (ev) {
    var target = ev.target;
    if (!target || !target.getAttribute) return;
    var box = target.closest ? target.closest('[data-p]') : null;
    var v = target.getAttribute('data-v');
    var p = target.getAttribute('data-p');
    if (p === null && box) p = box.getAttribute('data-p');
    if (p === null) return;
    var pi = Number(p), d = data.primitives[pi];
    if (!d) return;
    if (v !== null && d.v[Number(v)]) {
      var m = d.v[Number(v)], span = Math.max(m.t - m.f, 1000);
      drawTimeline(pi, Math.max(0, m.f - 2 * span), m.t + 2 * span);
      var tl = document.getElementById('timeline-' + pi);
      if (tl && tl.scrollIntoView && target.tagName === 'BUTTON') tl.scrollIntoView({ block: 'center' });
    } else if (target.getAttribute('data-reset') !== null) {
      var r = fullRange(d);
      drawTimeline(pi, r[0], r[1]);
    }
  });

  var status = document.getElementById('render-status');
  status.setAttribute('data-violation-elements', String(document.querySelectorAll('.violation').length));
  status.setAttribute('data-timelines', String(document.querySelectorAll('svg.timeline-svg').length));
  status.setAttribute('data-histograms', String(document.querySelectorAll('svg.histogram-svg').length));
  status.textContent = 'rendered';
})();
)JS";

void write_meta(std::ostream& out, const char* name, const std::string& value, bool mono = false) {
  if (value.empty()) return;
  out << "<dt>" << name << "</dt><dd" << (mono ? " class=\"mono\"" : "") << ">" << esc(value)
      << "</dd>";
}

void write_primitive(std::ostream& out, const PrimitiveReport& p, std::size_t index) {
  out << "<section class=\"primitive\" id=\"primitive-" << index << "\" data-p=\"" << index
      << "\">\n<h2>" << esc(p.name) << " <span class=\"verdict " << verdict_class(p.verdict)
      << "\">" << to_string(p.verdict) << "</span></h2>\n";
  if (!p.reason.empty()) out << "<p class=\"reason\">" << esc(p.reason) << "</p>\n";
  out << "<dl class=\"meta\">";
  write_meta(out, "spec", p.spec, true);
  write_meta(out, "kind", p.info.kind);
  write_meta(out, "workers", std::to_string(p.info.workers));
  write_meta(out, "max holders", std::to_string(p.info.max_holders));
  write_meta(out, "shared mix", p.info.shared_mix ? "yes" : "no");
  write_meta(out, "acquire timeout", ns_text(p.info.timeout_ns));
  if (p.info.duration_ns > 0) write_meta(out, "duration", ns_text(p.info.duration_ns));
  write_meta(out, "nemesis", p.info.nemesis);
  write_meta(out, "counter", p.info.counter ? "yes" : "no");
  out << "</dl>\n";

  if (!p.checks.empty()) {
    out << "<h3>Checks</h3>\n<table class=\"checks\"><thead><tr><th>check</th><th>verdict</th>"
           "<th>violations</th><th>summary</th></tr></thead><tbody>\n";
    for (const auto& c : p.checks) {
      out << "<tr><td>" << esc(c.name) << "</td><td><span class=\"verdict "
          << check_class(c.verdict) << "\">" << to_string(c.verdict)
          << "</span></td><td class=\"num\">" << c.violation_count << "</td><td>" << esc(c.summary)
          << "</td></tr>\n";
    }
    out << "</tbody></table>\n";
  }
  // Violation index k in the script data counts the violations with a time range, in order.
  std::size_t ranged = 0;
  for (const auto& c : p.checks) {
    if (c.violations.empty()) continue;
    out << "<details" << (c.violations.size() <= 5 ? " open" : "") << "><summary>Violations of "
        << esc(c.name) << " (" << std::max<std::uint64_t>(c.violation_count, c.violations.size())
        << ")</summary>\n<ol class=\"violations\">\n";
    for (std::size_t i = 0; i < c.violations.size(); ++i) {
      const Violation& v = c.violations[i];
      const bool listed = i < kListedViolations;
      if (listed) out << "<li>" << esc(v.what);
      if (has_range(v)) {
        if (listed) out << "<button type=\"button\" data-v=\"" << ranged << "\">show</button>";
        ++ranged;
      }
      if (listed) out << "</li>\n";
    }
    out << "</ol>\n</details>\n";
    const std::uint64_t total = std::max<std::uint64_t>(c.violation_count, c.violations.size());
    const std::uint64_t listed = std::min(c.violations.size(), kListedViolations);
    if (total > listed) {
      out << "<p class=\"muted\">" << total - listed
          << " more not listed here (the JSON report has up to " << kMaxViolations << ").</p>\n";
    }
  }

  const double total = stat(p, "critical_sections");
  out << "<h3>Holders over time <button type=\"button\" data-reset=\"\">whole run</button></h3>\n"
      << "<p class=\"legend muted\"><span><i style=\"background:var(--ex)\"></i>exclusive</span>"
         "<span><i style=\"background:var(--sh)\"></i>shared</span><span><i style=\"background:"
         "var(--unsafe)\"></i>involved in a violation</span><span>grey line: waiting to acquire"
         "</span>";
  if (total > static_cast<double>(p.timeline.size())) {
    out << "<span>showing " << p.timeline.size() << " of " << number_text(total)
        << " critical sections: every one involved in a violation and a contiguous stretch of the"
           " others</span>";
  }
  out << "</p>\n<div class=\"chart\" id=\"timeline-" << index
      << "\"><noscript>The timeline needs JavaScript.</noscript></div>\n";
  out << "<h3>Acquire wait</h3>\n<p class=\"muted\">p50 " << format_us(stat(p, "wait_p50_us"))
      << ", p99 " << format_us(stat(p, "wait_p99_us")) << ", max "
      << format_us(stat(p, "wait_max_us")) << " (histogram of " << p.wait_us.size()
      << " sampled waits)</p>\n<div class=\"chart\" id=\"histogram-" << index << "\"></div>\n";
  out << "</section>\n";
}

}  // namespace

void write_html(const Report& r, std::ostream& out) {
  const std::string overall = overall_verdict(r);
  const char* overall_class = overall == "UNSAFE"         ? "v-unsafe"
                              : overall == "SAFE"         ? "v-safe"
                              : overall == "INCONCLUSIVE" ? "v-inconclusive"
                                                          : "v-unsupported";
  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
         "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      << "<title>locksmith " << esc(r.command) << ": " << overall << "</title>\n"
      << "<script>" << kErrorHook << "</script>\n<style>" << kStyle
      << "</style>\n</head>\n<body>\n";
  out << "<pre id=\"js-errors\"></pre>\n<header>\n<h1>locksmith " << esc(r.command)
      << " <span class=\"verdict " << overall_class << "\" id=\"overall-verdict\">" << overall
      << "</span></h1>\n<dl class=\"meta\">";
  write_meta(out, "host", r.host);
  write_meta(out, "started", r.started_at);
  char elapsed[32];
  std::snprintf(elapsed, sizeof elapsed, "%.2f s", r.elapsed_s);
  write_meta(out, "elapsed", elapsed);
  write_meta(out, "directory", r.directory, true);
  write_meta(out, "peer directory", r.peer_directory, true);
  write_meta(out, "version", r.version);
  write_meta(out, "exit code", std::to_string(r.exit_code()));
  out << "</dl>\n</header>\n";

  out << "<h2>Verdicts</h2>\n<div class=\"scroll\"><table "
         "id=\"verdicts\"><thead><tr><th>primitive</th><th>spec</th>"
         "<th>verdict</th><th>operations</th><th>acquired</th><th>busy</th><th>timeouts</th>"
         "<th>crashes</th><th>wait p50</th><th>wait p99</th><th>wait max</th><th>per second</th>"
         "<th>violations</th><th>reason</th></tr></thead><tbody>\n";
  for (std::size_t i = 0; i < r.primitives.size(); ++i) {
    const PrimitiveReport& p = r.primitives[i];
    const bool ran = p.verdict != PrimitiveVerdict::unsupported || !p.stats.empty();
    const auto num = [&](const char* key) {
      return "<td class=\"num\">" + (ran ? number_text(std::round(stat(p, key))) : "-") + "</td>";
    };
    const auto wait = [&](const char* key) {
      return "<td class=\"num\">" + (stat(p, "acquired") > 0 ? format_us(stat(p, key)) : "-") +
             "</td>";
    };
    out << "<tr><td><a href=\"#primitive-" << i << "\">" << esc(p.name)
        << "</a></td><td class=\"mono\">" << esc(p.spec)
        << "</td><td class=\"nowrap\"><span class=\"verdict " << verdict_class(p.verdict) << "\">"
        << to_string(p.verdict) << "</span></td>" << num("operations") << num("acquired")
        << num("busy") << num("timeouts") << num("crashes") << wait("wait_p50_us")
        << wait("wait_p99_us") << wait("wait_max_us") << num("throughput_per_s") << num("overlaps")
        << "<td class=\"reason-cell\">" << esc(p.reason) << "</td></tr>\n";
  }
  out << "</tbody></table></div>\n";

  if (!r.warnings.empty()) {
    out << "<h2>Warnings</h2>\n<ul id=\"warnings\">\n";
    for (const auto& w : r.warnings) out << "<li>" << esc(w) << "</li>\n";
    out << "</ul>\n";
  }
  if (!r.facts.empty()) {
    out << "<h2>Filesystem facts</h2>\n<table id=\"facts\"><thead><tr><th>fact</th><th>value"
           "</th><th>detail</th></tr></thead><tbody>\n";
    for (const auto& f : r.facts) {
      out << "<tr><td class=\"mono\">" << esc(f.name) << "</td><td>" << esc(f.value) << "</td><td>"
          << esc(f.detail) << "</td></tr>\n";
    }
    out << "</tbody></table>\n";
  }

  json data;
  data["primitives"] = json::array();
  for (std::size_t i = 0; i < r.primitives.size(); ++i) {
    write_primitive(out, r.primitives[i], i);
    data["primitives"].push_back(timeline_data(r.primitives[i]));
  }
  out << "<div id=\"render-status\" class=\"muted\" hidden></div>\n"
      << "<script type=\"application/json\" id=\"report-data\">" << script_json(data)
      << "</script>\n<script>" << kRender << "</script>\n</body>\n</html>\n";
}

}  // namespace locksmith::harness
