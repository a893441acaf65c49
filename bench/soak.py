#!/usr/bin/env python3
"""Soak: relay for N minutes with periodic faults, printing RSS, fds and threads over time.

Route: UDP generator -> srt-live-transmit -> relay (SRT listener in) -> SRT out to a second
srt-live-transmit -> UDP sink, plus a RIST output to ristreceiver. Every --fault-every seconds
it kills and restarts, in turn, the SRT sender, the SRT receiver and the RIST receiver.
At the end it prints the RSS slope (least squares over the second half, KB per minute): it
must be flat. Needs the release build (cargo build --release).
Usage: bench/soak.py [--minutes 10] [--mbps 10] [--fault-every 20] [--sample-every 30]
"""
import argparse, os, socket, subprocess, threading, time, json, urllib.request

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "stream-relay")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def metric(http, name):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=2).read().decode()
    except Exception:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--mbps", type=float, default=10)
    ap.add_argument("--fault-every", type=float, default=20)
    ap.add_argument("--sample-every", type=float, default=30)
    ap.add_argument("--json")
    a = ap.parse_args()

    http, relay_in, srt_out, rist_out = free_port(), free_port(), free_port(), free_port()
    src_udp, sink1, sink2 = free_port(), free_port(), free_port()
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    relay = subprocess.Popen([BIN, "--http-addr", f"127.0.0.1:{http}", "--log-level", "warn", "srt",
                              "-i", f"srt://:{relay_in}?mode=listener",
                              "-o", f"srt://127.0.0.1:{srt_out}",
                              "-o", f"rist://127.0.0.1:{rist_out}?buffer=200",
                              "--reconnect-min-ms", "100", "--reconnect-max-ms", "1000"], **quiet)
    peers = {
        "srt sender": lambda: subprocess.Popen(["srt-live-transmit", f"udp://127.0.0.1:{src_udp}",
                                                f"srt://127.0.0.1:{relay_in}"], **quiet),
        "srt receiver": lambda: subprocess.Popen(["srt-live-transmit", f"srt://:{srt_out}?mode=listener",
                                                  f"udp://127.0.0.1:{sink1}"], **quiet),
        "rist receiver": lambda: subprocess.Popen(["ristreceiver", "-i", f"rist://@127.0.0.1:{rist_out}?buffer=200",
                                                   "-o", f"udp://127.0.0.1:{sink2}", "-v", "3", "-S", "0"], **quiet),
    }
    procs = {k: f() for k, f in peers.items()}
    stop = threading.Event()

    def generate():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        pkt = bytearray(1316)
        for k in range(7):
            pkt[k * 188] = 0x47
        pps = a.mbps * 1e6 / 8 / 1316
        t0, i = time.time(), 0
        while not stop.is_set():
            s.sendto(pkt, ("127.0.0.1", src_udp))
            i += 1
            d = t0 + i / pps - time.time()
            if d > 0:
                time.sleep(d)

    def drain(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        s.settimeout(0.5)
        while not stop.is_set():
            try:
                s.recv(2048)
            except socket.timeout:
                pass

    for t in [threading.Thread(target=generate, daemon=True),
              threading.Thread(target=drain, args=(sink1,), daemon=True),
              threading.Thread(target=drain, args=(sink2,), daemon=True)]:
        t.start()

    start = time.time()
    end = start + a.minutes * 60
    next_fault, next_sample, victim = start + a.fault_every, start + 5, 0
    samples, faults = [], 0
    print(f"{'min':>6} {'RSS MB':>8} {'HWM MB':>8} {'fds':>5} {'thr':>5} {'in pkts':>10} {'reconnects':>10}", flush=True)
    while time.time() < end:
        now = time.time()
        if now >= next_fault:
            name = list(peers)[victim % len(peers)]
            procs[name].kill()
            procs[name].wait()
            time.sleep(1.0)
            procs[name] = peers[name]()
            victim += 1
            faults += 1
            next_fault = now + a.fault_every
        if now >= next_sample:
            st = status(relay.pid)
            row = {"t_min": (now - start) / 60, "rss_kb": st["VmRSS"], "hwm_kb": st["VmHWM"],
                   "fds": st["fds"], "threads": st["Threads"],
                   "in_packets": metric(http, 'relay_packets_total{route="main",side="input"'),
                   "reconnects": metric(http, "relay_reconnects_total")}
            samples.append(row)
            print(f"{row['t_min']:6.1f} {row['rss_kb']/1024:8.1f} {row['hwm_kb']/1024:8.1f} {row['fds']:5} "
                  f"{row['threads']:5} {row['in_packets'] or 0:10.0f} {row['reconnects'] or 0:10.0f}", flush=True)
            next_sample = now + a.sample_every
        time.sleep(0.2)
    stop.set()
    relay.terminate()
    code = relay.wait()
    for p in procs.values():
        p.kill()
        p.wait()
    half = samples[len(samples) // 2:]
    if len(half) >= 2:
        xs = [s["t_min"] for s in half]
        ys = [s["rss_kb"] for s in half]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mx) ** 2 for x in xs))
        print(f"faults injected: {faults}; RSS slope over the second half: {slope:+.1f} KB/min; "
              f"fds {samples[0]['fds']} -> {samples[-1]['fds']}, threads {samples[0]['threads']} -> {samples[-1]['threads']}; "
              f"relay exit code {code}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(samples, f, indent=2)


if __name__ == "__main__":
    main()
