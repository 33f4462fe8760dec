#!/usr/bin/env python3
"""The reference side of `dams bench ast`: PyTorch + transformers on the same checkpoint folder and the same
deterministic 10 s signal. Prints one JSON line.

  python tests/reference/bench_ast_torch.py CHECKPOINT_DIR [--batch 2] [--batches 2] [--fbank-segments 200]
      [--device cpu|cuda] [--dtype fp32|bf16|fp16]

On CUDA the features are computed on the CPU (as dams computes its fbank on the CPU), moved to the GPU, and the
clock waits for the GPU (torch.cuda.synchronize) before it stops.
"""

import argparse
import json
import time

import numpy as np
import torch
import transformers
from transformers import ASTFeatureExtractor, ASTForAudioClassification
from transformers.utils import is_speech_available


def signal(batch):
    # The same chirp as dams (noise differs; it does not change the cost).
    rng = np.random.default_rng(0)
    t = np.arange(160_000, dtype=np.float32) / 16_000.0
    return [
        (0.3 * np.sin(2 * np.pi * (200.0 + 50.0 * k + 300.0 * t) * t) + 0.05 * (rng.random(160_000) - 0.5)).astype(
            np.float32
        )
        for k in range(batch)
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--fbank-segments", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    a = ap.parse_args()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    dev = torch.device(a.device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    model = ASTForAudioClassification.from_pretrained(a.model).eval().to(dev, dtype=dtype)
    fe = ASTFeatureExtractor(num_mel_bins=model.config.num_mel_bins, max_length=model.config.max_length)
    segs = signal(a.batch)

    t0 = time.perf_counter()
    for i in range(a.fbank_segments):
        fe(segs[i % len(segs)], sampling_rate=16_000, return_tensors="np")
    fbank_ms = (time.perf_counter() - t0) * 1e3 / a.fbank_segments

    with torch.inference_mode():
        x = fe(segs, sampling_rate=16_000, return_tensors="pt")["input_values"].to(dev, dtype=dtype)
        model(x)  # warm-up
        sync()
        t0 = time.perf_counter()
        for _ in range(a.batches):
            x = fe(segs, sampling_rate=16_000, return_tensors="pt")["input_values"].to(dev, dtype=dtype)
            model(x)
        sync()
        secs = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "forward_seg_per_s": a.batch * a.batches / secs,
                "fbank_ms": fbank_ms,
                "fbank_backend": "torchaudio" if is_speech_available() else "numpy",
                "threads": torch.get_num_threads(),
                "device": str(dev) + (" " + torch.cuda.get_device_name(dev) if dev.type == "cuda" else ""),
                "dtype": a.dtype,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
