"""The one device-list parser (docs/architecture.md §11), shared by the admin upload, the API and
``create_bulk_change``: a CSV with a header naming ``iccid`` (required), ``msisdn`` and ``eid``
(optional) in any order, or one bare ICCID a line; UTF-8 with or without BOM; CRLF or LF;
blank lines ignored. Nothing is lost silently: every rejected line is counted and the first
ones are reported with their line number and reason, duplicates included. A list is read as a
stream, in bounded memory: a file a chunk at a time, stopping at the first device past the
limit (docs/architecture.md §11)."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bulkchanges.types import DeviceRef

_WHITESPACE = re.compile(r"\s+")
ICCID = re.compile(r"^[0-9]{18,22}$")
MSISDN = re.compile(r"^[0-9]{7,15}$")
EID = re.compile(r"^[0-9]{32}$")
KNOWN_COLUMNS = ("iccid", "msisdn", "eid")


class ByteStream(Protocol):
    """What a list is read from: an open binary file, an upload, standard input."""

    def read(self, size: int = ..., /) -> bytes: ...


class DeviceListError(ValueError):
    """The list as a whole cannot be read (binary, wrong columns, empty, too large)."""


class TooManyDevices(DeviceListError):
    """The list names more devices than a bulk change may hold; parsing stopped there."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(too_many_devices(limit))


def too_many_devices(limit: int) -> str:
    """The one wording of the device limit, for the API, the admin and the commands."""
    return f"more than {limit:,} devices; split the list into bulk changes of at most {limit:,}"


# Rejected lines kept per kind (malformed, duplicate): the admin shows 100 of each, the API
# the first 20; the counts are always complete, so a list of a million bad lines costs counts,
# not a million rows in memory.
REJECTED_KEPT = 100
# A longer line is no device list (the widest valid line is 71 characters); refused at once
# instead of being gathered into memory while its end is looked for.
MAX_LINE_CHARS = 1024 * 1024
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class RejectedLine:
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text}"


@dataclass
class ParsedDeviceList:
    """The valid devices, and the first :data:`REJECTED_KEPT` rejected lines of each kind with
    the full counts."""

    devices: list[DeviceRef] = field(default_factory=list)
    duplicates: list[RejectedLine] = field(default_factory=list)
    malformed: list[RejectedLine] = field(default_factory=list)
    duplicate_count: int = 0
    malformed_count: int = 0

    @property
    def rejected(self) -> list[RejectedLine]:
        """The rejected lines kept, in line order."""
        return sorted(self.malformed + self.duplicates, key=lambda line: line.line)

    @property
    def rejected_count(self) -> int:
        return self.malformed_count + self.duplicate_count

    def reject(self, kind: list[RejectedLine], line: RejectedLine) -> None:
        if kind is self.malformed:
            self.malformed_count += 1
        else:
            self.duplicate_count += 1
        if len(kind) < REJECTED_KEPT:
            kind.append(line)


def normalise_iccid(value: str) -> str:
    return _WHITESPACE.sub("", value or "")


def identifier_problem(device: DeviceRef) -> str | None:
    """Why a device's identifiers are invalid (docs/architecture.md §11), or None."""
    if not ICCID.match(device.iccid):
        return f"ICCID {device.iccid!r} must be 18-22 digits"
    if device.msisdn and not MSISDN.match(device.msisdn):
        return f"MSISDN {device.msisdn!r} must be 7-15 digits"
    if device.eid and not EID.match(device.eid):
        return f"EID {device.eid!r} must be 32 digits"
    return None


def parse_device_rows(
    rows: Iterable[Mapping[str, object]], *, max_devices: int | None = None
) -> ParsedDeviceList:
    """Validate device objects (the API's JSON form: ``{iccid, msisdn?, eid?}``)."""
    return _collect(
        (
            (
                number,
                str(row),
                DeviceRef(
                    iccid=normalise_iccid(str(row.get("iccid") or "")),
                    msisdn=normalise_iccid(str(row.get("msisdn") or "")),
                    eid=normalise_iccid(str(row.get("eid") or "")),
                ),
            )
            for number, row in enumerate(rows, start=1)
        ),
        max_devices=max_devices,
    )


