"""/test-oci and manage.py test_oci against the emulator's control plane."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import AsyncClient

from oci_emulator.credentials import generate_credentials

pytestmark = pytest.mark.django_db(transaction=True)


def test_command_reports_ok(oci_settings):
    out = StringIO()
    call_command("test_oci", stdout=out)
    assert "environment" in out.getvalue() and " ok " in out.getvalue()
    assert "all 1 checks ok" in out.getvalue()


@pytest.mark.provokes_rejection
def test_command_reports_not_authenticated(oci_settings, settings, tmp_path):
    settings.OCI_CONFIG_FILE = generate_credentials(str(tmp_path / "x")).config_file
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 1 checks failed"):
        call_command("test_oci", stdout=out)
    assert "not_authenticated" in out.getvalue()


def test_command_reports_not_authorized_for_a_foreign_compartment(oci_settings, settings):
    settings.OCI_COMPARTMENT = "ocid1.compartment.oc1..notours"
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("test_oci", stdout=out)
    assert "not_authorized" in out.getvalue()


def test_command_reports_unreachable(oci_settings, settings):
    settings.OCI_GENAI_MANAGEMENT_ENDPOINT = "http://127.0.0.1:9"
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("test_oci", stdout=out)
    assert "unreachable" in out.getvalue()


async def test_page_hides_details_from_anonymous_and_shows_staff(oci_settings, settings):
    settings.OCI_COMPARTMENT = "ocid1.compartment.oc1..notours"
    client = AsyncClient()
    response = await client.get("/test-oci")
    assert response.status_code == 503
    check = response.json()["checks"][0]
    assert check["status"] == "not_authorized" and "detail" not in check

    from asgiref.sync import sync_to_async

    user = await sync_to_async(get_user_model().objects.create_superuser)("ops", "", "pw-123-long-enough")
    await client.aforce_login(user)
    response = await client.get("/test-oci")
    assert "notours" in response.json()["checks"][0]["detail"]
