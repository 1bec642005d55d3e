"""Fixtures for the emulator's own tests (no Django)."""

import pytest

from oci_emulator.pytest_plugin import emulator, oci_emulator  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line("markers", "provokes_rejection: the test makes the emulator reject a signature or body")


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Shadows the suite-wide fixture of the same name: these tests import nothing from Django."""
    yield


@pytest.fixture(scope="session")
def oci_models():
    import oci

    return oci.generative_ai_inference.models


@pytest.fixture
def client(emulator):  # noqa: F811
    return emulator.inference_client()
