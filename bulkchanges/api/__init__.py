"""The partner REST API (docs/architecture.md §11): DRF under ``/api/v1/``, token auth, every query
scoped to the caller's tenant. Views parse, call one service or selector, and render."""
