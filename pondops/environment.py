"""How ``pondops/settings.py`` reads the environment: environs, with three house rules.

- **A bad value stops the start, naming the variable**: ``BULKCHANGE_CHUNK_SIZE=fifty`` is
  ``environs.EnvValidationError: Environment variable "BULKCHANGE_CHUNK_SIZE" invalid: Not a
  valid integer.``, never a silent default or a ``ValueError`` deep in a traceback.
- **Empty means unset**: ``BULKCHANGE_CHUNK_SIZE=`` (as compose and systemd environment files
  write a variable left blank) takes the default, as it always has here.
- **Any variable may come from a file**: ``<NAME>_FILE=/run/secrets/name`` reads the value from
  that file (trailing whitespace stripped) — Docker and compose secrets, systemd's
  ``LoadCredential=`` — so a secret need not sit in the process environment.

Lists are comma-separated, each item stripped, empty items dropped (``env.csv``).
"""

from __future__ import annotations

from typing import Any

from environs import FileAwareEnv, validate

from pondops.logcontext import FORMATS as LOG_FORMATS


class PondOpsEnv(FileAwareEnv):
    def __init__(self) -> None:
        super().__init__(eager=True, strip_whitespace=True)

        @self.parser_for("csv")
        def _csv(value: str) -> list[str]:
            return [item.strip() for item in str(value).split(",") if item.strip()]

    def _get_value(self, env_key: str, default: Any) -> Any:
        value = super()._get_value(env_key, default)
        if isinstance(value, str) and not value.strip():
            return default
        return value


# Validators for the values whose shape a typo would break far from the settings.
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
log_level = validate.OneOf(LOG_LEVELS, error="must be one of " + ", ".join(LOG_LEVELS))
log_format = validate.OneOf(LOG_FORMATS, error="must be one of " + ", ".join(LOG_FORMATS))
positive = validate.Range(min=0, min_inclusive=False, error="must be greater than 0")
at_least_one = validate.Range(min=1, error="must be at least 1")
not_negative = validate.Range(min=0, error="must not be negative")
# DRF's throttle rate syntax, as its SimpleRateThrottle.parse_rate reads it: n/s, n/min, …
rate = validate.Regexp(
    r"^[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)$",
    error="must be requests per period, e.g. 60/min (periods: s, min, hour, day)",
)
at_least_one_item = validate.Length(min=1, error="must list at least one value")
