"""Shared fixtures: one local AWS stack per test session (tests use unique names)."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.localstack import LocalStack


@pytest.fixture(scope="session")
def stack():
    work_dir = os.environ.get("EC2BUILD_LOCALSTACK_DIR")  # keep logs when set
    with LocalStack(work_dir=work_dir) as s:
        yield s


@pytest.fixture
def unique():
    """A short unique suffix for resource names."""
    return uuid.uuid4().hex[:8]
