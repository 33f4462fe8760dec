#!/usr/bin/env python3
"""Convert inaSpeechSegmenter's speech/music/noise CNN (Keras HDF5) into the safetensors file dams embeds.

    python tools/ina/convert_weights.py \
        --hdf5 /path/to/keras_speech_music_noise_cnn.hdf5 \
        --out assets/ina/speech_music_noise_cnn.safetensors

Needs only `h5py` and `numpy` (the HDF5 is read directly; no TensorFlow). The architecture in the file's
`model_config` is checked layer by layer against the one dams implements (src/teachers/ina/model.rs), so a
different model file is refused instead of silently mis-converted.

Tensor names and layouts written (all float32, values copied unchanged; BatchNorm is NOT folded here, the Rust
loader folds it so the file stays a faithful copy of the Keras weights):

    conv{1..4}.weight   [out, in, kh, kw]   (Keras: [kh, kw, in, out])
    conv{1..4}.bias     [out]
    conv{1..4}.bn.{gamma,beta,mean,var}   [out]      (Keras BatchNormalization, epsilon 1e-3)
    dense{1..4}.weight  [in, out]           (Keras Dense kernel, unchanged; burn's Linear layout)
    dense{1..4}.bias    [out]
    dense{1..4}.bn.{gamma,beta,mean,var}  [out]
    out.weight          [256, 3]            (the softmax layer: speech, music, noise)
    out.bias            [3]

`__metadata__` records the source file's SHA-256 and Keras version. A sidecar `<out>.sha256` holds the SHA-256 of
the written file; dams verifies the embedded bytes against it when the teacher is opened.
"""

import argparse
import hashlib
import json
import struct
import sys

import h5py
import numpy as np

FORMAT = "dams-ina-smn/1"

# The Keras layer sequence dams implements: (class_name, checks on its config).
EXPECTED = [
    ("Reshape", {"target_shape": [68, 21, 1]}),
    ("Conv2D", {"filters": 64, "kernel_size": [7, 4], "strides": [1, 1], "padding": "valid", "activation": "linear"}),
    ("BatchNormalization", {"epsilon": 0.001}),
    ("Activation", {"activation": "relu"}),
    ("MaxPooling2D", {"pool_size": [4, 2], "strides": [4, 2], "padding": "same"}),
    ("Conv2D", {"filters": 128, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "activation": "linear"}),
    ("BatchNormalization", {"epsilon": 0.001}),
    ("Activation", {"activation": "relu"}),
    ("Conv2D", {"filters": 128, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "activation": "linear"}),
    ("BatchNormalization", {"epsilon": 0.001}),
    ("Activation", {"activation": "relu"}),
    ("MaxPooling2D", {"pool_size": [2, 2], "strides": [2, 2], "padding": "same"}),
    ("Conv2D", {"filters": 256, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "activation": "linear"}),
    ("BatchNormalization", {"epsilon": 0.001}),
    ("Activation", {"activation": "relu"}),
    ("MaxPooling2D", {"pool_size": [4, 1], "strides": [4, 1], "padding": "valid"}),
    ("Flatten", {}),
] + [
    item
    for rate in (0.2, 0.3, 0.4, 0.5)
    for item in (
        ("Dense", {"units": 256, "activation": "linear", "use_bias": True}),
        ("BatchNormalization", {"epsilon": 0.001}),
        ("Activation", {"activation": "relu"}),
        ("Dropout", {"rate": rate}),
    )
] + [("Dense", {"units": 3, "activation": "softmax", "use_bias": True})]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def layer_weights(f, name):
    """The datasets of Keras layer `name` as {short_name: array}, e.g. {'kernel': ..., 'bias': ...}."""
    g = f["model_weights"][name]
    out = {}

    def visit(path, obj):
        if isinstance(obj, h5py.Dataset):
            short = path.split("/")[-1].split(":")[0]
            out[short] = np.asarray(obj, dtype=np.float32)

    g.visititems(visit)
    return out


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    off = 0
    blobs = []
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr, dtype="<f4")
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(h)))
        out.write(h)
        for b in blobs:
            out.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hdf5", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    f = h5py.File(args.hdf5, "r")
    cfg = json.loads(f.attrs["model_config"])
    layers = cfg["config"]["layers"] if isinstance(cfg["config"], dict) else cfg["config"]
    if len(layers) != len(EXPECTED):
        sys.exit(f"{args.hdf5}: {len(layers)} layers, dams implements {len(EXPECTED)}: not the smn CNN")
    for i, (layer, (cls, checks)) in enumerate(zip(layers, EXPECTED)):
        if layer["class_name"] != cls:
            sys.exit(f"layer {i}: {layer['class_name']}, expected {cls}")
        for k, v in checks.items():
            got = layer["config"].get(k)
            if isinstance(v, float):
                ok = got is not None and abs(got - v) < 1e-9
            else:
                ok = got == v
            if not ok:
                sys.exit(f"layer {i} ({layer['config']['name']}): {k} = {got!r}, expected {v!r}")
    if layers[0]["config"].get("batch_input_shape") not in ([None, 68, 21], None):
        sys.exit(f"input shape {layers[0]['config'].get('batch_input_shape')}, expected [None, 68, 21]")

    tensors = []
    n_conv = n_dense = 0
    prefix = None
    for i, layer in enumerate(layers):
        cls, name = layer["class_name"], layer["config"]["name"]
        if cls == "Conv2D":
            n_conv += 1
            prefix = f"conv{n_conv}"
            w = layer_weights(f, name)
            tensors.append((f"{prefix}.weight", np.transpose(w["kernel"], (3, 2, 0, 1))))
            tensors.append((f"{prefix}.bias", w["bias"]))
        elif cls == "Dense":
            w = layer_weights(f, name)
            if layer["config"]["units"] == 3:
                prefix = "out"
            else:
                n_dense += 1
                prefix = f"dense{n_dense}"
            tensors.append((f"{prefix}.weight", w["kernel"]))
            tensors.append((f"{prefix}.bias", w["bias"]))
        elif cls == "BatchNormalization":
            w = layer_weights(f, name)
            for short, key in (("gamma", "gamma"), ("beta", "beta"), ("mean", "moving_mean"), ("var", "moving_variance")):
                tensors.append((f"{prefix}.bn.{short}", w[key]))
    src_sha = sha256_file(args.hdf5)
    meta = {
        "format": FORMAT,
        "source": "inaSpeechSegmenter keras_speech_music_noise_cnn.hdf5",
        "source_sha256": src_sha,
        "keras_version": str(f.attrs.get("keras_version", "")),
        "classes": "speech,music,noise",
    }
    write_safetensors(args.out, tensors, meta)
    digest = sha256_file(args.out)
    with open(args.out + ".sha256", "w") as s:
        s.write(digest + "\n")
    n = sum(int(np.prod(a.shape)) for _, a in tensors)
    print(f"{args.out}: {len(tensors)} tensors, {n} parameters, sha256 {digest} (source sha256 {src_sha})")


if __name__ == "__main__":
    main()
