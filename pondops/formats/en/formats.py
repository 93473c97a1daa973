"""English formats: ``2026-12-02 16:42:07 UTC`` everywhere Django formats a moment itself
(stock admin pages, the history); PondOps' own pages use ``display.timestamp``, which the
console's script shows in the viewer's zone."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
