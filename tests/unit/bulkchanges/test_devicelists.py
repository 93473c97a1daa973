"""The one device-list parser shared by the admin, the API and the commands."""

from __future__ import annotations

import pytest

from bulkchanges.devicelists import DeviceListError, parse_device_list, parse_device_rows
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
    with pytest.raises(DeviceListError, match="at most 1 per bulk change"):
        parse_device_list(f"{A}\n{B}\n", max_devices=1)


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
