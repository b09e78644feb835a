#!/usr/bin/env bash
# Exports real series that ship with Debian packages into Data/series/*.csv (timestamp,value):
#   R's datasets (r-base-core): AirPassengers, nottem, co2, ldeaths, UKgas, sunspot.month
#   statsmodels' CSVs (python3-statsmodels, read as plain files by R): co2 weekly (with gaps), elec_equip, nile, sunspots
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh r-base-core python3-statsmodels
mkdir -p Data/series
sm=/usr/lib/python3/dist-packages/statsmodels/datasets
Rscript --vanilla - "$sm" <<'R'
sm <- commandArgs(trailingOnly = TRUE)[1]
stamp <- function(x) {
  f <- frequency(x); t <- time(x); y <- floor(t + 1e-6); k <- cycle(x)
  if (f == 12) sprintf("%d-%02d", y, k) else if (f == 4) sprintf("%d-%02d", y, (k - 1) * 3 + 1) else format(round(as.numeric(t), 4))
}
write <- function(name, timestamp, value) {
  write.csv(data.frame(timestamp = timestamp, value = value), file.path("Data/series", paste0(name, ".csv")), row.names = FALSE, quote = FALSE, na = "")
}
for (n in c("AirPassengers", "nottem", "co2", "ldeaths", "UKgas", "sunspot.month")) {
  x <- get(n, envir = asNamespace("datasets")); write(gsub("\\.", "_", n), stamp(x), as.numeric(x))
}
co2w <- read.csv(file.path(sm, "co2/co2.csv"))
write("co2_weekly", format(as.Date(as.character(co2w$date), "%Y%m%d")), co2w$co2)
elec <- read.csv(file.path(sm, "elec_equip/elec_equip.csv"))
write("elec_equip", format(as.Date(elec[[1]], "%b-%d-%Y"), "%Y-%m"), elec[[2]])
nile <- read.csv(file.path(sm, "nile/nile.csv")); write("nile", nile$year, nile$volume)
spots <- read.csv(file.path(sm, "sunspots/sunspots.csv")); write("sunspots_yearly", spots$YEAR, spots$SUNACTIVITY)
R
ls Data/series
