"""A serving worker freezes its start-up heap and collects the young generation less often
(gateway_project/gc_tuning.py)."""

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_project import gc_tuning
from tests.conftest import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_freezes_and_sets_the_thresholds(monkeypatch, restore_gc):
    monkeypatch.setenv("GATEWAY_GC_THRESHOLDS", "4000,15,50")
    gc.unfreeze()
    assert gc_tuning.tune() is True
    assert gc.get_threshold() == (4000, 15, 50)
    assert gc.get_freeze_count() > 1000  # what start-up built is out of the collector's walks


def test_the_default_and_off(monkeypatch, restore_gc):
    monkeypatch.delenv("GATEWAY_GC_THRESHOLDS", raising=False)
    assert gc_tuning.thresholds() == (5000, 20, 100)
    monkeypatch.setenv("GATEWAY_GC_THRESHOLDS", "off")
    before = gc.get_threshold()
    assert gc_tuning.tune() is False and gc.get_threshold() == before


@pytest.mark.parametrize("raw", ["5000,20", "a,b,c", "0,10,10"])
def test_a_malformed_value_is_refused(monkeypatch, raw):
    monkeypatch.setenv("GATEWAY_GC_THRESHOLDS", raw)
    with pytest.raises(ValueError, match="GATEWAY_GC_THRESHOLDS"):
        gc_tuning.thresholds()


@pytest.mark.django_db(transaction=True)
def test_serve_refuses_a_malformed_value_in_one_line(oci_settings):
    env = GatewayProcess({"GATEWAY_GC_THRESHOLDS": "lots"}).env()
    done = subprocess.run([sys.executable, "manage.py", "serve", "--port", "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "GATEWAY_GC_THRESHOLDS must be three integers" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_start_up_tunes_the_collector(monkeypatch):
    from gateway_project import background
    from models_registry.bus import listener
    from usage.recorder import recorder

    calls = []
    monkeypatch.setattr(background, "_started", False)
    monkeypatch.setattr(listener, "start", lambda: calls.append("listener"))
    monkeypatch.setattr(recorder, "start", lambda: calls.append("recorder"))
    monkeypatch.setattr(gc_tuning, "tune", lambda: calls.append("gc"))
    background.ensure_started()
    assert calls == ["listener", "recorder", "gc"]  # last: what the first two built is frozen too
