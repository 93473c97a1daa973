"""The API's streamed JSON parser answers exactly as ``json.loads`` does for every body a
request may be, wherever the chunks break, and refuses what no request is: too deep, too
many list items, a value too long to be one."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rest_framework.exceptions import ParseError

from bulkchanges.api import parsers
from bulkchanges.api.parsers import BoundedJSONParser, loads_bounded
from bulkchanges.errors import ApplicationError


class TrickleStream(io.BytesIO):
    """A body that arrives ``size`` bytes at a time, whatever the reader asks for."""

    def __init__(self, content: bytes, size: int) -> None:
        super().__init__(content)
        self._size = size

    def read(self, size: int | None = -1) -> bytes:
        return super().read(self._size)


def parse(content: bytes | str, *, trickle: int = 1 << 16) -> Any:
    raw = content.encode() if isinstance(content, str) else content
    return BoundedJSONParser().parse(TrickleStream(raw, trickle), "application/json", {})


DOCUMENTS = [
    '{"integration": "POND", "target_status": "Suspended", "credentials": 12345678,'
    ' "devices": [{"iccid": "89148000000000000001", "msisdn": "15551234567"},'
    ' {"iccid": "89148000000000000002"}], "options": {"reason_code": "caf\u00e9 \U0001f600"},'
    ' "rev_service": {"customer_id": 42, "products": [{"product_id": 55, "rate": 4.5e0}]},'
    ' "is_ignore_current_status": true, "callback_url": null, "devices_note": [] }',
    "  \r\n{ }\n",
    '{"devices": [], "a": -0.25, "b": "\\"quoted\\" \\u00e9", "b": "last wins"}',
    '{"a": 12e-3, "b": [1.5E+2, -7, 0], "c": 100000000000000000000}',
    "[1, 2, 3]",
    '"just a string"',
    "42",
]


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("trickle", [1, 2, 3, 7, 1 << 16])
def test_a_body_parses_as_json_loads_does_wherever_its_chunks_break(
    document: str, trickle: int
) -> None:
    assert parse(document, trickle=trickle) == json.loads(document)


@pytest.mark.parametrize(
    "broken",
    ['{"a": 1} x', '{"a" 1}', '{"a": [1 2]}', "{1: 2}", '{"a": ', "[1,", "", '{"a": tru}'],
)
def test_invalid_json_is_a_parse_error(broken: str) -> None:
    with pytest.raises(ParseError, match="JSON parse error"):
        parse(broken, trickle=3)


def test_invalid_utf8_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="not valid text"):
        parse(b'{"a": "\xff"}')


@pytest.mark.parametrize("depth", [15, 17, 100_000])
def test_nesting_is_bounded_inside_lists_and_values(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    for body, enclosing in ((f'{{"devices": [{nested}]}}', 2), (f'{{"options": {nested}}}', 1)):
        if depth + enclosing <= parsers.MAX_JSON_DEPTH:
            parse(body)
        else:
            with pytest.raises(ParseError, match="nested more than 16 levels deep"):
                parse(body)


def test_a_top_level_list_longer_than_the_device_limit_is_refused_at_the_next_item(
    settings: Any,
) -> None:
    settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST = 2
    parse('{"devices": [{}, {}], "device_change_ids": [1, 2]}')
    with pytest.raises(ApplicationError) as too_many:
        parse('{"devices": [{}, {}, {}, ' + "x" * 100 + "]}")  # refused before the garbage
    assert (too_many.value.status, too_many.value.code) == (413, "too_many_devices")
    with pytest.raises(ParseError, match="device_change_ids holds more than 2 items"):
        parse('{"device_change_ids": [1, 2, 3]}')


def test_a_value_longer_than_any_request_holds_is_refused() -> None:
    long_string = '"' + "8" * (parsers.MAX_VALUE_CHARS + 1) + '"'
    for body in (f'{{"devices": [{long_string}]}}', f'{{"callback_url": {long_string}}}'):
        with pytest.raises(ParseError, match="longer than 65,536 characters"):
            parse(body)
    unterminated = '{"devices": ["' + "8" * (3 * parsers.MAX_VALUE_CHARS)
    with pytest.raises(ParseError, match="invalid or longer than"):
        parse(unterminated)


def test_json_form_fields_share_the_bound() -> None:
    assert loads_bounded('{"customer_id": 42}') == {"customer_id": 42}
    for deep in ("[" * 17 + "]" * 17, "[" * 100_000 + "]" * 100_000):
        with pytest.raises(parsers.JSONTooDeep):
            loads_bounded(deep)
    with pytest.raises(ValueError, match="Expecting"):
        loads_bounded("{not json")
