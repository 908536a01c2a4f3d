#!/usr/bin/env python3
"""tools/bench's report: medians from the raw file, Markdown region, gnuplot chart.

usage: report.py --raw RAW --output RESULTS.md --chart results.png

RAW is what tools/bench writes: '# key: value' lines (the machine, the versions, the
plan), then one line per run:

    phase=P workload=W runtime=R threads=T size=N run=I status=S rc=C maxrss_kb=K
        elapsed_s=E [note=...] | <the program's own output line, verbatim>

(on one line). status is ok, FAIL, WRONG or TIMEOUT. Only the region of RESULTS.md
between the two marker lines is replaced; the markers are added after the first
heading when the file lacks them. Standard library only.

Sessions: RAW may hold several sessions, each starting at its '# format:' line
(tools/bench keeps the rows of earlier sessions that a new one did not rerun: see
--prune). Each workload's row, the scaling table and the sleep lateness come from the
newest session that ran them; the header describes every session that contributes,
and the table says which session each row comes from. Ratios are only ever taken
between runs of one session (one row), which were interleaved.

usage: report.py --prune RAW [--drop-main "W ..."] [--drop-scaling "W ..."]
                 [--drop-sleep-accuracy]
prints RAW without the run lines (and the na/workloads/sizes entries) of what a new
session is about to rerun, and without the sessions left with no run line: what
tools/bench keeps before appending the new session.
"""

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

BEGIN = "<!-- tools/bench: begin -->"
END = "<!-- tools/bench: end -->"
CHART_PLACE = "\0chart"

WORKLOAD_ORDER = ["fib", "skynet", "spawn_many", "yield", "sleepers", "timeouts", "switch",
                  "chan_pingpong", "chan_mpmc", "mutex_contended", "mutex_yield", "group_fanout"]
DISPLAY = {
    "weft": "weft",
    "go": "Go",
    "tokio": "Tokio",
    "boost-fiber": "Boost.Fiber",
    "boost-context": "Boost.Context",
    "tbb": "oneTBB",
    "openmp": "OpenMP",
}


def disp(rt):
    return DISPLAY.get(rt, rt)


def kv_tokens(text):
    out = {}
    for tok in text.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out.setdefault(k, v)
    return out


def parse_extra(s):
    out = {}
    if not s:
        return out
    for part in s.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def read_sessions(path):
    """The lines of RAW split into sessions (each from its '# format:' line on)."""
    sessions = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# format:") or not sessions:
                sessions.append([])
            sessions[-1].append(line)
    return sessions


class Raw:
    """One session of the raw file."""

    def __init__(self, lines):
        self.meta = {}
        self.multi = {"peer": [], "na": [], "note": []}
        self.runs = []
        if True:
            for line in lines:
                if not line.strip():
                    continue
                if line.startswith("#"):
                    body = line[1:].strip()
                    if ":" in body:
                        k, v = body.split(":", 1)
                        k, v = k.strip(), v.strip()
                        if k in self.multi:
                            self.multi[k].append(v)
                        else:
                            self.meta[k] = v
                    continue
                if " |" in line:
                    left, right = line.split(" |", 1)
                else:
                    left, right = line, ""
                meta = kv_tokens(left)
                prog = kv_tokens(right)
                run = {
                    "phase": meta.get("phase", "main"),
                    "workload": meta.get("workload", prog.get("workload", "?")),
                    "runtime": meta.get("runtime", prog.get("runtime", "?")),
                    "threads": meta.get("threads", prog.get("threads", "?")),
                    "run": meta.get("run", "?"),
                    "size": meta.get("size"),
                    "status": meta.get("status", "FAIL"),
                    "rc": meta.get("rc", "?"),
                    "rss_kb": fnum(meta.get("maxrss_kb")),
                    "note": meta.get("note", "").replace("_", " "),
                    "prog": prog,
                    "wall": fnum(prog.get("wall_ms")),
                    "extra": parse_extra(prog.get("extra", "")),
                }
                if run["status"] == "ok" and run["wall"] is None and run["phase"] != "sleep_accuracy":
                    run["status"] = "FAIL"
                    run["note"] = "no wall_ms"
                self.runs.append(run)

        self.runtimes = self.meta.get("runtimes", "").split()
        self.workloads = self.meta.get("workloads", "").split()
        seen_rt = {r["runtime"] for r in self.runs if r["phase"] == "main"}
        for rt in sorted(seen_rt):
            if rt not in self.runtimes:
                self.runtimes.append(rt)
        seen_w = {r["workload"] for r in self.runs if r["phase"] == "main"}
        for w in WORKLOAD_ORDER + sorted(seen_w):
            if w in seen_w and w not in self.workloads:
                self.workloads.append(w)
        self.na = {}
        for item in self.multi["na"]:
            key, _, reason = item.partition("|")
            rt, _, w = key.partition(" ")
            self.na[(rt, w)] = reason
        self.nruns = int(self.meta.get("runs", "1") or 1)


