"""Where OCI's Generative AI endpoints are, for every realm.

`OCI_GENAI_ENDPOINT` replaces the inference endpoint for every region (private endpoints, the
emulator); otherwise the `oci` SDK's region table builds the realm-correct host name, so the EU
sovereign and UK government realms work as well as the commercial one.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=64)
def _sdk_endpoint(service: str, region: str) -> str:
    import oci

    template = {
        "inference": "https://inference.generativeai.{region}.oci.{secondLevelDomain}",
        "management": "https://generativeai.{region}.oci.{secondLevelDomain}",
    }[service]
    return oci.regions.endpoint_for(
        "generative_ai_inference" if service == "inference" else "generative_ai",
        region=region,
        service_endpoint_template=template,
    )


def inference_endpoint(region: str) -> str:
    if settings.OCI_GENAI_ENDPOINT:
        return settings.OCI_GENAI_ENDPOINT
    if not region:
        return ""
    return _sdk_endpoint("inference", region)


def management_endpoint(region: str) -> str:
    if settings.OCI_GENAI_MANAGEMENT_ENDPOINT:
        return settings.OCI_GENAI_MANAGEMENT_ENDPOINT
    if not region:
        return ""
    return _sdk_endpoint("management", region)
