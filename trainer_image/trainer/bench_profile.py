"""``bench --profile DIR``: where a training step's time goes, from ``torch.profiler``.

For each measured configuration a few more steps run under the profiler (CPU activity, plus CUDA on a
GPU). The results are a gzipped Chrome trace per configuration (open it in https://ui.perfetto.dev or
chrome://tracing) and, shared by every run that writes into the same folder, ``profile.json`` and
``profile.md``: the top-N kernels (GPU: self CUDA time) or operators (CPU: self CPU time) with their
share of the profiled step time, and the same time grouped into rough categories by name.
"""

from __future__ import annotations

import gzip
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.autograd import DeviceType

STEP_ANNOTATION = "bench_step"
PROFILE_JSON = "profile.json"
PROFILE_MD = "profile.md"
MAX_NAME = 110  # kernel names are long C++ templates; the Markdown table shortens them

# First match wins, so the specific groups come before the broad ones (heuristic, by lower-cased name).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attention", ("flash", "fmha", "attention", "attn", "sdpa", "scaled_dot_product")),
    (
        "normalization",
        ("batch_norm", "batchnorm", "bn_fw", "bn_bw", "layer_norm", "layernorm", "welford", "group_norm"),
    ),
    ("convolution", ("conv", "dgrad", "wgrad", "fprop")),
    ("matmul", ("gemm", "nvjet", "xmma", "cutlass", "cublas", "matmul", "aten::mm", "addmm", "bmm", "_mm")),
    ("optimizer", ("multi_tensor", "fused_adam", "fused_sgd", "_foreach", "adam", "sgd", "optimizer")),
    ("embedding", ("embedding", "index_select", "indexselect", "index_add", "compute_grad_weight")),
    (
        "memory copy/fill",
        ("memcpy", "memset", "copy_", "fill_", "zero_", "clone", "contiguous", "aten::empty", "aten::cat"),
    ),
    ("Inductor fused", ("triton_", "cpp_fused")),
    (
        "elementwise/reduction",
        (
            "elementwise",
            "vectorized",
            "reduce",
            "softmax",
            "gelu",
            "relu",
            "threshold",
            "dropout",
            "bernoulli",
            "pool",
            "aten::add",
            "aten::sub",
            "aten::mul",
            "aten::div",
            "aten::sqrt",
            "aten::sum",
            "aten::mean",
            "aten::all",
            "aten::exp",
            "aten::tanh",
            "aten::where",
            "lerp",
        ),
    ),
)


@dataclass(frozen=True)
class ProfileOptions:
    """Where and how to profile: output folder, profiled steps, rows in the top-N table."""

    directory: Path
    steps: int = 3
    top: int = 15


def categorize(name: str) -> str:
    """Rough category of a kernel or operator, from its name (``other`` when nothing matches)."""
    lowered = name.lower()
    if "compiledfxgraph" in lowered:  # Inductor's generated code on a CPU; its name ends in a random hash
        return "Inductor fused"
    for category, needles in CATEGORIES:
        if any(needle in lowered for needle in needles):
            return category
    return "other"


def _self_us(event: Any, on_device: bool) -> float:
    if on_device:
        value = getattr(event, "self_device_time_total", None)
        if value is None:  # torch < 2.4
            value = getattr(event, "self_cuda_time_total", 0)
        return float(value)
    return float(event.self_cpu_time_total)


def _counted(event: Any, on_device: bool) -> bool:
    if getattr(event, "is_user_annotation", False) or event.key == STEP_ANNOTATION:
        return False
    if event.key.startswith("ProfilerStep"):
        return False
    is_device = event.device_type != DeviceType.CPU
    return is_device if on_device else not is_device


def summarize(events: Any, on_device: bool, wall_us: float, steps: int, top: int) -> dict[str, Any]:
    """Top-N kernels/ops by self time and per-category totals, each with its share of ``wall_us``.

    ``events`` is ``prof.key_averages()``; on a GPU only device events (kernels, copies) count, on a
    CPU only CPU operators. Times are per step; shares are of the profiled wall-clock step time.
    """
    rows = []
    for event in events:
        if not _counted(event, on_device):
            continue
        self_us = _self_us(event, on_device)
        if self_us <= 0:
            continue
        rows.append(
            {
                "name": event.key,
                "category": categorize(event.key),
                "calls_per_step": event.count / steps,
                "ms_per_step": self_us / 1000 / steps,
                "share": self_us / wall_us,
            }
        )
    rows.sort(key=lambda row: row["ms_per_step"], reverse=True)
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["category"]] = totals.get(row["category"], 0.0) + row["ms_per_step"]
    step_ms = wall_us / 1000 / steps
    categories = [
        {"category": name, "ms_per_step": ms, "share": ms / step_ms}
        for name, ms in sorted(totals.items(), key=lambda item: item[1], reverse=True)
    ]
    busy = sum(row["ms_per_step"] for row in rows)
    return {
        "step_ms": step_ms,
        "busy_share": busy / step_ms,
        "categories": categories,
        "top": rows[:top],
        "kernels_or_ops": len(rows),
    }


