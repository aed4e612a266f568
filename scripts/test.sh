#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is needed, then format, lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Real-ESRGAN: venv with ONNX Runtime + the imported models; the models tests must really run here
ORT_DYLIB_PATH="$(bash scripts/setup-models.sh --print-ort-path)"
export ORT_DYLIB_PATH AIPROD_REQUIRE_ORT=1
# wgpu kernels: lavapipe (mesa-vulkan-drivers) must be there, so a missing adapter fails, not skips
export AIPROD_REQUIRE_WGPU=1
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/aiprod-xdg-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
# The dashboard's web assets, embedded in aiprodd at compile time, and their unit tests.
bash scripts/build-dashboard.sh
npm --prefix dashboard test
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
