#!/usr/bin/env python3
"""Memory and CPU for N streams: one stream-relay with N routes against N reference relays.

An operator with several feeds runs one stream-relay (`run --config`, one route per feed) or
one srt-live-transmit / rist2rist per feed. This measures both, on loopback, with the real
tools as edges (as relay-bench does):
  srt:   udp -> srt-live-transmit -> [relay] -> srt-live-transmit -> udp
  rist:  udp -> ristsender (simple profile) -> [relay] -> ristreceiver -> udp
         (rist2rist's input speaks only the simple profile, so stream-relay's routes use it too)

Memory is the relays' footprint: the physical pages mapped by the relay process(es), each page
counted once however many of them map it (read from /proc/PID/pagemap, which needs root),
split into anonymous (heap, stacks, buffers) and file-backed (code and read-only data of the
program and its libraries, shared between processes of the same program). Summing RSS over N
processes would count their shared code N times; this does not. Peak RSS is printed too.
CPU is utime + stime of the relay process(es) over the window, % of one core.

Runs the release binary (cargo build --release first).
Usage: bench/routes.py [--routes 1,4] [--mbps 10] [--seconds 10] [--families srt,rist]
"""
import argparse, json, os, socket, struct, subprocess, tempfile, threading, time

from benchlib import cpu_seconds, free_port, send_paced, status_kb

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "stream-relay")
PAGE = os.sysconf("SC_PAGE_SIZE")
DEVNULL = subprocess.DEVNULL


