#!/usr/bin/env bash
# AST-base on a GPU: dams (burn on wgpu) against PyTorch + transformers (CUDA) on the same random-weight checkpoint,
# in one run, at batch 1/8/32/64; writes one Markdown table (and prints it).
#
#   tools/gpu-bench.sh [OUT_DIR]              on a GPU machine with the Vulkan loader and an NVIDIA/AMD driver
#   DRY_RUN=1 tools/gpu-bench.sh [OUT_DIR]    on a machine without a GPU: Mesa's software Vulkan (lavapipe), the
#                                             tiny test checkpoint, batch 1/2, PyTorch (if $PYTHON has it) on the CPU
#                                             — checks the script end to end
#   DAMS_BIN=path/to/dams                     use that binary instead of building a release one
#
# Needs: cargo, python3 (a venv is made under OUT_DIR; pip installs torch, transformers, safetensors), libvulkan1.
# Budget: the release build, then < 10 minutes of machine time for the measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${TMPDIR:-/tmp}/dams-gpu-bench}"
mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OUT/target}"

if [ -n "${DAMS_BIN:-}" ]; then
  DAMS="$DAMS_BIN"
else
  echo "== building dams (release)"
  cargo build --release --locked --quiet
  DAMS="$CARGO_TARGET_DIR/release/dams"
fi

if [ "${DRY_RUN:-0}" = "1" ]; then
  PY="${PYTHON:-python3}"
else
  echo "== python venv (torch, transformers)"
  if [ ! -x "$OUT/venv/bin/python" ]; then
    python3 -m venv "$OUT/venv"
    "$OUT/venv/bin/pip" install --quiet --upgrade pip
    "$OUT/venv/bin/pip" install --quiet torch transformers safetensors numpy
  fi
  PY="$OUT/venv/bin/python"
fi

if [ "${DRY_RUN:-0}" = "1" ]; then
  MODEL="tests/reference/ast/tiny"
  DEVICE="gpu:software"
  TORCH_DEVICE="cpu"
  BATCHES_LIST="1 2"
  PRECISIONS="fp32:f32 fp32:f16"
  REPS=1
else
  MODEL="$OUT/ast-base-random"
  if [ ! -f "$MODEL/model.safetensors" ]; then
    echo "== random-weight AST-base checkpoint"
    "$PY" tests/reference/make_ast_fixtures.py --out "$OUT/fixtures" --no-tiny --full "$MODEL"
  fi
  DEVICE="gpu"
  TORCH_DEVICE="cuda"
  BATCHES_LIST="1 8 32 64"
  PRECISIONS="fp32:f32 bf16:f16"
  REPS=5
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
TABLE="$OUT/gpu-bench.md"
{
  echo "| batch | PyTorch precision | dams precision | dams (burn wgpu) seg/s | PyTorch seg/s | ratio dams/PyTorch |"
  echo "|---|---|---|---|---|---|"
} > "$TABLE"
for B in $BATCHES_LIST; do
  for PP in $PRECISIONS; do
    P="${PP%%:*}"; DP="${PP##*:}"
    LOG="$OUT/bench-b$B-$P-$DP.log"
    timeout 300 "$DAMS" bench ast --model "$MODEL" --device "$DEVICE" --batch "$B" --batches "$REPS" --precision "$DP" \
      --fbank-segments 20 --python "$PY" --torch-device "$TORCH_DEVICE" --torch-dtype "$P" > "$LOG" 2>&1 || true
    D=$(grep -oE "dams forward on .*: [0-9.]+ segments/s" "$LOG" | grep -oE "[0-9.]+ segments/s" | cut -d' ' -f1 || true)
    T=$(grep -oE "forward [0-9.]+ segments/s" "$LOG" | grep -oE "[0-9.]+" | head -1 || true)
    R=$(grep -oE "ratio forward \(dams / pytorch\): [0-9.]+x" "$LOG" | grep -oE "[0-9.]+x" || true)
    grep -q "reference not run" "$LOG" && T="not run"
    echo "| $B | $P | $DP | ${D:-failed (see $LOG)} | ${T:-failed (see $LOG)} | ${R:--} |" >> "$TABLE"
  done
done
grep -h "dams forward on" "$OUT"/bench-b*.log | head -1 || true
cat "$TABLE"
