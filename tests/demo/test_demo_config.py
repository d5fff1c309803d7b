import pytest

from sam3_radio.demo.config import DemoConfigError, compose_config, settings_from_config


def settings(*overrides: str):
    return settings_from_config(compose_config(list(overrides)))


def test_config_default_compares_pe_and_so400m():
    backbones = settings().backbones

    assert [(b.backbone, b.window_size) for b in backbones] == [("pe", None), ("radio-so400m", 12)]
    assert [b.label for b in backbones] == ["pe", "radio-so400m (window 12)"]


def test_config_default_server_limits():
    result = settings()

    assert result.port == 7860
    assert result.concurrency_limit == 1
    assert result.max_queue_size == 8
    assert result.cache_entries == 8


def test_config_backbones_inherit_top_level_weights():
    result = settings("weights=random", "radio_weights=/ckpt/radio.pth.tar")

    assert [b.weights for b in result.backbones] == ["random", "random"]
    assert result.backbones[1].radio_weights == "/ckpt/radio.pth.tar"
    assert result.random_weights is True


def test_config_entry_weights_win():
    result = settings("+backbones.0.weights=/ckpt/sam3.pt")

    assert result.backbones[0].weights == "/ckpt/sam3.pt"
    assert result.backbones[1].weights == "hf"
    assert result.random_weights is False


def test_config_list_index_override():
    result = settings("backbones.1.backbone=radio-h", "backbones.1.window_size=null")

    assert result.backbones[1].backbone == "radio-h"
    assert result.backbones[1].window_size is None


def test_config_whole_list_override():
    result = settings("backbones=[{backbone:tiny-pe},{backbone:tiny-radio,window_size:6}]")

    assert [b.label for b in result.backbones] == ["tiny-pe", "tiny-radio (window 6)"]


# (case, overrides, fragment of the error message)
INVALID_CASES = [
    ("one backbone", ["backbones=[{backbone:pe}]"], "exactly 2"),
    ("unknown backbone", ["backbones.0.backbone=vit-b"], "unknown backbone"),
    ("window on pe", ["backbones.0.window_size=12"], "RADIO backbones only"),
    ("window not dividing 72", ["backbones.1.window_size=7"], "does not divide"),
    ("duplicate labels", ["backbones=[{backbone:pe},{backbone:pe}]"], "distinct"),
    ("unknown key", ["+backbones.0.windows=12"], "unknown keys"),
    ("threshold of one", ["threshold=1.0"], "threshold"),
    ("zero cache", ["cache.max_entries=0"], "cache.max_entries"),
    ("bad dtype", ["dtype=fp16"], "dtype"),
    ("port too large", ["server.port=70000"], "server.port"),
    ("unknown top-level key", ["colour=red"], "invalid override"),
]


@pytest.mark.parametrize(
    "overrides, message",
    [case[1:] for case in INVALID_CASES],
    ids=[case[0] for case in INVALID_CASES],
)
def test_config_invalid_raises(overrides, message):
    with pytest.raises(DemoConfigError, match=message):
        settings(*overrides)


def test_config_missing_file_raises(tmp_path):
    with pytest.raises(DemoConfigError, match="demo.yaml not found"):
        compose_config([], tmp_path)