def parse_device_list(
    content: str | bytes | ByteStream, *, max_devices: int | None = None
) -> ParsedDeviceList:
    """Parse a CSV or bare list of ICCIDs — text, bytes, or a binary file read in chunks (an
    upload is never read whole). DeviceListError when nothing usable can be read;
    TooManyDevices as soon as the list passes ``max_devices`` valid devices."""
    lines = _numbered_lines(content)
    first = next(((number, line) for number, line in lines if line.strip()), None)
    if first is None:
        raise DeviceListError("the device list is empty")
    number, line = first
    header = [column.strip().lower() for column in next(_csv_rows([line], number - 1))[0]]
    if "iccid" in header:
        entries = _csv_entries(lines, number, header)
    elif len(header) > 1 and not any(ICCID.match(normalise_iccid(c)) for c in header):
        raise DeviceListError(
            f"the CSV header has no 'iccid' column (found: {', '.join(header)[:200]})"
        )
    else:
        entries = _bare_entries(itertools.chain([(number, line)], lines))
    return _collect(entries, max_devices=max_devices)


def _numbered_lines(content: str | bytes | ByteStream) -> Iterator[tuple[int, str]]:
    """(line number, line with its ending) of ``content``, decoded as UTF-8 (BOM dropped) a
    chunk at a time. Line ends are those of ``str.splitlines``."""
    if isinstance(content, str):
        text = content.lstrip("\ufeff")
        chunks: Iterator[str] = (
            text[i : i + CHUNK_BYTES] for i in range(0, len(text), CHUNK_BYTES)
        )
    else:
        chunks = _decoded_chunks(io.BytesIO(content) if isinstance(content, bytes) else content)
    number, carry = 0, ""
    for chunk in chunks:
        pieces = (carry + chunk).splitlines(keepends=True)
        # The last piece may be a line still being read (or "\r" of a "\r\n" split in two).
        carry = pieces.pop() if pieces else ""
        for piece in pieces:
            number += 1
            yield number, piece
        if len(carry) > MAX_LINE_CHARS:
            raise DeviceListError(
                f"line {number + 1}: longer than {MAX_LINE_CHARS:,} characters; not a device list"
            )
    if carry:
        yield number + 1, carry


def _decoded_chunks(stream: ByteStream) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    position = 0
    first = True
    while True:
        raw = stream.read(CHUNK_BYTES)
        if first and b"\x00" in raw[:8192]:
            raise DeviceListError("the file is binary, not a CSV or text list of ICCIDs")
        first = False
        try:
            yield decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise DeviceListError(
                f"the file is not UTF-8 text (invalid byte at position {position + exc.start})"
            ) from None
        if not raw:
            return
        position += len(raw)


def _csv_entries(
    lines: Iterator[tuple[int, str]], header_line: int, header: list[str]
) -> Iterator[tuple[int, str, DeviceRef]]:
    columns = {name: header.index(name) for name in KNOWN_COLUMNS if name in header}
    started = header_line + 1  # the line the next row starts on
    rows = _csv_rows((line for _, line in lines), header_line)
    for row, ended in rows:
        number, started = started, ended + 1
        if not any(cell.strip() for cell in row):
            continue
        values = {
            name: normalise_iccid(row[index]) if index < len(row) else ""
            for name, index in columns.items()
        }
        yield number, ",".join(row), DeviceRef(**values)


def _csv_rows(lines: Iterable[str], skipped: int) -> Iterator[tuple[list[str], int]]:
    """CSV rows of ``lines`` (the file's lines after the first ``skipped``), each with the
    number of the line it ends on; a line the CSV reader refuses (a field over its 128 KB
    limit, a stray NUL) is a DeviceListError naming the line, never a crash."""
    reader = csv.reader(lines)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DeviceListError(
                f"line {skipped + reader.line_num}: not a readable CSV line ({error})"
            ) from None
        yield row, skipped + reader.line_num


def _bare_entries(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str, DeviceRef]]:
    for number, line in lines:
        if line.strip():
            text = line.strip()
            yield number, text, DeviceRef(iccid=normalise_iccid(text.strip('"')))


def _collect(
    entries: Iterable[tuple[int, str, DeviceRef]], *, max_devices: int | None
) -> ParsedDeviceList:
    parsed = ParsedDeviceList()
    seen: set[str] = set()
    for number, text, device in entries:
        problem = identifier_problem(device)
        if problem:
            parsed.reject(parsed.malformed, RejectedLine(number, text[:200], problem))
        elif device.iccid in seen:
            parsed.reject(parsed.duplicates, RejectedLine(number, text[:200], "duplicate ICCID"))
        else:
            seen.add(device.iccid)
            parsed.devices.append(device)
            if max_devices is not None and len(parsed.devices) > max_devices:
                raise TooManyDevices(max_devices)
    return parsed
