"""Fixtures for the operator's console: admin clients, API clients, a small catalogue."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from models_registry.services import models_import

CATALOGUE_YAML = """
- region: us-chicago-1
  compartment_id: ocid1.compartment.oc1..console
  models:
    ondemand:
      - name: llama-3.3
        model_id: meta.llama-3.3-70b-instruct
        description: Llama
    embedding:
      - name: embed-v4
        model_id: cohere.embed-v4.0
"""


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """PBKDF2's deliberate slowness costs ~0.5 s per user created; tests need no such protection."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-tests-123")


@pytest.fixture
def staff_client(superuser):
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def plain_user(db):
    return get_user_model().objects.create_user("someone", "", "pw-for-tests-123")


@pytest.fixture
def plain_client(plain_user):
    client = Client()
    client.force_login(plain_user)
    return client


@pytest.fixture
def api_client(superuser):
    token = Token.objects.create(user=superuser)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def catalogue(db):
    models_import(text=CATALOGUE_YAML, source="console-tests")
    from models_registry.models import PublicModel

    return {pm.name: pm for pm in PublicModel.objects.all()}


class _FormValues(HTMLParser):
    """What a browser would submit from a page's forms, before the user types anything."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self._select: str | None = None
        self._select_first: str | None = None
        self._selected = False
        self._multiple = False
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("submit", "button", "image", "file", "reset"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.values.setdefault(name, []).append(a.get("value") or "on")
                return
            self.values.setdefault(name, []).append(a.get("value") or "")
        elif tag == "select" and name:
            self._select, self._select_first, self._selected = name, None, False
            self._multiple = "multiple" in a
        elif tag == "option" and self._select:
            value = a.get("value") or ""
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self.values.setdefault(self._select, []).append(value)
                self._selected = True
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = [""]

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            if not self._selected and not self._multiple:  # autocomplete selects start with no option
                self.values.setdefault(self._select, []).append(self._select_first or "")
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.values[self._textarea][0] = self.values[self._textarea][0].removeprefix("\n")
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea][0] += data


def admin_form(client, url: str, **overrides) -> dict:
    """The form data of the admin page at `url` (defaults and initial values), with `overrides` applied.

    Posting what the page offers keeps tests working when models gain fields.
    """
    parser = _FormValues()
    parser.feed(client.get(url).content.decode())
    data = {k: v if len(v) > 1 else v[0] for k, v in parser.values.items() if "__prefix__" not in k}
    data.pop("csrfmiddlewaretoken", None)
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}
