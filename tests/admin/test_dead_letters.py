"""The dead-letter queue in the console: the live DLQ with the reason each message was refused,
redrive and delete (confirmed first, logged, for staff with the permission only), the
dashboard's DLQ figures, and a slow SQS that never holds a page."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.test import Client
from django.urls import reverse

from bulkchanges import sqs
from bulkchanges.models import RefusedMessage
from tests.admin.conftest import Console, StaffFactory
from tests.conftest import Queue, dead_letter_malformed

pytestmark = pytest.mark.django_db

PAGE = reverse("admin:bulkchanges_refusedmessage_changelist")
INDEX = reverse("admin:index")
REASON = "BulkChangeId is not a number: 'abc'"


def dead_letter(queue: Queue) -> str:
    """A message the consumer refused until it was dead-lettered; returns its SQS MessageId."""
    dead_letter_malformed(queue)
    [refused] = RefusedMessage.objects.all()
    return refused.message_id


def act(client: Client, action: str, *message_ids: str, confirm: bool = True) -> Any:
    data: dict[str, Any] = {"action": action, "_selected_action": list(message_ids)}
    if confirm:
        data["post"] = "yes"
    return client.post(PAGE, data)


def test_the_page_lists_each_dead_letter_with_the_reason_it_was_refused(
    admin_client: Client, console: Console, sqs_queue: Queue
) -> None:
    message_id = dead_letter(sqs_queue)
    sqs_queue.client.send_message(  # dead-lettered by something else: no reason recorded
        QueueUrl=sqs_queue.dlq_url,
        MessageBody='{"BulkChangeId": 77, "M2MDeviceChangeId": 9}',
    )

    html = admin_client.get(PAGE).content.decode()

    assert "2 messages in the dead-letter queue" in html
    row = re.search(rf"<tr>\s*<td><input[^>]+value=\"{message_id}\".*?</tr>", html, re.DOTALL)
    assert row, "no row for the refused message"
    assert REASON.replace("'", "&#x27;") in row.group(0)
    assert "Not used" in row.group(0)
    other = re.search(r"<tr>(?:(?!</tr>).)*no reason recorded.*?</tr>", html, re.DOTALL)
    assert other and ">77</a>" in other.group(0) and "<td>9</td>" in other.group(0)
    assert sqs_queue.messages(sqs_queue.dlq_url) == 2  # browsing hid nothing for long


def test_redrive_asks_first_then_moves_the_message_back_and_logs_who(
    admin_client: Client, console: Console, sqs_queue: Queue
) -> None:
    message_id = dead_letter(sqs_queue)

    confirm = act(admin_client, "redrive_selected", message_id, confirm=False)
    assert confirm.status_code == 200
    assert "Redrive the selected messages?" in confirm.content.decode()
    assert message_id in confirm.content.decode()
    assert sqs_queue.messages(sqs_queue.dlq_url) == 1  # nothing moved yet

    response = act(admin_client, "redrive_selected", message_id)

    assert response.status_code == 302
    assert sqs_queue.messages(sqs_queue.dlq_url) == 0
    [back] = sqs_queue.receive_all()
    assert back["MessageAttributes"]["BulkChangeId"]["StringValue"] == "abc"
    assert not RefusedMessage.objects.exists()  # the copy has a new id; the row went
    entry = LogEntry.objects.get(object_id=message_id)
    assert entry.action_flag == CHANGE and entry.user.get_username() == "admin"
    assert "1 messages sent back to the queue" in admin_client.get(PAGE).content.decode()


def test_redrive_all_moves_every_message(
    admin_client: Client, console: Console, sqs_queue: Queue
) -> None:
    for n in range(3):
        sqs_queue.client.send_message(QueueUrl=sqs_queue.dlq_url, MessageBody=f"m{n}")
    assert act(admin_client, "redrive_all").status_code == 302
    assert sqs_queue.messages(sqs_queue.dlq_url) == 0
    assert sorted(m["Body"] for m in sqs_queue.receive_all()) == ["m0", "m1", "m2"]


def test_delete_removes_only_the_selected_message_for_good(
    admin_client: Client, console: Console, sqs_queue: Queue
) -> None:
    message_id = dead_letter(sqs_queue)
    sqs_queue.client.send_message(QueueUrl=sqs_queue.dlq_url, MessageBody="keep me")

    confirm = act(admin_client, "delete_selected", message_id, confirm=False)
    assert "cannot be undone" in confirm.content.decode()
    act(admin_client, "delete_selected", message_id)

    [kept] = sqs_queue.receive_all(sqs_queue.dlq_url)
    assert kept["Body"] == "keep me"
    assert sqs_queue.messages() == 0  # deleted, not redriven
    assert LogEntry.objects.get(object_id=message_id).action_flag == DELETION


def test_only_superusers_may_see_redrive_or_delete_dead_letters(
    staff_client: StaffFactory, admin_client: Client, console: Console, sqs_queue: Queue
) -> None:
    """The queue has no tenant: a tenant's operator, even with both permissions, is refused."""
    message_id = dead_letter(sqs_queue)
    operator = staff_client("view_refusedmessage", "manage_dead_letters", "view_bulkchange")

    assert operator.get(PAGE).status_code == 403
    assert act(operator, "redrive_selected", message_id).status_code == 403
    assert act(operator, "delete_selected", message_id).status_code == 403
    assert sqs_queue.messages(sqs_queue.dlq_url) == 1
    index = operator.get(INDEX).content.decode()
    assert 'id="pondops-dashboard"' in index and 'id="pondops-dlq"' not in index

    assert message_id in admin_client.get(PAGE).content.decode()
    assert act(admin_client, "redrive_selected", message_id).status_code == 302
    assert sqs_queue.messages(sqs_queue.dlq_url) == 0


