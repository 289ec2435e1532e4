#!/usr/bin/env bash
# fp8_checkpoint.sh DIR: the trained weights the device run's FP8 containment step reads (bundle/fp8/): the
# synthetic panel the device run makes (satrain data synth, seed 7, 500 tickers x 5000 days x 16 features), then
# one epoch of standard training of the medium preset on 3,000 of its sequences, on this machine's CPU (about
# 6 minutes on 2 cores; its validation loss was 2.32, against 2.30 for a uniform guess: barely trained). The default preset's 0.8 GB of weights cannot travel (64 MiB); medium (3.2M parameters,
# 13 MB) can, and its FP8 pass runs the same code (the encoder's linear layers through at::_scaled_mm).
# Writes DIR/best_model.pt and DIR/train.log; reuses DIR/best_model.pt when it is there.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:?usage: fp8_checkpoint.sh DIR}
satrain=${SATRAIN:-build/satrain}
mkdir -p "$dir"
if [[ -f $dir/best_model.pt ]]; then
  echo "fp8_checkpoint: $dir/best_model.pt is there"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$satrain" data synth --tickers 500 --days 5000 --features 16 --bins 10 --seed 7 "$work/panel.h5"
"$satrain" train --data "$work/panel.h5" --preset medium --device cpu --epochs 1 --max-seqs-per-epoch 3000 \
  --save-dir "$work/ckpt" --metrics-addr '' --use-wandb=false --threads "${THREADS:-2}" 2>&1 | tee "$dir/train.log"
cp "$work/ckpt/best_model.pt" "$dir/best_model.pt"
echo "fp8_checkpoint: $dir/best_model.pt ($(du -h "$dir/best_model.pt" | cut -f1))"
