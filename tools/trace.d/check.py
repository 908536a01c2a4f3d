#!/usr/bin/env python3
"""tools/trace.d/check.py: checks a trace written by weft_trace_stop (or WEFT_TRACE).

    check.py [--quiet] [--expect-dropped] [--min-slices N] [--min-flows N] TRACE.json

Loads the file with Python's json module and checks the structure that Perfetto
(ui.perfetto.dev) and chrome://tracing rely on, as runtime/debug/trace.c writes it:

  - a JSON object with "traceEvents" (a list) and "otherData" (weft's counts:
    dropped_events, dropped_per_worker, events, slices, flows, instants);
  - every event has ph, pid and tid; every event but metadata ("M") a numeric ts >= 0;
  - one process; every tid has a thread_name "worker N" metadata event;
  - complete events ("X") have a name and a dur >= 0, and on each thread they follow one
    another without overlapping (a worker runs one task at a time, or is parked);
  - flows: each id has exactly one start ("s") and one end ("f", "bp":"e"); the start
    sits on an instant of its thread at the same ts (the wake-up or spawn), the end on
    the begin of a run slice of its thread (the slice the wake-up caused), not earlier
    than the start;
  - otherData's counts match the events (slices, flows, instants), and dropped_events is
    the sum of dropped_per_worker.

Prints one line: what the trace holds, or the first problems found (exit status 1).
Used by tools/trace and by tests/unit/test_trace.c (when python3 is there).
"""
import argparse
import collections
import json
import sys


def main(argv):
    parser = argparse.ArgumentParser(
        description="Checks a trace written by weft_trace_stop (or WEFT_TRACE).")
    parser.add_argument("trace", help="the JSON file")
    parser.add_argument("--quiet", action="store_true", help="no line when it is fine")
    parser.add_argument("--expect-dropped", action="store_true",
                        help="fail unless otherData says events were dropped")
    parser.add_argument("--min-slices", type=int, default=0)
    parser.add_argument("--min-flows", type=int, default=0)
    opts = parser.parse_args(argv[1:])
    path = opts.trace

    problems = []

    def problem(text):
        if len(problems) < 10:
            problems.append(text)

    try:
        with open(path, encoding="utf-8") as f:
            trace = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{path}: not loadable JSON: {e}")
        return 1
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        print(f'{path}: not a {{"traceEvents": [...]}} object')
        return 1
    other = trace.get("otherData")
    if not isinstance(other, dict):
        problem("no otherData object")
        other = {}

    events = trace["traceEvents"]
    phases = collections.Counter()
    pids = set()
    thread_names = {}
    slices = collections.defaultdict(list)  # tid -> [(ts, end, name)]
    instants = collections.defaultdict(set)  # tid -> {ts}
    starts = {}  # flow id -> (tid, ts)
    ends = {}
    tasks = set()
    for index, e in enumerate(events):
        if not isinstance(e, dict):
            problem(f"event {index} is not an object")
            continue
        ph = e.get("ph")
        phases[ph] += 1
        if ph is None or "pid" not in e or "tid" not in e:
            problem(f"event {index} lacks ph, pid or tid: {e}")
            continue
        pids.add(e["pid"])
        tid = e["tid"]
        if ph == "M":
            if e.get("name") == "thread_name":
                thread_names[tid] = e.get("args", {}).get("name")
            continue
        ts = e.get("ts")
        if not isinstance(ts, (int, float)) or ts < 0:
            problem(f"event {index} has no ts >= 0: {e}")
            continue
        if ph == "X":
            dur = e.get("dur")
            if not isinstance(dur, (int, float)) or dur < 0 or not e.get("name"):
                problem(f"complete event {index} lacks a dur >= 0 or a name: {e}")
                continue
            slices[tid].append((ts, ts + dur, e["name"]))
            task = e.get("args", {}).get("task")
            if task is not None:
                tasks.add(task)
        elif ph == "i":
            instants[tid].add(ts)
        elif ph in ("s", "f"):
            fid = e.get("id")
            if fid is None:
                problem(f"flow event {index} has no id")
                continue
            table = starts if ph == "s" else ends
            if fid in table:
                problem(f'flow id {fid} has two "{ph}" events')
            table[fid] = (tid, ts)
            if ph == "f" and e.get("bp") != "e":
                problem(f'flow end {index} is not bound to its enclosing slice ("bp":"e")')
        else:
            problem(f"event {index}: unexpected phase {ph!r}")

    if len(pids) != 1:
        problem(f"{len(pids)} processes (pids {sorted(pids)}), expected 1")
    for tid in set(slices) | set(instants):
        name = thread_names.get(tid)
        if not isinstance(name, str) or not name.startswith("worker "):
            problem(f"tid {tid} has no thread_name metadata 'worker N'")

    # A worker's slices follow one another (the JSON's ts and dur are exact to the ns;
    # compare in ns to stay clear of float rounding).
    begins = collections.defaultdict(set)
    for tid, items in slices.items():
        items.sort()
        previous_end = None
        for begin, end, name in items:
            b, e_ = round(begin * 1000), round(end * 1000)
            begins[tid].add(b)
            if previous_end is not None and b < previous_end:
                problem(f"tid {tid}: slice {name!r} at {begin} us overlaps the one before")
            previous_end = e_ if previous_end is None else max(previous_end, e_)

    for fid, (tid, ts) in starts.items():
        if fid not in ends:
            problem(f"flow {fid} starts at {ts} us (tid {tid}) and never ends")
        elif ts not in instants[tid]:
            problem(f"flow {fid} starts at {ts} us on tid {tid} without an instant there")
    for fid, (tid, ts) in ends.items():
        if fid not in starts:
            problem(f"flow {fid} ends at {ts} us (tid {tid}) without a start")
            continue
        if round(ts * 1000) not in begins[tid]:
            problem(f"flow {fid} ends at {ts} us on tid {tid}, not at a slice's begin")
        if ts < starts[fid][1] and starts[fid][0] == tid:
            problem(f"flow {fid} ends at {ts} us, before it starts ({starts[fid][1]} us)")

    slice_count = sum(len(v) for v in slices.values())
    dropped = other.get("dropped_events")
    per_worker = other.get("dropped_per_worker")
    if not isinstance(dropped, int):
        problem("otherData.dropped_events missing")
    elif isinstance(per_worker, list) and dropped < sum(per_worker):
        problem(f"dropped_events {dropped} < the sum of dropped_per_worker {sum(per_worker)}")
    for key, have in (("slices", slice_count), ("flows", len(starts)),
                      ("instants", phases["i"])):
        if other.get(key) != have:
            problem(f"otherData.{key} = {other.get(key)}, the events hold {have}")
    if opts.expect_dropped and not dropped:
        problem("expected dropped events (--expect-dropped), otherData says none")
    if slice_count < opts.min_slices:
        problem(f"{slice_count} slices, expected at least {opts.min_slices}")
    if len(starts) < opts.min_flows:
        problem(f"{len(starts)} flows, expected at least {opts.min_flows}")

    if problems:
        print(f"{path}: INVALID: " + "; ".join(problems))
        return 1
    if not opts.quiet:
        busy = sum(e - b for items in slices.values() for b, e, n in items if n != "parked")
        print(f"{path}: ok: {len(events)} events on {len(thread_names)} workers, "
              f"{slice_count} slices ({len(tasks)} tasks, {busy / 1000:.1f} ms run), "
              f"{len(starts)} wake/spawn arrows, {phases['i']} instants, "
              f"{dropped} events dropped, {other.get('duration_us', 0) / 1000:.1f} ms traced")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
