#!/usr/bin/env python3
"""Golden fixtures for dams' Whisper-AT port (tests/whisper_at.rs), made with the reference package `whisper-at`.

What it does
  * builds a tiny random Whisper (`whisper_at.model.Whisper(ModelDimensions(...))`: 80 mels, the real 1500-token
    audio context, width 32, 4 heads, 3 layers, a 1-layer decoder that the port must skip) and a TL-TR head
    (`ATModel`, mode `tl_tr_1_8`, created by `Whisper.__init__`), plus a low-compute head
    (`ATModel(mode='tl_down_tr_16_1_8')`: the `_low` layout with a 16-wide projection instead of 512, to keep the
    fixture small; the port reads that width from the tensors);
  * perturbs EVERY parameter and buffer with N(0, 0.2) (LayerNorm weights are not 1, biases not 0, the
    positional embedding is not the sinusoid table, so the port must read it from the checkpoint);
  * saves them in the published formats: `whisper.pt` = torch.save({'dims': dict, 'model_state_dict': ...})
    with every tensor in fp16, like OpenAI's `large-v2.pt` (decoder included), and `whisper_at.pth` /
    `whisper_at_low.pth` = torch.save of the flat `at_model.*` state dict in fp32, like `large-v2_ori.pth`;
  * reloads the model from those files exactly as `whisper_at.load_model` does (`load_state_dict(strict=True)` of
    the merged dicts: fp16 values in an fp32 model) and writes goldens for real clips in both contexts:
      - context 30 = what `transcribe(at_time_res=10, fp16=False)` computes at seek 0 (the Python project):
        `log_mel_spectrogram(audio, padding=N_SAMPLES)`, the first 3000 frames, encoder on 1500 tokens,
        `at_model(pooled, time_resolution=10)`, row 0;
      - context 10 = Whisper-AT's training features: the clip zero-padded to 10 s, `log_mel_spectrogram` of it
        (1000 frames), the encoder with `positional_embedding[:500]`, one 10 s row;
    goldens per clip and context: the mel frames listed in goldens.json (the first 16, and the 16 around the end
    of the audio), the pooled per-layer features [L, T/20, d], the logits
    (tl_tr and tl_down_tr heads) and the noisy-OR scores of the Python project's mapping.

Clips: the three real clips of the AST fixtures (tests/reference/ast/clips, attribution there) and `tiled10`,
exactly 160000 samples made by repeating speech_lj001 + noise_typing + music_sugarplum (the test builds it the same
way), so the 10 s context sees audio up to its last sample.

Run (dev time only; tests never need Python):
  python -m venv venv && venv/bin/pip install torch==2.0.1 numpy==2.4.6 safetensors==0.8.0 \
      tiktoken==0.3.3 more-itertools numba && venv/bin/pip install --no-deps whisper-at==0.5
  venv/bin/python tools/whisper_at/make_goldens.py --out tests/reference/whisper_at
  # full-size random-weight files (NOT committed; large-v2 dims: ~1.3 GB .pt + 160 MB .pth) for the ignored test
  # and the benchmark:
  venv/bin/python tools/whisper_at/make_goldens.py --out /tmp/wat-large --size large-v2 --no-decoder
"""

import argparse
import json
import math
import os
import wave
from collections import OrderedDict

import numpy as np
import torch

# torch 2.0 wheels predate numpy 2: their numpy bridge is missing, so `torch.from_numpy` (used by whisper-at for the
# audio and the mel filter bank) goes through a list instead. Same values, same dtype.
try:
    torch.from_numpy(np.zeros(1, dtype=np.float32))
except RuntimeError:
    torch.from_numpy = lambda a: torch.tensor(a.tolist(), dtype=getattr(torch, str(a.dtype)))

import whisper_at  # noqa: E402
from whisper_at.audio import N_SAMPLES, log_mel_spectrogram, pad_or_trim
from whisper_at.model import ATModel, ModelDimensions, Whisper

SR = 16_000
CLIP_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "reference", "ast", "clips")

SIZES = {
    # name: (n_audio_state, n_audio_head, n_audio_layer)
    "tiny-test": (32, 4, 3),
    "tiny": (384, 6, 4),
    "base": (512, 8, 6),
    "small": (768, 12, 12),
    "medium": (1024, 16, 24),
    "large-v2": (1280, 20, 32),
}


