"""The Deployment admin's "Probe selected deployments" action and its per-deployment state page (api/admin.py)."""

import time

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from api import routing
from models_registry.catalog import deployment_spec
from models_registry.models import Deployment

pytestmark = pytest.mark.django_db(transaction=True)

CHAT, EMBED = "meta.llama-3.3-70b-instruct", "cohere.embed-v4.0"
STATE_URL = "/admin/models_registry/deployment/state/"


@pytest.fixture(autouse=True)
def fresh_routing_state():
    routing.reset_state()
    yield
    routing.reset_state()


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser("ops", "", "pw-123-long-enough")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def catalog(oci_settings):
    from models_registry.services import models_import

    models = {"ondemand": [{"name": CHAT, "model_id": CHAT}], "embedding": [{"name": EMBED, "model_id": EMBED}]}
    models_import(text=yaml.safe_dump([{"region": "us-chicago-1", "compartment_id": oci_settings.compartment_id,
                                        "models": models}]), source="tests")
    return {d.model_id: d for d in Deployment.objects.all()}


def test_probe_action_shows_each_result_as_a_message(staff_client, catalog, oci_settings):
    from usage.models import UsageRecord

    oci_settings.set_faults(status=503, model=EMBED)
    chat, embed = catalog[CHAT], catalog[EMBED]
    response = staff_client.post(reverse("admin:models_registry_deployment_changelist"),
                                 {"action": "probe", "_selected_action": [chat.pk, embed.pk]})
    assert response.status_code == 302
    shown = {m.message.split(" ", 1)[0]: (m.level_tag, m.message) for m in get_messages(response.wsgi_request)}
    assert shown[chat.name][0] == "success" and "(chat, us-chicago-1): ok in " in shown[chat.name][1]
    assert shown[embed.name][0] == "error"
    assert "(embeddings, us-chicago-1): failed, HTTP 503, after " in shown[embed.name][1]
    sent = [e["opcRequestId"] for e in oci_settings.ledger(0)]
    assert len(sent) == 2
    # Not billed: no usage record carries a probe's request id (the gateway sends its own as opc-request-id).
    assert not UsageRecord.objects.filter(request_id__in=sent).exists()
    assert not UsageRecord.objects.filter(upstream_request_id__in=sent).exists()


def test_probe_action_needs_the_change_permission(catalog):
    from django.contrib.auth.models import Permission

    def changelist_for(codename):
        user = get_user_model().objects.create_user(codename, password="pw-123-long-enough", is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename=codename))
        client = Client()
        client.force_login(user)
        page = client.get(reverse("admin:models_registry_deployment_changelist"))
        assert page.status_code == 200
        return page.content.decode()

    assert '<option value="probe">Probe selected deployments</option>' in changelist_for("change_deployment")
    assert 'value="probe"' not in changelist_for("view_deployment")


def test_state_page_shows_breakers_error_rates_latency_and_load(staff_client, settings):
    settings.REDIS_URL = ""
    healthy = Deployment.objects.create(name="healthy-one", region="us-chicago-1", model_id=CHAT)
    broken = Deployment.objects.create(name="broken-one", region="eu-frankfurt-1", model_id=CHAT)
    elsewhere = Deployment.objects.create(name="opened-elsewhere", region="us-ashburn-1", model_id=CHAT)
    Deployment.objects.create(name="idle-one", region="uk-london-1", model_id=CHAT, enabled=False)
    h, b = deployment_spec(healthy), deployment_spec(broken)
    routing.record_result(h, ok=True, latency_ms=120.0)
    routing.record_result(h, ok=False)
    routing.record_result(h, ok=True, latency_ms=220.0)
    routing.state(h.name).in_flight = 3
    for _ in range(settings.BREAKER_FAILURES):
        routing.record_result(b, ok=False)
    routing._shared_open[elsewhere.name] = time.monotonic() + 20  # heard from another process

    response = staff_client.get(STATE_URL)
    assert response.status_code == 200
    rows = {row.name: row for row in response.context["rows"]}
    assert list(rows) == ["broken-one", "healthy-one", "opened-elsewhere", "idle-one"]  # enabled first
    assert (rows["healthy-one"].breaker, rows["healthy-one"].calls, rows["healthy-one"].in_flight) == ("closed", 3, 3)
    assert rows["healthy-one"].error_rate == pytest.approx(1 / 3)
    assert rows["healthy-one"].latency_ewma_ms == pytest.approx(0.8 * 120 + 0.2 * 220)
    assert rows["broken-one"].breaker == "open" and rows["broken-one"].open_until is not None
    assert rows["broken-one"].consecutive_failures == settings.BREAKER_FAILURES
    assert (rows["opened-elsewhere"].breaker, rows["opened-elsewhere"].opened_elsewhere) == ("open", True)
    assert rows["idle-one"].breaker == "closed" and rows["idle-one"].calls == 0
    html = response.content.decode()
    assert "state of the one gateway process that served this page" in html
    assert "not shared between processes" in html
    assert "(another process)" in html and "33%" in html and "140 ms" in html

    # After the cool-down the breaker is half-open: the next call tests the deployment.
    routing.state(b.name).open_until = time.monotonic() - 1
    assert {r.name: r.breaker for r in staff_client.get(STATE_URL).context["rows"]}["broken-one"] == "half-open"


