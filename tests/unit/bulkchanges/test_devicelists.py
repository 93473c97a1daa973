"""The one device-list parser shared by the admin, the API and the commands."""

from __future__ import annotations

import io
import itertools

import pytest

from bulkchanges.devicelists import (
    CHUNK_BYTES,
    MAX_LINE_CHARS,
    REJECTED_KEPT,
    DeviceListError,
    TooManyDevices,
    parse_device_list,
    parse_device_rows,
)
from bulkchanges.types import DeviceRef

A = "89148000000000000001"
B = "89148000000000000002"


@pytest.mark.parametrize(
    "content",
    [
        f"iccid\n{A}\n{B}\n",
        f"\ufefficcid,msisdn\r\n{A},\r\n{B},\r\n",
        f"{A}\n\n{B}\n",
        f"msisdn,ICCID\n,{A}\n,{B}\n".encode(),
        f'"iccid"\n"{A}"\n"{B}"\n',
        f"{A[:10]} {A[10:]}\n{B}\n",  # whitespace inside an ICCID is stripped
    ],
)
def test_csv_and_bare_lists_give_the_same_devices(content: str | bytes) -> None:
    assert [d.iccid for d in parse_device_list(content).devices] == [A, B]


def test_duplicates_and_malformed_lines_are_reported_with_line_numbers() -> None:
    parsed = parse_device_list(f"iccid,msisdn\n{A},2145550100\n{A},\n12345,\n{B},12\n")
    assert parsed.devices == [DeviceRef(iccid=A, msisdn="2145550100")]
    assert [(r.line, r.reason) for r in parsed.duplicates] == [(3, "duplicate ICCID")]
    assert [(r.line, r.reason[:5]) for r in parsed.malformed] == [(4, "ICCID"), (5, "MSISD")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n \n", "empty"),
        (b"\x00\x01\x02binary", "binary"),
        ("iccid\n".encode("utf-16"), "binary"),
        (b"iccid\n\xff\xfe89148\n", "not UTF-8"),
        (b"name,number\nx,y\n", "no 'iccid' column"),
        # A field over the CSV reader's 128 KB limit: refused naming its line, not a crash.
        (
            b"iccid,msisdn\n89148000000000000001,1\n89148000000000000002," + b"9" * 140_000,
            "line 3: not a readable CSV line",
        ),
        (b'"' + b"8" * 140_000 + b'",iccid\n', "line 1: not a readable CSV line"),
    ],
)
def test_unreadable_lists_are_refused_with_a_clear_message(content: bytes, message: str) -> None:
    with pytest.raises(DeviceListError, match=message):
        parse_device_list(content)


def test_the_device_limit_is_enforced_while_parsing() -> None:
    with pytest.raises(TooManyDevices, match="more than 1 devices; split the list"):
        parse_device_list(f"{A}\n{B}\n", max_devices=1)
    with pytest.raises(TooManyDevices):
        parse_device_rows([{"iccid": A}, {"iccid": B}], max_devices=1)


class CountingStream:
    """``lines`` generated ICCID lines, read in whatever sizes the parser asks for."""

    def __init__(self, lines: int) -> None:
        self._lines = (b"89148%015d\n" % n for n in range(lines))
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = b"".join(itertools.islice(self._lines, max(1, size // 21)))
        self.bytes_read += len(data)
        return data


def test_a_file_is_read_as_a_stream_and_only_up_to_the_first_device_past_the_limit() -> None:
    stream = CountingStream(1_000_000)

    with pytest.raises(TooManyDevices):
        parse_device_list(stream, max_devices=1000)

    assert stream.bytes_read < 1001 * 21 + 2 * CHUNK_BYTES


def test_only_the_first_rejected_lines_are_kept_and_all_are_counted() -> None:
    bad = "\n".join(f"bad{n}" for n in range(3 * REJECTED_KEPT))
    parsed = parse_device_list(f"{A}\n{bad}\n{A}\n{A}\n".encode())

    assert (parsed.malformed_count, parsed.duplicate_count) == (3 * REJECTED_KEPT, 2)
    assert len(parsed.malformed) == REJECTED_KEPT and len(parsed.duplicates) == 2
    assert [line.line for line in parsed.rejected][:2] == [2, 3]


@pytest.mark.parametrize("padding", [CHUNK_BYTES - 1, CHUNK_BYTES - 2, CHUNK_BYTES - 3])
def test_line_numbers_hold_across_chunks_whatever_the_line_ends(padding: int) -> None:
    # A long first header cell puts a CRLF (or a multi-byte character) across a chunk edge.
    header = "iccid," + "x" * (padding - len("iccid,"))
    content = f"{header}\r\n{A},\r\n\u00e9\r\n{B}\r\n".encode()

    parsed = parse_device_list(io.BytesIO(content))

    assert [d.iccid for d in parsed.devices] == [A, B]
    assert [line.line for line in parsed.malformed] == [3]


def test_a_line_longer_than_any_device_list_line_is_refused_without_being_kept() -> None:
    long_line = "8" * (MAX_LINE_CHARS + 2 * CHUNK_BYTES)
    for content in (io.BytesIO(long_line.encode()), f"{A}\n{long_line}"):
        with pytest.raises(DeviceListError, match="longer than 1,048,576 characters"):
            parse_device_list(content)


def test_json_rows_use_the_same_rules() -> None:
    parsed = parse_device_rows([{"iccid": A, "eid": "1" * 32}, {"iccid": A}, {"iccid": "x"}])
    assert parsed.devices == [DeviceRef(iccid=A, eid="1" * 32)]
    assert len(parsed.duplicates) == 1 and len(parsed.malformed) == 1


@pytest.mark.parametrize(
    "iccid",
    [
        "\uff18\uff19\uff11\uff14\uff18" + "\uff10" * 15,  # fullwidth digits
        "\u0668\u0669\u0661\u0664\u0668" + "\u0660" * 15,  # Arabic-Indic digits
        "8914800000000000000\u0661",  # one of them among ASCII digits
    ],
)
def test_identifiers_are_ascii_digits_only(iccid: str) -> None:
    parsed = parse_device_list(f"iccid\n{A}\n{iccid}\n")
    assert [device.iccid for device in parsed.devices] == [A]
    assert [rejected.line for rejected in parsed.malformed] == [3]
