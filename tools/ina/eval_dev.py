#!/usr/bin/env python3
"""Evaluate inaSpeechSegmenter (the real one, TensorFlow CPU) and dams' `ina` port on the real-data dev set, on the
same 16 kHz samples, and time both.

    python tools/ina/eval_dev.py prepare --dev /path/to/realdata-dev --work /tmp/ina-eval
    python tools/ina/eval_dev.py ina     --work /tmp/ina-eval            # runs inaSpeechSegmenter -> ina_py.json
    DAMS_INA_EVAL_DIR=/tmp/ina-eval cargo test --release --test ina -- --ignored --nocapture eval_dir
                                                                         # runs dams' port      -> dams_ina.json
    python tools/ina/eval_dev.py report  --work /tmp/ina-eval
    # speed, both on the two shows, back to back:
    python tools/ina/eval_dev.py bench --work /tmp/ina-eval && \
      DAMS_INA_EVAL_DIR=/tmp/ina-eval cargo test --test ina -- --ignored --nocapture bench_shows

`prepare` writes every clip and long-form show as 16 kHz mono 16-bit WAV (16 kHz sources are copied sample for
sample; the two clips at 44.1/48 kHz are downmixed and resampled with scipy's polyphase filter) plus `items.json`:
the 40 clips (label: the manifest's class flags) and the 10 s / 5 s-hop windows of both shows (label: the set's
`*_windows_10s_hop5s.csv`, class present >= 1 s).

Both runners analyse every clip and every window ON ITS OWN (as a teacher scoring that segment does: the energy
threshold is relative to the item) and record the seconds INA labels speech / music / noise and the mean
posterior per class over energetic patches. Shows are also segmented whole (segmentation mode) and the windows'
seconds read off that segmentation (`*_whole` rows of the report).

A class is predicted present when INA labels it for >= 1.0 s of the item (`--min-sec`).
"""

import argparse
import csv
import json
import os
import sys
import time
import warnings

import numpy as np
import soundfile as sf

SR = 16000
CLASSES = ("speech", "music", "noise")


def prepare(args):
    from scipy.signal import resample_poly

    os.makedirs(f"{args.work}/wav", exist_ok=True)
    items = []
    with open(f"{args.dev}/manifest.csv") as f:
        for r in csv.DictReader(f):
            src = f"{args.dev}/{r['file']}"
            x, sr = sf.read(src, dtype="float64", always_2d=True)
            x = x.mean(axis=1)
            if sr != SR:
                from math import gcd

                g = gcd(sr, SR)
                x = resample_poly(x, SR // g, sr // g)
            pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)
            name = os.path.splitext(os.path.basename(r["file"]))[0]
            sf.write(f"{args.work}/wav/{name}.wav", pcm, SR, subtype="PCM_16")
            items.append({"id": name, "wav": f"wav/{name}.wav", "start": 0.0, "end": None, "kind": "clip",
                          "gold": [int(r[c]) for c in CLASSES]})
    for show in ("a_show01", "a_show02"):
        x, sr = sf.read(f"{args.dev}/longform/{show}.flac", dtype="int16")
        assert sr == SR and x.ndim == 1
        sf.write(f"{args.work}/wav/{show}.wav", x, SR, subtype="PCM_16")
        with open(f"{args.dev}/longform/{show}_windows_10s_hop5s.csv") as f:
            for r in csv.DictReader(f):
                items.append({"id": f"{show}@{r['start']}", "wav": f"wav/{show}.wav", "start": float(r["start"]),
                              "end": float(r["end"]), "kind": "window", "show": show,
                              "gold": [int(r[c]) for c in CLASSES]})
    with open(f"{args.work}/items.json", "w") as f:
        json.dump(items, f, indent=0)
    print(f"{len(items)} items in {args.work}")


