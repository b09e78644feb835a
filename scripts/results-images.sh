#!/usr/bin/env bash
# Trains every image model on statically binarised MNIST with the step budgets below and writes
# results/images.md (model, protocol, test NLL in nats, the paper's number, time, machine) plus
# each run's evaluate JSON. Budgets are far below the papers' (hundreds of epochs); the table says so.
# Usage: scripts/results-images.sh [model …]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare-images.sh >/dev/null
swift build -c release --product seriatim >/dev/null
mkdir -p results runs/images
# A private copy of the binary, so that rebuilding during a long run cannot change it.
S=runs/images/seriatim-$(git rev-parse --short HEAD)
cp .build/release/seriatim "$S"
isa=$(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || echo AVX2)
machine="$(nproc)-core $(lscpu | sed -n 's/^Model name: *//p' | head -1) ($isa), commit $(git rev-parse --short HEAD)"

declare -A steps=( [fvsbn]=20000 [nade]=10000 [made]=10000 [made32]=45000 [pixelcnn]=60000 [row-lstm]=120000 [diagonal-bilstm]=5000 )
declare -A paper=( [fvsbn]=97.45 [nade]=88.86 [made]=88.40 [made32]=86.64 [pixelcnn]=81.30 [row-lstm]=80.54 [diagonal-bilstm]=79.20 )
declare -A label=( [fvsbn]="FVSBN (L2 1e-4)" [nade]="NADE (500 hidden)" [made]="MADE (1×4000, 1 mask)" [made32]="MADE (2×4000, 32 masks, averaged)"
                   [pixelcnn]="PixelCNN (7×7 A, 8 bottleneck blocks of 128 with 5×5 B, averaged)" [row-lstm]="Row LSTM (7×7 A, 12 layers, h = 16, skip connections, averaged)"
                   [diagonal-bilstm]="Diagonal BiLSTM (7×7 A, 4 layers of 32)" )
models=("$@"); [ ${#models[@]} -eq 0 ] && models=(fvsbn nade made made32 pixelcnn row-lstm diagonal-bilstm)

for m in "${models[@]}"; do
    kind=$m; extra=()
    [ "$m" = fvsbn ] && extra=(--config scripts/configs/mnist-fvsbn.json)
    [ "$m" = made ] && extra=(--config scripts/configs/mnist-made-wide.json)
    [ "$m" = made32 ] && { kind=made; extra=(--config scripts/configs/mnist-made-32masks-averaged.json); }
    [ "$m" = row-lstm ] && extra=(--config scripts/configs/mnist-row-lstm-12-skips.json)
    [ "$m" = diagonal-bilstm ] && { printf '{"training": {"batchSize": 16, "evaluateEvery": 200, "validationLimit": 500}}' > runs/images/diagonal-bilstm.json; extra=(--config runs/images/diagonal-bilstm.json); }
    [ "$m" = pixelcnn ] && extra=(--config scripts/configs/mnist-pixelcnn-k5.json)
    run="runs/images/$m-$(date +%Y%m%d-%H%M%S)"
    start=$(date +%s)
    $S train "$kind" --data mnist --out "$run" --steps "${steps[$m]}" "${extra[@]}" --json > "$run.train.json" 2> "$run.log" || { echo "$m failed, see $run.log"; continue; }
    seconds=$(( $(date +%s) - start ))
    $S evaluate --checkpoint "$run" --json > "results/images-$m.json"
    # The learning curve: validation NLL (on the run's validation subset) at each evaluation.
    python3 - "$run/metrics.jsonl" > "results/images-$m-curve.tsv" <<'PY'
import json, sys
print("step\telapsed_s\ttrain_loss_nats\tvalidation_nats")
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "validation_nats" in r: print(f"{r['step']}\t{r['elapsed_s']:.0f}\t{r['train_loss']:.2f}\t{r['validation_nats']:.2f}")
PY
    python3 - "$m" "${label[$m]}" "${paper[$m]}" "$seconds" "${steps[$m]}" "$machine" "$run" <<'PY' >> results/images-rows.md
import json, sys
m, label, paper, seconds, steps, machine, run = sys.argv[1:]
r = json.load(open(f"results/images-{m}.json"))
batch = json.load(open(f"{run}/run.json"))["training"]["batchSize"]
ens = f"; {r['ensemble_masks']}-mask ensemble {r['ensemble_nll_nats']:.2f}" if "ensemble_nll_nats" in r else ""
best = min(r["nll_nats"], r.get("ensemble_nll_nats", r["nll_nats"]))
# More than 1 nat from the paper: say beside the number that this is what fitted, and where the curve is.
partial = f"; a budget run, not the paper's training; curve in `results/images-{m}-curve.tsv`" if best > float(paper) + 1 else ""
epochs = int(steps) * batch / 50000
print(f"| {label} | binarised MNIST, {r['protocol']} | {r['nll_nats']:.2f} ± {2*r['nll_nats_stderr']:.2f}{ens} | {paper} | "
      f"{steps} steps ({epochs:.1f} epochs), {int(seconds)//60} min{partial} | {machine} |")
PY
done
{
  echo "| model | data, protocol | test NLL (nats) | paper | training | machine |"
  echo "| --- | --- | --- | --- | --- | --- |"
  cat results/images-rows.md
} > results/images.md
cat results/images.md
