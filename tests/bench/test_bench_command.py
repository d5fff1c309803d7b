"""`sam3-radio bench` end to end on cheap settings, its report, and its config errors."""

import json

import pytest
from PIL import Image

from sam3_radio.bench.report import render_markdown, speed_target
from sam3_radio.cli import main

CHEAP = [
    "sections=[trunks,implementation,sweep,pipeline,video]",
    "device=cpu",
    "dtypes=[fp32]",
    "warmup=0",
    "trunks.backbones=[radio-so400m]",
    "trunks.windows=[36]",
    "trunks.check_full=[]",
    "implementation.resolution=256",
    "implementation.window_size=8",
    "implementation.depth=2",
    "sweep.resolutions=[256]",
    "pipeline.backbones=[{backbone:tiny-pe,window_size:null},{backbone:tiny-radio,window_size:8}]",
    "pipeline.num_prompts=2",
    "video.backbones=[{backbone:tiny-pe,window_size:null}]",
    "video.frames=1",
]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("bench")
    report = folder / "benchmarks.md"
    results = folder / "results.json"
    overrides = [
        *CHEAP,
        f"video.frames_dir={shared_data / 'video-0001'}",
        f"report={report}",
        f"results={results}",
    ]
    assert main(["bench", *overrides]) == 0
    return report, json.loads(results.read_text())


def test_bench_writes_every_section(bench_run):
    report, results = bench_run
    text = report.read_text()
    for heading in ["## Trunks", "## Our ViTDet block loop", "## Resolution sweep",
                    "## Image pipeline", "## Video"]:
        assert heading in text
    assert set(results["sections"]) == {"trunks", "implementation", "sweep", "pipeline", "video"}


def test_bench_plot_is_an_image(bench_run):
    report, _ = bench_run
    with Image.open(report.with_suffix(".png")) as plot:
        assert plot.width > 500


def test_bench_trunk_rows_cover_requested_windows(bench_run):
    _, results = bench_run
    rows = results["sections"]["trunks"]["rows"]
    assert [(row["backbone"], row["attention"]) for row in rows] == [
        ("radio-so400m", "window 36"),
        ("radio-so400m", "global"),
    ]
    assert all(row["trunk_s"] > 0 and row["gflop"] > 0 for row in rows)
    assert all(row["trunk_neck_s"] > row["trunk_s"] for row in rows)
    # Windows of 36 tokens replace most global attention, so they need fewer FLOPs.
    assert rows[0]["gflop"] < rows[1]["gflop"]


def test_bench_block_loops_agree(bench_run):
    _, results = bench_run
    (row,) = results["sections"]["implementation"]["rows"]
    assert row["max_abs_difference"] < 1e-4


def test_bench_pipeline_reports_prompt_costs(bench_run):
    _, results = bench_run
    first, second = results["sections"]["pipeline"]["rows"]
    assert first["num_prompts"] == 2
    assert first["end_to_end_s"] == pytest.approx(first["encode_s"] + first["one_prompt_s"])
    assert first["many_to_one_ratio"] == pytest.approx(
        first["many_prompts_s"] / first["one_prompt_s"]
    )
    # The decoder is shared, so the prompts run on the first backbone only.
    assert second["backbone"] == "tiny-radio"
    assert second["many_prompts_s"] is None
    assert second["end_to_end_s"] > 0


def test_bench_video_reports_frame_latency(bench_run):
    _, results = bench_run
    (row,) = results["sections"]["video"]["rows"]
    assert row["per_frame_s"] > 0


def _trunk_row(backbone, window_size, dtype, seconds):
    return {
        "backbone": backbone, "resolution": 1152, "window_size": window_size,
        "attention": "global" if window_size is None else f"window {window_size}",
        "dtype": dtype, "mode": "probe", "trunk_s": seconds, "trunk_neck_s": seconds + 1,
        "gflop": 100.0, "achieved_gflop_s": 10.0, "matmul_gflop_s": 20.0, "matmul_fraction": 0.5,
        "parameter_mib": 1.0, "peak_mib": 2.0,
    }


def _results(rows):
    return {
        "command": "sam3-radio bench", "started": "2026-12-04 00:00 UTC", "total_seconds": 60,
        "machine": {"cpu": "test", "cpu_cores": 2, "cpu_capability": "AVX2",
                    "cpu_bf16_instructions": False, "device": "cpu", "python": "3.11",
                    "torch": "2", "sam3": "0.1.4", "timm": "1", "platform": "linux"},
        "config": {"trunks": {"mode": "probe"}},
        "sections": {"trunks": {"rows": rows, "neck_s": {"fp32": 1.0, "bf16": 2.0},
                                "matmul_gflop_s": {"fp32": 20.0, "bf16": 5.0}, "checks": []}},
    }


def test_speed_target_picks_best_small_window_in_bf16():
    rows = [
        _trunk_row("pe", None, "fp32", 10.0),
        _trunk_row("pe", None, "bf16", 40.0),
        _trunk_row("radio-so400m", 8, "bf16", 30.0),
        _trunk_row("radio-so400m", 12, "bf16", 32.0),
        _trunk_row("radio-so400m", 24, "bf16", 20.0),
        _trunk_row("radio-so400m", 8, "fp32", 1.0),
    ]
    target = speed_target(_results(rows))
    assert target["dtype"] == "bf16"
    assert target["window_size"] == 8
    assert target["ratio"] == pytest.approx(30.0 / 40.0)
    assert target["all_windows_faster"]


def test_report_states_a_missed_target():
    rows = [_trunk_row("pe", None, "bf16", 10.0), _trunk_row("radio-so400m", 12, "bf16", 12.0)]
    text = render_markdown(_results(rows), None)
    assert "ratio 1.20, not faster than PE" in text


@pytest.mark.parametrize(
    "override, message",
    [
        ("trunks.windows=[5]", "do not divide the 72-token grid"),
        ("sections=[trunks,speed]", "unknown sections"),
        ("dtypes=[fp16]", "unsupported dtype"),
        ("sweep.resolutions=[1000]", "not a multiple of 16 x"),
        ("pipeline.image=missing.jpg", "not found"),
        ("trunks.mode=fast", "trunks.mode"),
        ("no_such_key=1", "invalid override"),
    ],
)
def test_bench_rejects_bad_settings(override, message, capsys):
    assert main(["bench", "--print-config", override]) == 2
    assert message in capsys.readouterr().err


def test_render_only_rewrites_report_from_results(bench_run, tmp_path):
    report, results = bench_run
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results))
    again = tmp_path / "again.md"
    assert main(["bench", "--render-only", f"results={results_path}", f"report={again}"]) == 0
    assert again.read_text() == report.read_text().replace("benchmarks.png", "again.png")


def test_render_only_without_results_fails(tmp_path, capsys):
    missing = tmp_path / "none.json"
    assert main(["bench", "--render-only", f"results={missing}"]) == 2
    assert "not found: run the benchmark first" in capsys.readouterr().err
