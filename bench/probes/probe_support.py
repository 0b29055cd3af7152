"""What several probes share: a free port, waiting on a condition with a
deadline, and reading a jobd node's JSON. Standard library only; the probes
run as scripts from this directory, so `from probe_support import ...`."""

import http.client
import json
import socket
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout, every=0.05):
    """Returns check()'s first true value, polling every `every` seconds,
    or raises once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}")


def get_json(port, path, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def up(port):
    """Whether the jobd node on `port` answers /health with ok."""
    try:
        return get_json(port, "/health").get("status") == "ok"
    except OSError:
        return False
