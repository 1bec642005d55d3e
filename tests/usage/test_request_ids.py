"""Request ids: a client's X-Request-Id is kept for correlation but never makes two requests one record."""

import httpx

BODY = {"model": "meta.llama-3.3-70b-instruct", "messages": [{"role": "user", "content": "hi"}]}


def test_a_reused_client_request_id_still_gives_one_record_per_request(gateway):
    headers = {"Authorization": f"Bearer {gateway.key}", "X-Request-Id": "client-trace-42"}
    ids = []
    for _ in range(3):
        r = httpx.post(gateway.api_base + "/chat/completions", json=BODY, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        ids.append(r.headers["x-request-id"])
    assert len(set(ids)) == 3 and all(i.startswith("client-trace-42-") for i in ids)
    records = gateway.usage_records(3)
    assert sorted(r.request_id for r in records) == sorted(ids)
    ledger = {e["opcRequestId"] for e in gateway.emulator.ledger(0)}
    assert set(ids) <= ledger  # the upstream call carries the same id


def test_an_unusable_client_id_is_replaced(gateway):
    headers = {"Authorization": f"Bearer {gateway.key}", "X-Request-Id": "bad id; drop table"}
    r = httpx.post(gateway.api_base + "/chat/completions", json=BODY, headers=headers, timeout=30)
    assert r.status_code == 200 and " " not in r.headers["x-request-id"] and len(r.headers["x-request-id"]) == 32
