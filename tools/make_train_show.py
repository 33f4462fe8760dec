#!/usr/bin/env python3
"""Generate the demo's unlabelled training show, data/demo/train_show01.flac, from the separate
stems of the shared real-data set (speech, music and noise recordings, 16 kHz mono FLAC).

Usage: tools/make_train_show.py STEMS_DIR [OUT_DIR=data/demo] [--seed 20261121]

STEMS_DIR is realdata-dev/stems (with stems.csv). Needs python3 + numpy and ffmpeg; nothing else.
Seeded and deterministic: the same stems and seed give the same samples (and, with the same ffmpeg,
the same FLAC bytes: the encoder is run bit-exact).

What it makes: a ~5 min radio-style sequence of scenes covering all 7 label combinations plus dead
air: music intros, a DJ talking over a ducked music bed (speech starts 1.5-3 s into the bed), studio
speech, outside broadcasts (speech over street/kitchen/rain noise), ambience, live music with noise,
speech over music and noise. Levels: speech at -27..-21 dBFS RMS (over its active frames), music
6-20 dB under the voice (SMR), noise 3-15 dB under it (SNR), music vs noise 0-10 dB (MNR); music
and noise fade in/out over 1 s at the ends of a run, cross-fade over 1 s when the recording changes
inside a run, and change level with 0.3 s ramps between scenes (ducking). A pink floor 78 dB under
full scale runs through the whole show (below the -70 dBFS silence gate; not labelled noise).

Which recordings: every stem whose licence is non-commercial is refused. Speech comes only from
speakers that occur in NO file of the demo (neither its 21 clips nor a_show01); music and noise
only from the parts of recordings that the demo's files do not use (the tables below were read
from the data set's clip_events.csv and a_show01_events.csv), plus generated pink and brown noise.
The recordings are few, so the music parts are reused (different mixes) within the show.

Outputs (OUT_DIR): train_show01.flac, train_show01_timeline.csv (exact partition
start,end,speech,music,noise; rows 0,0,0 are dead air), train_show01_events.csv (every placed
source segment), train_show01_windows_10s_hop5s.csv (the 10 s / 5 s-hop windows as dams cuts them,
seconds of each class and 1 if >= 1.0 s). The demo imports the show on split `train` WITHOUT gold
labels; the tables are there to check pseudo-label quality.
"""
import csv
import os
import subprocess
import sys

import numpy as np

SR = 16000

# Speakers that occur in no file of the demo (21 clips + a_show01).
SPEAKERS = ["ls2033", "ls367", "ls1898", "ls441", "ls4788", "ls4830", "ls7505", "ls83", "ls8419",
            "ls8465", "ls8580", "sms_f", "sms_m"]
# Parts of music / noise recordings the demo does not use: (file, start s, end s or None = to the end).
MUSIC_PARTS = [
    ("music/Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.hq.flac", 41.3, 81.5),
    ("music/Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).hq.flac", 38.2, None),
    ("music/orchestra.flac", 0.0, None),
    ("music/Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.hq.flac", 101.8, None),
    ("music/singing-female.flac", 0.0, None),
]
NOISE_PARTS = {
    "kitchen": ("noise/doing_the_dishes.flac", 50.2, None),
    "rain": ("noise/rain.flac", 10.1, None),
    "birds": ("noise/birds1.flac", 10.1, None),
    "typing": ("noise/typing.flac", 10.1, None),
    "engine": ("noise/car_engine.flac", 12.4, None),
    "pink": None,   # generated
    "brown": None,  # generated
}
# The show: (combination, noise kind for scenes with noise). "-" = dead air.
PLAN = [
    ("M", None), ("SM", None), ("S", None), ("SN", "rain"), ("N", "birds"), ("SN", "kitchen"),
    ("-", None), ("M", None), ("MN", "kitchen"), ("SMN", "kitchen"), ("S", None), ("-", None),
    ("SN", "engine"), ("SMN", "typing"), ("SM", None), ("S", None), ("N", "brown"), ("MN", "pink"),
    ("SM", None), ("M", None),
]


