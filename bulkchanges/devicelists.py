"""The one device-list parser (docs/architecture.md §11), shared by the admin upload, the API and
``create_bulk_change``: a CSV with a header naming ``iccid`` (required), ``msisdn`` and ``eid``
(optional) in any order, or one bare ICCID a line; UTF-8 with or without BOM; CRLF or LF;
blank lines ignored. Nothing is lost silently: every rejected line is reported with its line
number and reason, duplicates included."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from bulkchanges.types import DeviceRef

_WHITESPACE = re.compile(r"\s+")
ICCID = re.compile(r"^[0-9]{18,22}$")
MSISDN = re.compile(r"^[0-9]{7,15}$")
EID = re.compile(r"^[0-9]{32}$")
KNOWN_COLUMNS = ("iccid", "msisdn", "eid")


class DeviceListError(ValueError):
    """The list as a whole cannot be read (binary, wrong columns, empty, too large)."""


@dataclass(frozen=True)
class RejectedLine:
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text}"


@dataclass
class ParsedDeviceList:
    devices: list[DeviceRef] = field(default_factory=list)
    duplicates: list[RejectedLine] = field(default_factory=list)
    malformed: list[RejectedLine] = field(default_factory=list)

    @property
    def rejected(self) -> list[RejectedLine]:
        """Every line left out: the malformed ones, then the duplicates."""
        return self.malformed + self.duplicates


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


def decode_device_file(raw: bytes) -> str:
    """Bytes of an uploaded list as text; DeviceListError for binary or non-UTF-8 input."""
    if b"\x00" in raw[:8192]:
        raise DeviceListError("the file is binary, not a CSV or text list of ICCIDs")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeviceListError(
            f"the file is not UTF-8 text (invalid byte at position {exc.start})"
        ) from None


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


def parse_device_list(content: str | bytes, *, max_devices: int | None = None) -> ParsedDeviceList:
    """Parse a CSV or bare list of ICCIDs. DeviceListError when nothing usable can be read."""
    text = decode_device_file(content) if isinstance(content, bytes) else content.lstrip("\ufeff")
    lines = text.splitlines()
    first = next((index for index, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DeviceListError("the device list is empty")
    header = [column.strip().lower() for column in next(_csv_rows([lines[first]], first))]
    if "iccid" in header:
        entries = _csv_entries(lines, first, header)
    elif len(header) > 1 and not any(ICCID.match(normalise_iccid(c)) for c in header):
        raise DeviceListError(
            f"the CSV header has no 'iccid' column (found: {', '.join(header)[:200]})"
        )
    else:
        entries = _bare_entries(lines)
    return _collect(entries, max_devices=max_devices)


def _csv_entries(
    lines: list[str], header_index: int, header: list[str]
) -> Iterator[tuple[int, str, DeviceRef]]:
    columns = {name: header.index(name) for name in KNOWN_COLUMNS if name in header}
    rows = _csv_rows(lines[header_index + 1 :], header_index + 1)
    for number, row in enumerate(rows, start=header_index + 2):
        if not any(cell.strip() for cell in row):
            continue
        values = {
            name: normalise_iccid(row[index]) if index < len(row) else ""
            for name, index in columns.items()
        }
        yield number, ",".join(row), DeviceRef(**values)


def _csv_rows(lines: list[str], skipped: int) -> Iterator[list[str]]:
    """CSV rows of ``lines`` (the file's lines after the first ``skipped``); a line the CSV
    reader refuses (a field over its 128 KB limit, a stray NUL) is a DeviceListError naming
    the line, never a crash."""
    reader = csv.reader(lines)
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DeviceListError(
                f"line {skipped + reader.line_num}: not a readable CSV line ({error})"
            ) from None


def _bare_entries(lines: list[str]) -> Iterator[tuple[int, str, DeviceRef]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line, DeviceRef(iccid=normalise_iccid(line.strip().strip('"')))


def _collect(
    entries: Iterable[tuple[int, str, DeviceRef]], *, max_devices: int | None
) -> ParsedDeviceList:
    parsed = ParsedDeviceList()
    seen: set[str] = set()
    for number, text, device in entries:
        problem = identifier_problem(device)
        if problem:
            parsed.malformed.append(RejectedLine(number, text[:200], problem))
        elif device.iccid in seen:
            parsed.duplicates.append(RejectedLine(number, text[:200], "duplicate ICCID"))
        else:
            seen.add(device.iccid)
            parsed.devices.append(device)
            if max_devices is not None and len(parsed.devices) > max_devices:
                raise DeviceListError(f"too many devices: at most {max_devices:,} per bulk change")
    return parsed
