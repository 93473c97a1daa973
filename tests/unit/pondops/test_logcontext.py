"""The log context and the two formats: every line carries the ids of the work in hand
(ambient, or given with ``extra=``, which wins), only those known, in JSON or in brackets."""

from __future__ import annotations

import io
import logging
import threading
from typing import Any

import pytest

from pondops.logcontext import (
    log_context_bind,
    log_context_get,
    log_format_default,
    logging_config,
)
from pondops.middleware import request_id_from
from tests.fixtures.logs import json_lines


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return json_lines(buffer.getvalue())


def test_a_json_line_has_time_level_logger_message_process_and_the_ambient_ids(
    configured_logs: Any,
) -> None:
    buffer = configured_logs("json")
    log = logging.getLogger("some.library")
    with log_context_bind(bulk_change_id=12, carrier="POND"):
        with log_context_bind(device_change_id=345, request_id="req-1"):
            log.info("inside %s", "the run")
        log.info("after the device")
    log.info("outside")

    inside, after, outside = lines(buffer)
    assert inside["message"] == "inside the run"
    assert inside["level"] == "INFO" and inside["logger"] == "some.library"
    assert isinstance(inside["process"], int) and inside["time"].endswith("Z")
    assert (inside["bulk_change_id"], inside["device_change_id"]) == (12, 345)
    assert (inside["request_id"], inside["carrier"]) == ("req-1", "POND")
    assert after["bulk_change_id"] == 12 and "device_change_id" not in after
    assert not {"bulk_change_id", "device_change_id", "request_id", "carrier"} & set(outside)


def test_an_extra_id_wins_over_the_ambient_one_and_an_empty_one_is_dropped(
    configured_logs: Any,
) -> None:
    buffer = configured_logs("json")
    log = logging.getLogger("bulkchanges.test")
    with log_context_bind(bulk_change_id=1, request_id="ambient"):
        log.warning("explicit", extra={"bulk_change_id": 2, "request_id": "", "url": "/x"})

    (line,) = lines(buffer)
    assert line["bulk_change_id"] == 2
    assert line["request_id"] == "ambient"  # the empty extra did not hide the known id
    assert line["url"] == "/x"  # other extra= fields are kept


def test_a_traceback_is_one_field_of_the_json_line(configured_logs: Any) -> None:
    buffer = configured_logs("json")
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("x").exception("failed")

    (line,) = lines(buffer)
    assert "ValueError: broken" in line["exc_info"]


def test_the_plain_format_shows_the_known_ids_in_brackets(configured_logs: Any) -> None:
    buffer = configured_logs("plain")
    log = logging.getLogger("bulkchanges.test")
    with log_context_bind(bulk_change_id=12, device_change_id=345, carrier="POND"):
        log.info("PROCESSED", extra={"request_id": "abc"})
    log.info("no ids")

    with_ids, without = buffer.getvalue().splitlines()
    assert with_ids.endswith("bulkchanges.test: [bc=12 dc=345 req=abc POND] PROCESSED")
    assert without.endswith("bulkchanges.test: no ids")


def test_the_context_is_restored_on_exit_even_after_an_error_and_is_per_thread() -> None:
    with pytest.raises(RuntimeError), log_context_bind(bulk_change_id=5):
        raise RuntimeError
    assert log_context_get() == {}
    seen: list[Any] = []
    with log_context_bind(bulk_change_id=7):
        thread = threading.Thread(target=lambda: seen.append(log_context_get()))
        thread.start()
        thread.join()
        assert log_context_get() == {"bulk_change_id": 7}
    assert seen == [{}]  # a new thread starts with an empty context


def test_only_the_four_fields_can_be_bound() -> None:
    with pytest.raises(TypeError, match="iccid"), log_context_bind(iccid="8914"):
        pass


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json, plain"):
        logging_config(log_format="xml", level="INFO", q_level="INFO")


@pytest.mark.parametrize(
    "given",
    ["abc-123", "7f0e6c1d-2f6b-4f7e-9a3c-1b2d3e4f5a6b", "lb:1.2:x_y", "a" * 128],
)
def test_a_sane_request_id_is_kept(given: str) -> None:
    assert request_id_from(given) == given


@pytest.mark.parametrize(
    "given",
    [None, "", "a" * 129, "has space", "new\nline", 'quote"', "-leading-dash", "ünicode"],
)
def test_any_other_request_id_is_replaced_by_a_new_one(given: str | None) -> None:
    made = request_id_from(given)
    assert made != given and len(made) == 32 and made.isalnum()


def test_logs_are_plain_on_a_laptop_and_json_wherever_they_are_shipped() -> None:
    assert log_format_default(environment_name="local") == "plain"
    assert log_format_default(environment_name="staging") == "json"
    assert log_format_default(environment_name="production") == "json"
