"""``bench``: training throughput and model FLOP utilisation on synthetic batches.

Full shapes are BERT-base at sequence length 128 (67 GFLOP per training sample) and ResNet-50 at
224 px (24.3 GFLOP per training image); tiny shapes are the tiny preset's models, whose FLOPs are
counted with ``torch.utils.flop_counter``. MFU is reported against the device's dense bf16 peak when
it is known (the per-model table in :mod:`trainer.bench_peaks`). One call can sweep batch sizes (``--batch-sizes``; a batch size
that runs out of memory becomes an ``OOM`` row), pick a ``torch.compile`` mode (``--compile-mode``)
and profile each configuration (``--profile DIR``, see :mod:`trainer.bench_profile`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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

from trainer.bench_args import CUDAGRAPH_MODES
from trainer.bench_peaks import peak_flops
from trainer.bench_profile import ProfileOptions, profile_steps
from trainer.bench_report import write_section

REFERENCE_FLOPS = {("bert", "full"): 67e9, ("resnet50", "full"): 24.3e9}
SECTION = "trainer-throughput"
MODEL_LABELS = {
    ("bert", "full"): "BERT-base seq 128",
    ("resnet50", "full"): "ResNet-50 224 px",
    ("bert", "tiny"): "tiny BERT seq 128",
    ("resnet50", "tiny"): "tiny ResNet 16 px",
}


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


def mode_label(compile_mode: str | None) -> str:
    """``eager`` or ``compile <mode>``, as the tables show it."""
    return f"compile {compile_mode}" if compile_mode else "eager"


def _bert_model(
    shape: str, batch: int, device: torch.device
) -> tuple[torch.nn.Module, Callable[[torch.nn.Module], torch.Tensor]]:
    from transformers import BertConfig, BertForSequenceClassification

    from trainer.text_task import TINY_BERT

    config = (
        BertConfig(num_labels=2) if shape == "full" else BertConfig(vocab_size=200, num_labels=2, **TINY_BERT)
    )
    model = BertForSequenceClassification(config).to(device)
    ids = torch.randint(0, config.vocab_size, (batch, 128), device=device)
    labels = torch.randint(0, 2, (batch,), device=device)
    return model, lambda m: nnf.cross_entropy(m(input_ids=ids).logits.float(), labels)


def _resnet_model(
    shape: str, batch: int, device: torch.device
) -> tuple[torch.nn.Module, Callable[[torch.nn.Module], torch.Tensor]]:
    if shape == "full":
        from torchvision.models import resnet50

        model, size = resnet50(weights=None), 224
    else:
        from trainer.vision_task import tiny_resnet

        model, size = tiny_resnet(), 16
    model = model.to(device)
    images = torch.randn(batch, 3, size, size, device=device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,), device=device)
    return model, lambda m: nnf.cross_entropy(m(images).float(), labels)


def make_step(
    model_name: str, shape: str, device: torch.device, batch: int, compile_mode: str | None
) -> Callable[[], None]:
    """Build the model, optimizer and a synthetic batch; return one full training step.

    With ``compile_mode`` the model's forward is ``torch.compile``d with static shapes (a fresh
    compile per configuration: dynamo's caches are reset first, so a sweep does not turn the batch
    dimension dynamic).
    """
    torch.manual_seed(0)
    builder = _bert_model if model_name == "bert" else _resnet_model
    model, loss_fn = builder(shape, batch, device)
    if compile_mode:
        torch._dynamo.reset()
        model.forward = torch.compile(model.forward, mode=compile_mode, dynamic=False)  # type: ignore[method-assign]
    fused = {"fused": True} if device.type == "cuda" else {}
    if model_name == "bert":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, **fused)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, **fused)
    on_cuda = device.type == "cuda"
    mark_cudagraph_step = on_cuda and compile_mode in CUDAGRAPH_MODES

    def step() -> None:
        if mark_cudagraph_step:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda else contextlib.nullcontext():
            loss = loss_fn(model)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    model_name: str,
    shape: str,
    device: torch.device,
    batch: int,
    steps: int,
    warmup: int,
    compile_model: bool,
    *,
    compile_mode: str | None = None,
    profile: ProfileOptions | None = None,
) -> dict[str, Any]:
    """Train ``steps`` timed steps (after ``warmup``) and return samples/s, FLOP/s and MFU.

    ``compile_model`` without ``compile_mode`` means torch.compile's ``default`` mode. With
    ``profile`` a few more steps run under ``torch.profiler`` and the result names the profile entry.
    """
    mode = compile_mode or ("default" if compile_model else None)
    step = make_step(model_name, shape, device, batch, mode)
    flops_per_sample = REFERENCE_FLOPS.get((model_name, shape))
    if flops_per_sample is None:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            step()
        flops_per_sample = counter.get_total_flops() / batch
    for _ in range(warmup):
        step()
    sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    elapsed = time.perf_counter() - began
    samples_per_second = batch * steps / elapsed
    achieved = samples_per_second * flops_per_sample
    name = device_name(device)
    peak = peak_flops(name)
    result: dict[str, Any] = {
        "model": MODEL_LABELS[(model_name, shape)],
        "shape": shape,
        "device": name,
        "batch_size": batch,
        "steps": steps,
        "seconds": elapsed,
        "step_ms": 1000 * elapsed / steps,
        "samples_per_second": samples_per_second,
        "gflop_per_sample": flops_per_sample / 1e9,
        "tflops": achieved / 1e12,
        "mfu": achieved / peak if peak else None,
        "compiled": mode is not None,
        "compile_mode": mode,
        "dtype": "bf16 autocast" if device.type == "cuda" else "fp32",
    }
    if profile is not None:
        slug = f"{model_name}-{shape}-bs{batch}-{mode or 'eager'}"
        meta = {
            key: result[key] for key in ("model", "shape", "device", "batch_size", "compile_mode", "dtype")
        }
        meta |= {"mode": mode_label(mode), "unprofiled_step_ms": result["step_ms"]}
        try:
            result["profile"] = profile_steps(step, device, slug, meta, profile)["name"]
        except Exception as exc:  # the throughput row is worth keeping when the profiler fails
            result["profile_error"] = f"{type(exc).__name__}: {exc}"[:300]
            print(f"bench: profiling {slug} failed: {result['profile_error']}", file=sys.stderr, flush=True)
    return result


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps, e.g. a compile error) is an out-of-memory error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, torch.cuda.OutOfMemoryError):
            return True
        if isinstance(current, RuntimeError) and "out of memory" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def oom_row(
    model_name: str,
    shape: str,
    device: torch.device,
    batch: int,
    steps: int,
    mode: str | None,
    exc: BaseException,
) -> dict[str, Any]:
    """The result row of a configuration that ran out of memory (numbers are None, ``oom`` is True)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return {
        "model": MODEL_LABELS[(model_name, shape)],
        "shape": shape,
        "device": device_name(device),
        "batch_size": batch,
        "steps": steps,
        "seconds": None,
        "step_ms": None,
        "samples_per_second": None,
        "gflop_per_sample": REFERENCE_FLOPS[(model_name, shape)] / 1e9
        if (model_name, shape) in REFERENCE_FLOPS
        else None,
        "tflops": None,
        "mfu": None,
        "compiled": mode is not None,
        "compile_mode": mode,
        "dtype": "bf16 autocast" if device.type == "cuda" else "fp32",
        "oom": True,
        "error": f"{type(exc).__name__}: {message}"[:300],
    }


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render(results: list[dict[str, Any]], command: str) -> str:
    """Markdown for the benchmarks file: the command, the environment and one row per measurement."""
    lines = [
        "## Trainer throughput",
        "",
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, measured {datetime.now(UTC).strftime('%Y-%m-%d')}. Synthetic batches, "
        "full training steps (forward, backward, optimizer). MFU = achieved model FLOP/s / dense bf16 peak "
        "(67 GFLOP per BERT-base seq-128 sample, 24.3 GFLOP per ResNet-50 224 px image; tiny models counted "
        "with torch.utils.flop_counter); no MFU for CPUs. OOM: that batch size did not fit the device.",
        "",
        "| model | mode | device | precision | batch | steps | ms/step | samples/s | GFLOP/sample | TFLOP/s | MFU |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        mode = r.get("compile_mode") or ("default" if r.get("compiled") else None)
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        if r.get("oom"):
            speed, step_ms, tflops, mfu = "OOM", "OOM", "-", "-"
        else:
            speed, step_ms = f"{r['samples_per_second']:.1f}", _num(r.get("step_ms"), ".1f")
            tflops = f"{r['tflops']:.3g}"
        lines.append(
            f"| {r['model']} | {mode_label(mode)} | {r['device']} | {r['dtype']} | {r['batch_size']} | "
            f"{r['steps']} | {step_ms} | {speed} | {_num(r.get('gflop_per_sample'), '.3g')} | {tflops} | {mfu} |"
        )
    return "\n".join(lines) + "\n"


def _default_batch(model_name: str, shape: str, gpu: bool) -> int:
    if gpu:
        return 128 if model_name == "bert" else 256
    return 8 if shape == "full" else 32


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _progress(result: dict[str, Any]) -> str:
    if result.get("oom"):
        return f"OOM ({result['error']})"
    mfu = f", MFU {100 * result['mfu']:.1f}%" if result.get("mfu") is not None else ""
    return f"{result['samples_per_second']:.1f} samples/s, {result['step_ms']:.1f} ms/step{mfu}"


def _write_json(path: Path, results: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def run_bench(args: argparse.Namespace) -> int:
    """Run the ``bench`` subcommand: measure, print the table, optionally write JSON and Markdown.

    The JSON file is rewritten after every measurement, so a sweep cut short by a time limit keeps
    the rows it finished.
    """
    from trainer.engine import pick_device

    device = pick_device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    steps = args.steps or (30 if gpu else 3)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    mode = getattr(args, "compile_mode", None) or ("default" if args.compile else None)
    profile_dir = getattr(args, "profile", None)
    profile = (
        ProfileOptions(Path(profile_dir), steps=args.profile_steps, top=args.profile_top)
        if profile_dir
        else None
    )
    results = []
    for include in args.include or []:
        results.extend(json.loads(Path(include).read_text()))
    for shape in [] if getattr(args, "report_only", False) else args.shapes:
        for model_name in args.models:
            sizes = getattr(args, "batch_sizes", None) or [
                args.batch_size or _default_batch(model_name, shape, gpu)
            ]
            for batch in sizes:
                wanted = profile is not None and (
                    not args.profile_batch_sizes or batch in args.profile_batch_sizes
                )
                label = f"bench: {model_name} {shape} batch {batch} {mode_label(mode)} on {device}"
                print(f"{label} ...", file=sys.stderr, flush=True)
                try:
                    result = measure(
                        model_name,
                        shape,
                        device,
                        batch,
                        steps,
                        warmup,
                        mode is not None,
                        compile_mode=mode,
                        profile=profile if wanted else None,
                    )
                except Exception as exc:  # an OOM may come wrapped (e.g. in a compile error)
                    if not is_oom(exc):
                        raise
                    result = oom_row(model_name, shape, device, batch, steps, mode, exc)
                _free_memory(device)
                print(f"{label}: {_progress(result)}", file=sys.stderr, flush=True)
                results.append(result)
                if args.json:
                    _write_json(Path(args.json), results)
    command = getattr(args, "command_label", None) or getattr(args, "command_line", "python -m trainer bench")
    markdown = render(results, command)
    print(markdown)
    if args.json:
        _write_json(Path(args.json), results)
    if args.write:
        write_section(args.write, SECTION, markdown)
    return 0
