"""The partner API's JSON parser: DRF's, made safe for hostile bodies (docs/architecture.md §11).

The body is read as a stream, a chunk at a time, never whole: the top-level object's values
are decoded one by one, and a top-level list (``devices``) one element at a time, so a list
longer than ``BULKCHANGE_MAX_DEVICES_PER_REQUEST`` is refused (413) as soon as its next
element is read, in bounded memory, whatever the body's size. A valid request nests at most a
few levels (body → devices → device → field); a body nested deeper than
:data:`MAX_JSON_DEPTH` — or so deep that Python's decoder gives up with a RecursionError — is
a 400, and so is one element or value longer than :data:`MAX_VALUE_CHARS`. JSON-valued
multipart fields go through :func:`loads_bounded`, the same bound."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer

from bulkchanges.services.bulk_changes import too_many_devices_error

MAX_JSON_DEPTH = 16
# One value of the top-level object, or one element of a top-level list: a device is under
# 200 characters and the largest other value (rev_service with 50 products) a few KB.
MAX_VALUE_CHARS = 64 * 1024
CHUNK_BYTES = 64 * 1024
_DECODER = json.JSONDecoder()
_NOT_WHITESPACE = re.compile(r"[^ \t\n\r]")
_NUMBER_CHARS = frozenset("0123456789.eE+-")


class JSONTooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"nested more than {MAX_JSON_DEPTH} levels deep")


class BoundedJSONParser(BaseParser):
    """``application/json``, streamed. Not a subclass of DRF's JSONParser on purpose: DRF
    reads ``request.body`` whole before calling a JSONParser (to keep the body readable after
    parsing), which would put a 32 MB body in memory twice over before the first device."""

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return _JSONStream(stream, encoding).document()
        except (RecursionError, JSONTooDeep):
            raise ParseError(too_deep()) from None


def too_deep() -> str:
    return f"JSON parse error - the body is {JSONTooDeep()}"


def loads_bounded(text: str | bytes) -> Any:
    """``json.loads`` for a JSON-valued form field: ValueError when it is not JSON,
    JSONTooDeep when it nests deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JSONTooDeep() from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise JSONTooDeep()
    return value


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (a scalar is 0), without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        pending.extend((child, depth + 1) for child in children)
    return deepest


class _JSONStream:
    """One JSON document read from a byte stream: text decoded a chunk at a time into a
    buffer that holds at most about one value plus one chunk."""

    def __init__(self, stream: Any, encoding: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)()
        self._text = ""
        self._pos = 0
        self._eof = False
        self._max_items = settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST

    def document(self) -> Any:
        first = self._peek()
        if first == "{":
            result: Any = self._object()
        elif first == "[":
            result = self._array(None)
        else:
            result = self._value(0)
        if self._peek():
            raise self._error("extra data after the JSON value")
        return result

    def _object(self) -> dict[str, Any]:
        self._expect("{")
        result: dict[str, Any] = {}
        if self._peek() == "}":
            self._pos += 1
            return result
        while True:
            key = self._value(1)
            if not isinstance(key, str):
                raise self._error("object keys must be strings")
            self._expect(":")
            result[key] = self._array(key) if self._peek() == "[" else self._value(1)
            if self._expect(",}") == "}":
                return result

    def _array(self, key: str | None) -> list[Any]:
        """A top-level list (or a list the object's ``key`` holds), an element at a time."""
        self._expect("[")
        items: list[Any] = []
        if self._peek() == "]":
            self._pos += 1
            return items
        while True:
            items.append(self._value(1 if key is None else 2))
            if len(items) > self._max_items:
                if key == "devices":
                    raise too_many_devices_error()
                raise self._error(f"{key or 'the list'} holds more than {self._max_items:,} items")
            if self._expect(",]") == "]":
                return items

    def _value(self, depth: int) -> Any:
        """One complete JSON value, enclosed in ``depth`` lists and objects."""
        self._peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as error:
                # Maybe only cut short by the buffer's end: read on, up to one value's length.
                if len(self._text) - self._pos <= MAX_VALUE_CHARS and self._more():
                    continue
                if len(self._text) - self._pos > MAX_VALUE_CHARS:
                    raise self._error(
                        f"a value or list item is invalid or longer than {MAX_VALUE_CHARS:,} "
                        f"characters ({error.msg})"
                    ) from None
                raise self._error(error.msg) from None
            if self._may_go_on(value, end) and self._more():
                continue  # a number cut at the buffer's end: "-0" of "-0.25"
            break
        if end - self._pos > MAX_VALUE_CHARS:
            raise self._error(f"a value or list item is longer than {MAX_VALUE_CHARS:,} characters")
        self._pos = end
        if depth + json_depth(value) > MAX_JSON_DEPTH:
            raise JSONTooDeep()
        return value

    def _may_go_on(self, value: Any, end: int) -> bool:
        if end == len(self._text):
            return True
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return is_number and self._text[end] in _NUMBER_CHARS

    def _peek(self) -> str:
        """The next character that is not whitespace ("" at the end), not consumed."""
        while True:
            match = _NOT_WHITESPACE.search(self._text, self._pos)
            if match:
                self._pos = match.start()
                return match.group()
            self._pos = len(self._text)
            if not self._more():
                return ""

    def _expect(self, allowed: str) -> str:
        char = self._peek()
        if not char or char not in allowed:
            found = repr(char) if char else "the end of the body"
            expected = " or ".join(repr(c) for c in allowed)
            raise self._error(f"expected {expected}, found {found}")
        self._pos += 1
        return char

    def _more(self) -> bool:
        """Read one more chunk into the buffer (dropping what was consumed); False at EOF."""
        if self._eof:
            return False
        raw = self._stream.read(CHUNK_BYTES)
        self._eof = not raw
        try:
            text = self._decoder.decode(raw, final=self._eof)
        except UnicodeDecodeError as error:
            raise self._error(f"the body is not valid text ({error.reason})") from None
        self._text = self._text[self._pos :] + text
        self._pos = 0
        return bool(raw)

    def _error(self, message: str) -> ParseError:
        return ParseError(f"JSON parse error - {message}")
