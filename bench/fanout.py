#!/usr/bin/env python3
"""Fan-out cost: relay CPU for one 10 Mbps input sent to 1, 4 and 16 outputs.

Runs the release binary (cargo build --release first) on loopback:
  udp:  UDP in -> N UDP outputs (the relay's own per-output cost)
  srt:  SRT in (srt-live-transmit caller) -> N SRT outputs, each to its own srt-live-transmit
Prints CPU % of one core (utime+stime from /proc over the window) and peak RSS.
Usage: bench/fanout.py [--seconds 10] [--mbps 10] [--outputs 1,4,16] [--modes udp,srt]
"""
import argparse, os, socket, subprocess, threading, time, json

from benchlib import cpu_seconds, free_port, send_paced, status_kb

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "stream-relay")


def drain(sock, stop):
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            sock.recv(2048)
        except socket.timeout:
            pass


def run(mode, n, mbps, seconds):
    procs = []
    stop = threading.Event()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sink.bind(("127.0.0.1", 0))
    sink_port = sink.getsockname()[1]
    threading.Thread(target=drain, args=(sink, stop), daemon=True).start()
    http = free_port()
    src_udp = free_port()
    if mode == "udp":
        args = ["udp", "-i", f"udp://127.0.0.1:{src_udp}"]
        for _ in range(n):
            args += ["-o", f"udp://127.0.0.1:{sink_port}"]
        feed = src_udp
    else:
        relay_in = free_port()
        args = ["srt", "-i", f"srt://:{relay_in}?mode=listener"]
        for _ in range(n):
            p = free_port()
            args += ["-o", f"srt://127.0.0.1:{p}"]
            procs.append(subprocess.Popen(["srt-live-transmit", f"srt://:{p}?mode=listener",
                                           f"udp://127.0.0.1:{sink_port}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["srt-live-transmit", f"udp://127.0.0.1:{src_udp}",
                                       f"srt://127.0.0.1:{relay_in}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        feed = src_udp
    relay = subprocess.Popen([BIN, "--http-addr", f"127.0.0.1:{http}", "--log-level", "warn"] + args,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.0)
    t = threading.Thread(target=send_paced, args=(feed, mbps, stop, seconds + 2))
    t.start()
    time.sleep(1.0)
    c0, w0 = cpu_seconds(relay.pid), time.time()
    time.sleep(seconds)
    c1, w1 = cpu_seconds(relay.pid), time.time()
    rss = status_kb(relay.pid, "VmHWM")
    stop.set()
    t.join()
    for p in [relay] + procs:
        p.terminate()
    for p in [relay] + procs:
        p.wait()
    return {"mode": mode, "outputs": n, "cpu_pct": 100 * (c1 - c0) / (w1 - w0), "peak_rss_mb": rss / 1024}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--mbps", type=float, default=10)
    ap.add_argument("--outputs", default="1,4,16")
    ap.add_argument("--modes", default="udp,srt")
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = []
    for mode in a.modes.split(","):
        for n in [int(x) for x in a.outputs.split(",")]:
            rows.append(run(mode, n, a.mbps, a.seconds))
            r = rows[-1]
            print(f"{mode:4} {n:3} outputs: relay CPU {r['cpu_pct']:5.1f}%  peak RSS {r['peak_rss_mb']:.1f} MB", flush=True)
    for mode in a.modes.split(","):
        rs = [r for r in rows if r["mode"] == mode]
        if len(rs) >= 2:
            per = (rs[-1]["cpu_pct"] - rs[0]["cpu_pct"]) / (rs[-1]["outputs"] - rs[0]["outputs"])
            base = rs[0]["cpu_pct"]
            print(f"{mode}: each extra output costs {per:.2f}% CPU; input + 1 output cost {base:.2f}%")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
