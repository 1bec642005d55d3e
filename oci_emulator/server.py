"""Running the emulator: in-process on a background thread (tests), and a client for its controls.

    with EmulatorServer(workdir=tmp) as emu:
        client = emu.inference_client()          # oci GenerativeAiInferenceClient, no retries
        ...
        entries = emu.ledger(since=0)             # waits until in-flight responses are finished

:class:`EmulatorClient` needs only a base URL, so the same helpers work against an emulator started
with ``python -m oci_emulator`` in another process.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import orjson

from .catalog import DEFAULT_COMPARTMENT, DEFAULT_DEPLOYMENT


class EmulatorClient:
    """Talks to a running emulator: ``/_emulator/*`` controls plus ready-made ``oci`` clients."""

    def __init__(self, base_url: str, config_file: str | None = None, profile: str = "DEFAULT",
                 compartment_id: str = DEFAULT_COMPARTMENT, api_key: str | None = None,
                 session_profile: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.config_file = config_file
        self.profile = profile
        self.compartment_id = compartment_id
        self.api_key = api_key
        self.session_profile = session_profile
        self.deployment_id = DEFAULT_DEPLOYMENT

    # ------------------------------------------------------------------------------- controls
    def _call(self, method: str, path: str, payload=None, timeout: float = 30.0):
        data = orjson.dumps(payload) if payload is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return orjson.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} {path} -> {err.code}: {err.read().decode(errors='replace')}") from None

    def ledger(self, since: int = 0, wait: bool = True, timeout: float = 5.0) -> list[dict]:
        """Ledger entries with ``seq > since``; with ``wait`` first let in-flight responses finish."""
        q = urlencode({"since": since, "wait": int(wait), "timeout": timeout})
        return self._call("GET", f"/_emulator/ledger?{q}", timeout=timeout + 10)["entries"]

    def last_seq(self) -> int:
        return self._call("GET", "/_emulator/health")["seq"]

    def reset(self) -> int:
        """Clear the ledger, the fault rule and settings; return the current ``seq``."""
        return self._call("POST", "/_emulator/reset", {})["seq"]

    def set_faults(self, **rule) -> dict:
        """Install the global fault rule (see faults.py); no arguments clears it."""
        return self._call("POST", "/_emulator/faults", rule)["rule"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/_emulator/faults")

    def get_settings(self) -> dict:
        return self._call("GET", "/_emulator/settings")

    def set_settings(self, **changes) -> dict:
        return self._call("POST", "/_emulator/settings", changes)

    def register_key(self, key_id: str, public_key_pem: str) -> None:
        self._call("POST", "/_emulator/keys", {"keyId": key_id, "publicKey": public_key_pem})

    def catalog(self) -> dict:
        return self._call("GET", "/_emulator/catalog")

    # ------------------------------------------------------------------------------- oci helpers
    def oci_config(self, profile: str | None = None) -> dict:
        import oci

        return oci.config.from_file(self.config_file, profile or self.profile)

    def signer(self):
        import oci

        return oci.signer.Signer.from_config(self.oci_config())

    def session_signer(self):
        """``SecurityTokenSigner`` built from the generated SESSION profile."""
        import oci

        cfg = self.oci_config(self.session_profile)
        with open(cfg["security_token_file"]) as f:
            token = f.read().strip()
        key = oci.signer.load_private_key_from_file(cfg["key_file"])
        return oci.auth.signers.SecurityTokenSigner(token, key)

    def _client_kwargs(self, kwargs: dict) -> dict:
        import oci

        kwargs.setdefault("service_endpoint", self.base_url)
        kwargs.setdefault("retry_strategy", oci.retry.NoneRetryStrategy())
        kwargs.setdefault("circuit_breaker_strategy", oci.circuit_breaker.NoCircuitBreakerStrategy())
        kwargs.setdefault("timeout", (5, 30))
        return kwargs

    def inference_client(self, **kwargs):
        """``oci.generative_ai_inference.GenerativeAiInferenceClient`` aimed at the emulator."""
        import oci

        return oci.generative_ai_inference.GenerativeAiInferenceClient(self.oci_config(),
                                                                       **self._client_kwargs(kwargs))

    def genai_client(self, **kwargs):
        """``oci.generative_ai.GenerativeAiClient`` (control plane) aimed at the emulator."""
        import oci

        return oci.generative_ai.GenerativeAiClient(self.oci_config(), **self._client_kwargs(kwargs))

    def signed_request(self, method: str, path: str, body: bytes | str | dict | None = None, headers=None,
                       signer=None, stream: bool = False, timeout: float = 30.0):
        """Send a request signed like the SDK would (``requests`` + ``oci.signer.Signer``).

        ``body`` may be a dict (serialized with orjson) or raw bytes/str (sent verbatim), so tests can
        post bodies the SDK would refuse to build.
        """
        import requests

        if isinstance(body, (dict, list)):
            body = orjson.dumps(body)
        elif isinstance(body, str):
            body = body.encode()
        hdrs = {"content-type": "application/json", "accept": "application/json"}
        hdrs.update(headers or {})
        req = requests.Request(method, self.base_url + path, headers=hdrs, data=body)
        prepared = req.prepare()
        (signer or self.signer())(prepared)
        with requests.Session() as session:
            return session.send(prepared, stream=stream, timeout=timeout)


class EmulatorServer(EmulatorClient):
    """An emulator served by uvicorn on a background thread, on a free port by default.

    With no ``config_file`` it generates credentials (an RSA key, an OCI config with a ``DEFAULT``
    API-key profile and a ``SESSION`` session-token profile) under ``workdir`` and registers them.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, workdir: str | None = None,
                 config_file: str | None = None, profile: str = "DEFAULT", settings: dict | None = None,
                 compartments=(), log_level: str = "warning"):
        from cryptography.hazmat.primitives.asymmetric import rsa

        from .app import EmulatorApp
        from .credentials import generate_credentials, load_credentials
        from .signature import Verifier

        self.host = host
        self._requested_port = port
        self.workdir = workdir or tempfile.mkdtemp(prefix="oci_emulator_")
        self._issuer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if config_file:
            creds = load_credentials(config_file, profile)
            creds.api_keys = ["emu-genai-key-" + secrets.token_hex(16)]
        else:
            creds = generate_credentials(self.workdir, issuer_private_key=self._issuer)
        self.credentials = creds
        settings = dict(settings or {})
        comps = list(settings.get("compartments") or [DEFAULT_COMPARTMENT]) + list(compartments) + [creds.tenancy]
        settings["compartments"] = list(dict.fromkeys(comps))
        verifier = Verifier(max_skew=settings.get("max_clock_skew_s", 300), issuer_key=self._issuer.public_key())
        verifier.register(creds.key_id, creds.public_key_pem)
        self.app = EmulatorApp(settings=settings, verifier=verifier, api_keys=creds.api_keys)
        self.log_level = log_level
        self._server = None
        self._thread = None
        super().__init__("http://placeholder", creds.config_file, creds.profile, DEFAULT_COMPARTMENT,
                         creds.api_keys[0] if creds.api_keys else None, creds.session_profile)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        port = sock.getsockname()[1]
        self.base_url = f"http://{self.host}:{port}"
        config = uvicorn.Config(self.app, log_level=self.log_level, access_log=False, server_header=False,
                                lifespan="off", timeout_graceful_shutdown=1, timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="oci-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("oci emulator failed to start")
            time.sleep(0.01)
        self._sock = sock
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None
            try:
                self._sock.close()
            except OSError:
                pass

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def config_text(config_file: str) -> str:
    with open(os.path.expanduser(config_file)) as f:
        return f.read()
