"""The upload size cap, for every multipart request (the admin's device-list upload and the
API's), enforced while Django reads the body (docs/architecture.md §11).

Django hands each uploaded file's chunks to ``FILE_UPLOAD_HANDLERS`` in order; this handler is
first. A file is skipped — its bytes read and dropped a chunk at a time, never kept — when the
request's Content-Length already says it is too large, or as soon as the bytes received pass
``PONDOPS_MAX_UPLOAD_BYTES``. The other fields are still parsed (the admin's CSRF token with
them), so the view answers with a clear 413 or form error (:func:`upload_refusal`), not a 500
and not a "no file" error."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest

logger = logging.getLogger(__name__)

# What a multipart body may hold beside the file: the form fields, part headers, boundaries.
FORM_FIELDS_BYTES = 64 * 1024
_REFUSAL = "_pondops_upload_refusal"


def upload_too_large(body_length: int | None = None) -> str:
    """The one wording of the cap (``body_length``: the request's, when it alone refused)."""
    limit = settings.PONDOPS_MAX_UPLOAD_BYTES
    seen = (
        f"the upload is {body_length:,} bytes"
        if body_length is not None
        else f"the uploaded file is larger than {limit:,} bytes"
    )
    return (
        f"{seen}; a device list may have at most {limit:,} bytes (100,000 devices with MSISDN "
        "and EID); split the list into several bulk changes"
    )


def upload_refusal(request: HttpRequest) -> str | None:
    """Why this request's upload was dropped while it was read, or None."""
    refusal: str | None = getattr(request, _REFUSAL, None)
    return refusal


class BoundedUploadHandler(FileUploadHandler):
    """Counts each file's bytes and skips the file past ``PONDOPS_MAX_UPLOAD_BYTES``."""

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        limit = settings.PONDOPS_MAX_UPLOAD_BYTES
        self.body_too_large = content_length > limit + FORM_FIELDS_BYTES
        self.body_length = content_length  # (FileUploadHandler's content_length is the part's)

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        if getattr(self, "body_too_large", False):
            self._refuse(upload_too_large(self.body_length))

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > settings.PONDOPS_MAX_UPLOAD_BYTES:
            self._refuse(upload_too_large())
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None

    def _refuse(self, reason: str) -> None:
        if self.request is not None:
            setattr(self.request, _REFUSAL, reason)
        logger.warning(
            "upload %r to %s refused: %s",
            (self.file_name or "")[:100],
            getattr(self.request, "path", "?"),
            reason,
        )
        raise SkipFile