def run_ina(args):
    from inaSpeechSegmenter import Segmenter
    from inaSpeechSegmenter.sidekit_mfcc import mfcc
    from inaSpeechSegmenter.segmenter import _energy_activity, _get_patches

    seg = Segmenter(vad_engine="smn", detect_gender=False, ffmpeg=None, batch_size=args.batch)
    items = json.load(open(f"{args.work}/items.json"))
    cache = {}

    def feats(sig):
        # inaSpeechSegmenter's _media2feats on an in-memory signal (same code, minus the file read).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=RuntimeWarning)
            _, loge, _, mspec = mfcc(sig.astype(np.float32), get_mspec=True)
        difflen = 0
        if len(loge) < 68:
            difflen = 68 - len(loge)
            mspec = np.concatenate((mspec, np.ones((difflen, 24)) * np.min(mspec)))
        return mspec, loge, difflen

    def analyse(sig):
        mspec, loge, difflen = feats(sig)
        lseg = seg.segment_feats(mspec, loge, difflen, 0)
        secs = {c: 0.0 for c in CLASSES}
        for lab, a, b in lseg:
            if lab in secs:
                secs[lab] += b - a
        # Mean posterior over energetic, finite patches (the raw CNN output, as dams reports it).
        act = _energy_activity(loge, seg.energy_ratio)[::2]
        patches, finite = _get_patches(mspec[:, :21].copy(), 68, 2)
        if difflen > 0:
            patches, finite = patches[: -int(difflen / 2)], finite[: -int(difflen / 2)]
        keep = act.astype(bool) & finite
        mp = [0.0, 0.0, 0.0]
        if keep.any():
            p = seg.vad.nn.predict(np.expand_dims(patches[keep], 3), batch_size=1024, verbose=0)
            mp = [float(v) for v in p.mean(axis=0)]
        return secs, mp, lseg

    out = {}
    # Timing: the segmenter alone (features + energy + CNN + Viterbi), like `Segmenter.__call__` minus decoding.
    audio_s = 0.0
    t_seg = 0.0
    for it in items:
        if it["wav"] not in cache:
            cache[it["wav"]], _ = sf.read(f"{args.work}/{it['wav']}", dtype="float32")
        x = cache[it["wav"]]
        a = int(round(it["start"] * SR))
        b = len(x) if it["end"] is None else min(len(x), int(round(it["end"] * SR)))
        sig = x[a:b]
        t0 = time.perf_counter()
        mspec, loge, difflen = feats(sig)
        seg.segment_feats(mspec, loge, difflen, 0)
        t_seg += time.perf_counter() - t0
        audio_s += len(sig) / SR
        secs, mp, _ = analyse(sig)
        out[it["id"]] = {"secs": [secs[c] for c in CLASSES], "mean_post": mp, "dur": len(sig) / SR}
    whole = {}
    for show in ("a_show01", "a_show02"):
        x = cache[f"wav/{show}.wav"]
        t0 = time.perf_counter()
        mspec, loge, difflen = feats(x)
        lseg = seg.segment_feats(mspec, loge, difflen, 0)
        t_seg += time.perf_counter() - t0
        audio_s += len(x) / SR
        whole[show] = [[lab, a, b] for lab, a, b in lseg]
    cpu = time.process_time()
    res = {"items": out, "whole": whole, "timing": {"audio_s": audio_s, "wall_s": t_seg, "rtf": audio_s / t_seg,
                                                    "process_cpu_s": cpu}}
    json.dump(res, open(f"{args.work}/ina_py.json", "w"))
    print(f"inaSpeechSegmenter: {audio_s:.0f} s of audio in {t_seg:.1f} s = {audio_s / t_seg:.1f}x real time")


def bench(args):
    """inaSpeechSegmenter on the two long-form shows, whole (segmentation mode), `--repeat` times: wall and CPU
    seconds of `segment_feats` plus the front end (decoding excluded, as in dams' `bench_shows`)."""
    from inaSpeechSegmenter import Segmenter
    from inaSpeechSegmenter.sidekit_mfcc import mfcc

    seg = Segmenter(vad_engine="smn", detect_gender=False, ffmpeg=None, batch_size=args.batch)
    sigs = [sf.read(f"{args.work}/wav/{s}.wav", dtype="float32")[0] for s in ("a_show01", "a_show02")]
    audio = sum(len(x) for x in sigs) / SR * args.repeat
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.repeat):
        for x in sigs:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=RuntimeWarning)
                _, loge, _, mspec = mfcc(x.astype(np.float32), get_mspec=True)
            seg.segment_feats(mspec, loge, 0, 0)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print(f"inaSpeechSegmenter (TF {__import__('tensorflow').__version__}, batch {args.batch}): {audio:.0f} s of audio, "
          f"wall {wall:.1f} s = {audio / wall:.1f}x real time, CPU {cpu:.1f} s = {audio / cpu:.1f}x per CPU-second")


def prf(gold, pred):
    rows = []
    for c in range(3):
        tp = sum(1 for g, p in zip(gold, pred) if g[c] and p[c])
        fp = sum(1 for g, p in zip(gold, pred) if not g[c] and p[c])
        fn = sum(1 for g, p in zip(gold, pred) if g[c] and not p[c])
        P = tp / (tp + fp) if tp + fp else 0.0
        R = tp / (tp + fn) if tp + fn else 0.0
        F = 2 * P * R / (P + R) if P + R else 0.0
        rows.append((P, R, F))
    return rows, sum(r[2] for r in rows) / 3


