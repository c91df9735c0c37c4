"""Logging: one JSON object per line, each carrying the query it belongs to.

The query id lives in a context variable. The broker binds it when a call
arrives; asyncio tasks and ``asyncio.to_thread`` inherit it, so every line
logged on behalf of a query (planning, each scan, the merge, a refusal)
carries the same ``query_id``, and the adapters bind the id the broker sends
with each scan. Operators follow one query across processes with one grep.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from contextvars import ContextVar
from typing import TYPE_CHECKING, Literal

from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from collections.abc import Iterator

_query_id: ContextVar[str] = ContextVar("accord_query_id", default="")

LogFormat = Literal["json", "text"]


def new_query_id() -> str:
    return uuid.uuid4().hex


def current_query_id() -> str:
    """The query being worked on in this context; empty outside any query."""
    return _query_id.get()


@contextlib.contextmanager
def bind_query_id(query_id: str) -> Iterator[str]:
    """Tags every line logged in this context (and tasks it starts) with ``query_id``."""
    token = _query_id.set(query_id)
    try:
        yield query_id
    finally:
        _query_id.reset(token)


class _QueryContext(logging.Filter):
    """Adds the query id and the process's service name to every record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.query_id = _query_id.get()
        record.service = self.service
        return True


def configure(service: str, fmt: LogFormat = "json", level: int = logging.INFO) -> None:
    """Sends every logger's records to stderr, as JSON lines or as text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_QueryContext(service))
    if fmt == "json":
        # timestamp: UTC, ISO 8601 to the microsecond, under the key "time"
        handler.setFormatter(
            JsonFormatter(
                "{levelname}{name}{service}{query_id}{message}",
                style="{",
                timestamp="time",
                rename_fields={"levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(query_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
