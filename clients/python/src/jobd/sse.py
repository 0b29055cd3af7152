"""A Server-Sent Events parser over text lines (httpx's `iter_lines`), as
the WHATWG spec reads them: `event:` and `data:` fields, a blank line ends
an event, comments (keep-alives) and `id:`/`retry:` are skipped. jobd's
events are small and few, so this is all that is needed (no httpx-sse)."""

from __future__ import annotations

from typing import Iterable, Iterator, List, Tuple


def iter_events(lines: Iterable[str]) -> Iterator[Tuple[str, str]]:
    """Yields `(event_name, data)` for each event in `lines`."""
    name = ""
    data: List[str] = []
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if data:
                yield name or "message", "\n".join(data)
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data:
        yield name or "message", "\n".join(data)