class Merged:
    """The sessions of a raw file seen as one: each workload's main runs from the newest
    session that ran it, the scaling runs and the sleep lateness likewise. Has Raw's
    attributes (meta and multi: the newest contributing session's), plus `sessions`
    (the contributing ones, oldest first), `owner` (workload -> session) and the meta
    of the sessions that gave the scaling and sleep-lateness tables."""

    def __init__(self, path):
        all_sessions = [Raw(lines) for lines in read_sessions(path)]
        self.owner = {}
        for s in all_sessions:
            for w in s.workloads:
                if any(r["phase"] == "main" and r["workload"] == w for r in s.runs) or \
                        any(k[1] == w for k in s.na):
                    self.owner[w] = s
        scaling = sleep = None
        for s in all_sessions:
            if any(r["phase"] == "scaling" for r in s.runs):
                scaling = s
            if any(r["phase"] == "sleep_accuracy" for r in s.runs) or s.meta.get("sleep_accuracy_na"):
                sleep = s
        used = set(id(s) for s in self.owner.values())
        used.update(id(s) for s in (scaling, sleep) if s is not None)
        self.sessions = [s for s in all_sessions if id(s) in used] or all_sessions[-1:]
        newest = self.sessions[-1] if self.sessions else Raw([])
        self.meta = dict(newest.meta)
        self.multi = newest.multi
        self.scaling_meta = scaling.meta if scaling else {}
        self.sa_meta = sleep.meta if sleep else {}
        self.runs = []
        self.workloads = []
        self.runtimes = []
        self.na = {}
        sizes = []
        for s in self.sessions:
            for rt in s.runtimes:
                if rt not in self.runtimes:
                    self.runtimes.append(rt)
        for w in WORKLOAD_ORDER + sorted(self.owner):
            if w in self.owner and w not in self.workloads:
                self.workloads.append(w)
        for w in self.workloads:
            s = self.owner[w]
            self.runs += [r for r in s.runs if r["phase"] == "main" and r["workload"] == w]
            self.na.update({k: v for k, v in s.na.items() if k[1] == w})
            sizes += [x for x in s.meta.get("sizes", "").split() if x.partition("=")[0] == w]
        if scaling:
            self.runs += [r for r in scaling.runs if r["phase"] == "scaling"]
        if sleep:
            self.runs += [r for r in sleep.runs if r["phase"] == "sleep_accuracy"]
        self.meta["sizes"] = " ".join(sizes)
        self.meta.pop("sleep_accuracy_na", None)
        if "sleep_accuracy_na" in self.sa_meta:
            self.meta["sleep_accuracy_na"] = self.sa_meta["sleep_accuracy_na"]
        self.nruns = newest.nruns
        self.nruns_all = sorted({s.nruns for s in self.sessions})

    def session_of(self, w):
        return self.owner.get(w)

    def session_label(self, s):
        return s.meta.get("date", "?").split()[0]


def prune(path, drop_main, drop_scaling, drop_sleep):
    """Prints RAW without what a new session reruns (see the module's docstring)."""
    out = []
    for lines in read_sessions(path):
        kept, runs_left = [], 0
        for line in lines:
            if line.startswith("#"):
                body = line[1:].strip()
                k, _, v = body.partition(":")
                k, v = k.strip(), v.strip()
                if k == "na" and v.partition("|")[0].partition(" ")[2] in drop_main:
                    continue
                if k in ("workloads", "scaling_workloads", "sizes"):
                    drop = drop_scaling if k == "scaling_workloads" else drop_main
                    v = " ".join(x for x in v.split() if x.partition("=")[0] not in drop)
                    line = "# %s: %s" % (k, v)
                if k == "sleep_accuracy_na" and drop_sleep:
                    continue
                kept.append(line)
                continue
            if not line.strip():
                continue
            t = kv_tokens(line.split(" |", 1)[0])
            phase, w = t.get("phase", "main"), t.get("workload")
            if (phase == "main" and w in drop_main) or (phase == "scaling" and w in drop_scaling) \
                    or (phase == "sleep_accuracy" and drop_sleep):
                continue
            kept.append(line)
            runs_left += 1
        if runs_left:
            out += kept
    sys.stdout.write("".join(l + "\n" for l in out))


