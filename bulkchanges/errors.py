"""One application error type; the admin, the API and the commands render it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ApplicationError(Exception):
    """An expected failure with a stable ``code``, a readable ``detail`` and, for validation,
    ``fields`` (field name → messages)."""

    def __init__(
        self,
        detail: str,
        *,
        code: str = "invalid",
        fields: Mapping[str, Sequence[str]] | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.fields = {name: list(messages) for name, messages in (fields or {}).items()}
        self.status = status

    def __str__(self) -> str:
        if not self.fields:
            return self.detail
        problems = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in self.fields.items())
        return f"{self.detail} ({problems})"


class NotFound(ApplicationError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, code="not_found", status=404)


class Conflict(ApplicationError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, code="conflict", status=409)
