"""OCI credentials the ways operators bring them: environment variables, a moved key file, session tokens."""

import logging
import shutil

import pytest

from api.upstream.signing import forget_signers

MODEL = "meta.llama-3.3-70b-instruct"


def ask(gateway):
    return gateway.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])


@pytest.fixture
def creds(oci_settings):
    return oci_settings.oci_config()


@pytest.mark.parametrize("key_as", ["OCI_KEY_FILE", "OCI_KEY"])
def test_api_key_from_environment_without_config_file(gateway, creds, settings, monkeypatch, tmp_path, key_as):
    settings.OCI_CONFIG_FILE = str(tmp_path / "absent")
    monkeypatch.setenv("OCI_USER", creds["user"])
    monkeypatch.setenv("OCI_TENANCY", creds["tenancy"])
    monkeypatch.setenv("OCI_FINGERPRINT", creds["fingerprint"])
    key_file = creds["key_file"]
    if key_as == "OCI_KEY":
        with open(key_file) as fh:
            monkeypatch.setenv("OCI_KEY", fh.read())
    else:
        monkeypatch.setenv("OCI_KEY_FILE", key_file)
    forget_signers()
    assert ask(gateway).choices[0].message.content.startswith("Emulated answer")
    forget_signers()


def test_key_file_missing_falls_back_beside_the_config(gateway, creds, settings, tmp_path, caplog):
    mounted = tmp_path / "mounted-oci"
    mounted.mkdir()
    shutil.copy(creds["key_file"], mounted / "oci_api_key.pem")
    config = mounted / "config"
    config.write_text(
        "[DEFAULT]\n"
        f"user={creds['user']}\nfingerprint={creds['fingerprint']}\ntenancy={creds['tenancy']}\n"
        "region=us-chicago-1\nkey_file=/home/someone-else/.oci/oci_api_key.pem\n"
    )
    settings.OCI_CONFIG_FILE = str(config)
    forget_signers()
    with caplog.at_level(logging.WARNING, logger="gateway.upstream"):
        assert ask(gateway).choices[0].message.content.startswith("Emulated answer")
    assert any("beside the config file" in r.getMessage() for r in caplog.records)


def test_session_token_profile(gateway, oci_settings, settings):
    if not oci_settings.session_profile:
        pytest.skip("the emulator generated no session profile")
    settings.OCI_CONFIG_PROFILE = oci_settings.session_profile
    settings.OCI_AUTH_TYPE = "SECURITY_TOKEN"
    from models_registry import bus

    bus.bump("catalog")  # credential specs are part of the cached catalog
    forget_signers()
    assert ask(gateway).choices[0].message.content.startswith("Emulated answer")
    entry = oci_settings.ledger(0)[-1]
    assert entry["signature"] == "ok"
