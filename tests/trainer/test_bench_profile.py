"""``python -m trainer bench --profile DIR``: traces, merged top-N tables, the GPU summary logic."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import pytest
from torch.autograd import DeviceType
from trainer.bench_profile import PROFILE_JSON, PROFILE_MD, categorize, read_profiles, summarize

TINY = [
    "bench",
    "--device",
    "cpu",
    "--shapes",
    "tiny",
    "--models",
    "resnet50",
    "--steps",
    "1",
    "--warmup",
    "0",
]


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every Markdown table in ``markdown`` as rows of stripped cells (header and rule dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if current is None:
            current = []
            tables.append(current)
        elif not all(set(cell) <= set("-: ") for cell in cells):
            current.append(cells)
    return tables


def test_profile_writes_traces_and_parseable_tables(tmp_path, in_process) -> None:
    folder = tmp_path / "profile"
    results = tmp_path / "results.json"
    common = [*TINY, "--profile", str(folder), "--profile-steps", "2", "--profile-top", "5"]
    run = in_process([*common, "--batch-sizes", "4,2", "--profile-batch-sizes", "4", "--json", str(results)])
    assert run.code == 0, run.err
    rows = json.loads(results.read_text())
    assert [row.get("profile") for row in rows] == ["resnet50-tiny-bs4-eager", None]

    [entry] = read_profiles(folder)
    assert entry["name"] == "resnet50-tiny-bs4-eager" and entry["mode"] == "eager"
    assert entry["time_basis"] == "self CPU time" and entry["profiled_steps"] == 2
    assert 0 < len(entry["top"]) <= 5 and 0 < entry["busy_share"] <= 1.0 + 1e-6
    assert entry["unprofiled_step_ms"] == pytest.approx(rows[0]["step_ms"])
    with gzip.open(folder / entry["trace"], "rt") as trace:
        assert json.load(trace)["traceEvents"]

    categories, top = _tables((folder / PROFILE_MD).read_text())
    assert {row[0] for row in categories} == {c["category"] for c in entry["categories"]}
    assert len(top) == len(entry["top"])
    for cells, row in zip(top, entry["top"], strict=True):
        _rank, name, category, calls, ms, share = cells
        assert float(calls) == pytest.approx(row["calls_per_step"])
        assert name.strip("`") == row["name"] and category == row["category"]
        assert float(ms) == pytest.approx(row["ms_per_step"], abs=1e-3)
        assert float(share.rstrip("%")) == pytest.approx(100 * row["share"], abs=0.06)
    ms_per_step = [float(cells[4]) for cells in top]
    assert ms_per_step == sorted(ms_per_step, reverse=True)

    again = in_process([*common, "--batch-size", "2"])  # a second run adds its entry to the same tables
    assert again.code == 0, again.err
    names = [e["name"] for e in json.loads((folder / PROFILE_JSON).read_text())]
    assert names == ["resnet50-tiny-bs4-eager", "resnet50-tiny-bs2-eager"]
    assert (folder / "resnet50-tiny-bs2-eager.trace.json.gz").exists()
    assert (folder / PROFILE_MD).read_text().count("### tiny ResNet 16 px") == 2


def _event(key: str, device: DeviceType, self_cpu: float, self_device: float, count: int = 2, **extra):
    return SimpleNamespace(
        key=key,
        device_type=device,
        self_cpu_time_total=self_cpu,
        self_device_time_total=self_device,
        count=count,
        **extra,
    )


def test_gpu_summary_counts_kernels_only_and_reports_idle_time() -> None:
    events = [
        _event("aten::addmm", DeviceType.CPU, 500.0, 6000.0),  # CPU op: its kernels are counted below
        _event("cudaLaunchKernel", DeviceType.CPU, 900.0, 0.0),
        _event("bench_step", DeviceType.CUDA, 0.0, 9000.0, is_user_annotation=True),
        _event("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", DeviceType.CUDA, 0.0, 6000.0),
        _event(
            "void at::native::vectorized_elementwise_kernel<4, GeluCUDAKernelImpl>",
            DeviceType.CUDA,
            0,
            1000.0,
        ),
        _event("Memset (Device)", DeviceType.CUDA, 0.0, 0.0),
    ]
    summary = summarize(events, on_device=True, wall_us=10000.0, steps=2, top=10)
    assert [row["name"][:13] for row in summary["top"]] == ["sm90_xmma_gem", "void at::nati"]
    gemm = summary["top"][0]
    assert gemm["category"] == "matmul" and gemm["ms_per_step"] == pytest.approx(3.0)
    assert gemm["share"] == pytest.approx(0.6) and gemm["calls_per_step"] == 1
    assert summary["step_ms"] == pytest.approx(5.0) and summary["busy_share"] == pytest.approx(0.7)
    assert [c["category"] for c in summary["categories"]] == ["matmul", "elementwise/reduction"]

    on_cpu = summarize(events, on_device=False, wall_us=10000.0, steps=2, top=1)
    assert [row["name"] for row in on_cpu["top"]] == ["cudaLaunchKernel"] and on_cpu["kernels_or_ops"] == 2


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>", "attention"),
        ("fmha_cutlassB_bf16_aligned_64x64_k64_sm80", "attention"),
        ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", "convolution"),
        ("sm80_xmma_wgrad_implicit_gemm_indexed_bf16", "convolution"),
        ("nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NTN", "matmul"),
        ("triton_tem_fused_addmm_gelu_3", "matmul"),
        ("triton_red_fused_native_layer_norm_backward_7", "normalization"),
        ("void cudnn::bn_fw_tr_1C11_kernel_NCHW<__nv_bfloat16>", "normalization"),
        (
            "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>",
            "optimizer",
        ),
        ("void at::native::embedding_backward_feature_kernel<float>", "embedding"),
        ("Memcpy HtoD (Pageable -> Device)", "memory copy/fill"),
        ("triton_poi_fused_add_mul_0", "Inductor fused"),
        ("## Call CompiledFxGraph fsgd3q4convgemm ##", "Inductor fused"),
        ("void at::native::reduce_kernel<512, 1, ReduceOp<float>>", "elementwise/reduction"),
        ("aten::mul", "elementwise/reduction"),
        ("something_new", "other"),
    ],
)
def test_categories_from_kernel_and_operator_names(name: str, category: str) -> None:
    assert categorize(name) == category


def test_a_failing_profiler_keeps_the_throughput_row(
    tmp_path, monkeypatch: pytest.MonkeyPatch, in_process
) -> None:
    from trainer import bench

    def broken(*_args, **_kwargs):
        raise RuntimeError("CUPTI unavailable")

    monkeypatch.setattr(bench, "profile_steps", broken)
    results = tmp_path / "results.json"
    run = in_process([*TINY, "--batch-size", "2", "--profile", str(tmp_path / "p"), "--json", str(results)])
    assert run.code == 0, run.err
    [row] = json.loads(results.read_text())
    assert row["samples_per_second"] > 0 and row["profile_error"] == "RuntimeError: CUPTI unavailable"
    assert "profiling resnet50-tiny-bs2-eager failed" in run.err
