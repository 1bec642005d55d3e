"""Operator-entered upstream URLs: https only (unless allowed), never link-local."""

import pytest
from django.core.exceptions import ValidationError

from models_registry.models import ApiFormat, Deployment, DeploymentKind
from models_registry.upstream_urls import validate_upstream_url

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize(
    "url",
    ["https://modeldeployment.us-ashburn-1.oci.customer-oci.com/ocid1.x/predict", "https://10.0.0.5:8443/v1", ""],
)
def test_accepted(url):
    validate_upstream_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://vllm.internal/v1", "must use https"),
        ("https://169.254.169.254/opc/v2/instance/", "link-local"),
        ("https://[fe80::1]/x", "link-local"),
        ("ftp://host/x", "not an absolute URL"),
        ("not a url", "not an absolute URL"),
    ],
)
def test_refused(url, message):
    with pytest.raises(ValidationError, match=message):
        validate_upstream_url(url)


def test_http_allowed_by_setting_but_link_local_never(settings):
    settings.ALLOW_HTTP_UPSTREAMS = True
    validate_upstream_url("http://vllm.internal/v1")
    with pytest.raises(ValidationError, match="link-local"):
        validate_upstream_url("http://169.254.169.254/")


def test_deployment_clean_names_the_field():
    d = Deployment(name="ds", kind=DeploymentKind.DATASCIENCE, api_format=ApiFormat.OPENAI,
                   deployment_url="http://md.example/predict", default_max_tokens=100)
    with pytest.raises(ValidationError) as exc:
        d.clean()
    assert "deployment_url" in exc.value.message_dict