def window_secs_from_whole(lseg, a, b):
    secs = [0.0, 0.0, 0.0]
    for lab, s, e in lseg:
        if lab in CLASSES:
            ov = min(e, b) - max(s, a)
            if ov > 0:
                secs[CLASSES.index(lab)] += ov
    return secs


def report(args):
    items = json.load(open(f"{args.work}/items.json"))
    runs = {}
    for name, fn in (("inaSpeechSegmenter (TF)", "ina_py.json"), ("dams ina", "dams_ina.json")):
        p = f"{args.work}/{fn}"
        if os.path.exists(p):
            runs[name] = json.load(open(p))
    for name, res in runs.items():
        t = res["timing"]
        print(f"\n## {name}: {t['audio_s']:.0f} s of audio, {t['wall_s']:.1f} s, {t['rtf']:.1f}x real time")
        for subset, sel in (("dev clips (40)", lambda it: it["kind"] == "clip"),
                            ("dev show windows", lambda it: it["kind"] == "window")):
            its = [it for it in items if sel(it)]
            gold = [it["gold"] for it in its]
            variants = [("fraction >= %.1f s" % args.min_sec,
                         [[s >= args.min_sec for s in res["items"][it["id"]]["secs"]] for it in its])]
            for th in (0.05, 0.1, 0.2):
                variants.append((f"mean posterior >= {th}",
                                 [[m >= th for m in res["items"][it["id"]]["mean_post"]] for it in its]))
            if subset.startswith("dev show") and res.get("whole"):
                variants.append(("whole-show segmentation, >= %.1f s" % args.min_sec,
                                 [[s >= args.min_sec for s in window_secs_from_whole(res["whole"][it["show"]],
                                                                                    it["start"], it["end"])]
                                  for it in its]))
            for vname, pred in variants:
                rows, macro = prf(gold, pred)
                cells = "  ".join(f"{c} P {P:.2f} R {R:.2f} F1 {F:.2f}" for c, (P, R, F) in zip(CLASSES, rows))
                print(f"{subset:18s} {vname:34s} macro F1 {macro:.3f} | {cells}")
        # Music / noise recall on items where that class overlaps speech.
        # (all 109 items: clips and show windows)
        for c, cname in ((1, "music"), (2, "noise")):
            its = [it for it in items if it["gold"][0] and it["gold"][c]]
            alone = [it for it in items if not it["gold"][0] and it["gold"][c]]
            for rule, ok in (("labelled >= %.1f s" % args.min_sec, lambda r: r["secs"][c] >= args.min_sec),
                             ("mean posterior >= 0.1", lambda r: r["mean_post"][c] >= 0.1)):
                hit = sum(1 for it in its if ok(res["items"][it["id"]]))
                hit_a = sum(1 for it in alone if ok(res["items"][it["id"]]))
                print(f"{cname} recall ({rule}): with speech {hit}/{len(its)} = {hit / len(its):.2f}, "
                      f"without speech {hit_a}/{len(alone)} = {hit_a / len(alone):.2f}")
    if len(runs) == 2:
        a, b = runs.values()
        agree = sum(1 for it in items
                    if [s >= args.min_sec for s in a["items"][it["id"]]["secs"]]
                    == [s >= args.min_sec for s in b["items"][it["id"]]["secs"]])
        dsec = max(abs(x - y) for it in items for x, y in zip(a["items"][it["id"]]["secs"], b["items"][it["id"]]["secs"]))
        print(f"\nagreement of decisions: {agree}/{len(items)} items; max |seconds difference| {dsec:.2f}")
        print(f"speed: dams ina is {b['timing']['rtf'] / a['timing']['rtf']:.2f}x inaSpeechSegmenter's real-time factor")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["prepare", "ina", "report", "bench"])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dev", default="../shared/realdata-dev")
    ap.add_argument("--work", default="/tmp/ina-eval")
    ap.add_argument("--batch", type=int, default=32, help="inaSpeechSegmenter batch size (its default: 32)")
    ap.add_argument("--min-sec", type=float, default=1.0)
    args = ap.parse_args()
    {"prepare": prepare, "ina": run_ina, "report": report, "bench": bench}[args.cmd](args)


if __name__ == "__main__":
    main()
