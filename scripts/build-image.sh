#!/usr/bin/env bash
# Builds the stream-relay container image with podman, offline (no Docker daemon, no registry),
# then runs it for real and checks it: image size < 100 MB, every shared library found, /health
# answering (from the host and through the image's own HEALTHCHECK), non-root user, one SRT
# stream relayed end to end when srt-live-transmit is installed.
#
#   scripts/build-image.sh               # binary built here with cargo, Dockerfile runtime stage
#   scripts/build-image.sh --full-build  # the whole Dockerfile, Rust build stage included
#
# Run as root on Debian bookworm (debootstrap and rootful podman need it). Missing podman, runc
# or debootstrap are installed with apt-get.
#
# Base images. Nothing is pulled: the Dockerfile's bases are made here and tagged with the
# names the Dockerfile uses, so `--pull=never` finds them locally.
# - debian:bookworm-slim: `debootstrap --variant=minbase bookworm`, slimmed the way the official
#   image is (dpkg path excludes for docs/man/locales, apt clean-up configuration, no apt lists).
#   An existing image of that name (e.g. the real one, pulled earlier) is used as it is.
# - rust:1.95-bookworm (only with --full-build): the same debootstrap plus gcc/libc6-dev and
#   this machine's Rust toolchain (`rustc --print sysroot`) copied in.
#
# The default path does NOT run the Dockerfile's Rust build stage: the binary is built on this
# machine (`cargo build --release --locked`, bookworm, same libraries as the runtime stage) and
# handed to the runtime stage's `COPY --from=build` with `--build-context build=DIR`. The
# runtime stage, which is what ships, is built from the Dockerfile unchanged. --full-build runs
# everything, at the cost of a second release build inside the container.
#
# Environment: IMAGE (default localhost/stream-relay:dev), IMAGE_CACHE_DIR (default
# /var/cache/stream-relay-image), DEBIAN_MIRROR (default http://deb.debian.org/debian),
# CARGO_TARGET_DIR (as cargo), KEEP_CONTAINER=1 to leave the smoke-test container running.
#
# Host traps handled here: crun fails on hybrid cgroup hosts, so runc is the runtime; podman run
# gets explicit --ulimit values within this shell's hard limits; --format docker keeps the
# HEALTHCHECK (the OCI image format has no field for it).
set -euo pipefail
cd "$(dirname "$0")/.."

FULL_BUILD=0
for arg in "$@"; do
  case "$arg" in
    --full-build) FULL_BUILD=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

IMAGE="${IMAGE:-localhost/stream-relay:dev}"
CACHE="${IMAGE_CACHE_DIR:-/var/cache/stream-relay-image}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SLIM_BASE="docker.io/library/debian:bookworm-slim"
RUST_BASE="docker.io/library/rust:1.95-bookworm"
MAX_BYTES=100000000 # 100 MB
CONTAINER="stream-relay-smoke-$$"

say() { printf '\n== %s\n' "$*"; }
die() { printf 'build-image.sh: %s\n' "$*" >&2; exit 1; }

# The FROM lines must match the names made here.
grep -q '^FROM rust:1.95-bookworm ' Dockerfile || die "Dockerfile's build base is no longer rust:1.95-bookworm: update RUST_BASE here"
grep -q '^FROM debian:bookworm-slim ' Dockerfile || die "Dockerfile's runtime base is no longer debian:bookworm-slim: update SLIM_BASE here"

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and rootful podman need it)"

missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends podman runc debootstrap uidmap >/dev/null
fi

# runc, not crun: crun fails on this host's hybrid cgroup layout.
PODMAN=(podman --runtime runc)
mkdir -p "$CACHE"

# debootstrap into $1 (fresh), extra packages in $2 (comma-separated, may be empty).
bootstrap() {
  local root="$1" include="${2:-}"
  rm -rf "$root"
  debootstrap --variant=minbase --components=main ${include:+--include="$include"} \
    bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
  # apt sources as in the official image: the release, its updates and security updates.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # The official images are rebuilt with each point release and security update; match that.
  DEBIAN_FRONTEND=noninteractive chroot "$root" sh -c \
    'apt-get update -qq && apt-get upgrade -y -qq && apt-get clean' >>"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; die "apt-get upgrade in $root failed (log: $root.log)"; }
}

