#!/usr/bin/env bash
# Seriatim's test command: installs what is missing, builds in release mode, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh
swift build -c release --build-tests
swift test -c release --skip-build "$@"
