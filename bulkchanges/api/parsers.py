"""The partner API's JSON parser: DRF's, with hostile bodies made 400s (docs/architecture.md
§11). A valid request nests at most a few levels (body → devices → device → field); a body
nested deeper than :data:`MAX_JSON_DEPTH` — or so deep that Python's decoder gives up with a
RecursionError — is refused before any of it is used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 16


class BoundedJSONParser(JSONParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(too_deep()) from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(too_deep())
        return data


def too_deep() -> str:
    return f"JSON parse error - the body is nested more than {MAX_JSON_DEPTH} levels deep"


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
