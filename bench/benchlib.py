"""Helpers shared by the bench/ scripts: free ports, a paced test-stream sender, /proc readings."""
import os, socket, struct, time

TICK = os.sysconf("SC_CLK_TCK")


def free_port(pair=False):
    """A free UDP port; with pair, an even one whose successor is free too (RIST simple)."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        if not pair:
            s.close()
            return p
        if p % 2 == 0:
            t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                t.bind(("127.0.0.1", p + 1))
                t.close()
                s.close()
                return p
            except OSError:
                t.close()
        s.close()


def send_paced(port, mbps, stop=None, seconds=None, numbered=False, burst_ms=0):
    """1316-byte datagrams of 7 TS-sync'd packets to 127.0.0.1:port at mbps, until stop is set
    (or seconds have passed). With numbered, each carries its sequence number (big-endian u64 at
    byte 4); with burst_ms, each burst_ms's packets go back to back (as an encoder sends a
    frame). Returns how many were sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pkt = bytearray(1316)
    for k in range(7):
        pkt[k * 188] = 0x47
    pps = mbps * 1e6 / 8 / 1316
    burst = burst_ms / 1000
    t0 = time.time()
    i = 0
    while not (stop and stop.is_set()) and (seconds is None or time.time() - t0 < seconds):
        if numbered:
            struct.pack_into("!Q", pkt, 4, i)
        s.sendto(pkt, ("127.0.0.1", port))
        i += 1
        due = i / pps
        if burst:
            due = (due // burst) * burst
        d = t0 + due - time.time()
        if d > 0:
            time.sleep(d)
    return i


def cpu_seconds(pid):
    """utime + stime of a process so far, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kb(pid, key):
    """A kB field of /proc/PID/status (VmHWM, VmRSS, RssAnon...), 0 if absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0
