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
# Grafana's published dashboard schema (Apache-2.0), for deploy/grafana/check_schema.py.
python3 -m pip --version >/dev/null 2>&1 || apt-get install -y -qq python3-pip >/dev/null
# --break-system-packages: where python3 is Debian's own (PEP 668); harmless elsewhere.
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  --break-system-packages 'grafana-foundation-sdk==1769699998!10.1.0'
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) and re-run" >&2
  exit 1
fi
