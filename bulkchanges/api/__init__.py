"""The partner REST API (DESIGN section 7): DRF under ``/api/v1/``, token auth, every query
scoped to the caller's tenant. Views parse, call one service or selector, and render."""
