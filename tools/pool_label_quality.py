#!/usr/bin/env python3
"""Pseudo-label quality on a generated pool, against the pool's exact timelines.

    python tools/pool_label_quality.py WORKSPACE POOL_DIR

`dams pool build` writes, next to each show, its exact timeline (`pool_NNN_timeline.csv`); they are never trained
on, but they say how good the pseudo-labels a student learns from really are. For every pool window in the workspace
(segments whose raw file is a `pool_NNN.wav` of POOL_DIR), the truth is "class present >= 1 s in the window" (the
rule of the shared dev set's windows); this prints per-class and macro F1 of every pseudo-label run of the workspace
and of each teacher's latest done run at its current thresholds, on those windows.

Read-only: the workspace database is opened with mode=ro.
"""
import csv
import glob
import os
import sqlite3
import sys

CLASSES = ("speech", "music", "noise")


def truth_for(pool_dir):
    """{(raw file name, start): [s, m, n]} is built lazily per show from its timeline."""
    timelines = {}
    for path in glob.glob(os.path.join(pool_dir, "pool_*_timeline.csv")):
        show = os.path.basename(path)[: -len("_timeline.csv")] + ".wav"
        rows = []
        for r in csv.DictReader(open(path)):
            rows.append((float(r["start"]), float(r["end"]), [int(r[c]) for c in CLASSES]))
        timelines[show] = rows
    return timelines


def window_truth(rows, a, b):
    secs = [0.0, 0.0, 0.0]
    for s, e, lab in rows:
        o = min(e, b) - max(s, a)
        if o > 0:
            for i in range(3):
                secs[i] += o * lab[i]
    return [int(x >= 1.0 - 1e-3) for x in secs]


def f1s(pairs):
    out = []
    for i in range(3):
        tp = sum(1 for t, p in pairs if t[i] and p[i])
        fp = sum(1 for t, p in pairs if not t[i] and p[i])
        fn = sum(1 for t, p in pairs if t[i] and not p[i])
        out.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ws, pool = sys.argv[1], sys.argv[2]
    db = os.path.join(ws, "data", "metadata", "dams.sqlite")
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    timelines = truth_for(pool)
    truth = {}
    for sid, raw, a, b in c.execute("SELECT id, raw_file, start_time, end_time FROM segments"):
        name = os.path.basename(raw)
        if name in timelines:
            truth[sid] = window_truth(timelines[name], a, b)
    if not truth:
        sys.exit(f"no segment of {ws} comes from a pool show of {pool}")
    print(f"{len(truth)} pool windows; positives speech/music/noise: "
          + " / ".join(str(sum(t[i] for t in truth.values())) for i in range(3)))
    print(f"{'labels':<44} {'n':>4}  speech  music  noise  macro")

    def report(name, pred):
        pairs = [(truth[s], p) for s, p in pred.items() if s in truth]
        if not pairs:
            return
        f = f1s(pairs)
        print(f"{name:<44} {len(pairs):>4}  {f[0]:.3f}  {f[1]:.3f}  {f[2]:.3f}  {sum(f) / 3:.3f}")

    runs = c.execute(
        "SELECT teacher, MAX(id) FROM teacher_runs WHERE state = 'done' GROUP BY teacher ORDER BY teacher"
    ).fetchall()
    for teacher, run in runs:
        th = {}
        for cls, v in c.execute(
            "SELECT class, value FROM thresholds WHERE teacher = ? ORDER BY id", (teacher,)
        ):
            th[cls] = v
        if any(th.get(k) is None for k in CLASSES):
            continue
        pred = {
            sid: [int(s >= th["speech"]), int(m >= th["music"]), int(n >= th["noise"])]
            for sid, s, m, n in c.execute(
                "SELECT segment_id, speech, music, noise FROM teacher_scores WHERE run_id = ?", (run,)
            )
        }
        report(f"teacher {teacher} (run #{run})", pred)
    for rid, source in c.execute("SELECT id, label_source FROM pseudo_runs ORDER BY id").fetchall():
        pred = {
            sid: [s, m, n]
            for sid, s, m, n in c.execute(
                "SELECT segment_id, speech, music, noise FROM pseudo_labels WHERE pseudo_run_id = ?", (rid,)
            )
        }
        report(f"pseudo-label run #{rid} ({source})", pred)


if __name__ == "__main__":
    main()
