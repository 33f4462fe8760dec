#!/usr/bin/env python3
"""Goldens for dams' port of inaSpeechSegmenter's speech/music/noise segmenter (tests/ina.rs).

Runs the REAL inaSpeechSegmenter (PyPI `inaspeechsegmenter`, TensorFlow on the CPU; `Segmenter(vad_engine='smn',
detect_gender=False, ffmpeg=None)`, so files are read with soundfile exactly as 16-bit PCM / 32768, the way dams
decodes them) on INA's own test media and on committed demo clips, and writes into tests/reference/ina/:

  goldens.safetensors  per input NAME (all float32):
    NAME.loge            [T]          SIDEKIT log-energy per 10 ms frame
    NAME.mspec           [T, 24]      SIDEKIT log-mel (short inputs), or
    NAME.mspec@S         [300, 24]    frames S..S+300 of it (long inputs, three windows)
    NAME.patch_index     [k]          indices of a few patches (edges, both paddings, middle)
    NAME.patches         [k, 68, 21]  those patches after INA's normalisation (`_get_patches`)
    NAME.finite          [P]          1 where INA's patch is finite
    NAME.activity        [P]          energy activity (`_energy_activity(loge, 0.03)[::2]`), 1 = 'energy'
    NAME.posteriors      [P, 3]       the CNN's softmax (speech, music, noise) for EVERY patch, before Viterbi
                                      (INA only classifies 'energy' patches; a patch's output does not depend on
                                      the others); non-finite patches hold 0.5 as INA sets them
  goldens.json         versions, inputs, and INA's final segmentation per input (`Segmenter.__call__`), as
                       [label, start_patch, stop_patch, start_s, stop_s] (patches are 20 ms)

The model file must be where inaSpeechSegmenter looks (`~/.keras/inaSpeechSegmenter/`
`keras_speech_music_noise_cnn.hdf5`; for root `/root/.keras/inaSpeechSegmenter/`), so nothing is downloaded.

Usage (from the repository root):
  python tools/ina/make_goldens.py --musanmix /path/to/inaSpeechSegmenter/media/musanmix.wav
The first run copies musanmix into tests/reference/ina/musanmix.flac (lossless); later runs read the copy.
"""

import argparse
import json
import os
import sys

import numpy as np
import soundfile as sf

import inaSpeechSegmenter
from inaSpeechSegmenter import Segmenter
from inaSpeechSegmenter.segmenter import _energy_activity, _get_patches, _media2feats

from convert_weights import write_safetensors  # the same writer as the weights (this folder)

OUT = "tests/reference/ina"
# name -> path relative to the repository root. Demo clips are 16 kHz mono FLAC (see data/demo/ATTRIBUTION.md).
INPUTS = {
    "musanmix": f"{OUT}/musanmix.flac",
    "short_a013": f"{OUT}/short_a013.wav",
    "a005": "data/demo/a005.flac",
    "a007": "data/demo/a007.flac",
    "a008": "data/demo/a008.flac",
    "a017": "data/demo/a017.flac",
    "a_show01": "data/demo/a_show01.flac",
}
LONG = {"musanmix", "a_show01"}
WINDOW = 300


def prepare_inputs(musanmix):
    dst = INPUTS["musanmix"]
    if not os.path.exists(dst):
        if not musanmix:
            sys.exit(f"{dst} is missing: pass --musanmix /path/to/musanmix.wav")
        x, sr = sf.read(musanmix, dtype="int16")
        assert sr == 16000 and x.ndim == 1, (sr, x.shape)
        sf.write(dst, x, sr, subtype="PCM_16", format="FLAC")
    short = INPUTS["short_a013"]
    if not os.path.exists(short):
        # 0.6 s of speech: 58 frames, fewer than one 68-frame patch (INA's short-file padding).
        x, sr = sf.read("data/demo/a013.flac", dtype="int16")
        sf.write(short, x[16000:16000 + 9600], sr, subtype="PCM_16", format="WAV")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--musanmix", help="INA's media/musanmix.wav (first run only)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    prepare_inputs(args.musanmix)

    seg = Segmenter(vad_engine="smn", detect_gender=False, ffmpeg=None)
    nmel = seg.vad.nmel
    tensors = []
    meta_inputs = {}
    for name, path in INPUTS.items():
        mspec, loge, difflen = _media2feats(path, None, None, None)
        activity = _energy_activity(loge, seg.energy_ratio)[::2]
        patches, finite = _get_patches(mspec[:, :nmel].copy(), 68, 2)
        if difflen > 0:
            patches = patches[: -int(difflen / 2), :, :]
            finite = finite[: -int(difflen / 2)]
        assert len(patches) == len(activity), (name, len(patches), len(activity))
        post = seg.vad.nn.predict(np.expand_dims(patches, 3), batch_size=1024, verbose=0)
        post = np.asarray(post, dtype=np.float32)
        post[~finite, :] = 0.5
        segments = seg(path)
        n = len(patches)
        idx = sorted({0, 16, 17, 18, n // 2, max(n - 18, 0), max(n - 17, 0), n - 1})
        t = len(loge)
        tensors.append((f"{name}.loge", np.asarray(loge, dtype=np.float32)))
        if name in LONG:
            for s in (0, t // 2, t - WINDOW):
                tensors.append((f"{name}.mspec@{s}", mspec[s:s + WINDOW]))
        else:
            tensors.append((f"{name}.mspec", mspec[:t]))
        tensors.append((f"{name}.patch_index", np.array(idx, dtype=np.float32)))
        tensors.append((f"{name}.patches", patches[idx]))
        tensors.append((f"{name}.finite", finite.astype(np.float32)))
        tensors.append((f"{name}.activity", np.asarray(activity, dtype=np.float32)))
        tensors.append((f"{name}.posteriors", post))
        meta_inputs[name] = {
            "path": path,
            "frames": t,
            "patches": n,
            "difflen": int(difflen),
            "segments": [[lab, int(round(a / 0.02)), int(round(b / 0.02)), round(a, 2), round(b, 2)] for lab, a, b in segments],
        }
        print(name, t, "frames,", n, "patches,", len(segments), "segments", file=sys.stderr)
    import tensorflow as tf

    versions = {
        "inaSpeechSegmenter": getattr(inaSpeechSegmenter, "__version__", "0.8.0"),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
    }
    write_safetensors(f"{OUT}/goldens.safetensors", tensors, {"generator": "tools/ina/make_goldens.py"})
    with open(f"{OUT}/goldens.json", "w") as f:
        json.dump({"versions": versions, "inputs": meta_inputs}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