# What the official -slim images do (debuerreotype's minimizing config and slimify), written
# out here: keep docs, man pages and translations out of every later install, drop the ones
# already installed (keeping copyright files), and have apt clean up after itself.
slim() {
  local root="$1"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# Slim image: no documentation, manuals or translations (copyright files are kept).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  echo 'force-unsafe-io' >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  printf '#!/bin/sh\n# No services start inside image builds.\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"

  find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
  rm -rf "$root"/usr/share/{groff,info,linda,man}/* "$root"/usr/share/lintian/overrides/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/*
  find "$root/var/log" -type f -delete
  : >"$root/etc/machine-id"
  rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
}

# tar the root into podman under the given name, with the official images' defaults.
import_root() {
  local root="$1" name="$2"; shift 2
  tar --numeric-owner --xattrs -C "$root" -c . | "${PODMAN[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change 'LABEL org.opencontainers.image.description=made-locally-by-scripts/build-image.sh' \
    "$@" - "$name" >/dev/null
}

if "${PODMAN[@]}" image exists "$SLIM_BASE"; then
  say "base $SLIM_BASE: present, used as it is (podman rmi it to remake it)"
else
  say "base $SLIM_BASE: debootstrap --variant=minbase bookworm, slimmed"
  bootstrap "$CACHE/bookworm-slim"
  slim "$CACHE/bookworm-slim"
  import_root "$CACHE/bookworm-slim" "$SLIM_BASE"
  rm -rf "$CACHE/bookworm-slim"
fi
printf 'base size: %s bytes\n' "$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$SLIM_BASE")"

build_args=(--format docker --pull=never --network host --target runtime --tag "$IMAGE")
if [ "$FULL_BUILD" = 1 ]; then
  if "${PODMAN[@]}" image exists "$RUST_BASE"; then
    say "base $RUST_BASE: present, used as it is"
  else
    say "base $RUST_BASE: debootstrap + gcc + this machine's Rust toolchain"
    command -v rustc >/dev/null || die "rustc not found: --full-build copies this machine's toolchain"
    sysroot="$(rustc --print sysroot)"
    root="$CACHE/rust-bookworm"
    bootstrap "$root" gcc,libc6-dev,ca-certificates
    slim "$root"
    mkdir -p "$root/usr/local/rust" "$root/usr/local/cargo/bin"
    # The toolchain without its HTML documentation (about half its size).
    tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$root/usr/local/rust" -x
    for b in cargo rustc rustdoc; do ln -s "/usr/local/rust/bin/$b" "$root/usr/local/cargo/bin/$b"; done
    # Local CAs this machine trusts (Debian's place for them), so cargo in the build stage can
    # reach crates.io from networks that inspect TLS, as cargo on this machine does.
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
      chroot "$root" update-ca-certificates >>"$root.log" 2>&1
    fi
    import_root "$root" "$RUST_BASE" \
      --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV CARGO_HOME=/usr/local/cargo'
    rm -rf "$root"
  fi
  say "podman build: whole Dockerfile (Rust build stage included)"
else
  say "cargo build --release --locked -p stream-relay (outside the image; the Dockerfile's build stage is skipped)"
  cargo build --release --locked -p stream-relay
  bin="${CARGO_TARGET_DIR:-target}/release/stream-relay"
  # The code that runs laid out together (stream-relay/build.rs); a stale list costs ~0.9 MB
  # of resident code per process and nothing else would notice.
  bash scripts/hot-symbols.sh --check "$bin" || die "code layout: see above"
  ctx="$CACHE/prebuilt"
  rm -rf "$ctx" && mkdir -p "$ctx/out"
  install -m 0755 "$bin" "$ctx/out/stream-relay"
  build_args+=(--build-context "build=$ctx")
  say "podman build: Dockerfile runtime stage, binary from $bin"
fi
start=$(date +%s)
"${PODMAN[@]}" build "${build_args[@]}" .
echo "podman build took $(( $(date +%s) - start )) s"

say "checks"
fail=0
check() { # description, then a command that must succeed
  local what="$1"; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}

size="$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")"
echo "image $IMAGE: $size bytes ($(( size / 1000000 )) MB)"
check "image is under 100 MB" test "$size" -lt "$MAX_BYTES"

hc="$("${PODMAN[@]}" image inspect --format '{{.Config.Healthcheck}}' "$IMAGE")"
check "HEALTHCHECK kept in the image ($hc)" test -n "$hc" -a "$hc" != "<nil>"
user="$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")"
check "runs as non-root user ($user)" test -n "$user" -a "${user%%:*}" != 0 -a "${user%%:*}" != root

# Within the hard limits of this shell (podman's defaults can exceed them and then fail).
nofile_hard="$(ulimit -Hn)"; nproc_hard="$(ulimit -Hu)"
nofile=65536; nproc=4096
[ "$nofile_hard" != unlimited ] && [ "$nofile_hard" -lt "$nofile" ] && nofile="$nofile_hard"
[ "$nproc_hard" != unlimited ] && [ "$nproc_hard" -lt "$nproc" ] && nproc="$nproc_hard"
# --no-healthcheck / --health-interval=disable: podman schedules health checks with systemd
# timers, which a container host without systemd (CI) does not have; the check itself is
# still run below with `podman healthcheck run`.
RUN=("${PODMAN[@]}" run --rm --no-healthcheck --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

# ldd on the binary and on the libraries the image ships for it. The binary opens libsrt and
# librist at run time (dlopen, the first time something uses SRT or RIST), so ldd on the binary
# does not show them: ldd on the libraries ldconfig finds checks their own (libcrypto,
# libstdc++, mbedcrypto), and `--version`, which opens both, checks the binary loads them.
# shellcheck disable=SC2016 # expanded by the container's shell, not here
ldd_out="$("${RUN[@]}" --entrypoint /bin/bash "$IMAGE" -c '
  set -e
  for f in /usr/local/bin/stream-relay $(ldconfig -p | awk "/libsrt|librist/ {print \$NF}" | sort -u); do
    echo "## $f"; ldd "$f"
  done')"
while IFS= read -r line; do echo "    $line"; done <<<"$ldd_out"
# shellcheck disable=SC2016 # $1 is the inner shell's argument
check "ldd resolves every library" bash -c '! grep -q "not found" <<<"$1"' _ "$ldd_out"
check "libsrt is in the image" grep -q 'libsrt' <<<"$ldd_out"
check "librist is in the image" grep -q 'librist' <<<"$ldd_out"
check "--version runs" "${RUN[@]}" "$IMAGE" --version
version_out="$("${RUN[@]}" "$IMAGE" --version 2>&1 || true)"
while IFS= read -r line; do echo "    $line"; done <<<"$version_out"
check "the binary loads libsrt" grep -q '^libsrt [0-9]' <<<"$version_out"
check "the binary loads librist" grep -q '^librist [0-9]' <<<"$version_out"

# A real route on host networking (how the README says to run it), on free high ports, with
# the restrictions the Kubernetes manifest sets (read-only root, no capabilities, no privilege
# escalation), so those are known to work too.
pick_port() { # a UDP+TCP port nobody on this host is using
  local p
  while :; do
    p=$(( 20000 + RANDOM % 40000 ))
    ss -Haun "sport = :$p" | grep -q . || ss -Hatn "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}
http_port=$(pick_port); in_port=$(pick_port); out_port=$(pick_port)
cleanup() { [ "${KEEP_CONTAINER:-0}" = 1 ] || "${PODMAN[@]}" rm -f "$CONTAINER" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"${PODMAN[@]}" run -d --name "$CONTAINER" --network host --health-interval=disable \
  --read-only --cap-drop ALL --security-opt no-new-privileges \
  --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
  -e "HTTP_ADDR=127.0.0.1:$http_port" "$IMAGE" \
  srt -i "srt://:$in_port?mode=listener" -o "srt://:$out_port?mode=listener" \
  >/dev/null 2>"$CACHE/run.err" || { cat "$CACHE/run.err" >&2; die "podman run failed"; }
# (podman still complains there that it cannot reach systemd to schedule health checks.)

health() { # prints the /health body, fails unless 200
  exec 3<>"/dev/tcp/127.0.0.1/$http_port" || return 1
  printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
  local resp; resp="$(timeout 2 cat <&3)"; exec 3<&-
  head -1 <<<"$resp" | grep -q ' 200 ' && sed -n '/^\r*$/,$p' <<<"$resp" | tail -n +2
}
body=""
for _ in $(seq 1 50); do body="$(health 2>/dev/null)" && break; sleep 0.2; done
echo "    /health: $body"
check "/health answers 200 with status ok" grep -q '"status":"ok"' <<<"$body"
check "the image's HEALTHCHECK passes (podman healthcheck run)" "${PODMAN[@]}" healthcheck run "$CONTAINER"
# shellcheck disable=SC2016 # "$@" is the inner shell's arguments
check "the process runs as uid 10001" bash -c '[ "$("$@")" = 10001 ]' _ "${PODMAN[@]}" exec "$CONTAINER" id -u

if command -v srt-live-transmit >/dev/null; then
  # 300 MPEG-TS-sized packets in, read back at the listener output.
  recv="$CACHE/recv.ts"; rm -f "$recv"
  timeout 12 srt-live-transmit -q "srt://127.0.0.1:$out_port?mode=caller" "file://con" >"$recv" 2>/dev/null &
  reader=$!
  sleep 1
  # Paced (30 bursts, 100 ms apart), as a live source would be.
  for _ in $(seq 1 30); do head -c $(( 1316 * 10 )) /dev/urandom; sleep 0.1; done \
    | timeout 8 srt-live-transmit -q -chunk:1316 "file://con" "srt://127.0.0.1:$in_port?mode=caller" 2>/dev/null || true
  sleep 2; kill "$reader" 2>/dev/null || true; wait "$reader" 2>/dev/null || true
  got="$(stat -c %s "$recv" 2>/dev/null || echo 0)"
  echo "    relayed $got of $(( 1316 * 300 )) bytes"
  check "an SRT stream crosses the containerised relay" test "$got" -gt 0
else
  echo "skip SRT data check: srt-live-transmit not installed (apt-get install srt-tools)"
fi

if [ "$fail" != 0 ]; then
  echo; echo "container logs:"; "${PODMAN[@]}" logs "$CONTAINER" 2>&1 | tail -20
  die "image checks failed"
fi
echo; echo "image $IMAGE OK: $size bytes"
