#!/usr/bin/env bash
# The README's two per-frame-rate tables ("Any video") in one command: builds the renderings of
# the 20 songs it needs (a re-run keeps the songs already built), then scores the default model
# on each and prints the re-strike ceilings over all test segments.
#   bash scripts/frame_rate_tables.sh [MODEL]     (default models/demo_keysynth_phase; ~10 min)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
MODEL=${1:-models/demo_keysynth_phase}

build() {  # out_dir, then make_dataset flags
  local out=$1; shift
  echo "[frame rates] building $out"
  "$PY" -m data_gen.make_dataset --out_dir="$out" "$@" 2> "runs/build_$(basename "$out").log" \
    || { tail -5 "runs/build_$(basename "$out").log"; exit 1; }
}

mkdir -p runs

for release in 0 50; do
  suffix=$([ "$release" = 0 ] && echo "" || echo "_r$release")
  build "data/deepsynth$suffix" --repeat_release_ms="$release"
  for fps in 24 30 60; do
    build "data/deepsynth${suffix}_fps$fps" --frames="fps:$fps" --repeat_release_ms="$release"
  done
  build "data/deepsynth${suffix}_fps30_heldout" --frames=fps:30 --camera=held_out \
    --repeat_release_ms="$release"
done

echo "[frame rates] the score's timing"
"$PY" -m experiments.frame_rates --workdir="$MODEL" --out_dir=runs/frame_rates
echo "[frame rates] played repeats (keys up 50 ms before a repeated note)"
"$PY" -m experiments.frame_rates --workdir="$MODEL" --out_dir=runs/frame_rates_r50 \
  --data_dirs=data/deepsynth_r50,data/deepsynth_r50_fps24,data/deepsynth_r50_fps30,data/deepsynth_r50_fps60,data/deepsynth_r50_fps30_heldout
echo "[frame rates] re-strike ceilings over all test segments"
"$PY" -m experiments.restrike_ceiling --per_song=0 \
  --data_dirs=data/deepsynth,data/deepsynth_fps24,data/deepsynth_fps30,data/deepsynth_fps60,data/deepsynth_r50,data/deepsynth_r50_fps24,data/deepsynth_r50_fps30,data/deepsynth_r50_fps60
