#!/usr/bin/env bash
# Backtests the WaveNet forecaster against seasonal naive and AR(p) on the real series of
# scripts/prepare-series.sh and writes results/forecast.md (aggregate MASE, sMAPE, MSIS, wQL,
# 80%-interval coverage per data set) plus the JSON reports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare-series.sh >/dev/null
swift build -c release --product seriatim >/dev/null
mkdir -p results/forecast runs
S=runs/seriatim-forecast-$(git rev-parse --short HEAD)
cp .build/release/seriatim "$S"
# name horizon windows
specs=("AirPassengers 12 3" "nottem 12 4" "co2 12 4" "ldeaths 12 2" "UKgas 4 4" "elec_equip 12 4" "sunspot_month 12 4"
       "co2_weekly 13 4" "nile 5 4" "sunspots_yearly 10 4")
rows=()
for spec in "${specs[@]}"; do
    read -r name horizon windows <<< "$spec"
    start=$(date +%s)
    "$S" backtest --data "Data/series/$name.csv" --horizon "$horizon" --windows "$windows" --steps 600 --json \
        > "results/forecast/$name.json" 2> "results/forecast/$name.log" || { echo "$name failed"; continue; }
    seconds=$(( $(date +%s) - start ))
    rows+=("$(python3 - "$name" "$horizon" "$windows" "$seconds" <<'PY'
import json, sys
name, horizon, windows, seconds = sys.argv[1:]
r = json.load(open(f"results/forecast/{name}.json"))
a = r["aggregate"]
def cell(m, key): return f"{a[m][key]:.3f}" if key != "smape" else f"{a[m][key]:.2f}"
wins = [k for k in ("mase", "wql") if a["wavenet"][k] < a["seasonal_naive"][k]]
cov = a["wavenet"]["coverage"]["0.9"] - a["wavenet"]["coverage"]["0.1"]
print(f"| {name} | {horizon} × {windows} | season {r['season']} | " +
      " | ".join(f"{cell('wavenet', k)} / {cell('seasonal_naive', k)} / {cell('ar', k)}" for k in ("mase", "smape", "msis", "wql")) +
      f" | {cov:.2f} | {'both' if len(wins) == 2 else (wins[0] if wins else 'neither')} | {seconds} s |")
PY
)")
done
{
  echo "| data | horizon × windows | season | MASE (WaveNet / seasonal naive / AR) | sMAPE | MSIS | wQL | WaveNet 10–90% coverage | WaveNet beats naive on | time |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
} > results/forecast.md
# The README's forecast plot: AirPassengers, 24 months ahead of the end of the data.
"$S" forecast --data Data/series/AirPassengers.csv --horizon 24 --out results/forecast/AirPassengers-forecast.csv \
    --plot results/forecast-AirPassengers.svg --run runs/forecast-AirPassengers > /dev/null 2>&1
cat results/forecast.md
