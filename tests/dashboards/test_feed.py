"""The live feed: publishing after a flush, websocket auth (staff session, signed key token), delivery."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from usage.consumers import StaffFeedConsumer
from usage.dashboards import feed
from usage.keys import api_key_create
from usage.recorder import UsageRecorder
from usage.routing import websocket_application

from .conftest import event

pytestmark = [pytest.mark.smoke, pytest.mark.django_db(transaction=True)]
ORIGIN = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


def with_user(user):
    app = StaffFeedConsumer.as_asgi()

    async def wrapped(scope, receive, send):
        return await app({**scope, "user": user}, receive, send)

    return wrapped


def test_tokens_are_signed_and_expire():
    token = feed.feed_token(42)
    assert feed.key_from_token(token) == 42
    assert feed.key_from_token(token + "x") is None
    assert feed.key_from_token(token, max_age=-1) is None


async def test_staff_feed_refuses_anonymous_and_plain_users(superuser):
    communicator = WebsocketCommunicator(with_user(AnonymousUser()), "/ws/dashboards/usage/")
    connected, code = await communicator.connect()
    assert not connected and code == 4403
    communicator = WebsocketCommunicator(websocket_application, "/ws/dashboards/usage/", headers=ORIGIN)
    connected, code = await communicator.connect()
    assert not connected  # no session cookie: anonymous


@pytest.fixture
def serving_loop(monkeypatch):
    """This test's event loop plays the server's: the one the recorder would have bound at start-up."""

    def bind():
        monkeypatch.setattr(feed, "_loop", asyncio.get_running_loop())

    return bind


async def test_staff_feed_receives_each_written_batch_with_key_names(superuser, serving_loop):
    serving_loop()
    key, _secret = await database_sync_to_async(api_key_create)(name="alpha")
    communicator = WebsocketCommunicator(with_user(superuser), "/ws/dashboards/usage/")
    connected, _ = await communicator.connect()
    assert connected and (await communicator.receive_json_from())["type"] == "ready"
    recorder = UsageRecorder()
    recorder.record(event(key_id=key.pk, request_id="req-live-1"))
    recorder.record(event(key_id=None, request_id="req-live-2"))
    assert await asyncio.to_thread(recorder.flush) == 2  # flushed from a thread, as the flusher does
    message = await communicator.receive_json_from(timeout=2)
    assert message["type"] == "events"
    assert [(e["request_id"], e["key_name"]) for e in message["events"]] == [("req-live-1", "alpha"),
                                                                            ("req-live-2", "")]
    assert "client_ip" not in message["events"][0]
    await communicator.disconnect()


async def test_key_feed_needs_a_valid_token_as_first_message_and_sees_only_its_key(serving_loop):
    serving_loop()
    key, _secret = await database_sync_to_async(api_key_create)(name="alpha")
    other, _ = await database_sync_to_async(api_key_create)(name="beta")
    bad = WebsocketCommunicator(websocket_application, "/ws/me/usage/", headers=ORIGIN)
    assert (await bad.connect())[0]
    await bad.send_json_to({"token": "forged"})
    assert (await bad.receive_output(timeout=2))["code"] == 4401

    foreign = WebsocketCommunicator(websocket_application, "/ws/me/usage/",
                                    headers=[(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1")])
    assert not (await foreign.connect())[0]  # the origin must be one of ALLOWED_HOSTS

    good = WebsocketCommunicator(websocket_application, "/ws/me/usage/", headers=ORIGIN)
    assert (await good.connect())[0]
    await good.send_json_to({"token": feed.feed_token(key.pk)})
    assert (await good.receive_json_from(timeout=2))["type"] == "ready"
    feed.publish([event(key_id=other.pk, request_id="theirs"), event(key_id=key.pk, request_id="mine")])
    message = await good.receive_json_from(timeout=2)
    assert [e["request_id"] for e in message["events"]] == ["mine"]
    await good.disconnect()


def test_publish_outside_a_server_is_a_no_op(monkeypatch):
    monkeypatch.setattr(feed, "_loop", None)
    feed.publish([event()])  # a management command writing usage: nobody to tell, nothing raised
