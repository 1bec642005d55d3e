"""Egress the way enterprise networks need it: a private CA (OCI_GENAI_CA_BUNDLE) and an HTTP proxy."""

import shutil
import socket
import subprocess
import threading
import time

import pytest
import trustme
import uvicorn

MODEL = "meta.llama-3.3-70b-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tls_emulator(oci_settings, tmp_path):
    """The same emulator app served over TLS with a certificate from a private test CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(oci_settings.app, host="127.0.0.1", port=port, log_level="warning",
                                           ssl_certfile=str(cert_file), ssl_keyfile=str(key_file), lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"https://localhost:{port}", str(ca_file)
    server.should_exit = True
    thread.join(timeout=10)


def bump_catalog():
    from models_registry import bus

    bus.bump("catalog")


def ask(gateway):
    return gateway.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])


def test_private_ca_bundle_is_trusted(gateway, tls_emulator, settings):
    url, ca_file = tls_emulator
    settings.OCI_GENAI_ENDPOINT = url
    bump_catalog()
    import openai

    with pytest.raises(openai.APIStatusError) as exc:  # system CAs do not know the test CA
        ask(gateway)
    assert exc.value.status_code in (502, 503)
    settings.OCI_GENAI_CA_BUNDLE = ca_file
    assert ask(gateway).choices[0].message.content.startswith("Emulated answer")


@pytest.fixture
def tinyproxy(tmp_path):
    binary = shutil.which("tinyproxy")
    if binary is None:
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy; .ci/run installs it)")
    port = free_port()
    log = tmp_path / "tinyproxy.log"
    conf = tmp_path / "tinyproxy.conf"
    conf.write_text(f"Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nLogFile \"{log}\"\n"
                    "LogLevel Connect\nMaxClients 50\n")
    proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "tinyproxy did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", log
    proc.terminate()
    proc.wait(timeout=5)


def test_https_proxy_is_honoured(gateway, tls_emulator, tinyproxy, settings, monkeypatch):
    url, ca_file = tls_emulator
    proxy_url, log = tinyproxy
    settings.OCI_GENAI_ENDPOINT = url
    settings.OCI_GENAI_CA_BUNDLE = ca_file
    bump_catalog()
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    assert ask(gateway).choices[0].message.content.startswith("Emulated answer")
    assert "CONNECT" in log.read_text() and f"localhost:{url.rsplit(':', 1)[1]}" in log.read_text()


def test_no_proxy_bypasses_the_proxy(gateway, tinyproxy, monkeypatch):
    proxy_url, log = tinyproxy

    def proxied_posts() -> int:
        # Only the gateway's own upstream calls count (the test's client honours HTTP_PROXY too).
        text = log.read_text() if log.exists() else ""
        return sum(1 for line in text.splitlines() if "Request (" in line and "/20231130/actions/chat" in line)

    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert ask(gateway).choices[0].message.content.startswith("Emulated answer")
    assert proxied_posts() == 0
    monkeypatch.setenv("NO_PROXY", "")
    assert ask(gateway).choices[0].message.content.startswith("Emulated answer")
    assert proxied_posts() == 1
