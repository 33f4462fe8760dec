#!/usr/bin/env python3
"""Golden fixtures for dams' M2D-CLAP port (tests/m2d.rs), made with the reference `portable_m2d.py` of nttcslab/m2d.

The reference file is not open source: it is NOT in this repository. Point `--portable` at a copy (dams' team keeps
one outside the repo); this script imports it and calls it, it does not reproduce it.

What it does
  * builds a tiny random M2D-CLAP with the reference classes: `LocalViT` on the real 80×1001 input and 16×16 patches
    (5×62 grid, 311 positions with cls) but width 64, 2 blocks, 1 head (head width 64, as ViT-B), MLP ratio 2; the
    2025 semantic projector `add_semantic_audio_proj(1, 64)` (1 block, 1 head, LayerNorm eps 1e-5); a linear
    `text_proj` 128→64; and a tiny BERT (`transformers.BertModel`: width 128, 2 heads, 2 layers, FFN 192, 96
    positions, the vocabulary of the tiny WordPiece tokenizer below) as `BertXEncoder.text_encoder`;
  * perturbs EVERY parameter with N(0, 0.2) (norm_stats included: LayerNorms are not (1, 0), cls/pos/sem tokens not 0);
  * saves it as the published checkpoint is saved: `torch.save({'model': state_dict, 'args': argparse.Namespace,
    'epoch': 30})` in fp32, in a folder named like the real one (`m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025/
    checkpoint-30.pth`); the state dict holds the audio model's keys at the top level, `audio_proj.*`, `text_proj.*`,
    `text_encoder.text_encoder.*` (BERT, pooler included) and a few pretraining-only keys (`mask_token`,
    `target_blocks.*`, `target_norm.*`, `decoder_*`) that loaders must drop;
  * writes a tiny WordPiece `tokenizer.json` (BERT normaliser with lower-casing and accent stripping, BERT
    pre-tokeniser, [CLS]/[SEP] template), trained on the three prompts with a small vocabulary so that words split
    into ##pieces and some characters are [UNK];
  * loads the model back through the reference loader `PortableM2D(weight_file, flat_features=True)` exactly as the
    Python project's `apply_m2d.py` does (the reference hard-codes ViT-B sizes, so `LocalViT` is wrapped to build the
    tiny sizes; `BertXEncoder.__init__` is replaced to build the tiny BERT and tokenizer offline; everything else —
    checkpoint parsing, key dropping, make_it_CLAP, norm_stats, nnAudio front end, encode_lms, encode_clap_audio,
    encode_clap_text with truncate=True, text_proj — is the reference code);
  * goldens for the first 10 s of real demo clips (data/demo/a003.flac, a005.flac; 16 kHz mono, int16/32768):
    normalised log-mel frames (listed in goldens.json), the flat patch tokens [310, 64] after the final norm, the
    CLAP audio embedding [64]; per prompt: token ids, BERT CLS [128], the projected text embedding [64]; the cosine
    scores [clips, 3]; nnAudio's mel filter bank [80, 201]; and token ids of extra strings for the tokenizer test;
  * two tiny state dicts with the key prefixes the reference handles (`prefix_runtime.pth`: `backbone.`,
    `prefix_evar.pth`: `module.ar.runtime.backbone.`), values arange so a test sees which tensor a name reads.

Run (dev time only; tests never need Python):
  python3 -m venv venv && venv/bin/pip install torch timm einops nnAudio transformers numpy safetensors soundfile
  venv/bin/python tools/m2d/make_goldens.py --portable /path/to/portable_m2d.py --out tests/reference/m2d/tiny
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.numpy import save_file

SR = 16_000
SEG = 160_000
DIM = 64
TEXT_DIM = 128
PROMPTS = [
    # The Python project's apply_m2d.py prompts (speech, music, noise).
    "Human speech: talking, conversation, announcer, DJ, interview, narration. Includes breath sounds, laughter, "
    "sighs, coughs, lip noises. Clear vocal formants, not singing.",
    "Music: instruments, melody, rhythm, harmony, beat patterns. Includes singing, rap, humming, whistling, and "
    "background music beds. Musical structure, not ordinary speech.",
    "Noise: environmental and mechanical sound such as static, rumble, wind, traffic, crowd murmur, microphone hiss. "
    "Background sound without clear words or melody.",
]
EXTRA_TEXTS = [
    "ÉCOUTE: Café-Musique, naïve DJ's (1998)!",
    "  Tabs\tand\nnewlines   ",
    "speech漢字 music — noise…",
    "",
]
CLIPS = ["a003", "a005"]
FRAMES = list(range(0, 16)) + list(range(496, 512)) + list(range(985, 1001))


def load_reference(path):
    spec = importlib.util.spec_from_file_location("portable_m2d", path)
    pm = importlib.util.module_from_spec(spec)
    sys.modules["portable_m2d"] = pm
    spec.loader.exec_module(pm)
    return pm


def make_tokenizer(out_dir):
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # Alphabet of lower-case ASCII only: accented letters are stripped by the normaliser, CJK becomes [UNK].
    trainer = trainers.WordPieceTrainer(vocab_size=150, special_tokens=special, min_frequency=1,
                                        initial_alphabet=list("abcdefghijklmnopqrstuvwxyz0123456789"),
                                        limit_alphabet=40)
    corpus = [p.lower() for p in PROMPTS] * 3
    tok.train_from_iterator(corpus, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    path = out_dir / "tokenizer.json"
    tok.save(str(path))
    return path


def write_prefix_cases(out):
    """Two tiny state dicts with the key prefixes the reference loader handles (values = arange, to see which tensor
    a name reads): a RuntimeM2D checkpoint (`backbone.` — only those keys are the audio model; BERT stays under
    `text_encoder.`) and an EVAR fine-tuning (`module.ar.runtime.backbone.`, plus its head)."""
    t = lambda n, off: torch.arange(n, dtype=torch.float32) + off
    runtime = {
        "backbone.cls_token": t(4, 100).reshape(1, 1, 4),
        "backbone.norm.weight": t(4, 200),
        "text_encoder.text_encoder.embeddings.LayerNorm.weight": t(3, 300),
        "offline_text_proj.weight": t(2, 400),
    }
    evar = {
        "module.ar.runtime.backbone.cls_token": t(4, 500).reshape(1, 1, 4),
        "module.head.mlp.mlp.0.weight": t(6, 600).reshape(3, 2),
    }
    torch.save({"model": runtime, "args": argparse.Namespace(model="m2d_clap_vit_base")}, out / "prefix_runtime.pth")
    torch.save({"model": evar}, out / "prefix_evar.pth")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--portable", required=True, help="path to portable_m2d.py (reference, not in the repo)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--demo", default=str(Path(__file__).resolve().parents[2] / "data" / "demo"))
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--prefix-cases-only", action="store_true", help="write only prefix_{runtime,evar}.pth")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_prefix_cases(out)
    if a.prefix_cases_only:
        return
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)

    pm = load_reference(a.portable)
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok_path = make_tokenizer(out)
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=str(tok_path), unk_token="[UNK]", pad_token="[PAD]",
                                     cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    vocab = hf_tok.backend_tokenizer.get_vocab_size()
    bert_cfg = BertConfig(vocab_size=vocab, hidden_size=TEXT_DIM, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=192, max_position_embeddings=96, hidden_act="gelu",
                          layer_norm_eps=1e-12, type_vocab_size=2)

    # The tiny sizes: the reference's get_backbone builds LocalViT(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4).
    OrigViT = pm.LocalViT

    def tiny_vit(**kw):
        kw.update(embed_dim=DIM, depth=2, num_heads=1, mlp_ratio=2)
        return OrigViT(**kw)

    def tiny_bert_init(self, clip_weight=None):
        torch.nn.Module.__init__(self)
        self.tokenizer = hf_tok
        # eval(), as AutoModel.from_pretrained returns it (dropout off).
        self.text_encoder = BertModel(bert_cfg, add_pooling_layer=True).eval()

    # 1. Build and perturb.
    vit = tiny_vit(in_chans=1, img_size=[80, 1001], patch_size=[16, 16],
                   norm_layer=__import__("functools").partial(torch.nn.LayerNorm, eps=1e-6))
    vit.audio_proj = pm.add_semantic_audio_proj(1, DIM)
    vit.text_proj = torch.nn.Linear(TEXT_DIM, DIM)
    bert = pm.BertXEncoder.__new__(pm.BertXEncoder)
    tiny_bert_init(bert)
    with torch.no_grad():
        for m in (vit, bert):
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.2)
        # norm_stats near the 2022 defaults, perturbed too.
        vit.norm_stats.copy_(torch.tensor([-7.1, 4.2]) + torch.randn(2) * 0.2)

    sd = {}
    for k, v in vit.state_dict().items():
        sd[k] = v.detach().clone().contiguous()
    for k, v in bert.state_dict().items():
        sd["text_encoder." + k] = v.detach().clone().contiguous()
    assert any(k.startswith("text_encoder.text_encoder.pooler.") for k in sd)
    # Pretraining-only keys that the reference loader drops (target encoder, decoder, mask token).
    g = torch.Generator().manual_seed(a.seed + 1)
    sd["mask_token"] = torch.randn(1, 1, DIM, generator=g)
    sd["target_blocks.0.norm1.weight"] = torch.randn(DIM, generator=g)
    sd["target_norm.weight"] = torch.randn(DIM, generator=g)
    sd["decoder_embed.weight"] = torch.randn(8, DIM, generator=g)
    sd["decoder_pos_embed"] = torch.randn(1, 4, 8, generator=g)
    args = argparse.Namespace(model="m2d_clap_vit_base", input_size=[80, 1001], patch_size=[16, 16], epochs=30,
                              note="tiny random M2D-CLAP for dams parity tests")
    tmp = Path(tempfile.mkdtemp())
    wdir = tmp / "m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025"
    wdir.mkdir()
    weight_file = wdir / "checkpoint-30.pth"
    torch.save({"model": sd, "args": args, "epoch": 30}, weight_file)
    shutil.copy(weight_file, out / "checkpoint-30.pth")

    # 2. Load back through the reference loader.
    pm.LocalViT = tiny_vit
    pm.BertXEncoder.__init__ = tiny_bert_init
    model = pm.PortableM2D(str(weight_file), flat_features=True)
    model.eval()
    model.get_clap_text_encoder()
    assert not model.text_encoder.text_encoder.training
    assert model.backbone.audio_proj.__class__.__name__ == "AudioToSemantic"

    # 3. Audio goldens.
    goldens = {}
    clips_meta = []
    wavs = []
    for name in CLIPS:
        x, sr = sf.read(str(Path(a.demo) / f"{name}.flac"), dtype="int16")
        assert sr == SR and x.ndim == 1, (sr, x.shape)
        x = x.astype(np.float32) / 32768.0
        x = x[:SEG]
        x = np.pad(x, (0, SEG - len(x)))
        wavs.append(x)
    batch = torch.tensor(np.stack(wavs))
    with torch.no_grad():
        lms = model.to_normalized_feature(batch)  # [B, 1, 80, 1001]
        tokens = model.encode(batch)  # [B, 310, D]
        emb = model.encode_clap_audio(batch)  # [B, D]
        text = model.encode_clap_text(PROMPTS, truncate=True)  # [3, D]
        enc = model.text_encoder.tokenizer(PROMPTS, padding="longest", truncation=True, max_length=512,
                                           return_tensors="pt")
        cls = model.text_encoder.text_encoder(input_ids=enc.input_ids, attention_mask=enc.attention_mask)[0][:, 0, :]
    assert lms.shape == (2, 1, 80, 1001), lms.shape
    assert tokens.shape == (2, 310, DIM), tokens.shape
    a_n = torch.nn.functional.normalize(emb.float(), dim=-1)
    t_n = torch.nn.functional.normalize(text.float(), dim=-1)
    scores = a_n @ t_n.T
    for i, name in enumerate(CLIPS):
        goldens[f"{name}.lms_frames"] = lms[i, 0][:, FRAMES].numpy().astype(np.float32)
        goldens[f"{name}.tokens"] = tokens[i].numpy().astype(np.float32)
        goldens[f"{name}.audio_emb"] = emb[i].numpy().astype(np.float32)
        goldens[f"{name}.scores"] = scores[i].numpy().astype(np.float32)
        clips_meta.append({"name": name, "file": f"data/demo/{name}.flac", "samples_used": SEG})
    goldens["text.cls"] = cls.numpy().astype(np.float32)
    goldens["text.emb"] = text.numpy().astype(np.float32)
    goldens["mel_filters"] = model.to_spec.mel_basis.detach().numpy().astype(np.float32)
    ids = []
    for p in PROMPTS:
        e = model.text_encoder.tokenizer(p, truncation=True, max_length=512)
        ids.append(e["input_ids"])
    extra = [{"text": t, "ids": hf_tok(t)["input_ids"]} for t in EXTRA_TEXTS]
    save_file(goldens, str(out / "goldens.safetensors"))
    meta = {
        "made_by": "tools/m2d/make_goldens.py (reference: nttcslab/m2d examples/portable_m2d.py)",
        "torch": torch.__version__,
        "seed": a.seed,
        "dims": {"embed_dim": DIM, "depth": 2, "heads": 1, "mlp_ratio": 2, "sem_blocks": 1, "text_dim": TEXT_DIM,
                 "text_layers": 2, "text_heads": 2, "text_ffn": 192, "vocab": vocab},
        "norm_stats": [float(v) for v in model.backbone.norm_stats.detach()],
        "frames": FRAMES,
        "clips": clips_meta,
        "prompts": PROMPTS,
        "prompt_ids": ids,
        "tokenizer_cases": extra,
        "padded_ids_shape": list(enc.input_ids.shape),
    }
    (out / "goldens.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(tmp)
    print("scores", scores.numpy())
    for f in sorted(out.iterdir()):
        print(f.name, f.stat().st_size)


if __name__ == "__main__":
    main()