def _export_trace(prof: torch.profiler.profile, target: Path) -> None:
    plain = target.with_suffix("")  # name.trace.json.gz -> name.trace.json
    prof.export_chrome_trace(str(plain))
    wait = getattr(prof, "wait_for_exports", None)  # newer torch may export asynchronously
    if callable(wait):
        wait()
    with plain.open("rb") as source, gzip.open(target, "wb", compresslevel=6) as sink:
        shutil.copyfileobj(source, sink)
    plain.unlink()


def profile_steps(
    step: Callable[[], None],
    device: torch.device,
    name: str,
    meta: dict[str, Any],
    options: ProfileOptions,
) -> dict[str, Any]:
    """Run ``options.steps`` steps under ``torch.profiler``; write the trace; merge into the tables.

    ``name`` names the trace file and the entry (an entry of the same name is replaced); ``meta``
    (model, mode, batch size, device, unprofiled step time) is stored with the entry. Returns it.
    """
    on_device = device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU]
    if on_device:
        activities.append(torch.profiler.ProfilerActivity.CUDA)

    def sync() -> None:
        if on_device:
            torch.cuda.synchronize(device)

    options.directory.mkdir(parents=True, exist_ok=True)
    sync()
    with torch.profiler.profile(activities=activities) as prof:
        began = time.perf_counter()
        for _ in range(options.steps):
            with torch.profiler.record_function(STEP_ANNOTATION):
                step()
        sync()
        wall_us = (time.perf_counter() - began) * 1e6
    summary = summarize(prof.key_averages(), on_device, wall_us, options.steps, options.top)
    trace = options.directory / f"{name}.trace.json.gz"
    _export_trace(prof, trace)
    entry = {
        "name": name,
        **meta,
        "time_basis": "self CUDA time" if on_device else "self CPU time",
        "profiled_steps": options.steps,
        **summary,
        "trace": trace.name,
    }
    write_tables(options.directory, entry)
    return entry


def read_profiles(directory: Path) -> list[dict[str, Any]]:
    """The entries of ``profile.json`` in ``directory`` (empty when there is none yet)."""
    path = Path(directory) / PROFILE_JSON
    return json.loads(path.read_text()) if path.exists() else []


def write_tables(directory: Path, entry: dict[str, Any]) -> None:
    """Add ``entry`` to ``profile.json`` (replacing one of the same name) and rewrite ``profile.md``."""
    entries = [old for old in read_profiles(directory) if old["name"] != entry["name"]] + [entry]
    (directory / PROFILE_JSON).write_text(json.dumps(entries, indent=2) + "\n")
    (directory / PROFILE_MD).write_text(render_profiles(entries))


def _cell(text: str) -> str:
    short = text if len(text) <= MAX_NAME else text[: MAX_NAME - 3] + "..."
    return "`" + short.replace("|", "\\|").replace("`", "'") + "`"


def render_profile(entry: dict[str, Any]) -> str:
    """Markdown for one profiled configuration: a summary line, categories, then the top-N table."""
    what = "kernel" if entry["time_basis"] == "self CUDA time" else "operator"
    unprofiled = entry.get("unprofiled_step_ms")
    lines = [
        f"### {entry['model']}, batch {entry['batch_size']}, {entry['mode']} ({entry['device']})",
        "",
        f"{entry['profiled_steps']} profiled step{'s' if entry['profiled_steps'] > 1 else ''}: "
        f"{entry['step_ms']:.2f} ms/step under the profiler"
        + (f" ({unprofiled:.2f} ms/step unprofiled)" if unprofiled else "")
        + f"; {entry['time_basis']} of the {entry['kernels_or_ops']} {what}s covers "
        f"{100 * entry['busy_share']:.1f}% of the step"
        + (" (the rest: the GPU idle, waiting for the CPU)." if what == "kernel" else " (the rest: Python).")
        + f" Trace: `{entry['trace']}`.",
        "",
        "| category | ms/step | share of step |",
        "| --- | ---: | ---: |",
    ]
    for row in entry["categories"]:
        lines.append(f"| {row['category']} | {row['ms_per_step']:.3f} | {100 * row['share']:.1f}% |")
    lines += [
        "",
        f"| # | {what} | category | calls/step | ms/step | share of step |",
        "| ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for rank, row in enumerate(entry["top"], 1):
        lines.append(
            f"| {rank} | {_cell(row['name'])} | {row['category']} | {row['calls_per_step']:g} | "
            f"{row['ms_per_step']:.3f} | {100 * row['share']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def render_profiles(entries: list[dict[str, Any]]) -> str:
    """``profile.md``: every entry's tables, in the order they were profiled."""
    head = (
        "## Trainer step profiles\n\n"
        "Written by `python -m trainer bench --profile DIR`. Shares are of the wall-clock step time "
        "under the profiler; categories are guessed from kernel/operator names.\n"
    )
    return head + "".join("\n" + render_profile(entry) for entry in entries)
