"""`/test-oci` and `manage.py test_oci`: can this gateway reach and sign for OCI?

For each credential profile and region in use, one ListModels call through the `oci` SDK's own
client, classified as ok, not authenticated, clock skew, not authorised or unreachable.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import asdict, dataclass

from django.conf import settings

from models_registry.catalog import CredentialSpec, load_catalog
from models_registry.endpoints import management_endpoint

from .upstream.signing import build_signer

CLOCK_SKEW_LIMIT_S = 300


@dataclass
class ProbeResult:
    profile: str
    region: str
    status: str  # ok | not_authenticated | clock_skew | not_authorized | unreachable | error
    latency_ms: int
    detail: str = ""

    def as_dict(self, *, with_detail: bool) -> dict:
        data = asdict(self)
        if not with_detail:
            data.pop("detail")
        return data


def _skew_seconds(headers) -> float | None:
    value = (headers or {}).get("date")
    if not value:
        return None
    try:
        return abs(time.time() - email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return None


def probe(credential: CredentialSpec, region: str, compartment_id: str) -> ProbeResult:
    import requests

    started = time.perf_counter()

    def result(status: str, detail: str = "") -> ProbeResult:
        return ProbeResult(credential.name, region, status, int((time.perf_counter() - started) * 1000), detail)

    try:
        signer = build_signer(credential)
    except Exception as exc:
        return result("not_authenticated", str(exc))
    base = management_endpoint(region)
    if not base:
        return result("error", "no region: set OCI_REGION or the deployment's region")
    url = f"{base}/20231130/models"
    try:
        # The SDK's signers are requests auth objects: ListModels signed exactly as the SDK would.
        response = requests.get(url, params={"compartmentId": compartment_id, "limit": 1}, auth=signer,
                                timeout=(5, 15), verify=settings.OCI_GENAI_CA_BUNDLE or True)
    except requests.RequestException as exc:
        return result("unreachable", f"{type(exc).__name__}: {exc}")
    if response.status_code == 200:
        return result("ok")
    try:
        body = response.json()
        message = f"{body.get('code')}: {body.get('message')}"
    except ValueError:
        message = response.text[:200]
    if response.status_code == 401:
        skew = _skew_seconds(response.headers)
        if skew is not None and skew > CLOCK_SKEW_LIMIT_S:
            return result("clock_skew", f"this host's clock is {skew:.0f} s off OCI's; fix NTP")
        return result("not_authenticated", message)
    if response.status_code in (403, 404):
        return result("not_authorized", f"{message} (compartment {compartment_id})")
    return result("error", f"HTTP {response.status_code} {message}")


def probe_all() -> list[ProbeResult]:
    """One probe per distinct (credential profile, region) among enabled deployments, or the defaults."""
    targets: dict[tuple, str] = {}
    for entry in load_catalog().models.values():
        for d in entry.deployments:
            if d.kind != "datascience":
                targets.setdefault((d.credential, d.region), d.compartment_id)
    if not targets:
        default = CredentialSpec("environment", settings.OCI_AUTH_TYPE, settings.OCI_CONFIG_FILE,
                                 settings.OCI_CONFIG_PROFILE)
        targets[(default, settings.OCI_REGION)] = settings.OCI_COMPARTMENT
    return [probe(cred, region, compartment) for (cred, region), compartment in targets.items()]
