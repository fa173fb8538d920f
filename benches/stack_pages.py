#!/usr/bin/env python3
"""How much of its stack each writer thread touches, and RSS per client.

Starts `bench_server` (give its path; build it with
`cargo build --release --example bench_server`), opens N event streams to
127.0.0.1 one at a time (each waits for its head, so `tiny_http` starts few
pool threads), and reads `/proc/PID/smaps`: the resident size of every
mapping of exactly the writers' stack size (`STACK_SIZE` in
`src/writer.rs`, 128 KiB), and the process's RSS before and after. Linux
only. Prints one line, for example:

    100 streams: writer stacks {8: 100} KiB resident; RSS 17.0 KiB per client

    python3 benches/stack_pages.py target/release/examples/bench_server [N]
"""

import collections
import re
import socket
import subprocess
import sys
import time

STACK_KIB = 128
WAIT_S = 10.0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def stacks(pid):
    """Resident KiB of each mapping of exactly STACK_KIB KiB."""
    found = collections.Counter()
    size = None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            span = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
            if span:
                size = (int(span.group(2), 16) - int(span.group(1), 16)) // 1024
            elif line.startswith("Rss:") and size == STACK_KIB:
                found[int(line.split()[1])] += 1
    return dict(sorted(found.items()))


def listening_port(pid, deadline):
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if f"pid={pid}," in line:
                return int(line.split()[3].rsplit(":", 1)[1])
        time.sleep(0.05)
    raise TimeoutError("bench_server did not listen")


def open_stream(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        more = sock.recv(4096)
        if not more:
            raise ConnectionError("closed before the head")
        head += more
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
    return sock


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    server_bin = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    server = subprocess.Popen(
        [server_bin, "--addr", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = listening_port(server.pid, time.monotonic() + WAIT_S)
        # Let the server's own threads settle before the first sample.
        time.sleep(0.3)
        before = rss_kib(server.pid)
        idle_stacks = stacks(server.pid)
        streams = [open_stream(port) for _ in range(n)]
        time.sleep(0.3)
        after = rss_kib(server.pid)
        writers = collections.Counter(stacks(server.pid))
        writers.subtract(idle_stacks)
        writers = {k: v for k, v in sorted(writers.items()) if v > 0}
        print(
            f"{n} streams: writer stacks {writers} KiB resident; "
            f"RSS {(after - before) / n:.1f} KiB per client"
        )
        for stream in streams:
            stream.close()
    finally:
        server.terminate()
        server.wait(WAIT_S)


if __name__ == "__main__":
    main()
