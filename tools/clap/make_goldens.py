#!/usr/bin/env python3
"""Golden fixtures for dams' CLAP port (tests/clap.rs), made with Hugging Face `transformers` and `torchaudio`.

What it writes (`--out`, default tests/reference/clap/tiny):
  * a tiny random `ClapModel` (HTSAT + RoBERTa, `TINY` below) saved exactly as `save_pretrained` does
    (`model.safetensors` + `config.json`), with EVERY parameter perturbed by N(0, 0.2) and the BatchNorm running
    statistics randomised (HF initialises LayerNorms to (1, 0), relative-position tables and biases to 0, which would
    hide ordering and transposition bugs);
  * a small byte-level BPE tokenizer in RoBERTa's exact pipeline (ByteLevel pre-tokenizer, RobertaProcessing
    `<s> ... </s>`), trained here on the prompts and a few sentences with non-ASCII text (the real 50265-token
    vocabulary would not fit a fixture), saved by `RobertaTokenizerFast.save_pretrained` (`tokenizer.json`,
    `vocab.json`, `merges.txt`, ...), and `preprocessor_config.json` (the LAION front-end settings: 48 kHz, 64 mels,
    50-14000 Hz, `rand_trunc`, `repeatpad`);
  * `goldens.safetensors` + `goldens.json` from a real 16 kHz clip of the demo workspace (data/demo, see its
    ATTRIBUTION.md): the 16 -> 48 kHz waveform of `torchaudio.functional.resample` (defaults), the
    `ClapFeatureExtractor` mel, the pooled audio and text features, the projected embeddings, `logits_per_audio`, and
    the scores of the `zero-shot-audio-classification` pipeline exactly as the Python project calls it; token ids of
    prompts including non-ASCII ones.

Usage:
  python tools/clap/make_goldens.py                       # the committed fixture
  python tools/clap/make_goldens.py --full /tmp/clap-larger-random   # larger_clap config, random weights (~776 MB,
                                                          # NOT committed: `dams bench clap` and the ignored test)

Tested with: python 3.11, torch 2.x (PyPI CPU/CUDA wheel), torchaudio (same minor as torch), transformers 5.x,
tokenizers 0.2x, numpy, soundfile, safetensors (the exact versions are recorded in goldens.json).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import soundfile as sf
import torch
import transformers
from safetensors.torch import save_file
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, RobertaTokenizerFast, pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The Python project's prompts (apply_clap.py), wrapped by the pipeline's template "This is a sound of {}.".
PROMPTS = [
    "An audio recording where clear spoken human voice is the main sound in the foreground (talking, announcements, "
    "conversation or monologue). Any music or background noise is quiet and not the focus.",
    "An audio recording where music is the main sound in the foreground (instruments and or singing with melody or "
    "rhythm). Any speech is brief or in the background and not the focus.",
    "An audio recording that contains environmental or background noise only (traffic, nature, machinery, room tone, "
    "crowd hubbub) with no clearly intelligible speech and no clear melodic music.",
]
TEMPLATE = "This is a sound of {}."

# Strings whose token ids the Rust tokenizer must reproduce exactly (non-ASCII, spaces, specials as text, ...).
TOKENIZER_CASES = [
    "This is a sound of speech.",
    "This is a sound of Ça sonne très bien — une émission de radio.",
    "This is a sound of 音楽 and ラジオ.",
    "  leading and   repeated   spaces\tand a tab\n",
    "emoji 🎵🎶 and ümlauts: Größe, naïve café",
    "<s> literal special tokens </s> <pad> <mask>",
    "",
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
]

CORPUS = PROMPTS + [TEMPLATE.format(p) for p in PROMPTS] + [
    "speech music noise radio broadcast talk show jingle advertisement weather news",
    "Ça sonne très bien — une émission de radio française, musique et paroles.",
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
    "音楽 ラジオ 放送 雑音 音声",
    "dead air, static, hum, hiss, crowd murmur, applause, rain, birds, engine",
]

TINY = dict(
    text_config=dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        projection_dim=16,
        max_position_embeddings=130,
        layer_norm_eps=1e-5,
    ),
    audio_config=dict(
        window_size=8,
        patch_embeds_hidden_size=8,
        depths=[2, 2, 2, 2],
        num_attention_heads=[1, 2, 2, 4],
        hidden_size=64,
        projection_dim=16,
        enable_fusion=False,
        spec_size=256,
        num_mel_bins=64,
    ),
    projection_dim=16,
)

# laion/larger_clap_music_and_speech: HTSAT-base audio tower, RoBERTa-base text tower, 512-d projections.
LARGER = dict(
    text_config=dict(projection_dim=512),
    audio_config=dict(
        window_size=8,
        patch_embeds_hidden_size=128,
        depths=[2, 2, 12, 2],
        num_attention_heads=[4, 8, 16, 32],
        hidden_size=1024,
        projection_dim=512,
        enable_fusion=False,
        spec_size=256,
        num_mel_bins=64,
    ),
    projection_dim=512,
)

FRONT = dict(
    feature_size=64,
    sampling_rate=48_000,
    hop_length=480,
    max_length_s=10,
    fft_window_size=1024,
    frequency_min=50,
    frequency_max=14_000,
    truncation="rand_trunc",
    padding="repeatpad",
)

# The real clip: 10 s of the demo show (speech over music) and 3 s of a speech clip (exercises `repeatpad`).
CLIP = ("data/demo/a_show01.flac", 5.0, 10.0)
SHORT = ("data/demo/a013.flac", 1.0, 3.0)


def read_clip(spec):
    path, start, dur = spec
    x, sr = sf.read(os.path.join(ROOT, path), dtype="float32", always_2d=True)
    assert sr == 16_000, (path, sr)
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    a = int(round(start * sr))
    return np.ascontiguousarray(x[a : a + int(round(dur * sr))], dtype=np.float32)


def resample_48k(x16):
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(x16)[None], 16_000, 48_000)[0].numpy()


def make_tokenizer(out_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                      add_prefix_space=False)
    tmp = os.path.join(out_dir, "_raw_tokenizer.json")
    tok.save(tmp)
    fast = RobertaTokenizerFast(tokenizer_file=tmp, model_max_length=512)
    os.remove(tmp)
    fast.save_pretrained(out_dir)
    return fast


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
        bn = model.audio_model.audio_encoder.batch_norm
        bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=g) * 3.0 - 20.0)
        bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) * 300.0 + 50.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/reference/clap/tiny"))
    ap.add_argument("--full", help="write a random-weight larger_clap checkpoint here instead (not a fixture)")
    args = ap.parse_args()
    torch.manual_seed(0)

    if args.full:
        os.makedirs(args.full, exist_ok=True)
        cfg = ClapConfig(**LARGER)
        model = ClapModel(cfg).eval()
        perturb(model, 1)
        model.save_pretrained(args.full)
        ClapFeatureExtractor(**FRONT).save_pretrained(args.full)
        # The tiny BPE (ids < vocab) stands in for RoBERTa's: the benchmark measures compute, not the vocabulary.
        make_tokenizer(args.full)
        print("wrote", args.full)
        return

    out = args.out
    os.makedirs(out, exist_ok=True)
    tok = make_tokenizer(out)
    cfg = ClapConfig(**TINY)
    cfg.text_config.vocab_size = len(tok)
    cfg = ClapConfig(**{**TINY, "text_config": {**TINY["text_config"], "vocab_size": len(tok)}})
    model = ClapModel(cfg).eval()
    perturb(model, 0)
    model.save_pretrained(out)
    fe = ClapFeatureExtractor(**FRONT)
    fe.save_pretrained(out)

    x16 = read_clip(CLIP)
    x48 = resample_48k(x16)
    s16 = read_clip(SHORT)
    s48 = resample_48k(s16)
    assert x48.shape == (480_000,), x48.shape
    feats = fe(x48, sampling_rate=48_000, return_tensors="pt")
    sfeats = fe(s48, sampling_rate=48_000, return_tensors="pt")
    # `repeatpad` on an input dams holds exactly (the first 3 s of the stored 48 kHz waveform): the front end alone.
    rfeats = fe(x48[:144_000], sampling_rate=48_000, return_tensors="np")
    mel = feats["input_features"]  # [1, 1, 1001, 64]
    smel = sfeats["input_features"]
    assert mel.shape == (1, 1, 1001, 64), mel.shape

    # How far the extractor's mel moves when only the f32 rounding of the 48 kHz waveform changes: the same torchaudio
    # resampling done in float64, rounded to f32 once. Above 8 kHz (the 16 kHz source's Nyquist) the mel is the
    # resampler's stopband at -90..-100 dB, so this is far above 1e-3 dB there. dams' whole path (its own f32
    # resampler, then the mel) is held to these figures; its front end alone to 1e-3 dB on `wav48` itself.
    hz = np.arange(fe.mel_filters_slaney.shape[0]) * FRONT["sampling_rate"] / FRONT["fft_window_size"]
    low = np.array([np.all((hz < 8_000) | (fe.mel_filters_slaney[:, k] == 0)) for k in range(FRONT["feature_size"])])

    def rounding_noise(x16_, mel_):
        import torchaudio.functional as AF

        x64 = AF.resample(torch.from_numpy(x16_.astype(np.float64))[None], 16_000, 48_000)[0].numpy()
        m = fe(x64.astype(np.float32), sampling_rate=48_000, return_tensors="np")["input_features"][0, 0]
        d = np.abs(m[::4] - mel_) if len(mel_) < len(m) else np.abs(m - mel_)
        return {"wave_max_abs": float(np.abs(x64 - resample_48k(x16_)).max()),
                "mel_db_below_8k": float(d[:, low].max()), "mel_db_all": float(d.max())}

    noise = {"clip": rounding_noise(x16, mel[0, 0].numpy()),
             "short_clip": rounding_noise(s16, smel[0, 0].numpy()[::4])}

    sequences = [TEMPLATE.format(p) for p in PROMPTS]
    text_in = tok(sequences, return_tensors="pt", padding=True)
    with torch.no_grad():
        out_m = model(input_ids=text_in["input_ids"], attention_mask=text_in["attention_mask"],
                      input_features=mel, is_longer=feats["is_longer"])
        s_audio = model.get_audio_features(input_features=smel).pooler_output
        audio_pooled = model.audio_model(input_features=mel).pooler_output
        text_pooled = model.text_model(input_ids=text_in["input_ids"],
                                       attention_mask=text_in["attention_mask"]).pooler_output
    # The pipeline exactly as the Python project calls it (multi_label/top_k are ignored by transformers).
    clf = pipeline("zero-shot-audio-classification", model=model, tokenizer=tok, feature_extractor=fe, device="cpu")
    res = clf(x48, candidate_labels=PROMPTS)
    pipe_scores = [next(r["score"] for r in res if r["label"] == p) for p in PROMPTS]

    ids = text_in["input_ids"]
    mask = text_in["attention_mask"]
    prompt_ids = [ids[i][mask[i].bool()].tolist() for i in range(len(sequences))]
    cases = [{"text": t, "ids": tok(t)["input_ids"]} for t in TOKENIZER_CASES]

    f32 = lambda t: torch.as_tensor(np.asarray(t, dtype=np.float32)).contiguous()
    tensors = {
        # The whole waveform: the mel above 8 kHz (the 16 kHz source's Nyquist) is the resampler's stopband at
        # -90..-100 dB, where an f32 rounding difference of the waveform moves it by 1e-2 dB, so the front end is
        # compared on exactly this input.
        "wav48": f32(x48),
        "short_wav48_stride32": f32(s48[::32]),
        "mel": f32(mel[0, 0].numpy()),
        "short_mel_rows4": f32(smel[0, 0].numpy()[::4]),
        "repeatpad_mel_rows4": f32(rfeats["input_features"][0, 0][::4]),
        "audio_pooled": f32(audio_pooled.numpy()),
        "audio_embeds": f32(out_m.audio_embeds.numpy()),
        "short_audio_embeds": f32(s_audio.numpy()),
        "text_pooled": f32(text_pooled.numpy()),
        "text_embeds": f32(out_m.text_embeds.numpy()),
        "logits_per_audio": f32(out_m.logits_per_audio.numpy()),
        "pipeline_scores": f32(pipe_scores),
    }
    save_file(tensors, os.path.join(out, "goldens.safetensors"))
    import tokenizers as tk
    import torchaudio

    meta = {
        "clip": {"path": CLIP[0], "start_s": CLIP[1], "duration_s": CLIP[2],
                 "sha256_f32le": hashlib.sha256(x16.astype("<f4").tobytes()).hexdigest()},
        "short_clip": {"path": SHORT[0], "start_s": SHORT[1], "duration_s": SHORT[2],
                       "sha256_f32le": hashlib.sha256(s16.astype("<f4").tobytes()).hexdigest()},
        "reference_f32_noise": noise,
        "template": TEMPLATE,
        "prompts": PROMPTS,
        "prompt_ids": prompt_ids,
        "tokenizer_cases": cases,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "torchaudio": torchaudio.__version__, "transformers": transformers.__version__,
                     "tokenizers": tk.__version__, "numpy": np.__version__},
    }
    with open(os.path.join(out, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    print("pipeline scores", pipe_scores)
    print("wrote", out)


if __name__ == "__main__":
    main()
