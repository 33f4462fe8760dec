#!/usr/bin/env python3
"""The reference side of `dams bench whisper-at`: PyTorch + whisper-at 0.5 on the same checkpoint folder
(`whisper.pt` + `whisper_at.pth`) and the same deterministic 10 s signal, per segment as whisper-at computes it:
log-mel, encoder, TL-TR head (row 0). ASR decoding, which `transcribe()` also runs, is not timed (dams does not do
it). Prints one JSON line.

  python tools/whisper_at/bench_torch.py DIR [--context 30|10] [--segments 2] [--threads N]

Setup: see tools/whisper_at/make_goldens.py (torch 2.0.1, numpy, whisper-at 0.5 installed --no-deps).
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import make_goldens  # noqa: E402  (the numpy-2 shim and the loader)
from whisper_at.audio import N_SAMPLES, log_mel_spectrogram, pad_or_trim  # noqa: E402


def signal(k):
    # The same chirp as dams (its noise differs; that does not change the cost).
    rng = np.random.default_rng(k)
    t = np.arange(160_000, dtype=np.float32) / 16_000.0
    x = 0.3 * np.sin(2 * np.pi * (200.0 + 50.0 * k + 300.0 * t) * t) + 0.05 * (rng.random(160_000) - 0.5)
    return torch.tensor(x.astype(np.float32).tolist())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--context", type=int, default=30, choices=[30, 10])
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model, _ = make_goldens.load(a.model, "unused", 0, low_file=False)
    load_s = time.perf_counter() - t0
    segs = [signal(k) for k in range(max(a.segments, 1))]

    def one(x):
        if a.context == 30:
            mel = pad_or_trim(log_mel_spectrogram(x, padding=N_SAMPLES)[:, :3000], 3000)
            _, pooled = model.encoder(mel.unsqueeze(0))
        else:
            mel = log_mel_spectrogram(pad_or_trim(x, 160_000))
            enc = model.encoder
            full = enc.positional_embedding
            enc.positional_embedding = full[:500]
            try:
                _, pooled = enc(mel.unsqueeze(0))
            finally:
                enc.positional_embedding = full
        return model.at_model(pooled, time_resolution=10)[0]

    with torch.inference_mode():
        one(segs[0])  # warm-up
        t0 = time.perf_counter()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for x in segs:
            one(x)
        secs = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    print(
        json.dumps(
            {
                "seg_per_s": len(segs) / secs,
                "cpu_s_per_seg": cpu / len(segs),
                "load_s": load_s,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