def read_wav_i16(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def perturb_(module, gen, scale=0.2, fan_in=False):
    """Add N(0, scale) to every float parameter and buffer. With `fan_in` (full-size models), matrices get
    N(0, 1/sqrt(fan_in)) instead, the magnitude of trained weights: N(0, 0.2) on a 1280-wide, 32-layer model drives the
    residual stream to thousands and makes the random network chaotic (f32 rounding amplified far beyond what real
    weights do), which says nothing about the port."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                s = scale
                if fan_in and t.dim() >= 2:
                    s = 1.0 / math.sqrt(t[0].numel())
                t.add_(torch.randn(t.shape, generator=gen) * s)


def bucket(i):
    """The Python project's AudioSet mapping (dams/utils/audioset_mapping.py)."""
    if i <= 26 or i in (38, 39) or 41 <= i <= 50 or i in (58, 59):
        return 0
    if 27 <= i <= 37 or i == 40 or 137 <= i <= 282:
        return 1
    return 2


def noisy_or(logits):
    p = torch.sigmoid(logits.double())
    out = []
    for b in range(3):
        idx = [i for i in range(527) if bucket(i) == b]
        out.append(1.0 - torch.prod(1.0 - p[idx]).item())
    return torch.tensor(out, dtype=torch.float32)


def build(size, seed, decoder=True):
    d, h, layers = SIZES[size]
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=d,
        n_audio_head=h,
        n_audio_layer=layers,
        n_vocab=51865 if (decoder and size != "tiny-test") else 64,
        n_text_ctx=448 if (decoder and size != "tiny-test") else 8,
        n_text_state=d,
        n_text_head=h,
        n_text_layer=(layers if size != "tiny-test" else 1) if decoder else 1,
    )
    gen = torch.Generator().manual_seed(seed)
    model = Whisper(dims)
    if not decoder:
        # A minimal decoder (the port never reads it): keeps the full-size file small.
        pass
    perturb_(model, gen, fan_in=size != "tiny-test")
    low_width = 16 if size == "tiny-test" else 512
    low = ATModel(n_layer=layers, rep_dim=d, mode=f"tl_down_tr_{low_width}_1_8")
    perturb_(low, gen, fan_in=size != "tiny-test")
    return dims, model, low


def save(out, stem, dims, model, low):
    # State dicts as `state_dict()` returns them (OrderedDict with its `_metadata` attribute, which the pickle
    # restores with BUILD), like the published files.
    sd = model.state_dict()

    def subset(keep, cast, rename=lambda k: k, src=sd):
        out = OrderedDict((rename(k), cast(v).contiguous()) for k, v in src.items() if keep(k))
        out._metadata = src._metadata
        return out

    whisper_sd = subset(lambda k: not k.startswith("at_model."), lambda v: v.half())
    torch.save({"dims": dims.__dict__, "model_state_dict": whisper_sd}, os.path.join(out, "whisper.pt"))
    at_sd = subset(lambda k: k.startswith("at_model."), lambda v: v.float())
    torch.save(at_sd, os.path.join(out, "whisper_at.pth"))
    low_sd = subset(lambda k: True, lambda v: v.float(), rename=lambda k: f"at_model.{k}", src=low.state_dict())
    torch.save(low_sd, os.path.join(out, "whisper_at_low.pth"))


def load(out, stem, low_width, low_file=True):
    """As whisper_at.load_model: merge the two state dicts into a fresh model, strict."""
    ckpt = torch.load(os.path.join(out, "whisper.pt"), map_location="cpu")
    at = torch.load(os.path.join(out, "whisper_at.pth"), map_location="cpu")
    dims = ModelDimensions(**ckpt["dims"])
    model = Whisper(dims)
    merged = {}
    merged.update(ckpt["model_state_dict"])
    merged.update(at)
    model.load_state_dict(merged, strict=True)
    if not low_file:
        return model.eval(), None
    low = ATModel(n_layer=dims.n_audio_layer, rep_dim=dims.n_audio_state, mode=f"tl_down_tr_{low_width}_1_8")
    low_sd = torch.load(os.path.join(out, "whisper_at_low.pth"), map_location="cpu")
    low.load_state_dict({k[len("at_model."):]: v for k, v in low_sd.items()}, strict=True)
    return model.eval(), low.eval()


@torch.no_grad()
def run_context(model, low, audio, context):
    """(mel [80, F], pooled [L, T, d], tl_tr logits [527], tl_down_tr logits [527]) for one clip."""
    x = torch.from_numpy(audio)
    enc = model.encoder
    if context == 30:
        mel = log_mel_spectrogram(x, padding=N_SAMPLES)  # transcribe(): the clip + 30 s of zeros
        seg = pad_or_trim(mel[:, :3000], 3000)  # seek = 0
        _, pooled = enc(seg.unsqueeze(0))
    else:
        mel = log_mel_spectrogram(pad_or_trim(x, 10 * SR))  # 1000 frames, no padding (training features)
        seg = mel
        full = enc.positional_embedding
        enc.positional_embedding = full[:500]
        try:
            _, pooled = enc(seg.unsqueeze(0))
        finally:
            enc.positional_embedding = full
    logits = model.at_model(pooled, time_resolution=10)[0]
    logits_low = low(pooled, time_resolution=10)[0]
    return seg, pooled, logits, logits_low