# ---- cells --------------------------------------------------------------------------


class Cell:
    """The runs of one (workload, runtime) pair and one figure taken from each."""

    def __init__(self, runs, getter):
        self.runs = runs
        self.values = []
        self.bad = []
        for r in runs:
            v = getter(r) if r["status"] == "ok" else None
            if r["status"] == "ok" and v is None:
                # ok run without the figure (an extra= missing): not a failure of the
                # run, but no value either.
                continue
            if v is None:
                self.bad.append(r)
            else:
                self.values.append(v)
        self.median = statistics.median(self.values) if self.values else None

    def text(self, fmt, bold=False):
        if not self.runs:
            return None
        if self.median is None:
            if not self.bad:
                return "?"
            kinds = sorted({r["status"] for r in self.bad})
            return "/".join(kinds)
        s = fmt(self.median)
        if bold:
            s = "**" + s + "**"
        if self.bad:
            kinds = sorted({r["status"] for r in self.bad})
            s += " (%d of %d %s)" % (len(self.bad), len(self.runs), "/".join(kinds))
        return s


def fmt_ms(v):
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def fmt_ns(v):
    return "%.1f" % v if v < 100 else "%.0f" % v


def fmt_bytes(v):
    return "%.0f" % v


def fmt_mib(v):
    return "%.0f" % v if v >= 10 else "%.1f" % v


def fmt_us(v):
    if v >= 1000:
        return "%.1f ms" % (v / 1000)
    return "%.1f us" % v


def fmt_ratio(v):
    return "%.2f" % v if v < 10 else "%.1f" % v


# ---- the report ---------------------------------------------------------------------