def db(x):
    return 10 ** (x / 20)


def decode(path):
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "f32le", "-ac", "1", "-ar", str(SR), "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, dtype="<f4").astype(np.float64)


def frame_db(x, hop=160):
    n = len(x) // hop
    e = (x[: n * hop].reshape(n, hop) ** 2).mean(axis=1)
    return 10 * np.log10(e + 1e-12)


def active_rms(x):
    """RMS over 10 ms frames within 30 dB of the p95 frame level."""
    f = frame_db(x)
    act = f > np.percentile(f, 95) - 30
    hop = 160
    sel = np.concatenate([x[i * hop:(i + 1) * hop] for i in np.nonzero(act)[0]])
    return float(np.sqrt((sel ** 2).mean()))


def trim_speech(x):
    """(start, end) samples of the speech: 10 ms frames above p95 - 35 dB, +50 ms margin."""
    f = frame_db(x)
    act = np.nonzero(f > np.percentile(f, 95) - 35)[0]
    a = max(0, act[0] * 160 - 800)
    b = min(len(x), (act[-1] + 1) * 160 + 800)
    return a, b


def fade(n, up=True):
    r = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n, 1))
    return r if up else r[::-1]


def coloured(n, rng, kind):
    """Pink (1/f power) or brown (1/f^2 power) noise by shaping white noise's spectrum (flat below 20 Hz)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
    y = np.fft.irfft(spec / (f if kind == "brown" else np.sqrt(f)), n)
    return y / np.sqrt((y ** 2).mean())


class Texture:
    """Noise of any length from a short part of a recording: grains of 0.8-1.6 s from random places in
    the part, cross-faded over 0.2 s (no audible fixed loop period); long parts are read straight."""

    def __init__(self, x, rng):
        self.x, self.rng, self.pos = x / active_rms(x), rng, 0

    def take(self, n):
        x = self.x
        if len(x) >= n + self.pos:
            out = x[self.pos:self.pos + n]
            self.pos += n
            return out.copy()
        out = np.zeros(n)
        xf = int(0.2 * SR)
        t = 0
        while t < n:
            g = int(self.rng.uniform(0.8, 1.6) * SR)
            g = min(g, len(x) - 1)
            s = int(self.rng.integers(0, len(x) - g))
            grain = x[s:s + g].copy()
            grain[:xf] *= fade(xf, True)
            grain[-xf:] *= fade(xf, False)
            e = min(n, t + g)
            out[t:e] += grain[: e - t]
            t += g - xf
        return out


def main():
    args = [a for a in sys.argv[1:]]
    seed = 20261121
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    if not args:
        sys.exit(__doc__)
    stems = args[0]
    out = args[1] if len(args) > 1 else "data/demo"
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)

    meta = {r["file"]: r for r in csv.DictReader(open(os.path.join(stems, "stems.csv")))}
    for r in meta.values():
        assert "NC" not in r["license"], r["file"]

    def source_of(f):
        r = meta[f]
        assert "NC" not in r["license"], f
        return r

    # --- speech pool: utterances of the chosen speakers, in stems.csv order, grouped by speaker
    pools = []
    for spk in SPEAKERS:
        utts = [f for f, r in meta.items() if r["kind"] == "speech" and r["speaker"] == spk]
        assert utts, spk
        pools.append([(f, decode(os.path.join(stems, f))) for f in utts])
    order = rng.permutation(len(pools))
    pools = [pools[i] for i in order]

    # --- scene durations
    durs = []
    long_silence = False
    for combo, _ in PLAN:
        if combo == "-":
            d = 14.0 if not long_silence else float(rng.uniform(2.5, 4.0))
            long_silence = True
        else:
            d = float(rng.uniform(14.0, 19.0))
        durs.append(round(d, 2))
    starts = np.concatenate([[0.0], np.cumsum(durs)])
    total = float(starts[-1])
    n = int(round(total * SR))
    speech = np.zeros(n)
    music = np.zeros(n)
    noise = np.zeros(n)
    events = []
    speech_spans = []

    def smp(t):
        return int(round(t * SR))

    # --- speech: one speaker per scene (next in the shuffled pool), utterances back to back
    scene_level = []
    spk_i = 0
    for (combo, _), t0, d in zip(PLAN, starts, durs):
        lvl = float(rng.uniform(-27, -21))
        scene_level.append(lvl)
        if "S" not in combo:
            continue
        t = t0 + (rng.uniform(1.5, 3.0) if "M" in combo else rng.uniform(0.3, 0.8))
        end = t0 + d - rng.uniform(0.6, 1.5)
        def next_speaker():
            nonlocal spk_i
            for _ in range(len(pools)):
                p = pools[spk_i % len(pools)]
                spk_i += 1
                if p:
                    return p
            sys.exit("not enough speech in the stems for this plan")

        pool = next_speaker()
        used = 0
        while t < end - 1.0:
            if not pool:
                pool = next_speaker()
            f, x = pool.pop(0)
            a, b = trim_speech(x)
            seg = x[a:b]
            room = min(int(end * SR) - smp(t), len(seg))
            if room < len(seg):  # cut at the quietest 10 ms frame of the last 0.8 s that fits
                fr = frame_db(seg[:room])
                k = len(fr) - 80 + int(np.argmin(fr[-80:]))
                room = max(k * 160, SR)
                seg = seg[:room].copy()
                seg[-320:] *= fade(320, False)
            seg = seg * (db(lvl) / active_rms(seg))
            s0 = smp(t)
            speech[s0:s0 + len(seg)] += seg
            events.append(("speech", t, t + len(seg) / SR, source_of(f)["source"], a / SR, (a + len(seg)) / SR, ""))
            f_act = frame_db(seg) > np.percentile(frame_db(seg), 95) - 35
            act = np.nonzero(f_act)[0]
            speech_spans.append((t + max(0, act[0] * 160 - 800) / SR, t + min(len(seg), (act[-1] + 1) * 160 + 800) / SR))
            used += 1
            t += len(seg) / SR + rng.uniform(0.2, 0.5)
        assert used, "a speech scene got no utterance"

    # --- music and noise runs: maximal runs of consecutive scenes with the layer
    def runs(letter):
        out, cur = [], None
        for i, (combo, _) in enumerate(PLAN):
            if letter in combo:
                cur = [cur[0], i] if cur else [i, i]
            elif cur:
                out.append(tuple(cur))
                cur = None
        if cur:
            out.append(tuple(cur))
        return out

    music_src = [(f, decode(os.path.join(stems, f)), a, b) for f, a, b in MUSIC_PARTS]
    music_src = [(f, x, a, b if b is not None else len(x) / SR - 0.05) for f, x, a, b in music_src]
    mpos = [0, 0.0]  # index into MUSIC_PARTS, offset into that part (s)

    def music_take(dur, t_out):
        """`dur` s of music from the playlist, cross-fading 1 s where a part ends; unit active RMS."""
        y = np.zeros(smp(dur))
        t = 0.0
        xf = 1.0
        while t < dur - 1e-6:
            f, x, a, b = music_src[mpos[0]]
            avail = b - a - mpos[1]
            if avail < 3.0:
                mpos[0], mpos[1] = (mpos[0] + 1) % len(music_src), 0.0
                continue
            take = min(avail, dur - t + (xf if t > 0 else 0))
            s = a + mpos[1]
            chunk = x[smp(s):smp(s) + smp(take)].copy()
            chunk /= active_rms(x[smp(a):smp(b)])
            if t > 0:  # cross-fade with what is already there
                n_x = smp(xf)
                chunk[:n_x] *= fade(n_x, True)
                y_start = smp(t - xf)
                y[y_start:y_start + n_x] *= fade(n_x, False)
            else:
                y_start = 0
            e = min(len(y), y_start + len(chunk))
            y[y_start:e] += chunk[: e - y_start]
            src = source_of(f)["source"]
            s_end = s + (e - y_start) / SR
            again = any(ev[0] == "music" and ev[3] == src and ev[4] < s_end and s < ev[5] for ev in events)
            events.append(("music", t_out + y_start / SR, t_out + e / SR, src, s, s_end,
                           "reuses audio placed earlier in the show" if again else ""))
            mpos[1] += (e - y_start) / SR
            t = e / SR
            if mpos[1] > b - a - 3.0:
                mpos[0], mpos[1] = (mpos[0] + 1) % len(music_src), 0.0
        return y

    noise_src = {}
    for k, v in NOISE_PARTS.items():
        if v is not None:
            f, a, b = v
            x = decode(os.path.join(stems, f))
            seg = x[smp(a): smp(b) if b is not None else len(x)]
            noise_src[k] = (f, a, Texture(seg, rng))

    def envelope(lo, hi, levels, edge=1.0, ramp=0.3):
        """Gain (linear) over scenes lo..hi: each scene at its level (dB), 0.3 s ramps between scenes,
        1 s fade in and out at the ends of the run."""
        t0, t1 = starts[lo], starts[hi + 1]
        g_db = np.zeros(smp(t1 - t0))
        for i in range(lo, hi + 1):
            g_db[smp(starts[i] - t0):smp(starts[i + 1] - t0)] = levels[i]
        g = db(g_db)
        r = smp(ramp)
        for i in range(lo + 1, hi + 1):  # smooth the steps
            c = smp(starts[i] - t0)
            a, b = max(0, c - r // 2), min(len(g), c + r // 2)
            g[a:b] = np.linspace(g[a], g[b - 1], b - a)
        e = smp(edge)
        g[:e] *= fade(e, True)
        g[-e:] *= fade(e, False)
        return g

    # levels of music and noise per scene
    mus_lvl, noi_lvl = {}, {}
    for i, (combo, _) in enumerate(PLAN):
        ls = scene_level[i]
        if "M" in combo:
            mus_lvl[i] = ls - rng.uniform(6, 20) if "S" in combo else ls + rng.uniform(-3, 1)
        if "N" in combo:
            if "S" in combo:
                noi_lvl[i] = ls - rng.uniform(3, 15)
            elif "M" in combo:
                noi_lvl[i] = mus_lvl[i] - rng.uniform(0, 10)
            else:
                noi_lvl[i] = ls + rng.uniform(-6, 0)
    for lo, hi in runs("M"):
        t0 = starts[lo]
        y = music_take(starts[hi + 1] - t0, t0) * envelope(lo, hi, mus_lvl)
        music[smp(t0):smp(t0) + len(y)] += y
    for lo, hi in runs("N"):
        t0 = starts[lo]
        g = envelope(lo, hi, noi_lvl)
        y = np.zeros(len(g))
        xf = smp(1.0)
        for i in range(lo, hi + 1):
            kind = PLAN[i][1]
            a = max(0, smp(starts[i] - t0) - (xf // 2 if i > lo else 0))
            b = min(len(y), smp(starts[i + 1] - t0) + (xf // 2 if i < hi else 0))
            if kind in noise_src:
                f, off, tex = noise_src[kind]
                p0 = tex.pos
                chunk = tex.take(b - a)
                src, s_a, s_b, note = source_of(f)["source"], off + p0 / SR, off + tex.pos / SR, ""
                if tex.pos == p0:  # textured from grains
                    s_a, s_b, note = off, off + len(tex.x) / SR, "grains of the part, cross-faded"
            else:
                chunk = coloured(b - a, rng, kind)
                src, s_a, s_b, note = f"generated {kind} noise", 0.0, 0.0, ""
            if i > lo:
                chunk[:xf] *= fade(xf, True)
            if i < hi:
                chunk[-xf:] *= fade(xf, False)
            y[a:b] += chunk
            events.append(("noise", t0 + a / SR, t0 + b / SR, src, s_a, s_b, note))
        noise[smp(t0):smp(t0) + len(y)] += y * g

    floor = coloured(n, rng, "pink") * db(-78)
    mix = speech + music + noise + floor
    peak = np.abs(mix).max()
    if peak > 0.97:
        mix *= 0.97 / peak
    pcm = np.clip(np.round(mix * 32767), -32768, 32767).astype("<i2")
    name = "train_show01"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", str(SR), "-ac", "1", "-i", "-",
                    "-c:a", "flac", "-compression_level", "12", "-fflags", "+bitexact", "-flags:a", "+bitexact",
                    os.path.join(out, f"{name}.flac")], input=pcm.tobytes(), check=True)

    # --- timeline: exact partition from where each layer was placed
    # speech: trimmed utterances, pauses < 0.6 s counted as speech
    sp = []
    for a, b in sorted(speech_spans):
        if sp and a - sp[-1][1] < 0.6:
            sp[-1] = (sp[-1][0], max(sp[-1][1], b))
        else:
            sp.append((a, b))
    mu = [(starts[lo], starts[hi + 1]) for lo, hi in runs("M")]
    no = [(starts[lo], starts[hi + 1]) for lo, hi in runs("N")]
    layers = [sp, mu, no]
    cuts = sorted({0.0, total} | {round(t, 3) for L in layers for iv in L for t in iv})
    rows = []
    for a, b in zip(cuts, cuts[1:]):
        if b - a < 1e-9:
            continue
        m = (a + b) / 2
        lab = tuple(int(any(s <= m < e for s, e in L)) for L in layers)
        if rows and rows[-1][2:] == lab:
            rows[-1] = (rows[-1][0], b) + lab
        else:
            rows.append((a, b) + lab)
    with open(os.path.join(out, f"{name}_timeline.csv"), "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["start", "end", "speech", "music", "noise"])
        for a, b, s, mm, nn in rows:
            w.writerow([f"{a:.3f}", f"{b:.3f}", s, mm, nn])
    with open(os.path.join(out, f"{name}_events.csv"), "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["layer", "start", "end", "source", "src_start", "src_end", "note"])
        for layer, a, b, src, sa, sb, note in sorted(events, key=lambda e: (e[1], e[0])):
            w.writerow([layer, f"{a:.3f}", f"{b:.3f}", src, f"{sa:.3f}", f"{sb:.3f}", note])

    # --- windows as dams cuts them (start at every 5 s while start < duration, tail >= 1 s kept)
    def secs(L, a, b):
        return sum(max(0.0, min(e, b) - max(s, a)) for s, e in L)
    combos = {}
    with open(os.path.join(out, f"{name}_windows_10s_hop5s.csv"), "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["start", "end", "speech_s", "music_s", "noise_s", "speech", "music", "noise"])
        k = 0
        while k * 5 * SR < len(pcm):
            a = k * 5.0
            b = min(a + 10.0, len(pcm) / SR)
            k += 1
            if b - a < 1.0:
                continue
            s = [secs(L, a, b) for L in layers]
            lab = [int(x >= 1.0 - 1e-3) for x in s]
            combos[tuple(lab)] = combos.get(tuple(lab), 0) + 1
            w.writerow([f"{a:.3f}", f"{b:.3f}"] + [f"{x:.2f}" for x in s] + lab)
    print(f"{name}.flac: {total:.2f} s, {len(PLAN)} scenes, {k} windows started")
    for c in sorted(combos):
        print(f"  windows speech/music/noise={c}: {combos[c]}")
    spk = sorted({meta[f]["speaker"] for f in meta if any(e[0] == "speech" and e[3] == meta[f]["source"] for e in events)})
    print("speakers:", ", ".join(spk))


if __name__ == "__main__":
    main()
