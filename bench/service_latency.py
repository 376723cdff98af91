"""GetSuggestions latency and peak RSS of the suggestion service, over real gRPC on loopback.

Starts ``python -m suggestion_service`` as a subprocess (so its RSS is the service's alone), then for
each algorithm x history size x parameter count sends Katib-shaped requests (completed, running and
failed trials; 8-parameter spaces mix log-uniform doubles, ints with steps, discrete and categorical
values) and records p50/p95/max latency. Peak RSS is the server's VmHWM.

A second table times large batches (``current_request_number`` 10, 50, 1000 over a 500-trial history)
under Katib's 60 s RPC deadline, and counts the replies the service had to finish early (a batch that
would run past the deadline is completed from the quasi-random candidate pool; the service logs it).

    python bench/service_latency.py --write docs/benchmarks.md      # what `make bench-service` runs
    python bench/service_latency.py --only-batches --batch-timeout 900   # large batches only, no deadline
    python bench/service_latency.py --only-large --write docs/benchmarks.md   # 1,000-10,000 trials only
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from suggestion_service.model_fit import MAX_FIT_ROWS  # noqa: E402
from suggestion_service.process import ServiceProcess  # noqa: E402
from suggestion_service.proto import api_pb2, api_pb2_grpc  # noqa: E402

COND = api_pb2.TrialStatus.TrialConditionType

# (name, type, feasible space) -- the first k are used for a k-parameter space.
PARAMS: list[tuple[str, int, dict]] = [
    ("learning_rate", api_pb2.DOUBLE, {"min": "1e-5", "max": "1e-1", "distribution": api_pb2.LOG_UNIFORM}),
    ("num_layers", api_pb2.INT, {"min": "1", "max": "12"}),
    ("dropout", api_pb2.DOUBLE, {"min": "0", "max": "0.5", "step": "0.05"}),
    ("batch_size", api_pb2.DISCRETE, {"list": ["16", "32", "64", "128"]}),
    ("optimizer", api_pb2.CATEGORICAL, {"list": ["sgd", "adam", "adamw"]}),
    ("weight_decay", api_pb2.DOUBLE, {"min": "1e-6", "max": "1e-2", "distribution": api_pb2.LOG_UNIFORM}),
    ("warmup_steps", api_pb2.INT, {"min": "0", "max": "1000", "step": "50"}),
    ("momentum", api_pb2.DOUBLE, {"min": "0.8", "max": "0.99"}),
]


def _sample(rng: np.random.Generator, kind: int, fs: dict) -> str:
    if "list" in fs:
        return str(rng.choice(fs["list"]))
    lo, hi = float(fs["min"]), float(fs["max"])
    if kind == api_pb2.INT:
        step = int(fs.get("step", "1"))
        return str(int(lo) + step * int(rng.integers(0, (int(hi) - int(lo)) // step + 1)))
    if fs.get("distribution") == api_pb2.LOG_UNIFORM:
        return f"{float(np.exp(rng.uniform(np.log(lo), np.log(hi)))):.6g}"
    if "step" in fs:
        step = float(fs["step"])
        return f"{lo + step * int(rng.integers(0, round((hi - lo) / step) + 1)):.6g}"
    return f"{rng.uniform(lo, hi):.6g}"


def make_request(algorithm: str, n_params: int, n_trials: int, seed: int, n_new: int = 1):
    """A Katib-shaped request: ``n_trials`` succeeded (plus 2 running, 1 failed) trials."""
    rng = np.random.default_rng(seed)
    exp = api_pb2.Experiment(name=f"bench-{algorithm}-{n_params}-{n_trials}")
    spec = exp.spec
    spec.objective.type = api_pb2.MAXIMIZE
    spec.objective.objective_metric_name = "accuracy"
    spec.algorithm.algorithm_name = algorithm
    spec.parallel_trial_count = 3
    params = PARAMS[:n_params]
    for name, kind, fs in params:
        p = spec.parameter_specs.parameters.add(name=name, parameter_type=kind)
        p.feasible_space.list.extend(fs.get("list", []))
        for key in ("min", "max", "step"):
            if key in fs:
                setattr(p.feasible_space, key, fs[key])
        p.feasible_space.distribution = fs.get("distribution", api_pb2.UNIFORM)
    trials = []
    for i in range(n_trials + 3):
        t = api_pb2.Trial(name=f"t{i}")
        for name, kind, fs in params:
            t.spec.parameter_assignments.assignments.add(name=name, value=_sample(rng, kind, fs))
        if i < n_trials:
            t.status.condition = COND.Value("SUCCEEDED")
            t.status.observation.metrics.add(name="accuracy", value=f"{rng.uniform(0.5, 0.95):.4f}")
        elif i < n_trials + 2:
            t.status.condition = COND.Value("RUNNING")
        else:
            t.status.condition = COND.Value("FAILED")
        trials.append(t)
    return api_pb2.GetSuggestionsRequest(
        experiment=exp, trials=trials, current_request_number=n_new, total_request_number=len(trials) + n_new
    )


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


#: What ``suggestion_service.bayesopt`` logs when a batch ran into the RPC deadline.
DEADLINE_MARKER = "finished from the candidate pool"


def latency_rows(stub, args: argparse.Namespace) -> list[tuple]:
    """(algorithm, parameters, trials, p50, p95, max) per cell of the batch-``args.batch`` grid."""
    rows = []
    for algorithm in args.algorithms.split(","):
        for n_params in map(int, args.params.split(",")):
            for n_trials in map(int, args.trials.split(",")):
                times = []
                for r in range(args.repeats):
                    req = make_request(algorithm, n_params, n_trials, seed=r, n_new=args.batch)
                    t0 = time.perf_counter()
                    reply = stub.GetSuggestions(req, timeout=60)
                    times.append(time.perf_counter() - t0)
                    assert len(reply.parameter_assignments) == args.batch
                ms = np.array(times) * 1000
                rows.append(
                    (algorithm, n_params, n_trials, np.percentile(ms, 50), np.percentile(ms, 95), ms.max())
                )
                print(
                    f"{algorithm:13s} params={n_params} trials={n_trials:4d} "
                    f"p50={rows[-1][3]:7.1f} ms p95={rows[-1][4]:7.1f} ms",
                    flush=True,
                )
    return rows


def batch_rows(stub, service: ServiceProcess, args: argparse.Namespace) -> list[tuple]:
    """(algorithm, batch, median s, max s, replies finished early) per large-batch cell."""
    rows = []
    for algorithm in args.batch_algorithms.split(","):
        for size in map(int, args.batch_sizes.split(",")):
            times, early = [], 0
            for r in range(args.batch_repeats):
                req = make_request(algorithm, args.batch_params, args.batch_trials, seed=r, n_new=size)
                marks = service.log().count(DEADLINE_MARKER)
                t0 = time.perf_counter()
                reply = stub.GetSuggestions(req, timeout=args.batch_timeout)
                times.append(time.perf_counter() - t0)
                early += service.log().count(DEADLINE_MARKER) > marks
                keys = {tuple((a.name, a.value) for a in p.assignments) for p in reply.parameter_assignments}
                assert len(reply.parameter_assignments) == size == len(keys), (
                    "missing or repeated assignments"
                )
            rows.append((algorithm, size, float(np.median(times)), max(times), early))
            print(f"{algorithm:13s} batch={size:5d} median={rows[-1][2]:7.2f} s early={early}", flush=True)
    return rows


def large_history_rows(args: argparse.Namespace) -> list[tuple]:
    """(algorithm, trials, p50 ms, p95 ms, peak RSS MiB) per large history, 8 parameters, batch 1; a fresh
    server per cell, so each RSS is that history's alone."""
    rows = []
    for algorithm in args.large_algorithms.split(","):
        for n_trials in map(int, args.large_trials.split(",")):
            service = ServiceProcess(log_level="WARNING")
            channel = grpc.insecure_channel(
                f"127.0.0.1:{service.port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
            )
            try:
                stub = api_pb2_grpc.SuggestionStub(channel)
                times = []
                for r in range(args.large_repeats):
                    req = make_request(algorithm, 8, n_trials, seed=r)
                    t0 = time.perf_counter()
                    stub.GetSuggestions(req, timeout=60)
                    times.append(time.perf_counter() - t0)
                rss = peak_rss_mib(service.pid)
            finally:
                channel.close()
                service.stop()
            ms = np.array(times) * 1000
            rows.append((algorithm, n_trials, np.percentile(ms, 50), np.percentile(ms, 95), rss))
            print(f"{algorithm:13s} trials={n_trials:6d} p50={rows[-1][2]:8.1f} ms p95={rows[-1][3]:8.1f} ms "
                  f"rss={rss:.0f} MiB", flush=True)  # fmt: skip
    return rows


