#!/usr/bin/env bash
# Regenerates stream-relay/hot-symbols.txt: the functions of the release binary that run when it
# is used (startup, SRT, RIST and UDP routes, a configuration file reloaded by SIGHUP, the shared
# SRT listener, /health, /metrics, /stats, the page and its WebSocket feed), in the order the
# linker lays them out first (stream-relay/build.rs).
#
# Why: the binary's code is resident memory, and the kernel maps it 64 kB around each page
# fault, so code that runs, spread over the whole binary, makes nearly all of it resident
# (2.4 of 2.57 MB). Laid out together it takes about as many pages as its size (1.4 MB).
#
# How: the release build runs each scenario under valgrind's callgrind, against the reference
# tools, and every function of the binary that callgrind saw is listed. It must be the release
# profile itself: cargo's symbol hashes depend on the profile's settings (even `strip`).
# Each scenario is dumped in three parts: start-up (until the relay unmaps its start-up code,
# stream-relay/src/common/startup_code.rs; peers come after it), running, and stop. What ran
# only at start-up or at stop goes last, so what runs from then on comes back as contiguous
# pages. Start-up must end exactly at the release: a function that runs after it but is laid
# out with the start-up code (a peer's first status event, at any time) faults that code back,
# and the kernel maps a whole page-cache folio (up to 512 kB on this machine) around a fault.
# Run it after a toolchain or dependency update, or a change that renames much of the packet
# path: names that no longer exist are skipped by the linker, so a stale list costs memory,
# not correctness. Needs valgrind, srt-tools, rist-tools, ffmpeg, curl.
#
# `hot-symbols.sh --check BINARY` checks a release binary against the list instead: most listed
# functions exist in it (the list is not stale) and they sit together at the start of its code.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --check ]; then
  exec python3 - "$2" stream-relay/hot-symbols.txt <<'EOF'
import subprocess, sys
binary, listing = sys.argv[1], sys.argv[2]
listed = {l.strip() for l in open(listing) if l.strip() and not l.startswith("#")}
spans = {}
for line in subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                           text=True, check=True).stdout.splitlines():
    f = line.split()
    if len(f) == 4 and f[2] in "tT" and f[3] in listed:
        spans[int(f[0], 16)] = int(f[1], 16)
size = sum(spans.values())
span = max(a + s for a, s in spans.items()) - min(spans) if spans else 0
print(f"{binary}: {len(spans)} of {len(listed)} listed functions, {size} bytes, laid out over {span}")
if len(spans) < 0.9 * len(listed):
    sys.exit("hot-symbols.txt is stale for this build: run scripts/hot-symbols.sh")
if span > 1.1 * size:
    sys.exit("the listed functions are not laid out together: was the symbol ordering applied?")
EOF
fi
cargo build --release -q -p stream-relay
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/stream-relay")
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

