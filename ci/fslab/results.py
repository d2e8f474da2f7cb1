#!/usr/bin/python3
"""The filesystem lab's results: compare them with the expectations, and write the report.

  results.py check  OUT EXPECTATIONS.tsv   print the matrices; exit 1 if a result differs
  results.py report OUT DEST FINDINGS.md   write DEST/FILESYSTEMS.md (DEST = docs: also the
                                           reports into docs/fslab/, violation lists cut to 5)

OUT is what ci/fslab/run wrote: meta.tsv, configs.tsv, runs.tsv (one line per command: config,
test, primitives, exit status, seconds, report name, command), NAME.json / NAME.txt per run,
copyup-CFG.tsv, mountinfo-CFG.txt.

A result is (config, test, item, value): test "probe" or "stress" with a primitive and its
verdict (or HANG: killed by its timeout; ERROR: no report), "fact" with a probe fact and its
value, "copyup" with KIND.CHECK and its outcome. Expectations (tab-separated):
  config  test  item  expect  reason
config and item may be "*" (the most specific line wins: exact config before "*", then exact
item before "*"); expect is "any" or alternatives joined by "|" (SAFE|UNSUPPORTED; "error:*"
matches any value that starts with "error:"), optionally
followed by check constraints for probe/stress (UNSAFE exclusion=pass lost-updates=fail).
Every probe and stress primitive of a configuration that ran must have a result and a matching
expectation; facts and copy-up outcomes are checked where an expectation names them.
"""
import json
import pathlib
import shutil
import sys

PRIMS = ["flock", "fcntl", "ofd", "sem", "link", "mkdir", "dotlock", "auto"]
HANG = {124, 137}  # timeout's status: the command was killed at its bound
FACTS = ["fs_type", "peer_same_export", "flock_supported", "fcntl_supported", "ofd_supported",
         "flock_fcntl_interact", "close_any_fd_drops_fcntl", "flock_shared_across_fork",
         "two_opens_conflict_flock", "two_opens_conflict_fcntl", "two_opens_conflict_ofd",
         "o_excl_atomic", "link_nlink_2", "rename_atomic_for_readers", "auto_mechanism"]


def tsv(path):
    lines = [l for l in path.read_text().splitlines() if l and not l.startswith("#")]
    head = lines[0].split("\t")
    return [dict(zip(head, l.split("\t"))) for l in lines[1:]]


class Result:
    def __init__(self, cfg, test, item, value, checks=None, reason="", source="", extra=""):
        self.cfg, self.test, self.item, self.value = cfg, test, item, value
        self.checks = checks or {}  # check name -> pass / fail / skipped / inconclusive
        self.reason, self.source, self.extra = reason, source, extra


def load(out):
    """Every result of the run in OUT, and the configurations that ran."""
    results, configs = [], {}
    for c in tsv(out / "configs.tsv"):
        configs[c["config"]] = c
    for run in tsv(out / "runs.tsv"):
        cfg, test, rc, name = run["config"], run["test"], int(run["exit"]), run["name"]
        configs.setdefault(cfg, {"config": cfg, "description": "(setup failed)"})
        if test == "setup":
            continue
        if test == "copyup":
            path = out / f"copyup-{cfg}.tsv"
            if rc != 0 or not path.exists():
                results.append(Result(cfg, "copyup", "*", "HANG" if rc in HANG else "ERROR",
                                      reason=f"copyup.py exit {rc}", source=name))
                continue
            for r in tsv(path):
                results.append(Result(cfg, "copyup", f"{r['kind']}.{r['check']}", r["result"],
                                      reason=r["detail"], source=name))
            continue
        wanted = PRIMS if run["primitives"] == "*" else run["primitives"].split()
        report = None
        path = out / f"{name}.json"
        if path.exists():
            try:
                report = json.loads(path.read_text())
            except json.JSONDecodeError:
                report = None
        seen = set()
        for p in (report or {}).get("primitives", []):
            checks = {c["name"]: c["verdict"] for c in p.get("checks", [])}
            s = p.get("stats", {})
            extra = f"{s.get('acquired', 0):.0f} acq"
            if test == "stress":
                extra += f", {s.get('crashes', 0):.0f} killed"
            results.append(Result(cfg, test, p["name"], p["verdict"], checks, p.get("reason", ""),
                                  name, extra))
            seen.add(p["name"])
        if report and test == "probe":
            for f in report.get("facts", []):
                results.append(Result(cfg, "fact", f["name"], f["value"], reason=f.get("detail", ""),
                                      source=name))
        for p in wanted:
            if p in seen:
                continue
            if rc in HANG:
                value, why = "HANG", f"killed by its timeout after {run['seconds']} s"
            else:
                value, why = "ERROR", f"exit {rc}, no verdict in the report (see {name}.txt)"
            results.append(Result(cfg, test, p, value, reason=why, source=name,
                                  extra=f"{run['seconds']} s"))
    return results, configs


