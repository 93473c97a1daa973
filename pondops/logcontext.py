"""Ambient log context: the ids of the work in hand on every log line, without each call
passing ``extra=`` (docs/operations/observability.md).

A device's run, a task, an SQS message and a web request bind their ids with
:func:`log_context_bind`; :class:`LogContextFilter`, installed on the console handler, copies
them onto every record that passes, whichever logger made it (a carrier client's, django's,
botocore's). An id given with ``extra=`` wins over the ambient one, so the existing calls keep
working. The context is a :mod:`contextvars` variable: each thread and each asyncio task sees its
own, so the worker threads of a chunk never mix their devices' ids.

Two formats: JSON (python-json-logger, one object a line, for log shippers) and plain (the
same ids in brackets, for a terminal): ``PONDOPS_LOG_FORMAT``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# The ids a log line carries whenever they are known, and their short names in plain format.
FIELDS: Mapping[str, str] = {
    "bulk_change_id": "bc",
    "device_change_id": "dc",
    "request_id": "req",
    "carrier": "",  # the Integration code, shown bare: [bc=12 dc=345 POND]
}
FORMATS = ("json", "plain")  # PONDOPS_LOG_FORMAT

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: ContextVar[Mapping[str, Any]] = ContextVar("pondops_log_context", default=_EMPTY)


def _known(value: Any) -> bool:
    """An id is known when it is set: None, "" and 0 (an SQS message's "no device") are not."""
    return value is not None and value != "" and value != 0


@contextmanager
def log_context_bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (of :data:`FIELDS`) to the ambient context for the ``with`` block; the
    enclosing context is restored on exit, also after an exception. Unknown values (None, "",
    0) leave an enclosing value in place rather than hiding it."""
    unexpected = set(fields) - set(FIELDS)
    if unexpected:
        raise TypeError(f"not a log context field: {', '.join(sorted(unexpected))}")
    merged = {**_context.get(), **{name: v for name, v in fields.items() if _known(v)}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def log_context_get() -> Mapping[str, Any]:
    """The ambient ids (for code that hands them on, e.g. to another thread)."""
    return dict(_context.get())


class LogContextFilter(logging.Filter):
    """Copies the ambient ids onto each record that has none of its own (``extra=`` wins), and
    drops unknown ones (``extra={"request_id": ""}``) so no line carries an empty id."""

    def filter(self, record: logging.LogRecord) -> bool:
        ambient = _context.get()
        for name in FIELDS:
            own = record.__dict__.get(name)
            if _known(own):
                continue
            if name in ambient:
                setattr(record, name, ambient[name])
            elif name in record.__dict__:
                del record.__dict__[name]
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: time, level, logger, message, process, then the ids and any other
    ``extra=`` fields; ``exc_info`` as the formatted traceback."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            **kwargs,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 in UTC with milliseconds, which every log store parses."""
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PlainFormatter(logging.Formatter):
    """``time LEVEL pid logger: [bc=12 dc=345 req=abc POND] message`` — the ids in brackets, only
    those known."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s", **kwargs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        ids = [
            f"{short}={value}" if short else str(value)
            for name, short in FIELDS.items()
            if _known(value := record.__dict__.get(name))
        ]
        if not ids:
            return super().formatMessage(record)
        bracketed = logging.makeLogRecord(record.__dict__)
        bracketed.message = f"[{' '.join(ids)}] {record.message}"
        return super().formatMessage(bracketed)


def log_format_default(*, environment_name: str) -> str:
    """JSON wherever logs are shipped (every environment but ``local``), plain on a laptop."""
    return "plain" if environment_name == "local" else "json"


def logging_config(
    *, log_format: str, level: str, q_level: str, stream: str = "ext://sys.stderr"
) -> dict[str, Any]:
    """The ``LOGGING`` dict: one console handler with the context filter and the chosen
    formatter, the chatty libraries quietened."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"log_context": {"()": "pondops.logcontext.LogContextFilter"}},
        "formatters": {
            "json": {"()": "pondops.logcontext.JsonFormatter"},
            "plain": {"()": "pondops.logcontext.PlainFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": stream,
                "formatter": log_format,
                "filters": ["log_context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "botocore": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
            "axes": {"level": "WARNING"},  # lockouts and repeated failures, not every start
            "django_q": {"level": q_level},
        },
    }
