"""Checks on operator input shared by the admin forms and the management API.

Each message says what is wrong and how to fix it; the model's own `clean()` covers the rules that
hold whatever the write path.
"""

from __future__ import annotations

import configparser
import os
import re

from django.conf import settings
from django.core.exceptions import ValidationError

REGION_RE = re.compile(r"^[a-z]{2,}(-[a-z]+)+-\d+$")
COMPARTMENT_PREFIXES = ("ocid1.compartment.", "ocid1.tenancy.")
FILE_AUTH_TYPES = ("API_KEY", "SECURITY_TOKEN")


def validate_region(value: str) -> None:
    if value and not REGION_RE.match(value):
        raise ValidationError(
            f"{value!r} is not an OCI region identifier; use the form us-chicago-1 or eu-frankfurt-1 "
            "(not the region key such as ORD), or leave it blank for OCI_REGION."
        )


def validate_compartment(value: str) -> None:
    if value and not value.startswith(COMPARTMENT_PREFIXES):
        raise ValidationError(
            "Give the compartment's OCID, which starts with ocid1.compartment.oc1.. (or the tenancy OCID for "
            "the root compartment); copy it from the OCI console, or leave it blank for OCI_COMPARTMENT."
        )


def credential_errors(*, auth_type: str, config_file: str, config_profile: str) -> dict[str, str]:
    """Field errors for a credential profile, checked against the files this host can read."""
    errors: dict[str, str] = {}
    if auth_type not in FILE_AUTH_TYPES:
        if config_file or config_profile:
            errors["config_file"] = (
                f"{auth_type} credentials come from the environment, not from a config file: "
                "leave the config file and profile blank."
            )
        return errors
    if not config_file and not config_profile:
        return errors  # the environment's settings, checked when the gateway signs its first request
    path = os.path.expanduser(config_file or settings.OCI_CONFIG_FILE)
    field = "config_file" if config_file else "config_profile"
    if not os.path.isfile(path):
        errors[field] = (
            f"No OCI config file at {path} on the gateway host. Give the path where the file is mounted "
            "(e.g. /home/app/.oci/config) or leave it blank to use OCI_CONFIG_FILE."
        )
        return errors
    parser = configparser.ConfigParser(default_section="DEFAULT__none__", interpolation=None)
    try:
        parser.read(path)
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        errors[field] = f"{path} is not a readable OCI config file ({type(exc).__name__}); fix or replace it."
        return errors
    profile = config_profile or settings.OCI_CONFIG_PROFILE
    if not parser.has_section(profile):
        known = ", ".join(parser.sections()) or "none"
        errors["config_profile"] = f"{path} has no [{profile}] profile (it has: {known}); pick one of those."
    elif auth_type == "SECURITY_TOKEN" and not parser.get(profile, "security_token_file", fallback=""):
        errors["auth_type"] = (
            f"Profile [{profile}] has no security_token_file: run `oci session authenticate` for it, "
            "or choose API key authentication."
        )
    return errors
