"""Dashboard pages: who may open them, what they show, CSV exports equal to the tables, the polling feed."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.test import Client

from usage.dashboards import feed
from usage.keys import api_key_create, api_key_disable
from usage.models import Team

from .conftest import event, write

pytestmark = [pytest.mark.smoke, pytest.mark.django_db(transaction=True)]


class _Tables(HTMLParser):
    """The text of every <table data-table=…> on a page, row by row."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "data-table" in a:
            self._table = self.tables.setdefault(a["data-table"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def page_tables(response) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(response.content.decode())
    return parser.tables


@pytest.fixture
def traffic(db):
    team = Team.objects.create(name="search", usd_budget=Decimal("5"))
    key, secret = api_key_create(name="alpha", team=team)
    other, _ = api_key_create(name="beta")
    now = datetime.now(UTC)
    write(*[event(key_id=key.pk, team_id=team.pk, prompt_tokens=100 + i, created_at=now - timedelta(hours=i))
            for i in range(10)])
    write(event(key_id=key.pk, team_id=team.pk, status=502, error_type="upstream_error", prompt_tokens=0,
                completion_tokens=0, created_at=now - timedelta(minutes=2)))
    write(*[event(key_id=other.pk, public_model="grok", created_at=now - timedelta(days=3)) for _ in range(4)])
    return key, secret, other, team


def test_staff_dashboard_needs_a_staff_session(client, plain_client):
    for c in (client, plain_client):
        response = c.get("/dashboards/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_dashboard_shows_rollup_totals_and_exports_exactly_the_tables(staff_client, traffic):
    key, _secret, _other, team = traffic
    response = staff_client.get("/dashboards/?range=7d")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    tables = page_tables(response)
    totals = dict(zip(tables["totals"][0], tables["totals"][1], strict=True))
    assert totals["requests"] == "15" and totals["errors"] == "1"
    assert totals["total tokens"] == f"{sum(105 + i for i in range(10)) + 4 * 15:,}"
    assert [r[0] for r in tables["keys"][1:]] == ["alpha", "beta"]
    assert b"<svg" in response.content and b'id="live"' in response.content
    for slug in ("totals", "series", "models", "regions", "keys", "teams", "budgets", "latency"):
        export = staff_client.get(f"/dashboards/?range=7d&export={slug}")
        assert export["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(export.content.decode())))
        shown = tables[slug] if len(tables[slug]) > 1 and tables[slug][1][0] != "Nothing in this window." \
            else tables[slug][:1]
        assert rows == shown, slug
    filtered = page_tables(staff_client.get(f"/dashboards/?range=24h&team={team.pk}&model=llama"))
    assert [r[0] for r in filtered["keys"][1:]] == ["alpha"]
    assert filtered["totals"][1][1] == "11"


def test_bad_query_parameters_are_400_with_the_reason(staff_client):
    response = staff_client.get("/dashboards/?range=forever")
    assert response.status_code == 400 and b"range: expected one of" in response.content
    assert staff_client.get("/dashboards/?key=abc").status_code == 400
    assert staff_client.get("/dashboards/?export=nothing").status_code == 400


def test_staff_opens_any_key_page(staff_client, traffic):
    key, _secret, other, _team = traffic
    response = staff_client.get(f"/dashboards/keys/{key.pk}/?range=24h")
    assert response.status_code == 200
    assert b"Key alpha" in response.content and b"upstream_error" in response.content
    assert staff_client.get("/dashboards/keys/999999/").status_code == 404


def test_a_key_holder_signs_in_with_the_key_and_sees_only_that_key(traffic):
    key, secret, _other, _team = traffic
    c = Client()
    assert b'name="key"' in c.get("/me/").content
    assert c.post("/me/", {"key": "sk-not-a-real-key-at-all-000000"}).status_code == 401
    response = c.post("/me/", {"key": secret})
    assert response.status_code == 302
    page = c.get("/me/?range=24h")
    assert page.status_code == 200 and b"Key alpha" in page.content and b"beta" not in page.content
    assert secret.encode() not in page.content
    assert b"USD" in page.content and b"remaining" in page.content  # the team's budget
    tables = page_tables(page)
    assert tables["totals"][1][1] == "11"
    assert c.get("/dashboards/").status_code == 302  # not staff
    api_key_disable(key=key)
    assert b'name="key"' in c.get("/me/").content  # a revoked key's session ends


def test_polling_feeds(staff_client, traffic):
    key, secret, _other, _team = traffic
    first = staff_client.get("/dashboards/feed.json").json()
    assert len(first["events"]) == 15 and first["events"][-1]["key_name"] in ("alpha", "beta")
    write(event(key_id=key.pk, created_at=datetime.now(UTC)))
    after = staff_client.get(f"/dashboards/feed.json?after={first['cursor']}").json()
    assert [e["key_id"] for e in after["events"]] == [key.pk]
    assert Client().get("/dashboards/feed.json").status_code == 302
    c = Client()
    assert c.get("/me/feed.json").status_code == 401
    token = feed.feed_token(key.pk)
    mine = c.get("/me/feed.json", HTTP_X_FEED_TOKEN=token).json()
    assert {e["key_id"] for e in mine["events"]} == {key.pk} and len(mine["events"]) == 12
    assert "client_ip" not in mine["events"][0] and "metadata" not in mine["events"][0]


def test_live_mode_degrades_to_polling_with_several_workers_and_no_redis(settings, staff_client):
    settings.REDIS_URL, settings.WORKERS = "", 4
    assert feed.live_mode() == "poll"
    assert b'data-mode="poll"' in staff_client.get("/dashboards/").content
    settings.WORKERS = 1
    assert feed.live_mode() == "websocket"
    settings.REDIS_URL, settings.WORKERS = "redis://127.0.0.1:6379/0", 4
    assert feed.live_mode() == "websocket"


def test_failed_signins_are_throttled_per_address(traffic, settings):
    _key, secret, _other, _team = traffic
    settings.ME_SIGNIN_MAX_FAILURES = 3
    c = Client()
    for _ in range(3):
        assert c.post("/me/", {"key": "sk-guess-guess-guess-guess-000000"}).status_code == 401
    refused = c.post("/me/", {"key": secret})  # past the limit even the right key waits
    assert refused.status_code == 429 and b"Too many failed sign-ins" in refused.content
    assert Client(REMOTE_ADDR="10.9.8.7").post("/me/", {"key": secret}).status_code == 302