class Report:
    def __init__(self, raw, chart_path, out_path):
        self.raw = raw
        self.chart_path = chart_path
        self.out_path = out_path
        self.lines = []
        self.failures = []  # (where, run)

    def w(self, s=""):
        self.lines.append(s)

    def main_runs(self, w, rt):
        return [r for r in self.raw.runs if r["phase"] == "main" and r["workload"] == w and r["runtime"] == rt]

    # Rows of the main table: (label, workload, getter, formatter, unit key)
    def rows(self):
        out = []
        for w in self.raw.workloads:
            out.append(("`%s` wall ms" % w, w, lambda r: r["wall"], fmt_ms, "wall"))
            if w in ("yield", "switch"):
                out.append(("`%s` ns per switch" % w, w,
                            lambda r: fnum(r["extra"].get("ns_per_switch")), fmt_ns, "ns"))
            if w == "chan_pingpong":
                out.append(("`chan_pingpong` ns per round trip", w,
                            lambda r: fnum(r["extra"].get("ns_per_round_trip")), fmt_ns, "ns"))
            if w == "sleepers":
                out.append(("`sleepers` RSS bytes per task", w,
                            lambda r: fnum(r["extra"].get("rss_bytes_per_task")), fmt_bytes, "rss"))
        return out

    def header(self):
        sessions = self.raw.sessions
        m = self.raw.meta
        self.w("## Benchmark suite (`tools/bench`)")
        self.w()
        raw_link = "[`%s`](%s)" % (os.path.basename(self.raw_path), os.path.basename(self.raw_path))
        if len(sessions) <= 1:
            self.w("Written by `%s` on %s; everything between the `tools/bench` markers is "
                   "regenerated by it (edit outside them). Raw lines of every run: %s."
                   % (m.get("command", "tools/bench"), m.get("date", "?"), raw_link))
            self.w()
            self.session_bullets(sessions[0] if sessions else self.raw, "")
            self.w()
            return
        self.w("Written by `tools/bench` in %d sessions; everything between the `tools/bench` "
               "markers is regenerated by it (edit outside them). Raw lines of every run: %s. "
               "A session that reruns some workloads replaces only their rows and keeps the "
               "others' (`tools/bench --fresh` starts over). Each row of the table comes from "
               "one session (its *session* column), its runtimes interleaved within it, so "
               "the ratios in a row compare runs of one session on one machine; rows of "
               "different sessions are not comparable with each other."
               % (len(sessions), raw_link))
        self.w()
        for i, s in enumerate(sessions, 1):
            parts = []
            ws = [w for w in self.raw.workloads if self.raw.owner.get(w) is s]
            if ws:
                parts.append("the rows of " + ", ".join("`%s`" % w for w in ws))
            if self.raw.scaling_meta is s.meta and any(r["phase"] == "scaling" for r in s.runs):
                parts.append("the scaling table")
            if self.raw.sa_meta is s.meta:
                parts.append("the sleep lateness")
            self.w("**Session %s**: `%s` on %s; %s." % (self.raw.session_label(s), s.meta.get("command", "tools/bench"),
                                                   s.meta.get("date", "?"), ", ".join(parts) or "nothing"))
            self.w()
            self.session_bullets(s, "", [w for w in ws])
            self.w()

    def session_bullets(self, s, indent, workloads=None):
        m = s.meta
        mode = m.get("mode", "full")
        if mode == "quick":
            self.w("**Quick smoke test (`--quick`): small sizes, %s. These figures "
                   "measure nothing; they show that every program runs.**" % plural(s.nruns, "run"))
            self.w()
        mem = fnum(m.get("memory_kb"))
        cores = m.get("cores", "?")
        extra_cpu = []
        if m.get("sockets", "?") not in ("?", ""):
            extra_cpu.append("%s socket(s)" % m["sockets"])
        if m.get("threads_per_core", "?") not in ("?", ""):
            extra_cpu.append("%s thread(s) per core" % m["threads_per_core"])
        self.w("%s- **Machine:** %s, %s online CPUs%s; %s memory; %s; %s."
               % (indent, m.get("cpu", "?"), cores,
                  (" (" + ", ".join(extra_cpu) + ")") if extra_cpu else "",
                  ("%.1f GiB" % (mem / 1048576)) if mem else "?",
                  m.get("kernel", "?"), m.get("os", "?")))
        self.w("%s- **weft** %s; built in `%s`." % (indent, m.get("weft", "?"), m.get("weft_build", "?")))
        self.w("%s- **Compilers:** gcc %s, cmake %s." % (indent, m.get("gcc", "?"), m.get("cmake", "?")))
        if s.multi["peer"]:
            self.w("%s- **Peers** (`bench/peers/build.sh`, its `peers-versions.txt`):" % indent)
            for p in s.multi["peer"]:
                name, _, ver = p.partition(":")
                self.w("%s  - %s: `%s`" % (indent, disp(name.strip()), ver.strip()))
        sizes = m.get("sizes", "")
        if workloads is not None:
            sizes = " ".join(x for x in sizes.split() if x.partition("=")[0] in workloads)
        el = fnum(m.get("elapsed_s"))
        if s.workloads:
            self.method(s, m, sizes, el, indent)
        for note in s.multi["note"]:
            self.w("%s- Note: %s" % (indent, note))

    def method(self, s, m, sizes, el, indent=""):
        self.w("%s- **Method:** one session; for each workload, run r = 1..%d of every runtime "
               "in turn (interleaved, so that drift of the machine hits all alike); each "
               "figure is the **median of %s**. T = %s worker threads, except `yield` "
               "and `switch` (one thread). Sizes: %s. `wall_ms` is each program's own "
               "monotonic clock from the first spawn to the last join (runtime start-up "
               "outside it). A run over %s s is stopped (TIMEOUT) and not repeated.%s"
               % (indent, s.nruns, plural(s.nruns, "run"), m.get("threads", "?"),
                  ", ".join("`%s`" % x for x in sizes.split()) or "?",
                  m.get("timeout_s", "?"),
                  (" The session took %dm%02ds." % (el // 60, el % 60)) if el is not None else ""))

    def main_table(self):
        raw = self.raw
        rts = raw.runtimes
        if not raw.workloads or not rts:
            return
        self.w("### Median per workload")
        self.w()
        self.w(CHART_PLACE)
        self.w()
        ratio_col = "weft" in rts and len(rts) > 1
        session_col = len(raw.sessions) > 1
        self.w("Lower is better everywhere; the best of each row in bold.%s"
               % (" *weft / best peer*: weft's median over the best peer's (below 1: weft is ahead)."
                  if ratio_col else ""))
        self.w()
        self.w("| workload | " + " | ".join(disp(rt) for rt in rts) + (" | weft / best peer |" if ratio_col else " |")
               + (" session |" if session_col else ""))
        self.w("|---|" + "---:|" * len(rts) + ("---|" if ratio_col else "") + ("---|" if session_col else ""))
        for label, w, getter, fmt, unit in self.rows():
            cells = {rt: Cell(self.main_runs(w, rt), getter) for rt in rts}
            meds = {rt: c.median for rt, c in cells.items() if c.median is not None}
            best = min(meds.values()) if meds else None
            texts = []
            for rt in rts:
                if (rt, w) in raw.na:
                    texts.append("n/a")
                    continue
                t = cells[rt].text(fmt, bold=(best is not None and meds.get(rt) == best and len(meds) > 1))
                texts.append(t if t is not None else "not run")
            peers = {rt: v for rt, v in meds.items() if rt != "weft"}
            ratio = "—"
            if "weft" in meds and peers:
                bp = min(peers, key=peers.get)
                if peers[bp] > 0:
                    ratio = "%s (%s)" % (fmt_ratio(meds["weft"] / peers[bp]), disp(bp))
            tail = [raw.session_label(raw.owner[w])] if session_col and w in raw.owner else []
            self.w("| %s | %s |" % (label, " | ".join(texts + ([ratio] if ratio_col else []) + tail)))
            if unit == "wall":
                self.chart_rows.append((w, {rt: meds.get(rt) for rt in rts}))
                for rt in rts:
                    for r in cells[rt].bad:
                        self.failures.append(("`%s` %s" % (w, disp(rt)), r))
        self.w()
        # n/a reasons, grouped by runtime and reason.
        groups = {}
        for (rt, w), reason in raw.na.items():
            if w in raw.workloads:
                groups.setdefault((rt, reason), []).append(w)
        if groups:
            self.w("n/a (the runtime does not run the workload):")
            self.w()
            order = {rt: i for i, rt in enumerate(rts)}
            widx = lambda x: raw.workloads.index(x) if x in raw.workloads else 99
            for ws in groups.values():
                ws.sort(key=widx)
            for (rt, reason), ws in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), widx(kv[1][0]))):
                self.w("- %s — %s: %s" % (disp(rt), ", ".join("`%s`" % x for x in ws), reason))
            self.w()

    def failures_list(self):
        if not self.failures:
            return
        self.w("Runs that did not count (FAIL: crashed or exited non-zero; WRONG: wrong result; "
               "TIMEOUT: over the time limit):")
        self.w()
        # Runs of one pair that failed the same way are one line.
        groups = []
        for where, r in self.failures:
            detail = ("exit %s" % r["rc"]) if r["rc"] not in ("-", "?") else ""
            if r["status"] == "TIMEOUT" and r["rc"] != "-":
                detail = "over %s s" % self.raw.meta.get("timeout_s", "?")
            if r["note"]:
                detail = (detail + ": " if detail else "") + r["note"]
            key = (where, r["status"], detail)
            for g in groups:
                if g[0] == key:
                    g[1].append(r["run"])
                    break
            else:
                groups.append((key, [r["run"]]))
        for (where, status, detail), runs in groups:
            self.w("- %s, run%s %s: %s%s" % (where, "s" if len(runs) > 1 else "", ", ".join(runs),
                                            status, (" (%s)" % detail) if detail else ""))
        self.w()

    def switch_floor(self):
        raw = self.raw
        if "switch" not in raw.workloads and "yield" not in raw.workloads:
            return
        ns = lambda r: fnum(r["extra"].get("ns_per_switch"))
        rows = []
        if "switch" in raw.workloads:
            for rt in raw.runtimes:
                if (rt, "switch") in raw.na:
                    continue
                c = Cell(self.main_runs("switch", rt), ns)
                if c.runs:
                    what = "weft's own stack switch (`switch`)" if rt == "weft" else \
                        "%s (`switch`%s)" % (disp(rt), ", `jump_fcontext`" if rt == "boost-context" else "")
                    rows.append((what, c))
        if "yield" in raw.workloads:
            c = Cell(self.main_runs("yield", "weft"), ns)
            if c.runs:
                rows.append(("weft `yield` (two tasks on one worker)", c))
            best = None
            for rt in raw.runtimes:
                if rt == "weft" or (rt, "yield") in raw.na:
                    continue
                c = Cell(self.main_runs("yield", rt), ns)
                if c.median is not None and (best is None or c.median < best[1].median):
                    best = (rt, c)
            if best:
                rows.append(("best peer `yield`: %s" % disp(best[0]), best[1]))
        if not rows:
            return
        self.w("### Raw context-switch floor")
        self.w()
        # Kept here (it was written by hand inside the region with the aarch64 port).
        self.w("(x86-64 only. aarch64 builds and `weft-bench --workload switch` runs under qemu-aarch64 as a")
        self.w("smoke test, but qemu's timings say nothing about Arm: Arm figures need real hardware.)")
        self.w()
        n = self.size_of("switch")
        self.w("`switch`: a bare stack switch between two contexts%s, the floor under any "
               "task switch; `yield`: two tasks yielding to each other through the scheduler "
               "on one worker. Median ns per switch."
               % ((", {:,} times".format(int(n))) if n else ""))
        self.w()
        self.w("| switch | ns per switch |")
        self.w("|---|---:|")
        for what, c in rows:
            self.w("| %s | %s |" % (what, c.text(fmt_ns) or "not run"))
        self.w()

    def size_of(self, w):
        for s in self.raw.meta.get("sizes", "").split():
            k, _, v = s.partition("=")
            if k == w:
                return fnum(v)
        return None

    def scaling(self):
        raw = self.raw
        runs = [r for r in raw.runs if r["phase"] == "scaling"]
        if not runs:
            return
        threads = [t for t in raw.scaling_meta.get("scaling_threads", "").split()]
        if not threads:
            threads = sorted({r["threads"] for r in runs}, key=lambda x: int(x))
        ws = [w for w in raw.scaling_meta.get("scaling_workloads", "").split()] or \
            sorted({r["workload"] for r in runs})
        self.w("### Scaling (weft)")
        self.w()
        self.w("Median wall ms of weft on 1 to %s workers (%s online CPUs), and the speedup over "
               "one worker; interleaved the same way (for each run, every worker count in turn)."
               % (threads[-1], raw.scaling_meta.get("cores", "?")))
        self.w()
        self.w("| workload | " + " | ".join("%s worker%s" % (t, "" if t == "1" else "s") for t in threads) + " |")
        self.w("|---|" + "---:|" * len(threads))
        for w in ws:
            cells = []
            base = None
            for t in threads:
                c = Cell([r for r in runs if r["workload"] == w and r["threads"] == t], lambda r: r["wall"])
                for r in c.bad:
                    self.failures.append(("scaling `%s` weft T=%s" % (w, t), r))
                if t == "1":
                    base = c.median
                txt = c.text(fmt_ms) or "not run"
                if c.median is not None and base:
                    txt += " (%.2f×)" % (base / c.median)
                cells.append(txt)
            self.w("| `%s` | %s |" % (w, " | ".join(cells)))
        self.w()

    def rss_table(self):
        raw = self.raw
        rts = raw.runtimes
        have = any(r["rss_kb"] is not None for r in raw.runs if r["phase"] == "main")
        if not have:
            return
        self.w("### Peak RSS")
        self.w()
        self.w("Median peak resident set of the whole process (MiB, `/usr/bin/time`), start-up included.")
        self.w()
        self.w("| workload | " + " | ".join(disp(rt) for rt in rts) + " |")
        self.w("|---|" + "---:|" * len(rts))
        for w in raw.workloads:
            texts = []
            for rt in rts:
                if (rt, w) in raw.na:
                    texts.append("n/a")
                    continue
                c = Cell(self.main_runs(w, rt), lambda r: r["rss_kb"] / 1024 if r["rss_kb"] is not None else None)
                texts.append(c.text(fmt_mib) or "not run")
            self.w("| `%s` | %s |" % (w, " | ".join(texts)))
        self.w()

    def sleep_accuracy(self):
        raw = self.raw
        runs = [r for r in raw.runs if r["phase"] == "sleep_accuracy"]
        na = raw.meta.get("sleep_accuracy_na")
        if not runs and not na:
            return
        self.w("### Sleep lateness (`weft-sleep-accuracy`)")
        self.w()
        if na and not runs:
            self.w("Not run: %s." % na)
            self.w()
            return
        r0 = runs[0]
        if r0["status"] != "ok" or not any(r["prog"].get("workload") == "sleep_accuracy" for r in runs):
            self.w("`weft-sleep-accuracy` %s (exit %s%s)." % (r0["status"], r0["rc"], (": " + r0["note"]) if r0["note"] else ""))
            self.w()
            return
        self.w("`weft-sleep-accuracy --seconds %s`: lateness (wake time minus deadline) of sleeps "
               "of durations drawn log-uniformly from 1 ms to 1 s; `thread` rows are plain "
               "threads in `clock_nanosleep` over the same durations. One run. *early*: "
               "sleeps that woke before their deadline." % self.sa_seconds(runs))
        self.w()
        self.w("| runtime | threads | durations | samples | median | p99 | max | early |")
        self.w("|---|---:|---|---:|---:|---:|---:|---:|")
        for r in runs:
            p = r["prog"]
            if p.get("workload") != "sleep_accuracy":
                continue
            e = r["extra"]
            cells = [p.get("runtime", "?"), p.get("threads", "?"), p.get("range", "?"), p.get("samples", "?")]
            for k in ("median_us", "p99_us", "max_us"):
                v = fnum(e.get(k))
                cells.append(fmt_us(v) if v is not None else "?")
            cells.append(p.get("result", "?"))
            self.w("| " + " | ".join(cells) + " |")
        self.w()

    def sa_seconds(self, runs):
        # size= on the tools/bench side of the line is the --seconds given.
        return runs[0].get("size") or self.raw.sa_meta.get("sleep_seconds", "?")

    # ---- chart ------------------------------------------------------------------------

    def make_chart(self):
        """Draws the chart from self.chart_rows; sets chart_ok / chart_note."""
        self.chart_ok = False
        self.chart_note = ""
        # A chart from an earlier session would not match the table: it goes first.
        if os.path.exists(self.chart_path):
            os.remove(self.chart_path)
        rows = [(w, meds) for w, meds in self.chart_rows if meds.get("weft")]
        if not rows:
            self.chart_note = "no chart: no workload has a weft median to normalise to"
            return
        rts = [rt for rt in self.raw.runtimes if any(m.get(rt) for _, m in rows)]
        if len(rts) < 2:
            self.chart_note = "no chart: no peer to compare with"
            return
        gp = shutil.which("gnuplot")
        if not gp:
            self.chart_note = "no chart: gnuplot is not installed (Debian package gnuplot-nox)"
            return
        vals = [m[rt] / m["weft"] for _, m in rows for rt in rts if m.get(rt)]
        lo = min(vals + [1.0])
        hi = max(vals + [1.0])
        ymin = 10.0 ** math.floor(math.log10(lo))
        ymax = 10.0 ** math.ceil(math.log10(hi * 1.5))
        if ymax <= 1:
            ymax = 10
        with tempfile.TemporaryDirectory() as td:
            data = os.path.join(td, "data.txt")
            with open(data, "w") as f:
                f.write("workload " + " ".join('"%s"' % disp(rt) for rt in rts) + "\n")
                for w, m in rows:
                    f.write('"%s" ' % w + " ".join(
                        ("%.6g" % (m[rt] / m["weft"])) if m.get(rt) else "?" for rt in rts) + "\n")
            m = self.raw.meta
            title = "Median wall time relative to weft (weft = 1; log scale; lower is better)"
            if len(self.raw.sessions) > 1:
                # Sessions may differ in machine and runs: name each one.
                sub = "; ".join("%s, %s CPUs, T=%s, median of %s" % (
                    s.meta.get("cpu", "?"), s.meta.get("cores", "?"), s.meta.get("threads", "?"),
                    plural(s.nruns, "run")) + " (" + self.raw.session_label(s) + ")"
                    for s in self.raw.sessions)
            else:
                sub = "%s, %s CPUs, T=%s; median of %s; %s" % (
                    m.get("cpu", "?"), m.get("cores", "?"), m.get("threads", "?"), plural(self.raw.nruns, "run"),
                    m.get("date", ""))
            script = os.path.join(td, "chart.gp")
            n = len(rts)
            with open(script, "w") as f:
                f.write("""
set terminal pngcairo size 1200,600 noenhanced font "sans,10"
set output '%(out)s'
set title "%(title)s\\n%(sub)s"
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [%(ymin)g:%(ymax)g]
set ylabel "time / weft's time"
set xlabel "workload (yield and switch: one thread)"
set grid ytics
set key outside right top
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1 lc rgb "black"
plot for [i=2:%(last)d] '%(data)s' using i:xtic(1) title columnheader(i)
""" % {"out": self.chart_path.replace("'", "''"), "title": title, "sub": sub.replace('"', "'"),
                    "ymin": ymin, "ymax": ymax, "last": n + 1, "data": data})
            # pngcairo is in gnuplot-nox; fall back to the gd png terminal elsewhere.
            r = subprocess.run([gp, script], capture_output=True, text=True)
            if r.returncode != 0:
                with open(script) as f:
                    txt = f.read().replace('pngcairo size 1200,600 noenhanced font "sans,10"',
                                           "png size 1200,600 noenhanced")
                with open(script, "w") as f:
                    f.write(txt)
                r = subprocess.run([gp, script], capture_output=True, text=True)
            if r.returncode != 0 or not os.path.exists(self.chart_path):
                self.chart_note = "no chart: gnuplot failed: %s" % (r.stderr.strip().splitlines() or ["?"])[-1]
                print("report.py: gnuplot failed:\n" + r.stderr, file=sys.stderr)
                return
        self.chart_ok = True

    def build(self, raw_path):
        self.raw_path = raw_path
        self.chart_rows = []
        self.chart_ok, self.chart_note = False, ""
        self.header()
        self.main_table()
        # The chart needs the medians of the table: draw it now and put its link (or why
        # there is none) where the table left a place for it.
        self.make_chart()
        i = self.lines.index(CHART_PLACE) if CHART_PLACE in self.lines else None
        if i is not None:
            if self.chart_ok:
                self.lines[i] = "![weft and its peers: median wall time relative to weft](%s)" % \
                    os.path.basename(self.chart_path)
            elif self.chart_note:
                self.lines[i] = "(%s)" % self.chart_note
            else:
                del self.lines[i:i + 2]
        self.failures_list()
        self.switch_floor()
        self.failures = []
        self.scaling()
        self.failures_list()
        self.rss_table()
        self.sleep_accuracy()
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines)


