"""How heavy a pipeline's jobs are to watch: one user submits pipelines
with inline documents on one `jobd serve` (SQLite); then the size of a job
list page of 51 jobs, and of each SSE event of a document_processing job
followed from submission to its end.

    python3 bench/probes/pipeline_sizes.py target/debug/jobd DOC...

Run it with the same documents on two builds to compare them (the README's
figures: jobd's README and Redis's README from Debian's redis-server).
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading

from probe_support import free_port, get_json, up, wait_for

USER = "alice"


def post(port, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, json.dumps(body),
                     {"Content-Type": "application/json", "X-User-Id": USER})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def get_bytes(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"X-User-Id": USER})
        return conn.getresponse().read()
    finally:
        conn.close()


def follow(port, job_id, sizes, ready):
    """Appends the size in bytes of each SSE event of `job_id` (its data
    lines) to `sizes` until the stream ends."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", f"/api/v1/jobs/status/{job_id}/stream",
                 headers={"X-User-Id": USER, "Accept": "text/event-stream"})
    response = conn.getresponse()
    ready.set()
    event = 0
    for raw in response:
        line = raw.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            event += len(line) - len(b"data:")
        elif not line and event:
            sizes.append(event)
            event = 0
    conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("documents", nargs="+")
    parser.add_argument("--pipelines", type=int, default=13)
    args = parser.parse_args()
    documents = []
    for path in args.documents:
        with open(path, encoding="utf-8") as f:
            documents.append({"name": os.path.basename(path), "text": f.read()})

    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = dict(os.environ, JOBD_BIND=f"127.0.0.1:{port}", JOBD_DATA_DIR=data,
                   JOBD_SQLITE_SYNCHRONOUS="normal")
        server = subprocess.Popen([args.binary, "serve"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for("the server", lambda: up(port), 30)
            # The first pipeline's document job is followed from right
            # after its submission to its end.
            ids = []
            for i in range(args.pipelines):
                status, answer = post(port, "/api/v1/jobs/pipeline", {"documents": documents})
                assert status == 201, answer
                ids.extend(answer["job_ids"])
                if i == 0:
                    sizes, ready = [], threading.Event()
                    follower = threading.Thread(target=follow, args=(port, ids[0], sizes, ready))
                    follower.start()
                    ready.wait(10)

            def done():
                jobs = get_json(port, f"/api/v1/jobs?user_id={USER}&limit=100")["jobs"]
                return len(jobs) == len(ids) and all(
                    j["status"] in ("completed", "failed", "cancelled") for j in jobs)

            wait_for("every pipeline to end", done, 300, every=0.5)
            follower.join(60)
            page = get_bytes(port, f"/api/v1/jobs?user_id={USER}&limit=51")
            status = get_bytes(port, f"/api/v1/jobs/status/{ids[0]}")
            print(json.dumps({
                "documents": [d["name"] for d in documents],
                "document_bytes": sum(len(d["text"].encode()) for d in documents),
                "list_page_51_bytes": len(page),
                "list_page_jobs": len(json.loads(page)["jobs"]),
                "document_job_status_bytes": len(status),
                "sse_events": len(sizes),
                "sse_event_max_bytes": max(sizes, default=0),
                "sse_event_first_bytes": sizes[0] if sizes else 0,
            }, indent=2))
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    sys.exit(main())
