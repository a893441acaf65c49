#!/usr/bin/env python3
"""Does a RIST output's librist sender keep up with freeing what it sent? Relays a numbered,
paced stream through ristsender -> stream-relay rist -> [impair-proxy] -> ristreceiver and
samples the relay's RssAnon every second: librist frees at most 9 sent packets per pass of its
sender thread, so a thread that passes too rarely keeps packets and the heap grows with time.

  bench/rist_sender_queue.py --mbps 50 --secs 60 [--loss 0.05] [--time-buffer-ms 500]
      [--relay target/release/stream-relay] [--no-relay] [--env KEY=VALUE]

Prints RssAnon every 10 s, its slope after 15 s (MB/min), the relay's CPU, what the final
receiver missed (largest gaps as length@sequence) and each relay thread's wake-ups a second;
librist's threads carry the name of the thread that started them: the process's for the
input's receiver and the output's standby sender, the input thread's (`in:main`) for the 1 ms
sender that replaces it when packets start; the flow's output thread comes last. --no-relay measures the
edges alone (ristsender -> [proxy] -> ristreceiver). --env KEY=VALUE sets the relay's
environment."""
import argparse, os, signal, socket, struct, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_seconds, free_port, send_paced, status_kb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def receive_numbered(sock, stop, out):
    seen = bytearray(1 << 24)
    buf = bytearray(2048)
    got = dup = 0
    lo, hi = None, -1
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            n = sock.recv_into(buf)
        except socket.timeout:
            continue
        if n < 12:
            continue
        (seq,) = struct.unpack_from("!Q", buf, 4)
        if seq >= len(seen):
            continue
        if seen[seq]:
            dup += 1
            continue
        seen[seq] = 1
        got += 1
        lo = seq if lo is None else min(lo, seq)
        hi = max(hi, seq)
    gaps, run = [], None
    for seq in range(lo or 0, hi + 1):
        if not seen[seq] and run is None:
            run = seq
        elif seen[seq] and run is not None:
            gaps.append((seq - run, run))
            run = None
    out.update(got=got, dup=dup, first=lo, last=hi, gaps=sorted(gaps, reverse=True)[:5])


