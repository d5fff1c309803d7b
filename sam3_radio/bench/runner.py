"""Run the benchmark sections of configs/bench.yaml and collect their results as plain dicts."""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tqdm import tqdm

from sam3_radio.bench import pipeline, trunks
from sam3_radio.bench.measure import autocast_for, matmul_rate, time_call
from sam3_radio.model.builder import valid_window_sizes
from sam3_radio.model.device import resolve_device, resolve_dtype
from sam3_radio.radio.vitdet import run_blocks

logger = logging.getLogger(__name__)

SECTIONS = ("trunks", "implementation", "sweep", "pipeline", "video")
REPOSITORY = Path(__file__).resolve().parents[2]


class BenchConfigError(ValueError):
    """A benchmark setting is invalid."""


def repository_path(value: str | Path) -> Path:
    """Resolve a config path against the working folder if it exists there, else the repository.

    Absolute paths are returned as given.
    """
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return REPOSITORY / path


def check_config(config: DictConfig) -> None:
    """Raise BenchConfigError naming the first invalid setting."""
    unknown = [name for name in config.sections if name not in SECTIONS]
    if unknown:
        raise BenchConfigError(f"unknown sections {unknown}: use any of {list(SECTIONS)}")
    for name in config.dtypes:
        try:
            resolve_dtype(name)
        except ValueError as error:
            raise BenchConfigError(f"dtypes: {error}") from error
    if config.repeats < 1 or config.warmup < 0:
        raise BenchConfigError(
            f"repeats={config.repeats} and warmup={config.warmup}: need repeats >= 1, warmup >= 0"
        )
    if config.trunks.mode not in ("probe", "full"):
        raise BenchConfigError(f"trunks.mode={config.trunks.mode!r} is invalid: use probe or full")
    windows = config.trunks.windows
    if windows != "all":
        bad = [size for size in windows if size not in valid_window_sizes()]
        if bad:
            raise BenchConfigError(
                f"trunks.windows {bad} do not divide the 72-token grid: use sizes from "
                f"{valid_window_sizes()} or 'all'"
            )
    if config.pipeline.num_prompts < 2:
        raise BenchConfigError(
            f"pipeline.num_prompts={config.pipeline.num_prompts}: need at least 2 to compare "
            "with one prompt"
        )
    for resolution in config.sweep.resolutions:
        if resolution % (16 * config.sweep.window_size):
            raise BenchConfigError(
                f"sweep.resolutions: {resolution} px is not a multiple of 16 x "
                f"sweep.window_size={config.sweep.window_size}: pick multiples of "
                f"{16 * config.sweep.window_size} px"
            )
    if "pipeline" in config.sections and not repository_path(config.pipeline.image).is_file():
        raise BenchConfigError(
            f"pipeline.image={config.pipeline.image!r} not found: pass an image path, e.g. "
            "pipeline.image=sam3_radio/samples/truck.jpg"
        )