def expectations(path):
    rules = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        if len(f) < 5 or f[0] == "config":
            if f[0] != "config":
                sys.exit(f"{path}:{n}: want 5 tab-separated fields (config test item expect reason)")
            continue
        rules.append({"cfg": f[0], "test": f[1], "item": f[2], "expect": f[3], "reason": f[4],
                      "line": n})
    return rules


def rule_for(rules, r):
    best, rank = None, -1
    for x in rules:
        if x["test"] != r.test or x["cfg"] not in (r.cfg, "*") or x["item"] not in (r.item, "*"):
            continue
        k = (x["cfg"] == r.cfg) * 2 + (x["item"] == r.item)
        if k > rank:  # among equally specific lines the first wins
            best, rank = x, k
    return best


def judge(rule, r):
    """None when r meets rule, else what differs."""
    words = rule["expect"].split()
    want, constraints = words[0], words[1:]
    if want != "any" and not any(r.value == w or (w.endswith("*") and r.value.startswith(w[:-1]))
                                 for w in want.split("|")):
        return f"expected {want}, got {r.value}"
    for c in constraints:
        name, _, verdict = c.partition("=")
        got = r.checks.get(name, "absent")
        if got not in verdict.split("|"):
            return f"expected check {name}={verdict}, got {name}={got} (verdict {r.value})"
    return None


