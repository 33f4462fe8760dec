#!/usr/bin/env python3
"""Build a scratch dams workspace from the 40 real dev clips and the 2 long-form shows of the shared data set,
with gold.

Usage: tools/realdev_workspace.py REALDATA_DEV_DIR WORKSPACE_DIR [DAMS_BINARY=dams]

Runs `dams init`, `dams segment clips/ --split dev` (10 s windows, 5 s hop, tails >= 1 s), exports
the segment table, labels every window from the set's clip_events.csv with the data set's rule (a
class is on when its layer covers >= 1.0 s of the window; for a clip's first window this is the
manifest's clip label) and imports the labels as gold. The long-form shows (`longform/*.flac`) are cut
the same way on split `test`, their windows labelled from the set's `*_windows_10s_hop5s.csv` (same rule). The clips stay in the scratch workspace: some
contain non-commercial sources, so nothing of it may be copied into the repository.

Then, for example (a student trained elsewhere is copied in as data/models/NAME):
  dams --workspace WS score --teacher builtin
  dams --workspace WS score --teacher student:NAME --device cpu
  dams --workspace WS eval --teacher builtin,student:NAME --split dev
  dams --workspace WS eval --teacher builtin,ina --split test      # the show windows
"""
import csv
import os
import subprocess
import sys


def run(dams, ws, *args):
    r = subprocess.run([dams, "--workspace", ws, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"dams {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src, ws = sys.argv[1], os.path.abspath(sys.argv[2])
    dams = sys.argv[3] if len(sys.argv) > 3 else "dams"
    r = subprocess.run([dams, "init", ws], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr)
    run(dams, ws, "segment", os.path.join(src, "clips"), "--split", "dev")
    events = {}
    for e in csv.DictReader(open(os.path.join(src, "clip_events.csv"))):
        stem = os.path.splitext(os.path.basename(e["file"]))[0]
        events.setdefault(stem, []).append((e["layer"], float(e["start"]), float(e["end"])))
    table = run(dams, ws, "export", "-o", "-")
    rows = []
    for s in csv.DictReader(table.splitlines()):
        stem = os.path.splitext(os.path.basename(s["raw_file"]))[0]
        a, b = float(s["start_time"]), float(s["end_time"])
        lab = []
        for layer in ("speech", "music", "noise"):
            iv = sorted((max(x, a), min(y, b)) for l, x, y in events[stem] if l == layer)
            tot, cur = 0.0, None
            for x, y in iv:
                if y <= x:
                    continue
                if cur and x <= cur[1]:
                    cur = (cur[0], max(cur[1], y))
                else:
                    if cur:
                        tot += cur[1] - cur[0]
                    cur = (x, y)
            if cur:
                tot += cur[1] - cur[0]
            lab.append(int(tot >= 1.0 - 1e-3))
        rows.append([s["segment_path"], "dev", "gold", *lab])
    shows = sorted(f for f in os.listdir(os.path.join(src, "longform")) if f.endswith(".flac"))
    for show in shows:
        run(dams, ws, "segment", os.path.join(src, "longform", show), "--split", "test")
    gold = {}
    for show in shows:
        stem = show[: -len(".flac")]
        for r in csv.DictReader(open(os.path.join(src, "longform", f"{stem}_windows_10s_hop5s.csv"))):
            gold[(stem, round(float(r["start"]), 1))] = [int(r[c]) for c in ("speech", "music", "noise")]
    table = run(dams, ws, "export", "-o", "-")
    n_show = 0
    for s in csv.DictReader(table.splitlines()):
        stem = os.path.splitext(os.path.basename(s["raw_file"]))[0]
        key = (stem, round(float(s["start_time"]), 1))
        if s["split"] == "test" and key in gold:
            rows.append([s["segment_path"], "test", "gold", *gold[key]])
            n_show += 1
    man = os.path.join(ws, "realdev_gold.csv")
    with open(man, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["segment_path", "split", "label_source", "speech_label", "music_label", "noise_label"])
        w.writerows(rows)
    print(run(dams, ws, "import", man))
    print(f"{len(rows) - n_show} windows of {len(events)} clips and {n_show} windows of {len(shows)} shows with gold in {ws}")


if __name__ == "__main__":
    main()
