#!/usr/bin/env bash
# CI's container-image step: runs scripts/build-image.sh (build, size, run, checks) when this
# machine can run containers, and says plainly why not otherwise. A skip is printed as a skip
# and never as a pass; once the preflight below succeeds, any failure of the image build or of
# its checks fails CI.
#
# Skips when: CI_SKIP_IMAGE=1; not root; not Debian; podman/runc/debootstrap cannot be
# installed; or podman cannot start a trivial container here (made from this machine's own
# /bin/true and its libraries, so no image or registry is involved).
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  echo "SKIPPED: container image build and run: $*"
  echo "image: 0 passed, 0 failed, 1 skipped"
  exit 0
}

[ "${CI_SKIP_IMAGE:-0}" = 1 ] && skip "CI_SKIP_IMAGE=1"
[ "$(id -u)" = 0 ] || skip "not root (debootstrap and rootful podman need it)"
if [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then skip "not a Debian machine"; fi

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "installing podman, runc, debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman runc debootstrap uidmap >/dev/null 2>&1 || skip "apt-get could not install podman/runc/debootstrap"
fi

podman --runtime runc info >/dev/null 2>&1 || skip "podman cannot work here: $(podman --runtime runc info 2>&1 | tail -1)"

probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
for f in /bin/true $(ldd /bin/true | grep -o '/[^ ]*'); do
  cp --parents -L "$f" "$probe"
done
nofile="$(ulimit -Hn)"; [ "$nofile" = unlimited ] || [ "$nofile" -gt 4096 ] && nofile=4096
if ! out="$(podman --runtime runc run --rm --network host --ulimit "nofile=$nofile:$nofile" \
      --ulimit nproc=1024:1024 --rootfs "$probe" /bin/true 2>&1)"; then
  skip "podman cannot start a container on this machine: $(tail -1 <<<"$out")"
fi
echo "preflight ok: podman starts containers here (runc); building and checking the image"

start=$(date +%s)
bash scripts/build-image.sh
echo "image step took $(( $(date +%s) - start )) s"
echo "image: 1 passed, 0 failed"