def splice(path, region):
    block = BEGIN + "\n" + region + "\n" + END + "\n"
    if not os.path.exists(path):
        text = "# weft benchmark results\n\n" + block
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        lines = text.splitlines(keepends=True)
        b = [i for i, l in enumerate(lines) if l.strip() == BEGIN]
        e = [i for i, l in enumerate(lines) if l.strip() == END]
        if b or e:
            if len(b) != 1 or len(e) != 1 or e[0] < b[0]:
                sys.exit("report.py: %s has unbalanced tools/bench markers (%d begin, %d end); "
                         "fix them by hand" % (path, len(b), len(e)))
            text = "".join(lines[:b[0]]) + block + "".join(lines[e[0] + 1:])
        else:
            h = next((i for i, l in enumerate(lines) if l.startswith("# ")), None)
            if h is None:
                text = block + "\n" + text
            else:
                head = "".join(lines[:h + 1])
                rest = "".join(lines[h + 1:]).lstrip("\n")
                text = head + "\n" + block + ("\n" + rest if rest else "")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw")
    ap.add_argument("--output")
    ap.add_argument("--chart")
    ap.add_argument("--stdout", action="store_true", help="print the region instead of writing OUTPUT")
    ap.add_argument("--prune", metavar="RAW", help="print RAW less what a new session reruns")
    ap.add_argument("--drop-main", default="", help="workloads the new session reruns")
    ap.add_argument("--drop-scaling", default="", help="workloads the new session scales")
    ap.add_argument("--drop-sleep-accuracy", action="store_true")
    a = ap.parse_args()
    if a.prune:
        prune(a.prune, set(a.drop_main.split()), set(a.drop_scaling.split()), a.drop_sleep_accuracy)
        return
    if not (a.raw and a.output and a.chart):
        ap.error("--raw, --output and --chart are required")
    raw = Merged(a.raw)
    rep = Report(raw, os.path.abspath(a.chart), a.output)
    region = rep.build(a.raw)
    if a.stdout:
        print(region)
        return
    splice(a.output, region)


if __name__ == "__main__":
    main()
