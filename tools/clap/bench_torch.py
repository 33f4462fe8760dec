#!/usr/bin/env python3
"""The PyTorch + transformers reference for `dams bench clap`: the same checkpoint folder, the same synthetic 10 s
16 kHz segments (chirp + noise), the same path as the Python project (torchaudio 16 -> 48 kHz resample,
ClapFeatureExtractor, ClapModel.get_audio_features), timed in this process; text embedding ms per prompt
(tokenizer + get_text_features, one prompt at a time). Prints one JSON line.

  python tools/clap/bench_torch.py DIR --batch 2 --batches 2 --prompts 8
"""

import argparse
import json
import math
import time

import numpy as np
import torch
import transformers
from transformers import ClapFeatureExtractor, ClapModel, RobertaTokenizerFast


def signal(batch):
    # The same formula as dams' bench (values differ only in the noise generator; compute does not depend on them).
    rng = np.random.default_rng(0)
    t = np.arange(160_000, dtype=np.float64) / 16_000.0
    return [
        (0.3 * np.sin(2 * math.pi * (200.0 + 50.0 * k + 300.0 * t) * t) + 0.05 * (rng.random(160_000) - 0.5)).astype(
            np.float32
        )
        for k in range(batch)
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=8)
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    model = ClapModel.from_pretrained(a.dir).eval()
    fe = ClapFeatureExtractor.from_pretrained(a.dir)
    tok = RobertaTokenizerFast.from_pretrained(a.dir)
    try:
        import torchaudio.functional as AF

        resample = lambda x: AF.resample(torch.from_numpy(x)[None], 16_000, 48_000)[0].numpy()
        backend = "torchaudio"
    except Exception:  # noqa: BLE001
        resample = None
        backend = "none"
    segs = signal(a.batch)

    def embed():
        x48 = [resample(s) for s in segs] if resample else [np.repeat(s, 3) for s in segs]
        f = fe(x48, sampling_rate=48_000, return_tensors="pt")
        return model.get_audio_features(input_features=f["input_features"]).pooler_output

    embed()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.batches):
        embed()
    secs = time.perf_counter() - t0
    n = a.batch * a.batches
    texts = [f"This is a sound of radio programme number {i} with speech and music." for i in range(a.prompts)]
    model.get_text_features(**tok(texts[:1], return_tensors="pt"))
    t0 = time.perf_counter()
    for t in texts:
        model.get_text_features(**tok([t], return_tensors="pt"))
    text_ms = (time.perf_counter() - t0) * 1e3 / len(texts)
    print(
        json.dumps(
            {
                "audio_seg_per_s": n / secs,
                "text_ms_per_prompt": text_ms,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "resampler": backend,
            }
        )
    )


if __name__ == "__main__":
    main()
