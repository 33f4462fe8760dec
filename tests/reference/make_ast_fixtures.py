#!/usr/bin/env python3
"""Golden fixtures for dams' AST port (tests/ast.rs), made with Hugging Face `transformers`.

Builds small random AST models with `ASTConfig` / `ASTForAudioClassification`, perturbs EVERY parameter with
normal noise (so no tensor keeps its default value: LayerNorm weights are not 1, biases are not 0, ...), saves them
exactly as `save_pretrained` does (`model.safetensors` + `config.json`), and writes, for a few short real clips:
  * the `ASTFeatureExtractor` output (the Kaldi fbank, padded/cut to max_length and normalised; only the rows of
    real frames are stored, the padding rows are the constant (0 - mean) / (2 std)), and
  * the model's logits for those features,
into `goldens.safetensors`. `goldens.json` records versions and which fbank implementation the extractor used
(torchaudio if installed, else its numpy path; both are the same algorithm).

Usage (dev time; the clips are cut from the shared real-audio set and copied, with attribution, next to the
fixtures):
  python tests/reference/make_ast_fixtures.py --out tests/reference/ast \
      --clip speech_lj001=/path/to/realdata-dev/clips/a013.flac:0.5:2.0 \
      --clip noise_typing=/path/to/realdata-dev/clips/a030.flac:3.0:2.0 \
      --clip music_sugarplum=/path/to/realdata-dev/clips/a031.flac:1.0:1.3
  # later runs reuse the copied clips (tests/reference/ast/clips/*.wav):
  python tests/reference/make_ast_fixtures.py --out tests/reference/ast
  # full-size AST-base with random weights (NOT committed; ~346 MB) for the ignored test and the benchmark:
  python tests/reference/make_ast_fixtures.py --out tests/reference/ast --full /tmp/ast-base-random
"""

import argparse
import json
import os
import sys
import wave

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification
from transformers.utils import is_speech_available

SR = 16_000

# Small configs that still exercise the real shapes: `tiny` has AST's real input (1024 frames x 128 mel bins, 16x16
# patches at stride 10 -> 1212 patches); `tiny_odd` changes every size the port must read from config.json
# (mel bins, max_length, strides, eps, heads, layers).
CONFIGS = {
    "tiny": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        layer_norm_eps=1e-12,
        patch_size=16,
        frequency_stride=10,
        time_stride=10,
        max_length=1024,
        num_mel_bins=128,
    ),
    "tiny_odd": dict(
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=40,
        layer_norm_eps=1e-6,
        patch_size=16,
        frequency_stride=8,
        time_stride=12,
        max_length=150,  # shorter than the 2 s clips: exercises truncation as well as padding
        num_mel_bins=64,
    ),
}


def read_wav_i16(path):
    """16-bit mono WAV -> float32 in [-1, 1) as x / 32768 (what the Rust test does too)."""
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == SR, path
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return x.astype(np.float32) / 32768.0


def write_wav_i16(path, x):
    q = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(q.tobytes())


def cut_clip(spec, clip_dir):
    """NAME=PATH:START:DUR -> clips/NAME.wav (16 kHz mono 16-bit); the source must already be 16 kHz."""
    import soundfile as sf

    name, rest = spec.split("=", 1)
    path, start, dur = rest.rsplit(":", 2)
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == SR, f"{path}: {sr} Hz (expected {SR})"
    x = x.mean(axis=1)
    a = int(round(float(start) * SR))
    b = a + int(round(float(dur) * SR))
    write_wav_i16(os.path.join(clip_dir, name + ".wav"), x[a:b])


def perturbed_model(cfg_kwargs, seed):
    torch.manual_seed(seed)
    config = ASTConfig(num_labels=527, hidden_act="gelu", **cfg_kwargs)
    model = ASTForAudioClassification(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Every tensor moves away from its initial value; scales keep activations in a sane range.
            std = 0.3 if ("layernorm" in name and name.endswith("weight")) else 0.1
            p.add_(torch.randn_like(p) * std)
    return model


def extractor_for(config):
    return ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length)


def make(out_dir, name, cfg_kwargs, clips, seed):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    model = perturbed_model(cfg_kwargs, seed)
    model.save_pretrained(d)
    fe = extractor_for(model.config)
    tensors = {}
    meta = {"clips": []}
    for clip_name, x in clips:
        feats = fe(x, sampling_rate=SR, return_tensors="pt")["input_values"]  # [1, max_length, mel]
        n_frames = 0 if len(x) < 400 else 1 + (len(x) - 400) // 160
        with torch.no_grad():
            logits = model(feats).logits[0]
        # Rows past the clip's frames are the padding constant (0 - mean) / (2 std); only real rows are stored.
        rows = min(n_frames, model.config.max_length)
        pad = feats[0, rows:]
        assert torch.all(pad == pad.flatten()[0]) if pad.numel() else True
        tensors[f"{clip_name}.features"] = feats[0, :rows].contiguous()
        tensors[f"{clip_name}.logits"] = logits.contiguous()
        meta["clips"].append({"name": clip_name, "samples": int(len(x)), "frames": int(n_frames)})
    save_file(tensors, os.path.join(d, "goldens.safetensors"))
    meta.update(
        {
            "fbank_backend": "torchaudio" if is_speech_available() else "numpy (transformers.audio_utils)",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "seed": seed,
            "config": cfg_kwargs,
        }
    )
    with open(os.path.join(d, "goldens.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{d}: {sum(p.numel() for p in model.parameters())} parameters, fbank via {meta['fbank_backend']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="fixture folder (clips/ inside it is reused)")
    ap.add_argument("--clip", action="append", default=[], help="NAME=PATH:START_S:DUR_S to cut into clips/")
    ap.add_argument("--full", help="also write a full-size AST-base with random weights into this folder")
    ap.add_argument("--no-tiny", action="store_true", help="skip the tiny fixtures")
    args = ap.parse_args()

    clip_dir = os.path.join(args.out, "clips")
    os.makedirs(clip_dir, exist_ok=True)
    for spec in args.clip:
        cut_clip(spec, clip_dir)
    clips = [(f[:-4], read_wav_i16(os.path.join(clip_dir, f))) for f in sorted(os.listdir(clip_dir)) if f.endswith(".wav")]
    if not clips:
        sys.exit("no clips: pass --clip NAME=PATH:START:DUR")

    if not args.no_tiny:
        for i, (name, kw) in enumerate(CONFIGS.items()):
            make(args.out, name, kw, clips, seed=1234 + i)
    if args.full:
        make(os.path.dirname(os.path.abspath(args.full)), os.path.basename(os.path.abspath(args.full)), {}, clips, 99)


if __name__ == "__main__":
    main()
