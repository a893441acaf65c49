#!/usr/bin/env python3
"""Time buffer: one route, UDP in -> two UDP outputs, one pass-through and one with a time buffer.

Prints, per output: latency added by the relay (arrival - send, same clock) p50/p99/max, and for
the buffered one the error against the configured delay and the p99 pacing error (inter-arrival
spacing against the source's). Needs the release build (cargo build --release).
Usage: bench/time_buffer.py [--delay-ms 500] [--mbps 10] [--seconds 10]
"""
import argparse, multiprocessing, os, socket, struct, subprocess, time

from benchlib import free_port

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "stream-relay")


def collect(sock, queue):
    rows = []
    while True:
        try:
            d = sock.recv(2048)
        except socket.timeout:
            break
        rows.append((time.monotonic(), struct.unpack_from(">Id", d, 4)))
    queue.put(rows)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-ms", type=float, default=500)
    ap.add_argument("--mbps", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    http, src = free_port(), free_port()
    sinks = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind(("127.0.0.1", 0))
        s.settimeout(a.delay_ms / 1000 + 2)
        sinks.append(s)
    relay = subprocess.Popen([BIN, "--http-addr", f"127.0.0.1:{http}", "--log-level", "warn", "udp",
                              "-i", f"udp://127.0.0.1:{src}",
                              "-o", f"udp://127.0.0.1:{sinks[0].getsockname()[1]}",
                              "-o", f"udp://127.0.0.1:{sinks[1].getsockname()[1]}?time-buffer-ms={a.delay_ms:g}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    # Collectors in their own processes: a Python thread would wait for the sender's GIL and
    # read late, which would show as latency the relay never added.
    queues = [multiprocessing.Queue() for _ in range(2)]
    procs = [multiprocessing.Process(target=collect, args=(sinks[i], queues[i])) for i in range(2)]
    for p in procs:
        p.start()
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pps = a.mbps * 1e6 / 8 / 1316
    n = int(pps * a.seconds)
    pkt = bytearray(1316)
    for k in range(7):
        pkt[k * 188] = 0x47
    t0 = time.monotonic()
    for i in range(n):
        wait = t0 + i / pps - time.monotonic()
        if wait > 0.0002:
            time.sleep(wait - 0.0001)
        while time.monotonic() < t0 + i / pps:
            pass
        struct.pack_into(">Id", pkt, 4, i, time.monotonic())
        out.sendto(pkt, ("127.0.0.1", src))
    got = [q.get() for q in queues]
    for p in procs:
        p.join()
    relay.terminate()
    relay.wait()
    interval = 1 / pps
    for i, name in enumerate(["pass-through", f"time buffer {a.delay_ms:g} ms"]):
        rows = got[i]
        lat = [(t - sent) * 1000 for t, (seq, sent) in rows]
        line = f"{name:>22}: {len(rows)}/{n} packets, added latency p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms, max {max(lat):.2f} ms"
        if i == 1:
            err = [l - a.delay_ms for l in lat]
            spacing = [abs((rows[j][0] - rows[j - 1][0]) - (rows[j][1][1] - rows[j - 1][1][1])) * 1000
                       for j in range(1, len(rows))]
            line += (f"; delay error p50 {pct(err, 50):+.2f} ms, p99 {pct(err, 99):+.2f} ms; "
                     f"pacing error vs source p50 {pct(spacing, 50):.3f} ms, p99 {pct(spacing, 99):.3f} ms "
                     f"(source spacing {interval * 1000:.2f} ms)")
        print(line)


if __name__ == "__main__":
    main()
