#!/usr/bin/env bash
# Seriatim's main job: installs what is missing, builds the release tool, prepares the embedded
# corpus in Audio/, trains a small WaveNet on the recorded speech for a few minutes, generates a
# clip and reports validation bits per sample against the mu-law histogram baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh
bash scripts/prepare-audio.sh
swift build -c release --product seriatim
run="runs/speech-$(date +%Y%m%d-%H%M%S)"
.build/release/seriatim train wavenet --data Audio/speech --out "$run" --sample-rate 8000 \
    --config scripts/configs/wavenet-speech.json --seed 1
.build/release/seriatim generate --checkpoint "$run" --seconds 3 --out "$run/clip.wav" --seed 1
echo "run directory: $run (checkpoints, metrics.jsonl, samples/); generated clip: $run/clip.wav"
