#!/usr/bin/env bash
# Installs every system package aiprod needs on Debian 12 (run as root). Idempotent: packages
# already present are not fetched again.
set -euo pipefail

PACKAGES=(
  # GStreamer runtime + development files (gstreamer-rs links against them)
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-plugins-base-apps
  # the caption font of the local renderer
  fonts-dejavu-core
  # textoverlay (the caption) lives in the X plugin set
  gstreamer1.0-x
  # protoc for the gRPC code generation
  protobuf-compiler pkg-config
  # software Vulkan adapter (lavapipe) for the wgpu kernels' tests
  mesa-vulkan-drivers libvulkan1 vulkan-tools
  # test oracle only (the product never runs ffmpeg/ffprobe)
  ffmpeg
  # venv for ONNX Runtime and the model wheel (scripts/setup-models.sh)
  python3 python3-venv
  # headless browser of the dashboard's browser test (driven by playwright-core, never downloaded)
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} system packages present"
else
  echo "install-deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "install-deps: cargo not found; install Rust 1.95 (rustup)" >&2; exit 1; }
# The dashboard's npm packages (Vite, Preact, uPlot, playwright-core); only when the lock changed.
bash "$(dirname "$0")/build-dashboard.sh" --install-only