def test_state_page_says_openings_are_shared_through_redis(staff_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # configured; not read outside the server's event loop
    assert "Breaker openings are shared through Redis" in staff_client.get(STATE_URL).content.decode()


def test_state_page_is_linked_from_the_changelist(staff_client):
    changelist = staff_client.get(reverse("admin:models_registry_deployment_changelist"))
    assert f'href="{STATE_URL}"'.encode() in changelist.content


def test_state_page_is_for_staff_only(staff_client):
    assert staff_client.get(STATE_URL).status_code == 200
    anonymous = Client().get(STATE_URL)
    assert anonymous.status_code == 302 and anonymous["location"].startswith("/admin/login/")
    user = get_user_model().objects.create_user("someone", password="pw-123-long-enough")
    client = Client()
    client.force_login(user)
    response = client.get(STATE_URL)
    assert response.status_code == 302 and response["location"] == f"/admin/login/?next={STATE_URL}"


# --- inside the running server: the action and the page run in a worker thread beside the event loop ---


def _logged_in(gateway):
    import re

    import httpx

    get_user_model().objects.create_superuser("live-ops", "", "pw-123-long-enough")
    client = httpx.Client(base_url=gateway.base_url, timeout=60)
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post("/admin/login/", data={"username": "live-ops", "password": "pw-123-long-enough",
                                                  "csrfmiddlewaretoken": token, "next": "/admin/"})
    assert response.status_code == 302, response.text[:500]
    return client


def test_probe_action_in_the_server_runs_on_its_event_loop(gateway):
    import re

    client = _logged_in(gateway)
    chat = Deployment.objects.get(model_id=CHAT)
    gateway.emulator.set_faults(status=429, model=CHAT, count=1)
    url = reverse("admin:models_registry_deployment_changelist")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get(url).text).group(1)
    for expected in ("failed, HTTP 429", "ok in "):
        response = client.post(url, data={"action": "probe", "_selected_action": [chat.pk],
                                          "csrfmiddlewaretoken": token}, follow_redirects=True)
        assert response.status_code == 200
        # (the admin capitalises the first letter of a message)
        assert f"{chat.name} (chat, us-chicago-1): {expected}".lower() in response.text.lower()
    # The probes used the server's own upstream session, which stays open for client traffic.
    reply = gateway.openai().chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    assert not routing.is_open(chat.name) and routing.state(chat.name).consecutive_failures == 0


@pytest.mark.skipif(not __import__("django.conf").conf.settings.REDIS_URL, reason="needs REDIS_URL")
def test_state_page_in_the_server_reads_openings_shared_through_redis(gateway):
    import redis
    from django.conf import settings

    client = _logged_in(gateway)
    chat = Deployment.objects.get(model_id=CHAT)
    r = redis.Redis.from_url(settings.REDIS_URL)
    key = f"{settings.REDIS_KEY_PREFIX}breaker:{chat.name}"
    r.set(key, "open", px=20_000)  # what another replica's routing.record_result publishes
    try:
        page = client.get(STATE_URL).text
    finally:
        r.delete(key)
    assert "(read from Redis for this page)" in page
    row = page.split(f'data-deployment="{chat.name}"', 1)[1].split("</tr>", 1)[0]
    assert "open</strong> (another process)" in row