def footprint(pids):
    """Distinct physical pages mapped by these processes: (anon kB, file kB)."""
    anon, file = set(), set()
    for pid in pids:
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read().splitlines()
        with open(f"/proc/{pid}/pagemap", "rb") as pm:
            for line in maps:
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                path = parts[5] if len(parts) > 5 else ""
                if path in ("[vsyscall]", "[vvar]", "[vdso]"):
                    continue
                pm.seek(lo // PAGE * 8)
                raw = pm.read((hi - lo) // PAGE * 8)
                dest = anon if path == "" or path.startswith("[") else file
                for (v,) in struct.iter_unpack("Q", raw):
                    if v >> 63:
                        pfn = v & ((1 << 55) - 1)
                        if pfn == 0:
                            raise SystemExit("pagemap hides page frames: run as root")
                        dest.add(pfn)
    # A private file page that was written (relocations) is anonymous memory now but lives in
    # a file mapping; count every frame once, in the file column.
    anon -= file
    return len(anon) * PAGE // 1024, len(file) * PAGE // 1024


def counter(sock, stop, count):
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            sock.recv(2048)
            count[0] += 1
        except socket.timeout:
            pass


def spawn(args):
    return subprocess.Popen(args, stdout=DEVNULL, stderr=DEVNULL)


def run(family, tool, n, mbps, seconds):
    """tool: 'stream-relay' or the reference ('slt' / 'rist2rist')."""
    stop = threading.Event()
    edges, relays, feeds, counts = [], [], [], []
    threads = []
    routes = []  # (relay input port, edge-out port)
    for _ in range(n):
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sink.bind(("127.0.0.1", 0))
        count = [0]
        counts.append(count)
        threads.append(threading.Thread(target=counter, args=(sink, stop, count), daemon=True))
        sink_port = sink.getsockname()[1]
        rist = family == "rist"
        relay_in, out_port, feed = free_port(pair=rist), free_port(pair=rist), free_port()
        if rist:
            # rist2rist sends the main profile; stream-relay's route keeps the simple one.
            out_profile = "1" if tool == "rist2rist" else "0"
            edges.append(spawn(["ristreceiver", "-p", out_profile, "-S", "0", "-v", "2", "-i",
                                f"rist://@127.0.0.1:{out_port}?buffer=200", "-o",
                                f"udp://127.0.0.1:{sink_port}"]))
        else:
            edges.append(spawn(["srt-live-transmit", f"srt://:{out_port}?mode=listener",
                                f"udp://127.0.0.1:{sink_port}"]))
        routes.append((relay_in, out_port))
        feeds.append((feed, relay_in))
    http = free_port()
    if tool == "stream-relay":
        cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        cfg.write(f'[http]\naddr = "127.0.0.1:{http}"\n[log]\nlevel = "warn"\n')
        for i, (relay_in, out_port) in enumerate(routes):
            if family == "rist":
                cfg.write(f'[[route]]\nname = "r{i}"\nprofile = "simple"\n'
                          f'input = "rist://@127.0.0.1:{relay_in}"\n'
                          f'outputs = ["rist://127.0.0.1:{out_port}"]\n')
            else:
                cfg.write(f'[[route]]\nname = "r{i}"\n'
                          f'input = "srt://:{relay_in}?mode=listener"\n'
                          f'outputs = ["srt://127.0.0.1:{out_port}"]\n')
        cfg.close()
        relays.append(spawn([BIN, "run", "--config", cfg.name]))
    else:
        for relay_in, out_port in routes:
            if family == "rist":
                relays.append(spawn(["rist2rist", "-S", "0", "-v", "2", "-i",
                                     f"rist://@127.0.0.1:{relay_in}?buffer=200", "-o",
                                     f"rist://127.0.0.1:{out_port}?buffer=200"]))
            else:
                relays.append(spawn(["srt-live-transmit", f"srt://:{relay_in}?mode=listener",
                                     f"srt://127.0.0.1:{out_port}"]))
    time.sleep(1.0)
    for feed, relay_in in feeds:
        if family == "rist":
            edges.append(spawn(["ristsender", "-p", "0", "-S", "0", "-v", "2", "-i",
                                f"udp://@127.0.0.1:{feed}", "-o",
                                f"rist://127.0.0.1:{relay_in}?buffer=200"]))
        else:
            edges.append(spawn(["srt-live-transmit", f"udp://:{feed}?rcvbuf=4194304",
                                f"srt://127.0.0.1:{relay_in}"]))
        threads.append(threading.Thread(target=send_paced, args=(feed, mbps, stop), daemon=True))
    for t in threads:
        t.start()
    time.sleep(3.0)
    pids = [p.pid for p in relays]
    got0 = [c[0] for c in counts]
    c0, w0 = sum(cpu_seconds(p) for p in pids), time.time()
    time.sleep(seconds)
    c1, w1 = sum(cpu_seconds(p) for p in pids), time.time()
    got = [c[0] - g for c, g in zip(counts, got0)]
    anon_kb, file_kb = footprint(pids)
    rss_kb = sum(status_kb(p, "VmHWM") for p in pids)
    alive = all(p.poll() is None for p in relays)
    stop.set()
    for p in relays + edges:
        p.terminate()
    for p in relays + edges:
        p.wait()
    expected = mbps * 1e6 / 8 / 1316 * (w1 - w0)
    return {
        "family": family, "relay": tool, "routes": n, "mbps_each": mbps,
        "cpu_pct": 100 * (c1 - c0) / (w1 - w0),
        "footprint_mb": (anon_kb + file_kb) / 1024, "anon_mb": anon_kb / 1024,
        "file_mb": file_kb / 1024, "peak_rss_sum_mb": rss_kb / 1024,
        # Every route must carry its stream, or the figures above mean nothing.
        "delivered_min_ratio": min(g / expected for g in got) if expected else 0,
        "alive": alive,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", default="1,4")
    ap.add_argument("--mbps", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--families", default="srt,rist")
    ap.add_argument("--json")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("routes.py reads /proc/PID/pagemap page frames: run it as root")
    rows = []
    for family in a.families.split(","):
        ref = "rist2rist" if family == "rist" else "srt-live-transmit"
        for n in [int(x) for x in a.routes.split(",")]:
            for tool in ("stream-relay", ref):
                r = run(family, tool, n, a.mbps, a.seconds)
                rows.append(r)
                print(f"{family:4} {n:2} x {a.mbps:g} Mbps  {tool:18} CPU {r['cpu_pct']:5.1f}%  "
                      f"footprint {r['footprint_mb']:5.1f} MB (anon {r['anon_mb']:4.1f}, "
                      f"code/data {r['file_mb']:4.1f})  sum of peak RSS {r['peak_rss_sum_mb']:5.1f} MB  "
                      f"delivered >= {100 * r['delivered_min_ratio']:.1f}% per route"
                      + ("" if r["alive"] else "  RELAY DIED"), flush=True)
    print("\n| streams | relay | CPU % | footprint MB | anon MB | code + data MB | sum of peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['routes']} x {r['mbps_each']:g} Mbps {r['family'].upper()} | {r['relay']} | "
              f"{r['cpu_pct']:.1f} | {r['footprint_mb']:.1f} | {r['anon_mb']:.1f} | "
              f"{r['file_mb']:.1f} | {r['peak_rss_sum_mb']:.1f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
