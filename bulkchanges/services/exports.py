"""Exporting bulk changes' devices with their outcomes as CSV — audited like every operator
action: one log row per bulk change naming who exported it."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from bulkchanges.models import BulkChangeLog
from bulkchanges.selectors import EXPORT_COLUMNS, device_changes_export_rows
from bulkchanges.services.logs import log_row

OPERATOR_EXPORT = "Devices exported"

CHUNK_CHARS = 64 * 1024

# A cell starting with one of these is a formula to a spreadsheet (CSV injection): carrier
# error messages are outside text, so such cells get a leading apostrophe.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def export_header(fields: Sequence[str]) -> tuple[str, ...]:
    """The CSV header naming these DeviceChange fields: the id is ``device_change_id``."""
    return tuple("device_change_id" if field == "id" else field for field in fields)


EXPORT_HEADER = export_header(EXPORT_COLUMNS)


class _Line:
    """A write-only file for ``csv.writer`` that hands back the line just written."""

    def write(self, value: str) -> str:
        return value


def bulk_change_export(*, bulk_change_ids: Sequence[int], actor: str) -> Iterator[str]:
    """Record the export (one ``Devices exported`` log row per bulk change, naming ``actor``)
    now, and return the CSV — a header line, then one line per device in bulk change and id
    order — as a lazy iterator of text pieces that holds one database chunk at a time, so
    100,000 devices stream in constant memory."""
    ids = sorted(set(bulk_change_ids))
    BulkChangeLog.objects.bulk_create(
        [
            log_row(
                bulk_change_id=pk,
                description=OPERATOR_EXPORT,
                process_by=actor,
                response_text="devices exported as CSV",
            )
            for pk in ids
        ]
    )
    return csv_pieces(EXPORT_HEADER, device_changes_export_rows(bulk_change_ids=ids))


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """``header`` and ``rows`` as CSV, one line at a time, lazily (it holds one row, whatever
    ``rows`` streams). Cells a spreadsheet would run as a formula get a leading apostrophe."""
    writer = csv.writer(_Line())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([_cell(value) for value in row])


def csv_pieces(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The same CSV in pieces of about CHUNK_CHARS (one socket write each, not one per
    device)."""
    piece: list[str] = []
    size = 0
    for line in csv_lines(header, rows):
        piece.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            yield "".join(piece)
            piece, size = [], 0
    if piece:
        yield "".join(piece)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value
