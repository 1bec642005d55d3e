"""pytest fixtures running the emulator in-process on a free port.

* ``oci_emulator`` (session scope): a started :class:`~oci_emulator.server.EmulatorServer`
  (``.base_url``, ``.config_file``, ``.profile``, ``.compartment_id``, ``.ledger(since)``,
  ``.reset()``, ``.set_faults(...)``, ``.set_settings(...)``, ``.inference_client()``, ...).
* ``emulator`` (function scope): the same server, reset (ledger, faults, settings) before the test.

Load with ``pytest_plugins = ["oci_emulator.pytest_plugin"]`` in the root conftest, or import the
fixtures into a conftest: ``from oci_emulator.pytest_plugin import oci_emulator, emulator``.
"""

from __future__ import annotations

import pytest

from .server import EmulatorServer


@pytest.fixture(scope="session")
def oci_emulator(tmp_path_factory):
    server = EmulatorServer(workdir=str(tmp_path_factory.mktemp("oci_emulator"))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def emulator(oci_emulator):
    oci_emulator.reset()
    yield oci_emulator
