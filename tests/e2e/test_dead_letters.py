"""The dead-letter queue in a real browser: from the dashboard's DLQ figure to the page that
says why the message was refused, then redrive it (confirmed) back to the queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.conftest import Queue, dead_letter_malformed
from tests.e2e.test_admin_console import PASSWORD, log_in, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_staff_see_why_a_message_was_dead_lettered_and_redrive_it(
    page: Page, live_server: object, sqs_queue: Queue, artifacts: Path
) -> None:
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    dead_letter_malformed(sqs_queue)

    log_in(page, base_url)
    dlq = page.locator("#pondops-dlq")
    expect(dlq).to_have_class("pondops-stat pondops-stat--warn")
    expect(dlq).to_contain_text("oldest sent")
    dlq.locator("a.pondops-stat__value").click()
    row = page.locator("#pondops-dlq-messages tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("BulkChangeId is not a number: 'abc'")
    screenshot(page, artifacts / "admin-dead-letters.png")

    row.locator("input[type=checkbox]").check()
    page.select_option("select[name=action]", "redrive_selected")
    page.click("#pondops-dlq-form button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Redrive the selected messages?")
    page.click("#pondops-confirm")
    expect(page.locator(".messagelist")).to_contain_text("1 messages sent back to the queue")
    expect(page.locator("#pondops-dlq-messages")).to_contain_text("The dead-letter queue is empty.")
    assert sqs_queue.messages(sqs_queue.dlq_url) == 0
    assert sqs_queue.messages() == 1