profiled() { # profiled NAME HTTP_PORT ARGS...: starts the relay under callgrind
  local name=$1 port=$2; shift 2
  scenario=$name
  # Start-up ends as the relay starts unmapping its start-up code: the release itself, and
  # whatever runs after it, must be laid out with the code that keeps running, or it would
  # fault that code back.
  HTTP_ADDR=127.0.0.1:$port valgrind --tool=callgrind --demangle=no --dump-instr=no \
    --dump-before='*startup_code7release*' \
    --callgrind-out-file="$work/cg.$name" "$bin" "$@" >"$work/$name.log" 2>&1 &
  relay=$!
}
peer() { "$@" >/dev/null 2>&1 & pids+=($!); }
test_stream() { # test_stream SECONDS URI: 2 Mbps MPEG-TS, paced
  timeout "$1" ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=25 \
    -c:v mpeg2video -b:v 2M -f mpegts "$2" 2>/dev/null || true
}
scrape() { # scrape PORT SECONDS: what Prometheus and a health check ask, once a second
  for _ in $(seq "$2"); do
    curl -s -o /dev/null "http://127.0.0.1:$1/health" || true
    curl -s -o /dev/null "http://127.0.0.1:$1/metrics" || true
    sleep 1
  done
}
watch_http() { # watch_http PORT SECONDS: what a monitoring page, Prometheus and a switcher ask
  python3 - "$1" "$2" <<'EOF' &
import base64, os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
key = base64.b64encode(os.urandom(16)).decode()
s.send(f"GET /ws?interval_ms=250 HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n"
       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
s.settimeout(0.5)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        if not s.recv(65536):
            break
    except socket.timeout:
        pass
EOF
  local ws=$!
  for _ in $(seq "$2"); do
    for path in /health /metrics /stats / /api/routes /api/servers; do
      curl -s -o /dev/null "http://127.0.0.1:$1$path" || true
    done
    sleep 1
  done
  wait $ws || true
}
started() { # waits for the start-up part (dumped as the release begins) before any peer
  for _ in $(seq 100); do [ -s "$work/cg.$scenario.1" ] && sleep 1 && return; sleep 0.2; done
  echo "the relay did not release its start-up code within 20 s" >&2; exit 1
}
finish() {
  sleep 2; callgrind_control -d running "$relay" >/dev/null 2>&1
  kill -INT "$relay"; wait "$relay" || true; kill "${pids[@]}" 2>/dev/null || true; pids=()
}

echo "srt: SRT in, SRT and UDP out" >&2
profiled srt 9811 srt -i 'srt://:19000?mode=listener' -o 'srt://127.0.0.1:19001' -o 'udp://127.0.0.1:19500'
started
peer srt-live-transmit 'srt://:19001?mode=listener' file://con
sleep 6
test_stream 25 'srt://127.0.0.1:19000?pkt_size=1316' & stream=$!
sleep 4; scrape 9811 15; wait $stream; finish

echo "rist: RIST in and out" >&2
profiled rist 9812 rist -i 'rist://@127.0.0.1:18000' -o 'rist://127.0.0.1:18002'
started
peer ristreceiver -i 'rist://@127.0.0.1:18002' -o 'udp://127.0.0.1:18600'
peer ristsender -i 'udp://@127.0.0.1:18500' -o 'rist://127.0.0.1:18000'
sleep 6
test_stream 25 'udp://127.0.0.1:18500?pkt_size=1316' & stream=$!
sleep 4; scrape 9812 15; wait $stream; finish

echo "config: UDP in, a time-buffered UDP output and an SRT output, reloaded by SIGHUP" >&2
cat >"$work/routes.toml" <<'EOF'
[[route]]
name = "cam1"
input = "udp://127.0.0.1:17000"
outputs = [{ name = "late", uri = "udp://127.0.0.1:17001", time_buffer_ms = 300 }, "srt://127.0.0.1:17002"]
EOF
profiled config 9813 run --config "$work/routes.toml"
started
peer srt-live-transmit 'srt://:17002?mode=listener' file://con
sleep 6
test_stream 20 'udp://127.0.0.1:17000?pkt_size=1316' & stream=$!
sleep 4; watch_http 9813 4
sed -i 's/time_buffer_ms = 300/time_buffer_ms = 400/' "$work/routes.toml"; kill -HUP "$relay"
watch_http 9813 6; wait $stream; finish

echo "server: one SRT port, a publisher and a player by Stream ID" >&2
cat >"$work/server.toml" <<'EOF'
[[srt_server]]
name = "irl"
listen = "srt://:16000"

[[route]]
name = "cam1"
server = "irl"
outputs = ["udp://127.0.0.1:16001"]
EOF
profiled server 9814 run --config "$work/server.toml"
started
test_stream 25 'srt://127.0.0.1:16000?pkt_size=1316&streamid=publish/cam1' & stream=$!
sleep 3
peer srt-live-transmit 'srt://127.0.0.1:16000?streamid=play/cam1' file://con
sleep 1; watch_http 9814 15; wait $stream; finish

for name in srt rist config server; do
  grep -q '"peer connected"' "$work/$name.log" || { echo "scenario $name relayed nothing:" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
done

python3 - "$bin" "$work"/cg.* >stream-relay/hot-symbols.txt <<'EOF'
import os, re, sys
binary, files = sys.argv[1], sys.argv[2:]
ran = {}  # function -> the scenarios that ran it
running = {}  # function -> the scenarios that ran it while running (not only at start or stop)
for path in files:
    # cg.NAME.1: start-up, cg.NAME.2: running, cg.NAME: stop.
    scenario, _, part = os.path.basename(path).removeprefix("cg.").partition(".")
    objects, functions = {}, {}
    current = called = None
    for line in open(path, errors="replace"):
        m = re.match(r"(c?ob)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            kind, i, name = m.groups()
            if name:
                objects[i] = name
            if kind == "ob":
                current, called = objects.get(i), None
            else:
                called = objects.get(i)
            continue
        m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            kind, i, name = m.groups()
            if name:
                functions[i] = name
            obj = current if kind == "fn" else (called or current)
            if kind == "fn":
                called = None
            name = functions.get(i, "")
            # Rust's functions and the C ones linked in (main, the C runtime's start-up code);
            # not the "0x..." callgrind gives code it has no name for.
            if obj == binary and re.fullmatch(r"[A-Za-z_][\w.$]*", name):
                ran.setdefault(name, set()).add(scenario)
                if part == "2":
                    running.setdefault(name, set()).add(scenario)
# A process touches only the code of what it does: SRT-only code, then what SRT and RIST routes
# share, then RIST-only code, so that a one-protocol route (the common case) runs contiguous
# code; what only a configuration file, the shared listener or the page and its feed need, last.
# Each by what ran it while running. What ran only at start-up or at stop comes after all that.
def place(name):
    by = running.get(name, ran[name])
    srt, rist = "srt" in by, "rist" in by
    return (name not in running, 0 if srt and not rist else 1 if srt else 2 if rist else 3, name)
print("# Functions of stream-relay that run in use, laid out first by the linker (see build.rs):")
print("# what runs while relaying (SRT-only, shared by SRT and RIST routes, RIST-only, then what")
print("# other scenarios ran), then what ran only at start-up or at stop (common/startup_code.rs).")
print("# Generated by scripts/hot-symbols.sh; do not edit by hand.")
# The C runtime's entry point and start-up code (crtbegin's section) run once, at start;
# callgrind does not name them.
for name in ("_start", "frame_dummy"):
    ran.setdefault(name, {"srt", "rist"})
for name in sorted(ran, key=place):
    print(name)
EOF
echo "stream-relay/hot-symbols.txt: $(grep -vc '^#' stream-relay/hot-symbols.txt) functions" >&2
