#!/usr/bin/env bash
# Installs what stream-relay needs on Debian bookworm (run as root): the libraries it links,
# bindgen's libclang, the reference peers the tests run against, and chromium (the headless
# browser that tests the monitoring page).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  pkg-config libclang-dev libsrt-openssl-dev librist-dev \
  srt-tools rist-tools ffmpeg prometheus wrk curl ca-certificates chromium >/dev/null
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) and re-run" >&2
  exit 1
fi