def test_the_dashboard_shows_the_dead_letter_depth_and_the_oldest_age(
    admin_client: Client, console: Console, sqs_queue: Queue
) -> None:
    dead_letter(sqs_queue)

    html = admin_client.get(INDEX).content.decode()

    stat = re.search(r'<div class="pondops-stat([^"]*)" id="pondops-dlq">(.*?)</div>', html, re.S)
    assert stat and "pondops-stat--warn" in stat.group(1)
    assert f'href="{PAGE}">1</a>' in stat.group(2)
    assert re.search(r"oldest sent \d+s ago", stat.group(2))


def test_an_empty_dead_letter_queue_is_zero_without_a_warning(
    admin_client: Client, console: Console, sqs_queue: Queue
) -> None:
    html = admin_client.get(INDEX).content.decode()
    stat = re.search(r'<div class="pondops-stat([^"]*)" id="pondops-dlq">(.*?)</div>', html, re.S)
    assert stat and stat.group(1) == "" and f'href="{PAGE}">0</a>' in stat.group(2)
    assert "The dead-letter queue is empty." in admin_client.get(PAGE).content.decode()


@pytest.fixture
def silent_sqs(settings: Any) -> Iterator[str]:
    """An SQS endpoint that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections complete in the backlog; nothing is ever read
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    sqs.sqs_client.cache_clear()
    settings.AWS_ENDPOINT_URL_SQS = endpoint
    settings.PONDOPS_SQS_QUEUE_URL = f"{endpoint}/000000000000/silent"
    settings.PONDOPS_SQS_DLQ_URL = f"{endpoint}/000000000000/silent-dlq"
    yield endpoint
    listener.close()
    sqs.sqs_client.cache_clear()


def test_a_silent_sqs_does_not_hold_the_dashboard_or_the_dead_letter_page(
    admin_client: Client, console: Console, silent_sqs: str
) -> None:
    started = time.monotonic()
    index = admin_client.get(INDEX)
    page = admin_client.get(PAGE)
    elapsed = time.monotonic() - started

    assert index.status_code == 200 and page.status_code == 200
    assert "dead-letter messages: unknown (SQS unreachable)" in index.content.decode()
    assert "unavailable" in index.content.decode()  # the queue's own stat
    assert "Dead-letter messages: unknown (SQS unreachable)" in page.content.decode()
    assert elapsed < 10  # generous: each read gives up after 0.5 s
