"""Throw-away OCI credentials for the emulator.

``generate_credentials(directory)`` writes an RSA key and an OCI config file with two profiles:

* ``DEFAULT`` - user API key: ``user``/``tenancy`` OCIDs, md5 ``fingerprint``, ``key_file``, ``region``.
* ``SESSION`` - session-token auth: ``security_token_file`` holding a JWT (signed by the emulator's
  issuer key) whose ``jwk`` claim is the public half of ``key_file``; use it with
  ``oci.auth.signers.SecurityTokenSigner``.

``load_credentials(config_file, profile)`` reads an existing profile so the emulator can register
its public key instead.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from dataclasses import dataclass, field

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .catalog import DEFAULT_COMPARTMENT, REGION
from .signature import jwk_from_public_key

_B32 = "abcdefghijklmnopqrstuvwxyz234567"


def fake_ocid(kind: str, realm: str = "oc1") -> str:
    return f"ocid1.{kind}.{realm}..aaaaaaaa" + "".join(secrets.choice(_B32) for _ in range(52))


def fingerprint(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der).hexdigest()
    return ":".join(digest[i: i + 2] for i in range(0, 32, 2))


def _pem_private(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _pem_public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def mint_session_token(issuer_private_key, session_public_key, tenancy: str, subject: str,
                       ttl: int = 3600) -> str:
    """An RS256 JWT shaped like an OCI session token, carrying ``session_public_key`` as ``jwk``."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "emulator-issuer"}
    claims = {
        "sub": subject, "tenant": tenancy, "iss": "authService.oracle.com", "aud": "oci",
        "ptype": "user", "sess_exp": now + ttl, "iat": now, "exp": now + ttl,
        "jwk": orjson.dumps(jwk_from_public_key(session_public_key, "session")).decode(),
    }
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
    sig = issuer_private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(sig)}"


@dataclass
class Credentials:
    config_file: str
    profile: str
    tenancy: str
    user: str
    fingerprint: str
    key_file: str
    public_key_pem: str
    region: str = REGION
    compartment_id: str = DEFAULT_COMPARTMENT
    session_profile: str | None = None
    api_keys: list[str] = field(default_factory=list)  # GenAI API keys for /openai/v1 (Bearer)

    @property
    def key_id(self) -> str:
        return f"{self.tenancy}/{self.user}/{self.fingerprint}"


def generate_credentials(directory: str, issuer_private_key=None, region: str = REGION,
                         compartment_id: str = DEFAULT_COMPARTMENT) -> Credentials:
    os.makedirs(directory, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = os.path.join(directory, "oci_api_key.pem")
    with open(key_file, "wb") as f:
        f.write(_pem_private(key))
    os.chmod(key_file, 0o600)
    with open(os.path.join(directory, "oci_api_key_public.pem"), "wb") as f:
        f.write(_pem_public(key))
    tenancy, user = fake_ocid("tenancy"), fake_ocid("user")
    fp = fingerprint(key.public_key())
    config_file = os.path.join(directory, "config")
    lines = [
        "[DEFAULT]", f"user={user}", f"fingerprint={fp}", f"tenancy={tenancy}", f"region={region}",
        f"key_file={key_file}", "",
    ]
    session_profile = None
    if issuer_private_key is not None:
        session_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        session_key_file = os.path.join(directory, "session_key.pem")
        with open(session_key_file, "wb") as f:
            f.write(_pem_private(session_key))
        os.chmod(session_key_file, 0o600)
        token = mint_session_token(issuer_private_key, session_key.public_key(), tenancy, user, ttl=86400)
        token_file = os.path.join(directory, "security_token")
        with open(token_file, "w") as f:
            f.write(token)
        session_profile = "SESSION"
        lines += [
            "[SESSION]", f"fingerprint={fingerprint(session_key.public_key())}", f"tenancy={tenancy}",
            f"region={region}", f"key_file={session_key_file}", f"security_token_file={token_file}", "",
        ]
    with open(config_file, "w") as f:
        f.write("\n".join(lines))
    return Credentials(config_file=config_file, profile="DEFAULT", tenancy=tenancy, user=user,
                       fingerprint=fp, key_file=key_file, public_key_pem=_pem_public(key).decode(),
                       region=region, compartment_id=compartment_id, session_profile=session_profile,
                       api_keys=["emu-genai-key-" + secrets.token_hex(16)])


def load_credentials(config_file: str, profile: str = "DEFAULT",
                     compartment_id: str = DEFAULT_COMPARTMENT) -> Credentials:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    with open(os.path.expanduser(config_file)) as f:
        parser.read_file(f)
    section = parser[profile] if profile != "DEFAULT" else parser.defaults()
    key_file = os.path.expanduser(section["key_file"])
    with open(key_file, "rb") as f:
        passphrase = section.get("pass_phrase")
        key = serialization.load_pem_private_key(f.read(), passphrase.encode() if passphrase else None)
    return Credentials(config_file=config_file, profile=profile, tenancy=section["tenancy"],
                       user=section.get("user", ""), fingerprint=section.get("fingerprint") or fingerprint(
                           key.public_key()), key_file=key_file, public_key_pem=_pem_public(key).decode(),
                       region=section.get("region", REGION), compartment_id=compartment_id)
