"""Schemathesis hooks for jobd's fuzz run (loaded by schemathesis.toml).

A long-poll waits up to its `timeout` (0 to 300 s, default 30) for a job
that does not change: correct, but a fuzzer that picks 195 s stalls the run
and fails on its own request timeout. A missing timeout and valid ones above
one second become one second; invalid ones (negative, above 300, not a
number) are sent as generated, so the server's refusals are still fuzzed.
"""

import schemathesis

LONGEST_WAIT = 1.0


@schemathesis.hook
def before_call(context, case, kwargs):
    if not case.operation.path.endswith("/poll"):
        return
    if case.query is None:
        case.query = {}
    if not isinstance(case.query, dict):
        return
    if "timeout" not in case.query:
        case.query["timeout"] = LONGEST_WAIT
        return
    raw = case.query["timeout"]
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        return
    if LONGEST_WAIT < seconds <= 300:
        case.query["timeout"] = LONGEST_WAIT
