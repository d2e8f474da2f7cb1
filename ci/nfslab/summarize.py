#!/usr/bin/python3
"""Files for docs/nfs/ from the results of ci/nfs-probe.sh: summarize.py RESULTS_DIR DOCS_DIR.

Writes DOCS_DIR/summary.md (tables), console.txt (every console report, in run order),
summary.tsv, and each merged JSON report with its violation lists cut to 5 entries (the counts
stay whole) so that the repository gets small files. Per-host reports and HTML are left out.
"""
import json
import pathlib
import sys

res, docs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
PAIRS = ["v3", "v3one", "v4.2", "v4.2one", "c2"]
TITLE = {"v3": "v3, 2 mounts", "v3one": "v3, 1 mount", "v4.2": "v4.2, 2 mounts",
         "v4.2one": "v4.2, 1 mount", "c2": "v4.2, 2 clients"}


def load(name):
    p = res / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def cell(prim):
    if prim is None:
        return "not run"
    ops = prim.get("stats", {}).get("acquired", "?")
    failed = [c["name"] for c in prim.get("checks", []) if c.get("verdict") == "fail"]
    text = f"{prim['verdict']} ({ops:.0f} acq)" if isinstance(ops, (int, float)) else prim["verdict"]
    return text + (": " + ", ".join(failed) if failed else "")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def trimmed(report):
    for prim in report.get("primitives", []):
        for check in prim.get("checks", []):
            if len(check.get("violations", [])) > 5:
                check["violations"] = check["violations"][:5]
                check["violations_cut_to_5"] = True
    return report


order = [line.split("\t")[0] for line in (res / "summary.tsv").read_text().splitlines()[1:]]
with open(docs / "console.txt", "w") as out:
    for name in order:
        if (res / f"{name}.txt").exists():
            out.write(f"===== {name}\n{(res / f'{name}.txt').read_text()}\n")
        if (res / f"{name}.json").exists():
            (docs / f"{name}.json").write_text(json.dumps(trimmed(load(name)), indent=1) + "\n")
for extra in ["summary.tsv", "mounts.txt", "guest-kernel.txt", "skipped.txt"]:
    if (res / extra).exists():
        (docs / extra).write_text((res / extra).read_text())
sys.stdout = open(docs / "summary.md", "w")

pairs = [p for p in PAIRS if load(f"probe-{p}") or (res / f"stress-{p}-link.json").exists()]
probes = {p: load(f"probe-{p}") for p in pairs}
print("### `locksmith probe` verdicts (acquisitions in the run; failed checks)\n")
prims = ["flock", "fcntl", "ofd", "sem", "link", "mkdir", "dotlock", "auto"]
rows = []
for name in prims:
    row = [name]
    for p in pairs:
        found = [x for x in (probes[p] or {}).get("primitives", []) if x["name"] == name]
        row.append(cell(found[0] if found else None))
    rows.append(row)
print(table(["primitive"] + [TITLE[p] for p in pairs], rows))

print("\n### `locksmith stress`, 2 controllers x 2 workers, one per mount (`locksmith check`)\n")
rows = []
for spec in ["link", "flock", "fcntl", "mkdir", "dotlock", "fcntl-nemesis"]:
    row = [spec.replace("-nemesis", " + kill,pause")]
    for p in pairs:
        r = load(f"stress-{p}-{spec}")
        row.append(cell(r["primitives"][0] if r and r.get("primitives") else None))
    rows.append(row)
print(table(["lock"] + [TITLE[p] for p in pairs], rows))

print("\n### Filesystem facts found by the probe\n")
names = []
for p in pairs:
    for f in (probes[p] or {}).get("facts", []):
        if f["name"] not in names and not f["name"].startswith(("peer_mount", "mount_", "kernel")):
            names.append(f["name"])
rows = []
for n in names:
    row = [n]
    for p in pairs:
        v = [f["value"] for f in (probes[p] or {}).get("facts", []) if f["name"] == n]
        row.append(v[0] if v else "-")
    rows.append(row)
print(table(["fact"] + [TITLE[p] for p in pairs], rows))