def cell(r):
    if r is None:
        return "-"
    text = r.value
    failed = [n for n, v in r.checks.items() if v == "fail"]
    if failed:
        text += ": " + ", ".join(failed)
    return text


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def check(out, exp_path):
    results, configs = load(out)
    rules = expectations(exp_path)
    problems, verdicts = [], []
    by_key = {(r.cfg, r.test, r.item): r for r in results}
    for cfg in configs:
        for test in ("probe", "stress"):
            for p in PRIMS:
                if (cfg, test, p) not in by_key:
                    problems.append(f"{cfg} {test} {p}: no result (the run is missing; see runs.tsv)")
    for x in rules:
        if x["cfg"] in configs and "*" not in (x["cfg"], x["item"]) and \
                (x["cfg"], x["test"], x["item"]) not in by_key and x["test"] in ("fact", "copyup"):
            problems.append(f"{x['cfg']} {x['test']} {x['item']}: expected {x['expect']} "
                            f"(expectations line {x['line']}), but there is no such result")
    for r in results:
        rule = rule_for(rules, r)
        if rule is None:
            if r.test in ("fact",):
                continue  # facts are asserted only where an expectation names them
            problems.append(f"{r.cfg} {r.test} {r.item}: {r.value}, and no expectation covers it: "
                            f"add a line to {exp_path.name} ({r.reason[:160]})")
            verdicts.append((r, "no expectation"))
            continue
        why = judge(rule, r)
        verdicts.append((r, why or "ok"))
        if why:
            problems.append(f"{r.cfg} {r.test} {r.item}: {why} (expectations line {rule['line']}: "
                            f"{rule['reason']})\n    evidence: {out}/{r.source}.json, .txt: {r.reason[:300]}")
    with open(out / "check.tsv", "w") as f:
        f.write("config\ttest\titem\tvalue\tjudgement\n")
        for r, why in verdicts:
            f.write(f"{r.cfg}\t{r.test}\t{r.item}\t{r.value}\t{why}\n")

    for test in ("probe", "stress"):
        print(f"\n{test} verdicts (x: differs from the expectation)")
        ok = {(r.cfg, r.test, r.item): w for r, w in verdicts}
        rows = []
        for cfg in configs:
            row = [cfg]
            for p in PRIMS:
                r = by_key.get((cfg, test, p))
                mark = "" if ok.get((cfg, test, p), "ok") == "ok" else " x"
                row.append((r.value if r else "-") + mark)
            rows.append(row)
        widths = [max(len(x) for x in col) for col in zip(["config"] + PRIMS, *rows)]
        for row in [["config"] + PRIMS] + rows:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)))
    copy = [r for r in results if r.test == "copyup"]
    if copy:
        print("\noverlay copy-up")
        for r in copy:
            print(f"  {r.cfg:14} {r.item:40} {r.value}")
    if problems:
        print(f"\nfslab: {len(problems)} result(s) differ from {exp_path}:")
        for p in problems:
            print("  - " + p)
        return 1
    print(f"\nfslab: all {len(verdicts)} results as expected ({exp_path})")
    return 0


def trimmed(report):
    for prim in report.get("primitives", []):
        for c in prim.get("checks", []):
            if len(c.get("violations", [])) > 5:
                c["violations"] = c["violations"][:5]
                c["violations_cut_to_5"] = True
    return report


def mountinfo(out, cfg, lab):
    """One line per mount of cfg: mount point, type, source, mount options, superblock options."""
    path = out / f"mountinfo-{cfg}.txt"
    lines = []
    for l in (path.read_text().splitlines() if path.exists() else []):
        f = l.split()
        sep = f.index("-")
        line = f"`{f[4]}`: {f[sep + 1]} from `{f[sep + 2]}`, `{f[5]}`; super `{f[sep + 3]}`"
        lines.append(line.replace(lab, "LAB"))
    return "<br>".join(lines) or "-"


