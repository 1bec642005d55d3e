"""OCI request signing with the `oci` SDK's own signers, over the exact bytes we send.

The SDK's signers are `requests` auth objects, but they only touch `.method`, `.url`, `.path_url`,
`.headers` and `.body`, so a tiny stand-in object lets us sign for aiohttp without building a
`requests.PreparedRequest` per call. Signers are built once per credential profile (key files are
parsed once, not per request); token-based signers refresh over the network, so they sign in a
worker thread to keep that blocking I/O off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from urllib.parse import urlsplit

from models_registry.catalog import CredentialSpec

from ..errors import GatewayError

log = logging.getLogger("gateway.upstream")

_TOKEN_AUTH = {"INSTANCE_PRINCIPAL", "RESOURCE_PRINCIPAL", "OKE_WORKLOAD_IDENTITY"}


class _SignableRequest:
    __slots__ = ("method", "url", "path_url", "headers", "body")

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        parts = urlsplit(url)
        self.method = method
        self.url = url
        self.path_url = parts.path + (f"?{parts.query}" if parts.query else "")
        self.headers = headers
        self.body = body


class CredentialError(GatewayError):
    def __init__(self, profile: str, reason: str) -> None:
        super().__init__(
            502,
            f"The gateway's OCI credentials (profile {profile!r}) are not usable: {reason}",
            type="upstream_auth_error",
            code="upstream_auth_error",
        )


def _key_file_fallback(config: dict, config_file: str) -> dict:
    """In a container ~/.oci is mounted elsewhere: try the key's file name beside the config file."""
    key_file = os.path.expanduser(config.get("key_file") or "")
    if key_file and not os.path.exists(key_file):
        beside = os.path.join(os.path.dirname(os.path.expanduser(config_file)), os.path.basename(key_file))
        if os.path.exists(beside):
            log.warning("OCI key_file %s not found; using %s beside the config file", key_file, beside)
            return {**config, "key_file": beside}
    return config


def _read_config(config_file: str, profile: str) -> dict:
    import configparser

    import oci

    try:
        return oci.config.from_file(config_file, profile)
    except oci.exceptions.InvalidKeyFilePath:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(os.path.expanduser(config_file))
        config = {**oci.config.DEFAULT_CONFIG, **parser[profile]}
        fixed = _key_file_fallback(config, config_file)
        if fixed is config:
            raise
        return fixed


def build_signer(spec: CredentialSpec):
    import oci

    auth = spec.auth_type
    try:
        if auth == "API_KEY":
            config = (_config_from_environment() if spec.name == "environment" else None) or _read_config(
                spec.config_file, spec.config_profile
            )
            oci.config.validate_config(config)
            return oci.signer.Signer(
                tenancy=config["tenancy"],
                user=config["user"],
                fingerprint=config["fingerprint"],
                private_key_file_location=config.get("key_file"),
                pass_phrase=config.get("pass_phrase"),
                private_key_content=config.get("key_content"),
            )
        if auth == "SECURITY_TOKEN":
            config = _read_config(spec.config_file, spec.config_profile)
            with open(os.path.expanduser(config["security_token_file"])) as fh:
                token = fh.read().strip()
            private_key = oci.signer.load_private_key_from_file(config["key_file"], config.get("pass_phrase"))
            return oci.auth.signers.SecurityTokenSigner(token, private_key)
        if auth == "INSTANCE_PRINCIPAL":
            return oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
        if auth == "RESOURCE_PRINCIPAL":
            return oci.auth.signers.get_resource_principals_signer()
        if auth == "OKE_WORKLOAD_IDENTITY":
            return oci.auth.signers.get_oke_workload_identity_resource_principal_signer()
    except GatewayError:
        raise
    except (oci.exceptions.ConfigFileNotFound, FileNotFoundError) as exc:
        raise CredentialError(spec.name, f"file not found ({exc})") from None
    except (oci.exceptions.ProfileNotFound, oci.exceptions.InvalidConfig, oci.exceptions.InvalidKeyFilePath,
            KeyError) as exc:
        raise CredentialError(spec.name, f"invalid configuration ({exc})") from None
    except Exception as exc:  # the SDK raises many types while fetching principals
        raise CredentialError(spec.name, f"{type(exc).__name__}: {exc}") from None
    raise CredentialError(spec.name, f"unknown auth type {auth!r}")


def _config_from_environment() -> dict | None:
    """API-key credentials given as environment variables (a Kubernetes secret, no config file)."""
    from django.conf import settings

    user, tenancy, fingerprint = os.environ.get("OCI_USER"), os.environ.get("OCI_TENANCY"), os.environ.get(
        "OCI_FINGERPRINT"
    )
    key_file, key = os.environ.get("OCI_KEY_FILE"), os.environ.get("OCI_KEY")
    if not (user and tenancy and fingerprint and (key_file or key)):
        return None
    # The region does not enter the signature, but the SDK's validation wants one.
    region = os.environ.get("OCI_REGION") or settings.OCI_REGION or "us-ashburn-1"
    config = {"user": user, "tenancy": tenancy, "fingerprint": fingerprint, "region": region}
    if key:
        config["key_content"] = key
    else:
        config["key_file"] = key_file
    return config


_signers: dict[CredentialSpec, object] = {}
_signers_lock = threading.Lock()


def signer_for(spec: CredentialSpec):
    signer = _signers.get(spec)
    if signer is None:
        with _signers_lock:
            signer = _signers.get(spec)
            if signer is None:
                signer = build_signer(spec)
                _signers[spec] = signer
    return signer


def forget_signers() -> None:
    with _signers_lock:
        _signers.clear()


def sign_headers(signer, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    request = _SignableRequest(method, url, headers, body)
    if body or method in ("POST", "PUT", "PATCH"):
        headers.setdefault("content-length", str(len(body)))
    signer(request)
    return request.headers


async def signed_headers(
    spec: CredentialSpec, method: str, url: str, headers: dict[str, str], body: bytes
) -> dict[str, str]:
    if spec.auth_type in _TOKEN_AUTH:
        loop = asyncio.get_running_loop()

        def _sign():
            return sign_headers(signer_for(spec), method, url, headers, body)

        return await loop.run_in_executor(None, _sign)
    return sign_headers(signer_for(spec), method, url, headers, body)