def make_reader_cases(out):
    """`reader_cases.pt`: what `torch.save` writes beyond plain contiguous fp16/fp32 tensors, for the checkpoint
    reader's tests (`src/teachers/weights/torch.rs`): a transposed view (strides), a slice into a shared storage
    (offset), bf16 and f64 storages, an `nn.Parameter` (`_rebuild_parameter`), an int64 tensor, nested containers; and
    `reader_cases.json` with the expected values."""
    g = torch.Generator().manual_seed(7)
    base = torch.randn(3, 4, generator=g)
    obj = OrderedDict()
    obj["transposed"] = base.t()  # [4, 3], strides (1, 4)
    obj["slice"] = base[1:, 1:3]  # offset 5, strides (4, 1)
    obj["bf16"] = torch.randn(5, generator=g).to(torch.bfloat16)
    obj["f64"] = torch.randn(2, 2, generator=g, dtype=torch.float64)
    obj["param"] = torch.nn.Parameter(torch.randn(3, generator=g))
    obj["ints"] = torch.arange(4)
    obj["scalar"] = torch.tensor(2.5)
    torch.save({"tensors": obj, "meta": {"name": "cases", "n": 3, "xs": [1.5, None, True]}}, os.path.join(out, "reader_cases.pt"))
    expect = {k: v.detach().double().flatten().tolist() for k, v in obj.items() if k != "ints"}
    expect["shapes"] = {k: list(v.shape) for k, v in obj.items()}
    with open(os.path.join(out, "reader_cases.json"), "w") as f:
        json.dump(expect, f)


def frames_touching_audio(n_samples):
    """Frames (hop 160, window 400 centred) whose window holds at least one clip sample."""
    return int(math.floor((n_samples - 1 + 200) / 160)) + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="tiny-test", choices=sorted(SIZES))
    ap.add_argument("--no-decoder", action="store_true", help="a 1-layer, 64-token decoder (full-size files)")
    ap.add_argument("--seed", type=int, default=1717)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    stem = "whisper_tiny" if args.size == "tiny-test" else f"whisper_{args.size}_random"
    dims, model, low = build(args.size, args.seed, decoder=not args.no_decoder)
    save(args.out, stem, dims, model, low)
    if args.size == "tiny-test":
        make_reader_cases(args.out)
    low_width = 16 if args.size == "tiny-test" else 512
    model, low = load(args.out, stem, low_width)

    names = sorted(f[:-4] for f in os.listdir(CLIP_DIR) if f.endswith(".wav"))
    clips = [(n, read_wav_i16(os.path.join(CLIP_DIR, n + ".wav"))) for n in names]
    by_name = dict(clips)
    order = ["speech_lj001", "noise_typing", "music_sugarplum"]
    tiled = np.concatenate([by_name[n] for n in order])
    tiled = np.tile(tiled, int(math.ceil(10 * SR / len(tiled))))[: 10 * SR].astype(np.float32)
    clips.append(("tiled10", tiled))
    if args.size != "tiny-test":
        clips = clips[-1:]  # the full-size check uses the 10 s clip only

    from safetensors.torch import save_file

    tensors = {}
    meta = {
        "stem": stem,
        "dims": dims.__dict__,
        "low_width": low_width,
        "versions": {
            "whisper_at": "0.5",
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "clips": [],
    }
    for name, audio in clips:
        entry = {"name": name, "samples": int(len(audio)), "contexts": {}}
        for context in (30, 10):
            mel, pooled, logits, logits_low = run_context(model, low, audio, context)
            n_frames = mel.shape[1]
            touch = min(frames_touching_audio(len(audio)), n_frames)
            sel = list(range(0, min(touch, 16)))
            sel += list(range(max(touch - 12, 0), min(touch + 4, n_frames)))
            sel = sorted(set(sel))
            k = f"{name}.c{context}"
            tensors[f"{k}.mel"] = mel[:, sel].contiguous().float()
            tensors[f"{k}.pooled"] = pooled.contiguous().float()
            tensors[f"{k}.logits"] = logits.contiguous().float()
            tensors[f"{k}.logits_low"] = logits_low.contiguous().float()
            tensors[f"{k}.scores"] = noisy_or(logits)
            entry["contexts"][str(context)] = {
                "mel_frames": sel,
                "n_frames": int(n_frames),
                "mel_max": float(mel.max()),
                "pooled_shape": list(pooled.shape),
            }
        meta["clips"].append(entry)
    save_file(tensors, os.path.join(args.out, "goldens.safetensors"))
    with open(os.path.join(args.out, "goldens.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("wrote", args.out, {k: list(v.shape) for k, v in list(tensors.items())[:6]})


if __name__ == "__main__":
    main()
