"""``bench``: training throughput and model FLOP utilisation on synthetic batches.

Full shapes are BERT-base at sequence length 128 (67 GFLOP per training sample) and ResNet-50 at
224 px (24.3 GFLOP per training image); tiny shapes are the tiny preset's models, whose FLOPs are
counted with ``torch.utils.flop_counter``. MFU is reported against the device's dense bf16 peak when
it is known (H100/H200: 989 TFLOP/s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as nnf

REFERENCE_FLOPS = {("bert", "full"): 67e9, ("resnet50", "full"): 24.3e9}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12}
SECTION = "trainer-throughput"


def peak_flops(device_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of a known accelerator (None for CPUs and unknown GPUs)."""
    for key, value in PEAK_BF16.items():
        if key in device_name:
            return value
    return None


def device_name(device: torch.device) -> str:
    """Human-readable name of the device (GPU model, or CPU model and thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"CPU {cpu} ({torch.get_num_threads()} threads)"


def _bert_step(
    shape: str, batch: int, device: torch.device
) -> tuple[torch.nn.Module, Callable[[], torch.Tensor]]:
    from transformers import BertConfig, BertForSequenceClassification

    from trainer.text_task import TINY_BERT

    config = (
        BertConfig(num_labels=2) if shape == "full" else BertConfig(vocab_size=200, num_labels=2, **TINY_BERT)
    )
    model = BertForSequenceClassification(config).to(device)
    ids = torch.randint(0, config.vocab_size, (batch, 128), device=device)
    labels = torch.randint(0, 2, (batch,), device=device)

    def loss() -> torch.Tensor:
        return nnf.cross_entropy(model(input_ids=ids).logits.float(), labels)

    return model, loss


def _resnet_step(
    shape: str, batch: int, device: torch.device
) -> tuple[torch.nn.Module, Callable[[], torch.Tensor]]:
    if shape == "full":
        from torchvision.models import resnet50

        model, size = resnet50(weights=None), 224
    else:
        from trainer.vision_task import tiny_resnet

        model, size = tiny_resnet(), 16
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    images = torch.randn(batch, 3, size, size, device=device)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,), device=device)

    def loss() -> torch.Tensor:
        return nnf.cross_entropy(model(images).float(), labels)

    return model, loss


def measure(
    model_name: str,
    shape: str,
    device: torch.device,
    batch: int,
    steps: int,
    warmup: int,
    compile_model: bool,
) -> dict[str, Any]:
    """Train ``steps`` timed steps (after ``warmup``) and return samples/s, FLOP/s and MFU."""
    torch.manual_seed(0)
    builder = _bert_step if model_name == "bert" else _resnet_step
    model, loss_fn = builder(shape, batch, device)
    if compile_model:
        model.forward = torch.compile(model.forward)  # type: ignore[method-assign]
    fused = {"fused": True} if device.type == "cuda" else {}
    if model_name == "bert":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, **fused)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, **fused)
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if device.type == "cuda"
        else contextlib.nullcontext
    )

    def step() -> None:
        with autocast():
            loss = loss_fn()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    flops_per_sample = REFERENCE_FLOPS.get((model_name, shape))
    if flops_per_sample is None:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            step()
        flops_per_sample = counter.get_total_flops() / batch
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - began
    samples_per_second = batch * steps / elapsed
    achieved = samples_per_second * flops_per_sample
    peak = peak_flops(device_name(device))
    return {
        "model": "BERT-base seq 128"
        if (model_name, shape) == ("bert", "full")
        else "ResNet-50 224 px"
        if (model_name, shape) == ("resnet50", "full")
        else "tiny BERT seq 128"
        if model_name == "bert"
        else "tiny ResNet 16 px",
        "shape": shape,
        "device": device_name(device),
        "batch_size": batch,
        "steps": steps,
        "seconds": elapsed,
        "samples_per_second": samples_per_second,
        "gflop_per_sample": flops_per_sample / 1e9,
        "tflops": achieved / 1e12,
        "mfu": achieved / peak if peak else None,
        "compiled": compile_model,
        "dtype": "bf16 autocast" if device.type == "cuda" else "fp32",
    }


def render(results: list[dict[str, Any]], command: str) -> str:
    """Markdown for the benchmarks file: the command, the environment and one row per measurement."""
    lines = [
        "## Trainer throughput",
        "",
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, measured {datetime.now(UTC).strftime('%Y-%m-%d')}. Synthetic batches, "
        "full training steps (forward, backward, optimizer). MFU = achieved model FLOP/s / dense bf16 peak "
        "(67 GFLOP per BERT-base seq-128 sample, 24.3 GFLOP per ResNet-50 224 px image; tiny models counted "
        "with torch.utils.flop_counter); no MFU for CPUs.",
        "",
        "| model | device | precision | batch | steps | samples/s | GFLOP/sample | TFLOP/s | MFU |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        lines.append(
            f"| {r['model']}{' (compiled)' if r.get('compiled') else ''} | {r['device']} | {r['dtype']} | "
            f"{r['batch_size']} | {r['steps']} | {r['samples_per_second']:.1f} | {r['gflop_per_sample']:.3g} | "
            f"{r['tflops']:.3g} | {mfu} |"
        )
    return "\n".join(lines) + "\n"


def run_bench(args: argparse.Namespace) -> int:
    """Run the ``bench`` subcommand: measure, print the table, optionally write JSON and Markdown."""
    from trainer.engine import pick_device

    device = pick_device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    steps = args.steps or (30 if gpu else 3)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    results = []
    for include in args.include or []:
        results.extend(json.loads(Path(include).read_text()))
    for shape in args.shapes:
        for model_name in args.models:
            default_batch = (128 if model_name == "bert" else 256) if gpu else (8 if shape == "full" else 32)
            batch = args.batch_size or default_batch
            print(f"bench: {model_name} {shape} batch {batch} on {device} ...", file=sys.stderr, flush=True)
            results.append(measure(model_name, shape, device, batch, steps, warmup, args.compile))
    markdown = render(results, getattr(args, "command_line", "python -m trainer bench"))
    print(markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.write:
        try:
            from bench.report import write_section
        except ImportError as exc:
            raise SystemExit(
                f"--write needs the repository's bench package (run from the repo root): {exc}"
            ) from exc
        write_section(args.write, SECTION, markdown)
    return 0