def report(out, dest, findings):
    results, configs = load(out)
    meta = {m["key"]: m["value"] for m in tsv(out / "meta.tsv")}
    runs = tsv(out / "runs.tsv")
    judged = {}
    if (out / "check.tsv").exists():
        judged = {(j["config"], j["test"], j["item"]): j["judgement"] for j in tsv(out / "check.tsv")}
    in_docs = dest.name == "docs"
    files = dest / "fslab" if in_docs else out
    link = "fslab/" if in_docs else ""
    if in_docs:
        shutil.rmtree(files, ignore_errors=True)
        files.mkdir(parents=True)
        for run in runs:
            src = out / f"{run['name']}.json"
            if src.exists():
                (files / src.name).write_text(json.dumps(trimmed(json.loads(src.read_text())), indent=1) + "\n")
        with open(files / "console.txt", "w") as f:
            for run in runs:
                for suffix in (".try1.txt", ".txt", ".hang.txt"):
                    src = out / f"{run['name']}{suffix}"
                    if src.exists():
                        f.write(f"===== {run['name']}{suffix[:-4]}: exit {run['exit']} after "
                                f"{run['seconds']} s\n$ {run['command']}\n{src.read_text()}\n".replace(meta.get("lab", "?"), "LAB"))
        for extra in ["meta.tsv", "runs.tsv", "configs.tsv", "check.tsv"] + \
                [p.name for p in out.glob("copyup-*.tsv")] + [p.name for p in out.glob("mountinfo-*.txt")] + \
                [p.name for p in out.glob("*.hang.txt")]:
            if (out / extra).exists():
                shutil.copy(out / extra, files / extra)

    by_key = {(r.cfg, r.test, r.item): r for r in results}
    total = sum(int(r["seconds"]) for r in runs)
    w = []
    w.append("# locksmith on local and FUSE filesystems\n")
    w.append(f"<!-- Generated by ci/fslab/results.py from a run of `{meta.get('command')}`; the "
             "findings come from ci/fslab/findings.md. Do not edit here: edit those and re-run. -->\n")
    w.append(f"What `locksmith probe` and `locksmith stress` found on every local and FUSE "
             f"filesystem this machine can mount, asserted against "
             f"[ci/fslab/expectations.tsv](../ci/fslab/expectations.tsv). The NFS side is "
             f"[NFS.md](NFS.md).\n")
    w.append(f"- measured: {meta.get('date')} on `{meta.get('host')}`, kernel `{meta.get('kernel')}`, "
             f"{meta.get('cpus')} CPUs, load average {meta.get('load')} at the start "
             "(the machine is shared with other CI jobs)")
    w.append(f"- command: `{meta.get('command')}` ({meta.get('mode')} mode: "
             f"`probe --duration {meta.get('probe_duration')}`, "
             f"`stress --duration {meta.get('stress_duration')} --workers 4 --nemesis kill`, 8 workers for "
             f"link, mkdir and dotlock); "
             f"commit {meta.get('commit')}, locksmith sha256 {meta.get('locksmith_sha256')}…; "
             f"{total} s summed over the lab's commands")
    w.append("- packages: " + ", ".join(f"{k[4:]} {v}" for k, v in meta.items() if k.startswith("pkg_")))
    nres = len(judged)
    bad = [k for k, v in judged.items() if v != "ok"]
    w.append(f"- expectations: {nres} results judged, "
             + (f"**{len(bad)} differ**: " + ", ".join(" ".join(k) for k in bad) if bad else "all as expected")
             + "\n")
    w.append("## Reproduce\n")
    w.append("```sh\nbash ci/fslab/run --quick         # the CI part: all configurations, short runs "
             "(about 4 minutes)\nbash ci/fslab/run                 # full: longer runs, plus "
             "overlay-on-tmpfs and the direct_io variants\nbash ci/fslab/run --full --docs  "
             "# full, and rewrite this file and docs/fslab/\n```")
    w.append("As root on Debian bookworm; it installs what is missing (`ci/install-deps.sh`), builds "
             "`build/release/stress/locksmith` if it is not there, and leaves nothing behind: every "
             "mount, loop device and daemon is torn down by the EXIT trap, which then fails the lab "
             "if `/proc/mounts`, `losetup -a` or the process list still show any of it. Results go "
             "to `build/fslab/MODE/` (`check.tsv`: every result with its judgement). A result that "
             "differs from `ci/fslab/expectations.tsv` fails the lab (exit 1) with the expectation's "
             "line, its reason and the evidence; exit 2 is an environment error or a leftover.\n")

    w.append("## Configurations\n")
    rows = []
    for cfg, c in configs.items():
        rows.append([f"`{cfg}`", c.get("description", ""), mountinfo(out, cfg, meta.get("lab", "?"))])
    w.append(table(["config", "what", "mounts (from /proc/self/mountinfo)"], rows) + "\n")
    w.append(f"`LAB` is the lab's temporary directory (`{meta.get('lab')}` in this run). `DIR` is "
             "the first mount, `DIR2` (`--peer-dir`) the second mount of the same storage; on a "
             "single-mount filesystem `DIR2` is `DIR`.\n")

    def matrix(test, title, note):
        w.append(f"## {title}\n")
        w.append(note + "\n")
        rows = []
        for cfg in configs:
            row = [f"`{cfg}`"]
            for p in PRIMS:
                r = by_key.get((cfg, test, p))
                text = cell(r)
                if r is not None and r.value == "HANG":
                    text = f"HANG ({r.extra})"
                j = judged.get((cfg, test, p))
                if j and j != "ok":
                    text += " ✗"
                row.append(text)
            rows.append(row)
        w.append(table(["config"] + PRIMS, rows) + "\n")

    matrix("probe", "`locksmith probe DIR --peer-dir DIR2`: verdicts",
           "Per primitive the probe's verdict; after a colon the checks that failed. HANG: the "
           "command was killed by its bound (the primitive ran alone, last). ✗: differs from the "
           f"expectation. Reports: `{link}probe-CONFIG*.json`; console output: `{link}console.txt`.")
    matrix("stress", "`locksmith stress --nemesis kill` on DIR: verdicts",
           "One run per primitive on the first mount: 4 workers (link, mkdir, dotlock: 8 workers "
           "holding 200 µs, so that the polling locks meet contention), holders SIGKILLed inside "
           "their critical section every 0.3 s (release-after-crash is judged); `link` with "
           "`?lifetime=1s&slop=1s` so that a killed holder's lock is broken within the run; a run "
           "with too little evidence (INCONCLUSIVE) is repeated once for twice as long. "
           f"Reports: `{link}stress-CONFIG-PRIMITIVE.json`.")

    copy = [r for r in results if r.test == "copyup"]
    if copy:
        w.append("## Overlay: a lower-layer file copied up while locked (`ci/fslab/copyup.py`)\n")
        cfgs = sorted({r.cfg for r in copy}, key=list(configs).index)
        items = []
        for r in copy:
            if r.item not in items:
                items.append(r.item)
        rows = []
        for it in items:
            row = [f"`{it}`"] + [by_key[(c, 'copyup', it)].value if (c, "copyup", it) in by_key else "-" for c in cfgs]
            first = next(r for r in copy if r.item == it)
            rows.append(row + [first.reason])
        w.append(table(["lock.check"] + [f"`{c}`" for c in cfgs] + ["what was done (first configuration)"], rows) + "\n")

    w.append("## Filesystem facts found by the probe\n")
    rows = []
    for f in FACTS:
        row = [f"`{f}`"]
        for cfg in configs:
            r = by_key.get((cfg, "fact", f))
            row.append(r.value if r else "-")
        rows.append(row)
    w.append(table(["fact"] + [f"`{c}`" for c in configs], rows) + "\n")

    w.append("## Expectations that allow more than one result\n")
    rules = expectations(pathlib.Path(__file__).with_name("expectations.tsv"))
    loose = [x for x in rules if "|" in x["expect"].split()[0] or x["expect"].startswith("any")]
    if loose:
        w.append(table(["config", "test", "item", "expect", "why"],
                       [[x["cfg"], x["test"], x["item"], f"`{x['expect']}`", x["reason"]] for x in loose]) + "\n")
    else:
        w.append("None.\n")

    w.append(findings.read_text().rstrip() + "\n")
    w.append("## Runs\n")
    w.append(f"Every command the lab ran (`LAB`: the lab's directory, `OUT`: its results "
             f"directory), with its exit status and seconds; also `{link}runs.tsv`.\n")
    w.append("<details><summary>" + f"{len(runs)} commands, {total} s</summary>\n")
    w.append(table(["run", "exit", "s", "command"],
                   [[r["name"], r["exit"], r["seconds"], f"`{r['command'].replace(str(out), 'OUT').replace(meta.get('lab', '?'), 'LAB')}`"] for r in runs]) + "\n")
    w.append("</details>\n")
    text = "\n".join(w)
    (dest / "FILESYSTEMS.md").write_text(text)
    return 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        return check(pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]))
    if len(sys.argv) == 5 and sys.argv[1] == "report":
        return report(pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4]))
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
