"""Prediction store: resume keys, partial lines from a killed run, and duplicate handling."""

import pytest

from sam3_radio.evaluate.store import PredictionStore, UnitResult


def test_store_finished_keys_across_ranks(tmp_path):
    PredictionStore(tmp_path, rank=0).append(UnitResult("a", {"x": 1}, 1.0, 1))
    PredictionStore(tmp_path, rank=1).append(UnitResult("b", {"x": 2}, 1.0, 1))
    PredictionStore(tmp_path, rank=1).append(UnitResult.skipped("c", "missing"))
    assert PredictionStore(tmp_path, rank=0).finished_keys() == {"a", "b"}


def test_store_partial_last_line_dropped(tmp_path):
    store = PredictionStore(tmp_path)
    store.append(UnitResult("a", {"x": 1}, 1.0, 1))
    with store.path.open("a") as stream:
        stream.write('{"key": "b", "payl')
    assert set(store.read_all()) == {"a"}
    store.append(UnitResult("b", {"x": 2}, 1.0, 1))
    assert store.finished_keys() == {"a", "b"}
    assert store.path.read_text().count("\n") == 2


def test_store_ok_result_kept_over_later_skip(tmp_path):
    store = PredictionStore(tmp_path)
    store.append(UnitResult("a", {"x": 1}, 1.0, 1))
    store.append(UnitResult.skipped("a", "missing"))
    assert store.read_all()["a"].payload == {"x": 1}


def test_store_retried_skip_replaced_by_result(tmp_path):
    store = PredictionStore(tmp_path)
    store.append(UnitResult.skipped("a", "missing"))
    store.append(UnitResult("a", {"x": 1}, 1.0, 1))
    assert store.read_all()["a"].status == "ok"


def test_store_damaged_middle_line_rejected(tmp_path):
    store = PredictionStore(tmp_path)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text('not json\n{"key": "a"}\n')
    with pytest.raises(ValueError, match="line 1"):
        store.read_all()
