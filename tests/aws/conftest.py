"""The smoke test's local case reuses tests/e2e's deployment of the product (one per session)."""

from tests.e2e.conftest import e2e  # noqa: F401  (the fixture)
