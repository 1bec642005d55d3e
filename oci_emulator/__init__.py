"""A strict, deterministic emulator of the OCI Generative AI service (inference + control plane).

Imports nothing from Django. See README.md in this folder.
"""

from .app import EmulatorApp
from .catalog import DEFAULT_COMPARTMENT, DEFAULT_DEPLOYMENT, Catalog
from .server import EmulatorClient, EmulatorServer

__all__ = ["EmulatorApp", "EmulatorClient", "EmulatorServer", "Catalog", "DEFAULT_COMPARTMENT",
           "DEFAULT_DEPLOYMENT"]
