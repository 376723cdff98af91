"""Markdown tables of the trial-shaped benchmark: trials, compile choice, references, sharing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import torch

from trainer.bench_sharing import with_speedups
from trainer.bench_trial import compile_choice

SECTION = "trainer-trial"
TASK_TITLES = {"sst2": "SST-2", "mrpc": "MRPC", "cifar10": "CIFAR-10"}
REFERENCE_TITLES = {
    "hf-trainer": "Hugging Face Trainer (run_glue)",
    "torchvision-recipe": "torchvision reference",
}


def _f(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _per_trial(row: dict[str, Any]) -> str:
    """``3 ep: 1234 / 4 ep: 1600`` (seconds per trial for each epochs value of the seed)."""
    return " / ".join(f"{e} ep: {v:,.0f}" for e, v in row["gpu_s_per_trial"].items())


def _shortest(row: dict[str, Any]) -> float:
    return float(row["gpu_s_per_trial"][str(min(int(e) for e in row["gpu_s_per_trial"]))])


def _trial_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| task | batch | mode | device | precision | timed steps | ms/step | samples/s | MFU | eval s | "
        "checkpoint s (sync / interval) | warm-up + compile s | GPU-s/epoch | GPU-s/trial |",
        "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        title = f"{TASK_TITLES.get(r['task'], r['task'])}{' (tiny)' if r.get('preset') == 'tiny' else ''}"
        if r.get("error"):
            lines.append(
                f"| {title} | {r['batch_size']} | {r.get('mode', '-')} | {r.get('device', '-')} | "
                f"- | - | {r['error'][:80]} | - | - | - | - | - | - | - |"
            )
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        lines.append(
            f"| {title} | {r['batch_size']} | {r['mode']} | {r['device']} | {r['dtype']} | {r['timed_steps']} | "
            f"{_f(r['step_ms'], '.1f')} | {_f(r['samples_per_second'], '.1f')} | {mfu} | "
            f"{r['eval_s'] * r.get('eval_scale', 1.0):.2f} | {r['checkpoint_s']:.2f} / "
            f"{_f(r.get('checkpoint_submit_s'), '.2f')} | {r['warmup_extra_s']:.1f} | "
            f"{r['gpu_s_per_epoch']:,.0f} | {_per_trial(r)} |"
        )
    return lines


def _choice_table(rows: list[dict[str, Any]]) -> list[str]:
    choices = compile_choice(rows)
    if not choices:
        return []
    lines = [
        "",
        "Compile choice (fewer GPU-seconds for the seed's shortest trial, compile time included):",
        "",
        "| task | batch | choice | GPU-s/trial |",
        "| --- | ---: | --- | --- |",
    ]
    lines += [
        f"| {TASK_TITLES.get(c['task'], c['task'])} | {c['batch_size']} | {c['mode']} | {_per_trial(c)} |"
        for c in choices
    ]
    return lines


def _reference_table(rows: list[dict[str, Any]], trials: list[dict[str, Any]]) -> list[str]:
    references = [r for r in rows if r.get("kind") == "reference"]
    if not references:
        return []
    best = {(c["task"], c["batch_size"]): c for c in compile_choice(trials)}
    lines = [
        "",
        "Against the references (the same trial, same device, steps and samples; the ratio is ours / "
        "theirs for the seed's shortest trial, below 1 means we use fewer GPU-seconds):",
        "",
        "| task | batch | reference | their precision | their ms/step | their GPU-s/trial | ours (mode) | ours / theirs |",
        "| --- | ---: | --- | --- | ---: | --- | --- | ---: |",
    ]
    for r in references:
        title = TASK_TITLES.get(r["task"], r["task"])
        name = REFERENCE_TITLES.get(r.get("reference", ""), r.get("reference", "?"))
        if r.get("error"):
            lines.append(f"| {title} | {r['batch_size']} | {name} | - | - | {r['error'][:80]} | - | - |")
            continue
        ours = best.get((r["task"], r["batch_size"]))
        ratio = f"{_shortest(ours) / _shortest(r):.2f}" if ours else "-"
        mine = f"{_per_trial(ours)} ({ours['mode']})" if ours else "-"
        lines.append(
            f"| {title} | {r['batch_size']} | {name} | {r['dtype']} | {_f(r['step_ms'], '.1f')} | "
            f"{_per_trial(r)} | {mine} | {ratio} |"
        )
    return lines


def _sharing_table(rows: list[dict[str, Any]]) -> list[str]:
    sharing = with_speedups([r for r in rows if r.get("kind") == "sharing"])
    info = [r for r in rows if r.get("kind") == "sharing-info"]
    if not sharing and not info:
        return []
    lines = [
        "",
        "Several trials per GPU (N copies of one trial at once; trials/hour per GPU = sum of 3600 / "
        "each copy's extrapolated trial seconds):",
        "",
        "| mode | N | task | batch | device | trial s (each) | ms/step (each) | trials/hour per GPU | vs N=1 | energy |",
        "| --- | ---: | --- | ---: | --- | --- | --- | ---: | ---: | --- |",
    ]
    for r in sharing:
        if r.get("concurrent") is None or r.get("trials_per_hour") is None:
            lines.append(
                f"| {r.get('mode')} | {_f(r.get('concurrent'), 'd')} | {r.get('task', '-')} | "
                f"{r.get('batch_size', '-')} | {r.get('device') or '-'} | - | - | {r.get('error', 'failed')[:80]} | - | - |"
            )
            continue
        each = ", ".join(f"{t:,.0f}" for t in r["trial_s"])
        steps = ", ".join(f"{s:.1f}" for s in r["step_ms"])
        energy = "+".join(r["energy_basis"]) + (" (shared card)" if r.get("shared_gpu") else "")
        lines.append(
            f"| {r['mode']} | {r['concurrent']} | {TASK_TITLES.get(r['task'], r['task'])} | {r['batch_size']} | "
            f"{r['device']} | {each} | {steps} | {r['trials_per_hour']:.2f} | {_f(r.get('vs_one'), '.2f')} | {energy} |"
        )
    for r in info:
        mig = "; ".join(
            f"{m.get('gpu') or 'device'}: {m['mig']}"
            + (f" ({len(m['profiles'])} profiles)" if m.get("profiles") else "")
            for m in r["mig"]
        )
        lines += ["", f"{r['mps']}. MIG: {mig}."]
    return lines


def render(rows: list[dict[str, Any]], command: str) -> str:
    """The ``trainer-trial`` section: the command, then the tables of whatever ``rows`` hold."""
    trials = [r for r in rows if r.get("kind") == "trial"]
    devices = sorted({r["device"] for r in rows if r.get("device")})
    lines = [
        "## Trainer: trial-shaped throughput and references",
        "",
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, measured {datetime.now(UTC).strftime('%Y-%m-%d')} on {', '.join(devices) or '-'}. "
        "The seed's trials through the real training path on synthetic data of their shape (SST-2/MRPC-like "
        "token lengths with dynamic padding and a padding mask; CIFAR-like images at 160 px, 12 px in the tiny "
        "preset), timed for a few "
        "steps and extrapolated to the real epoch (SST-2 67,349, MRPC 3,668, CIFAR-10 50,000 training examples; "
        "evaluation on 872 / 408 / 10,000) and trial (the seed's epochs), a background checkpoint every --checkpoint-interval-s (300 s) plus the finished marker, as train saves. "
        "One GPU per trial: GPU-seconds = seconds. MFU: forward+backward FLOPs of the actual padded batches "
        "(torch.utils.flop_counter) over the dense bf16 peak of the card (trainer/bench_peaks.py); none on CPUs.",
        *(
            [
                "",
                "**CPU plumbing run, tiny preset** (the tiny models on this machine's CPU): these rows show the "
                "tables' format and that every path runs; they say nothing about GPU cost.",
            ]
            if any(r.get("preset") == "tiny" for r in rows)
            else []
        ),
        "",
        *_trial_table(trials),
        *_choice_table(trials),
        *_reference_table(rows, trials),
        *_sharing_table(rows),
    ]
    return "\n".join(lines) + "\n"
