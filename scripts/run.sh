#!/usr/bin/env bash
# Seriatim's main job: installs what is missing, builds the release tool and runs it on the
# embedded default data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh
swift build -c release --product seriatim
.build/release/seriatim demo
