"""Fixtures for the remediation tests (helpers in kit.py)."""
import pytest
from kit import Kit


@pytest.fixture
def kit(tmp_path):
    return Kit(tmp_path)