def large_history_markdown(rows: list[tuple], args: argparse.Namespace) -> str:
    """The large-history section (its own section, so it can be rerun alone with --only-large)."""
    md = [
        "## Suggestion service: large histories (1,000 to 10,000 completed trials)",
        "",
        "Command: `nice -n 10 python bench/service_latency.py --only-large --write docs/benchmarks.md`; "
        f"{args.large_repeats} requests per row (different histories), 8 mixed parameters, batch 1, over gRPC "
        f"on loopback, a fresh server per row; {os.cpu_count()} CPU cores shared with other work. Targets: "
        "p95 < 5 s and peak RSS < 512 MiB at 10,000 trials (the GP fits a bounded subset of at most "
        f"{MAX_FIT_ROWS['surrogate-gp']:,} rows, the forest {MAX_FIT_ROWS['surrogate-rf']:,}: "
        "`model_fit.MAX_FIT_ROWS`).",
        "",
        "| algorithm | completed trials | p50 ms | p95 ms | peak RSS MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    md += [f"| {a} | {t} | {p50:.0f} | {p95:.0f} | {rss:.0f} |" for a, t, p50, p95, rss in rows]
    return "\n".join(md)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithms", default="surrogate-gp,surrogate-rf,random")
    ap.add_argument("--trials", default="10,50,200,500", help="completed trials per request")
    ap.add_argument("--params", default="2,4,8", help="parameters in the space")
    ap.add_argument("--repeats", type=int, default=15, help="requests per cell (different histories)")
    ap.add_argument("--batch", type=int, default=1, help="current_request_number per request")
    ap.add_argument("--batch-algorithms", default="surrogate-gp,surrogate-rf", help="large-batch table")
    ap.add_argument("--batch-sizes", default="10,50,1000", help="current_request_number, large-batch table")
    ap.add_argument("--batch-trials", type=int, default=500, help="completed trials, large-batch table")
    ap.add_argument("--batch-params", type=int, default=8, help="parameters, large-batch table")
    ap.add_argument("--batch-repeats", type=int, default=3, help="requests per large-batch cell")
    ap.add_argument("--batch-timeout", type=float, default=60.0, help="RPC deadline (Katib: 60 s)")
    ap.add_argument("--only-batches", action="store_true", help="skip the batch-1 grid (no --write)")
    ap.add_argument("--large-algorithms", default="surrogate-gp,surrogate-rf", help="large-history table")
    ap.add_argument("--large-trials", default="1000,5000,10000", help="completed trials, large-history table")
    ap.add_argument("--large-repeats", type=int, default=3, help="requests per large-history row")
    ap.add_argument("--only-large", action="store_true", help="only the large-history table")
    ap.add_argument(
        "--write", help="Markdown file to update (sections service-latency, service-large-history)"
    )
    args = ap.parse_args()
    if args.only_large:
        text = large_history_markdown(large_history_rows(args), args)
        print(text)
        if args.write:
            write_section(args.write, "service-large-history", text)
        return 0
    if args.only_batches and args.write:
        ap.error("--write needs the full run (the section holds both tables); drop --only-batches")

    service = ServiceProcess(log_level="WARNING")
    port = service.port
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    )
    stub = api_pb2_grpc.SuggestionStub(channel)
    grpc.channel_ready_future(channel).result(timeout=30)
    try:
        rows = [] if args.only_batches else latency_rows(stub, args)
        batches = batch_rows(stub, service, args)
        rss = peak_rss_mib(service.pid)
    finally:
        service.stop()
    cpu = platform.processor() or platform.machine()
    md = [
        "## Suggestion service: GetSuggestions latency and memory",
        "",
        f"Command: `python bench/service_latency.py --write docs/benchmarks.md` "
        f"(`make bench-service`); {args.repeats} requests per cell, batch {args.batch}, over gRPC on "
        f"loopback; {os.cpu_count()} CPU cores ({cpu}); each request also carries 2 running and 1 failed trial.",
        "",
        f"**Peak RSS of the server process over the whole run: {rss:.0f} MiB** (target < 400 MiB).",
        "",
        "| algorithm | parameters | completed trials | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    md += [f"| {a} | {p} | {t} | {p50:.1f} | {p95:.1f} | {mx:.1f} |" for a, p, t, p50, p95, mx in rows]
    target = [r for r in rows if r[0] == "surrogate-gp" and r[1] == 8 and r[2] == 200]
    if target:
        ok = "meets" if target[0][4] < 250 else "MISSES"
        md += [
            "",
            f"Target p95 < 250 ms at 200 trials x 8 parameters (surrogate-gp): "
            f"{target[0][4]:.0f} ms, {ok} it.",
        ]
    md += [
        "",
        f"### Large batches ({args.batch_trials} completed trials, {args.batch_params} parameters)",
        "",
        f"Same command; {args.batch_repeats} request(s) per row (different histories), RPC deadline "
        f"{args.batch_timeout:g} s{' (as Katib)' if args.batch_timeout == 60 else ''}. *Finished early*: "
        "replies whose last picks came from the quasi-random candidate pool because the model picks would "
        "have run past the deadline.",
        "",
        "| algorithm | assignments | median s | max s | finished early |",
        "|---|---:|---:|---:|---:|",
    ]
    md += [
        f"| {a} | {n} | {med:.2f} | {mx:.2f} | {e} of {args.batch_repeats} |" for a, n, med, mx, e in batches
    ]
    text = "\n".join(md)
    print(text)
    large = large_history_markdown(large_history_rows(args), args)
    print(large)
    if args.write:
        write_section(args.write, "service-latency", text)
        write_section(args.write, "service-large-history", large)
    return 0


if __name__ == "__main__":
    sys.exit(main())
