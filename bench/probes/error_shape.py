#!/usr/bin/env python3
"""How many bad requests one jobd binary answers in the API's error shape.

    python3 bench/probes/error_shape.py BINARY [BINARY ...]

Starts each binary (`serve` on SQLite, a scratch directory, a free port on
127.0.0.1), sends each case below on a fresh connection as raw bytes, and
prints, per case, the status and whether the body is the error shape
(`{"error": "...Error", "message": ...}` with `Content-Type:
application/json`); then the count. A case that gets no answer within 5 s is
counted as not in the shape.

Standard library only; every loop is bounded in count and time.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def fields(n):
    return b"".join(b"X-Field-%d: v\r\n" % i for i in range(n))


def get(target, extra=b""):
    return b"GET " + target + b" HTTP/1.1\r\nHost: jobd\r\nConnection: close\r\n" + extra + b"\r\n"


CASES = [
    # Answered by hyper before any handler, empty-bodied, before the fix;
    # in the error shape after it.
    ("URI of 20 KB", get(b"/health?" + b"a" * 20_000)),
    ("150 header fields", get(b"/health", fields(150))),
    ("900 header fields", get(b"/health", fields(900))),
    ("a 100 KB header", get(b"/health", b"X-Big: " + b"a" * 100_000 + b"\r\n")),
    # axum's plain-text rejections.
    ("dashboard path not UTF-8", get(b"/dashboard/%FF")),
    ("docs path not UTF-8", get(b"/api/docs/%FF")),
    # A body announced over the 1 MiB limit and never sent.
    (
        "Content-Length over the limit",
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: jobd\r\nContent-Length: 99999999999\r\n\r\n",
    ),
    # Already in the shape before.
    ("unknown route", get(b"/nothing")),
    ("bad job id", get(b"/api/v1/jobs/status/x")),
    ("bad query", get(b"/api/v1/jobs?limit=0")),
    ("body not JSON", b"POST /api/v1/jobs HTTP/1.1\r\nHost: jobd\r\nContent-Length: 1\r\nConnection: close\r\n\r\n["),
    # hyper's own answers, before and after: not HTTP/1, or past hyper's limits.
    ("not HTTP", b"HELLO\r\n\r\n"),
    ("header line without a colon", b"GET /health HTTP/1.1\r\nHost jobd\r\n\r\n"),
    ("two Content-Lengths", b"POST /api/v1/jobs HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}"),
    ("URI of 70 KB", get(b"/health?" + b"a" * 70_000)),
    ("1,001 header fields", get(b"/health", fields(1_001))),
    ("a 300 KB header", get(b"/health", b"X-Big: " + b"a" * 300_000 + b"\r\n")),
    ("a 1 MB header", get(b"/health", b"X-Big: " + b"a" * 1_000_000 + b"\r\n")),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exchange(port, request):
    """The status and whether the answer is in the error shape, or None."""
    deadline = time.monotonic() + 5
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(request)
        except OSError:
            pass  # answered and closed before the whole head was read
        data = b""
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, OSError):
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if len(body) >= length:
                    break
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None, False
    status = int(head.split()[1])
    json_type = b"content-type: application/json" in head.lower()
    try:
        parsed = json.loads(body)
        shaped = json_type and str(parsed.get("error", "")).endswith("Error") and "message" in parsed
    except ValueError:
        shaped = False
    return status, shaped


def probe(binary):
    scratch = tempfile.mkdtemp(prefix="error-shape-")
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", os.path.join(scratch, "data")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                status, _ = exchange(port, get(b"/health"))
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"{binary} did not answer /health within 30 s")
        shaped_count = 0
        print(f"\n{binary}")
        for name, request in CASES:
            status, shaped = exchange(port, request)
            shaped_count += shaped
            answer = "no answer in 5 s" if status is None else str(status)
            print(f"  {name:32} {answer:>16}  {'error shape' if shaped else 'NOT the error shape'}")
        print(f"  {shaped_count} of {len(CASES)} answered in the error shape")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for binary in sys.argv[1:]:
        probe(binary)


if __name__ == "__main__":
    main()
