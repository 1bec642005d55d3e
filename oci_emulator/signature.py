"""Verification of OCI HTTP signatures (draft-cavage-http-signatures-08, ``version="1"``).

Recipe (reference section 7): parse the ``Signature`` parameters, require rsa-sha256 and version 1,
for POST/PUT/PATCH require and check ``content-length``/``content-type``/``x-content-sha256``,
rebuild the signing string in the order of ``headers="..."`` using the raw path + query and the
received ``Host`` header, verify PKCS#1 v1.5 / SHA-256 against the public key registered for the
``keyId`` (``tenancy/user/fingerprint``), and reject a ``date``/``x-date`` more than
``max_skew`` seconds from the server clock.

``ST$<jwt>`` key ids (session tokens, instance/resource principals) are accepted when the JWT
payload carries the public key as a ``jwk`` claim (a JSON object or a JSON string) and is not
expired; when ``issuer_key`` is set the JWT's own RS256 signature must verify against it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from email.utils import parsedate_to_datetime

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
_BODY_VERBS = frozenset(("POST", "PUT", "PATCH"))
_BODY_HEADERS = ("content-length", "content-type", "x-content-sha256")

OK = "ok"


class SignatureFailure(Exception):
    def __init__(self, verdict: str, detail: str):
        super().__init__(detail)
        self.verdict = verdict
        self.detail = detail


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def public_key_from_jwk(jwk: dict):
    n = int.from_bytes(_b64url(jwk["n"]), "big")
    e = int.from_bytes(_b64url(jwk["e"]), "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def jwk_from_public_key(public_key, kid: str = "emulator") -> dict:
    nums = public_key.public_numbers()

    def enc(i: int) -> str:
        return base64.urlsafe_b64encode(i.to_bytes((i.bit_length() + 7) // 8, "big")).decode().rstrip("=")

    return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": enc(nums.n), "e": enc(nums.e)}


def load_public_key(pem):
    if isinstance(pem, str):
        pem = pem.encode()
    if isinstance(pem, bytes):
        return serialization.load_pem_public_key(pem)
    return pem


class Verifier:
    def __init__(self, max_skew: float = 300.0, issuer_key=None):
        self.keys: dict[str, object] = {}
        self.max_skew = max_skew
        self.issuer_key = issuer_key
        self._token_cache: dict[str, tuple[object, float]] = {}
        self._date_cache: dict[str, float] = {}

    def register(self, key_id: str, public_key) -> None:
        self.keys[key_id] = load_public_key(public_key)

    # -- session tokens ------------------------------------------------------------------------
    def _token_key(self, token: str):
        cached = self._token_cache.get(token)
        if cached is None:
            parts = token.split(".")
            if len(parts) != 3:
                raise SignatureFailure("bad_token", "Malformed security token")
            try:
                header = orjson.loads(_b64url(parts[0]))
                claims = orjson.loads(_b64url(parts[1]))
                jwk = claims.get("jwk")
                if isinstance(jwk, str):
                    jwk = orjson.loads(jwk)
                key = public_key_from_jwk(jwk)
            except Exception as exc:
                raise SignatureFailure("bad_token", f"Unusable security token: {exc}") from None
            if self.issuer_key is not None:
                if header.get("alg") != "RS256":
                    raise SignatureFailure("bad_token", "Security token is not RS256-signed")
                try:
                    self.issuer_key.verify(_b64url(parts[2]), f"{parts[0]}.{parts[1]}".encode(),
                                           padding.PKCS1v15(), hashes.SHA256())
                except InvalidSignature:
                    raise SignatureFailure("bad_token", "Security token signature is invalid") from None
            exp = float(claims.get("exp") or 0) or float("inf")
            cached = (key, exp)
            if len(self._token_cache) > 1024:
                self._token_cache.clear()
            self._token_cache[token] = cached
        key, exp = cached
        if time.time() > exp:
            raise SignatureFailure("expired_token", "Security token has expired")
        return key

    # -- main entry ------------------------------------------------------------------------------
    def _date_ok(self, value: str) -> None:
        ts = self._date_cache.get(value)
        if ts is None:
            try:
                ts = parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError):
                raise SignatureFailure("bad_date", f"Unparseable date header {value!r}") from None
            if len(self._date_cache) > 4096:
                self._date_cache.clear()
            self._date_cache[value] = ts
        if abs(time.time() - ts) > self.max_skew:
            raise SignatureFailure(
                "clock_skew", f"The request date {value!r} is more than {int(self.max_skew)} s from server time"
            )

    def verify(self, method: str, target: str, headers: dict[str, str], body: bytes) -> str:
        """Return the keyId on success; raise SignatureFailure(verdict, detail) otherwise.

        ``target`` is the raw path plus ``?query`` as sent; ``headers`` has lower-case names.
        """
        auth = headers.get("authorization")
        if not auth:
            raise SignatureFailure("missing", "Missing authorization header")
        if not auth.startswith("Signature "):
            raise SignatureFailure("malformed", "Authorization header is not an OCI Signature")
        params = dict(_PARAM_RE.findall(auth))
        if params.get("version") != "1":
            raise SignatureFailure("malformed", "Signature version must be 1")
        if params.get("algorithm") != "rsa-sha256":
            raise SignatureFailure("malformed", "Signature algorithm must be rsa-sha256")
        key_id = params.get("keyId")
        sig_b64 = params.get("signature")
        if not key_id or not sig_b64:
            raise SignatureFailure("malformed", "Signature is missing keyId or signature")
        names = (params.get("headers") or "date").lower().split()
        if "date" not in names and "x-date" not in names:
            raise SignatureFailure("malformed", "The date header must be signed")
        if "(request-target)" not in names or "host" not in names:
            raise SignatureFailure("malformed", "(request-target) and host must be signed")
        if method in _BODY_VERBS:
            for h in _BODY_HEADERS:
                if h not in names:
                    raise SignatureFailure("malformed", f"{h} must be signed for {method}")
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            if headers.get("x-content-sha256") != digest:
                raise SignatureFailure("bad_body_hash", "x-content-sha256 does not match the request body")
            if headers.get("content-length") != str(len(body)):
                raise SignatureFailure("bad_body_hash", "content-length does not match the request body")
        if key_id.startswith("ST$"):
            public_key = self._token_key(key_id[3:])
        else:
            public_key = self.keys.get(key_id)
            if public_key is None:
                raise SignatureFailure("unknown_key", f"Unknown keyId {key_id!r}")
        lines = []
        for name in names:
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {target}")
            else:
                value = headers.get(name)
                if value is None:
                    raise SignatureFailure("malformed", f"Signed header {name!r} is missing")
                lines.append(f"{name}: {value}")
        date_value = headers.get("x-date") or headers.get("date")
        try:
            signature = base64.b64decode(sig_b64, validate=True)
            public_key.verify(signature, "\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            raise SignatureFailure("bad_signature", "The signature does not verify") from None
        self._date_ok(date_value)
        return key_id