def machine_description(device: torch.device) -> dict:
    """Return the machine, library versions and thread count that the report records."""
    cpu = platform.processor() or platform.machine()
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        names = [line.split(":", 1)[1].strip() for line in lines.splitlines() if "Model name" in line]
        if names:
            cpu = names[0]
        flags = next((line for line in lines.splitlines() if line.startswith("Flags")), "")
    except OSError:
        flags = ""
    import sam3
    import timm

    description = {
        "cpu": cpu,
        "cpu_cores": torch.get_num_threads(),
        "cpu_bf16_instructions": any(flag in flags for flag in ("avx512_bf16", "amx_bf16")),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sam3": getattr(sam3, "__version__", "unknown"),
        "timm": timm.__version__,
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        description["gpu"] = torch.cuda.get_device_name(device)
    return description


def _trunk_cases(config: DictConfig) -> list[trunks.TrunkCase]:
    windows = valid_window_sizes()[:-1] if config.trunks.windows == "all" else list(config.trunks.windows)
    cases = []
    for backbone in config.trunks.backbones:
        if backbone == "pe":
            cases.append(trunks.TrunkCase("pe"))
            continue
        # Windowed cases first: a windowed probe costs less than a global one, and the
        # first case of a trunk also times the parts shared by all of its cases.
        cases.extend(trunks.TrunkCase(backbone, size) for size in windows if size != 72)
        cases.append(trunks.TrunkCase(backbone))
    return cases


def _trunk_row(result: trunks.TrunkResult, neck_s: float, matmul_flops_s: float) -> dict:
    return {
        "backbone": result.case.backbone,
        "resolution": result.case.input_size,
        "window_size": result.case.window_size,
        "attention": result.case.attention,
        "dtype": result.dtype,
        "mode": result.mode,
        "trunk_s": result.seconds,
        "trunk_neck_s": result.seconds + neck_s,
        "gflop": result.flops / 1e9,
        "achieved_gflop_s": result.flops / result.seconds / 1e9,
        "matmul_gflop_s": matmul_flops_s / 1e9,
        "matmul_fraction": result.flops / result.seconds / matmul_flops_s,
        "parameter_mib": result.parameter_bytes / 2**20,
        "peak_mib": None if result.peak_bytes is None else result.peak_bytes / 2**20,
    }


def run_trunks(config: DictConfig, device: torch.device) -> dict:
    """Time every trunk case in every precision, the neck, and the full-trunk checks."""
    cases = _trunk_cases(config)
    rows, necks, rates = [], {}, {}
    progress = tqdm(total=len(cases) * len(config.dtypes), desc="trunks", unit="trunk")
    for name in config.dtypes:
        dtype = resolve_dtype(name)
        # Reference rate: the first MLP product of an SO400M block at the 72x72 grid.
        rates[name] = matmul_rate(device, dtype, 72 * 72, 1152, 4304)
        necks[name] = trunks.measure_neck(device, dtype, config.repeats, config.warmup)
        timer = trunks.ProbeTimer(device, config.repeats, config.warmup)
        for case in cases:
            progress.set_postfix_str(f"{name} {case.label}")
            if config.trunks.mode == "probe":
                result = timer.measure(case, dtype)
            else:
                result = trunks.measure_full(case, device, dtype, config.repeats, config.warmup)
            rows.append(_trunk_row(result, necks[name], rates[name]))
            progress.update()
    progress.close()

    checks = []
    if config.trunks.mode == "probe":
        for item in tqdm(config.trunks.check_full, desc="full-trunk checks", unit="trunk"):
            case = trunks.TrunkCase(item.backbone, item.window_size, item.get("resolution"))
            full = trunks.measure_full(case, device, torch.float32, 1, config.warmup)
            probe = trunks.measure_probe(case, device, torch.float32, 1, config.warmup)
            checks.append(
                {
                    "label": case.label,
                    "full_s": full.seconds,
                    "probe_s": probe.seconds,
                    "full_gflop": full.flops / 1e9,
                    "probe_gflop": probe.flops / 1e9,
                    "full_parameter_mib": full.parameter_bytes / 2**20,
                    "probe_parameter_mib": probe.parameter_bytes / 2**20,
                }
            )
    return {"rows": rows, "neck_s": necks, "matmul_gflop_s": {k: v / 1e9 for k, v in rates.items()},
            "checks": checks}


def run_implementation(config: DictConfig, device: torch.device) -> dict:
    """Compare our ViTDet block loop with the straightforward one: same output, relative time."""
    settings = config.implementation
    case = trunks.TrunkCase(settings.backbone, settings.window_size, settings.resolution)
    radio = trunks.build_radio_model(case, depth=settings.depth).to(device)
    grid = (case.grid, case.grid)
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randn(
        1, radio.num_summary_tokens + case.grid**2, radio.config.embed_dim, generator=generator
    ).to(device)

    def ours():
        return run_blocks(
            radio.blocks, tokens, radio.num_summary_tokens, grid, case.window_size,
            radio.global_blocks,
        )

    def straightforward():
        return trunks.straightforward_blocks(
            list(radio.blocks), tokens, radio.num_summary_tokens, grid, case.window_size,
            radio.global_blocks,
        )

    rows = []
    for name in tqdm(settings.dtypes, desc="block loop", unit="dtype"):
        dtype = resolve_dtype(name)
        with torch.inference_mode(), autocast_for(device, dtype):
            difference = (ours().float() - straightforward().float()).abs().max().item()

            # Alternate the two so that load changes hit both alike.
            ours_s, plain_s = [], []
            for _ in range(config.repeats + 1):
                ours_s.append(time_call(ours, device, 1, 0).median_s)
                plain_s.append(time_call(straightforward, device, 1, 0).median_s)
        rows.append(
            {
                "dtype": name,
                "label": f"{case.label}, {settings.depth} blocks",
                "ours_s": min(ours_s),
                "straightforward_s": min(plain_s),
                "max_abs_difference": difference,
            }
        )
    return {"rows": rows}


def run_sweep(config: DictConfig, device: torch.device) -> dict:
    """Time the RADIO trunk from 512 to 2048 px with global and windowed attention."""
    settings = config.sweep
    cases = []
    for resolution in settings.resolutions:
        cases.append(trunks.TrunkCase(settings.backbone, None, resolution))
        cases.append(trunks.TrunkCase(settings.backbone, settings.window_size, resolution))
    rows = []
    progress = tqdm(total=len(cases) * len(settings.dtypes), desc="resolution sweep", unit="trunk")
    for name in settings.dtypes:
        dtype = resolve_dtype(name)
        timer = trunks.ProbeTimer(device, config.repeats, config.warmup)
        for case in cases:
            progress.set_postfix_str(f"{name} {case.label}")
            result = timer.measure(case, dtype)
            rows.append(
                {
                    "resolution": case.input_size,
                    "tokens": case.grid**2,
                    "attention": case.attention,
                    "dtype": name,
                    "trunk_s": result.seconds,
                    "gflop": result.flops / 1e9,
                    "peak_mib": None if result.peak_bytes is None else result.peak_bytes / 2**20,
                }
            )
            progress.update()
    progress.close()
    return {"backbone": settings.backbone, "rows": rows}


def run_pipeline(config: DictConfig, device: torch.device) -> dict:
    """Time the image pipeline: encode, one prompt, and many prompts in one batch."""
    settings = config.pipeline
    rows = []
    jobs = [(item, name) for name in settings.dtypes for item in settings.backbones]
    measured_prompts = set()
    for item, name in tqdm(jobs, desc="image pipeline", unit="model"):
        num_prompts = None if name in measured_prompts else settings.num_prompts
        measured_prompts.add(name)
        result = pipeline.measure_image_pipeline(
            item.backbone, item.window_size, device, name,
            repository_path(settings.image), num_prompts,
        )
        row = dataclasses.asdict(result)
        row.update(
            end_to_end_s=result.end_to_end_s,
            further_prompt_s=result.further_prompt_s,
            many_to_one_ratio=result.many_to_one_ratio,
        )
        rows.append(row)
    return {"rows": rows}


def _sample_frames(folder: Path, count: int) -> None:
    """Write `count` 1280x720 frames that pan across the bundled truck photo."""
    image = Image.open(REPOSITORY / "sam3_radio" / "samples" / "truck.jpg").convert("RGB")
    image = image.resize((1440, 960))
    for index in range(count):
        left = min(index * 16, image.width - 1280)
        image.crop((left, 120, left + 1280, 840)).save(folder / f"{index:05d}.jpg", quality=92)


def run_video(config: DictConfig, device: torch.device) -> dict:
    """Time text-prompted video tracking per frame."""
    settings = config.video
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        frames_dir = settings.frames_dir
        if frames_dir is None or not repository_path(frames_dir).is_dir():
            logger.info("video.frames_dir %s not found: panning over the sample image", frames_dir)
            frames_dir = Path(scratch)
            _sample_frames(frames_dir, settings.frames + 1)
        jobs = [(item, name) for name in settings.dtypes for item in settings.backbones]
        for item, name in tqdm(jobs, desc="video", unit="model"):
            result = pipeline.measure_video(
                item.backbone, item.window_size, device, name,
                repository_path(frames_dir), settings.frames,
            )
            rows.append(dataclasses.asdict(result))
    return {"rows": rows}


RUNNERS: dict[str, Callable[[DictConfig, torch.device], dict]] = {
    "trunks": run_trunks,
    "implementation": run_implementation,
    "sweep": run_sweep,
    "pipeline": run_pipeline,
    "video": run_video,
}


def run_bench(config: DictConfig, command: str) -> dict:
    """Run the configured sections, saving the results JSON after each one."""
    check_config(config)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(int(config.threads))
    results_path = repository_path(config.results)
    results = {
        "command": command,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_description(device),
        "config": OmegaConf.to_container(config, resolve=True),
        "sections": {},
        "section_seconds": {},
    }
    for name in config.sections:
        start = time.perf_counter()
        logger.info("running section %s", name)
        results["sections"][name] = RUNNERS[name](config, device)
        results["section_seconds"][name] = time.perf_counter() - start
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=1))
    results["total_seconds"] = sum(results["section_seconds"].values())
    results_path.write_text(json.dumps(results, indent=1))
    return results