def switches(pid):
    """Per thread (tid -> (name, voluntary + involuntary context switches so far))."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue
        out[tid] = (st["Name"], int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", default=os.path.join(ROOT, "target/release/stream-relay"))
    ap.add_argument("--proxy", default=os.path.join(ROOT, "target/release/impair-proxy"))
    ap.add_argument("--mbps", type=float, default=50)
    ap.add_argument("--secs", type=float, default=60)
    ap.add_argument("--loss", type=float, default=0, help="last hop loss, each direction")
    ap.add_argument("--delay-ms", type=float, default=20, help="last hop delay when --loss")
    ap.add_argument("--jitter-ms", type=float, default=5, help="last hop jitter when --loss")
    ap.add_argument("--time-buffer-ms", type=int, default=0)
    ap.add_argument("--burst-ms", type=float, default=0, help="send in bursts, one per this many ms")
    ap.add_argument("--no-relay", action="store_true", help="baseline: ristsender to the last hop")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the relay")
    a = ap.parse_args()

    logs = tempfile.mkdtemp(prefix="rist-sender-queue-")
    src, relay_in, relay_out, http = free_port(), free_port(), free_port(), free_port()
    final = free_port() if a.loss else relay_out
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sink.bind(("127.0.0.1", 0))
    sink_port = sink.getsockname()[1]
    procs = []

    def spawn(name, args, env=None):
        f = open(os.path.join(logs, name + ".log"), "w")
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env)
        procs.append(p)
        return p

    spawn("receiver", ["ristreceiver", "-p", "1", "-S", "0", "-v", "4",
                       "-i", f"rist://@127.0.0.1:{final}?buffer=200",
                       "-o", f"udp://127.0.0.1:{sink_port}"])
    if a.loss:
        spawn("proxy", [a.proxy, "--listen", f"127.0.0.1:{relay_out}",
                        "--upstream", f"127.0.0.1:{final}", "--loss", str(a.loss),
                        "--delay-ms", str(a.delay_ms), "--jitter-ms", str(a.jitter_ms),
                        "--both", "--seed", "1", "--stats-interval-ms", "0"])
    out_uri = f"rist://127.0.0.1:{relay_out}"
    if a.time_buffer_ms:
        out_uri += f"?time-buffer-ms={a.time_buffer_ms}"
    env = dict(os.environ, HTTP_ADDR=f"127.0.0.1:{http}")
    env.update(kv.split("=", 1) for kv in a.env)
    if a.no_relay:
        relay = spawn("relay", ["sleep", "1d"])  # stands in, so the readings below still work
    else:
        relay = spawn("relay", [a.relay, "rist", "--input", f"rist://@127.0.0.1:{relay_in}",
                                "--output", out_uri, "--log-level", "warn"], env)
    time.sleep(0.5)
    spawn("sender", ["ristsender", "-p", "1", "-S", "0", "-v", "4",
                     "-i", f"udp://@127.0.0.1:{src}",
                     "-o", f"rist://127.0.0.1:{relay_out if a.no_relay else relay_in}?buffer=200"])
    time.sleep(0.5)

    stop = threading.Event()
    got = {}
    rx = threading.Thread(target=receive_numbered, args=(sink, stop, got))
    rx.start()
    # The sender runs in a child process so the receiver's GIL does not disturb its pacing.
    pid = os.fork()
    if pid == 0:
        sent = send_paced(src, a.mbps, seconds=a.secs, numbered=True, burst_ms=a.burst_ms)
        with open(os.path.join(logs, "sent"), "w") as f:
            f.write(str(sent))
        os._exit(0)

    t0 = time.time()
    cpu0 = cpu_seconds(relay.pid)
    sw0 = sw1 = None
    samples = []
    while time.time() - t0 < a.secs:
        time.sleep(1 - (time.time() - t0) % 1)
        samples.append((time.time() - t0, status_kb(relay.pid, "RssAnon") / 1024))
        if sw0 is None and samples[-1][0] >= 10:
            sw0 = (time.time(), switches(relay.pid))
        elif sw0 and samples[-1][0] >= a.secs - 1.5 and sw1 is None:
            sw1 = (time.time(), switches(relay.pid))
    cpu = (cpu_seconds(relay.pid) - cpu0) / (time.time() - t0) * 100
    os.waitpid(pid, 0)
    time.sleep(1.5)
    stop.set()
    rx.join()
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()

    tail = [(t, m) for t, m in samples if t >= min(15, a.secs / 2)]
    n = len(tail)
    mt = sum(t for t, _ in tail) / n
    mm = sum(m for _, m in tail) / n
    slope = sum((t - mt) * (m - mm) for t, m in tail) / sum((t - mt) ** 2 for t, _ in tail)
    with open(os.path.join(logs, "sent")) as f:
        nsent = int(f.read())
    span = got["last"] - got["first"] + 1 if got.get("first") is not None else 0
    every10 = " ".join(f"{m:.1f}" for t, m in samples if round(t) % 10 == 0)
    print(f"mbps={a.mbps:g} burst_ms={a.burst_ms:g} loss={a.loss:g} tb={a.time_buffer_ms} env={','.join(a.env) or '-'} "
          f"rssanon_mb@10s=[{every10}] slope={slope * 60:+.2f}MB/min cpu={cpu:.1f}% "
          f"sent={nsent} got={got['got']} missing_inside={span - got['got']} "
          f"head={got['first']} tail={nsent - 1 - got['last']} dup={got['dup']} "
          f"largest_gaps(len@seq)={' '.join(f'{n}@{q}' for n, q in got['gaps']) or '-'} logs={logs}",
          flush=True)
    if sw0 and sw1:
        dt = sw1[0] - sw0[0]
        per = sorted(((sw1[1][t][1] - n) / dt, name, t) for t, (name, n) in sw0[1].items() if t in sw1[1])
        print("  wake-ups/s per thread (switches, from 10 s on): "
              + ", ".join(f"{name}/{t}={r:.0f}" for r, name, t in reversed(per) if r >= 1), flush=True)


if __name__ == "__main__":
    main()
