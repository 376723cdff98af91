"""Load test of the suggestion service: concurrent Katib-shaped GetSuggestions over real gRPC on loopback.

Starts ``python -m suggestion_service`` as a child process (its own RSS, like a pod), then ``--clients``
threads, each with its own channel, send ``--requests`` GetSuggestions in total, drawn round-robin from
a pool of distinct requests (algorithms surrogate-gp / surrogate-rf / grid / random; four search spaces,
finite and continuous; histories of 0..``--max-history`` trials that mix succeeded, running, failed and
early-stopped trials; batches of 1-8). Every reply is checked: exactly ``n`` assignments, every one
feasible, no duplicates and nothing already tried while unseen configurations remain, and the same
request always gets the same reply (stateless and deterministic, even under concurrency). Reports error
counts by status code, latency percentiles and the server's peak RSS (VmHWM).

    python bench/load_service.py --write docs/reliability.md          # the full run (make bench-load)
    python bench/load_service.py --clients 8 --requests 300 --max-history 100     # a quick one
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from suggestion_service.process import ServiceProcess  # noqa: E402
from suggestion_service.proto import api_pb2, api_pb2_grpc  # noqa: E402
from suggestion_service.space import SearchSpace  # noqa: E402

ALGORITHMS = ("surrogate-gp", "surrogate-rf", "grid", "random")
_TS = api_pb2.TrialStatus
_FS = api_pb2.FeasibleSpace


def _spec(name: str, kind: int, **fs) -> api_pb2.ParameterSpec:
    return api_pb2.ParameterSpec(name=name, parameter_type=kind, feasible_space=_FS(**fs))


#: name -> parameter specs. "bert"/"resnet" are the seed's 24-point grids; "tuning" is finite but
#: larger (3 x 8 x 11 x 4 = 1056); "continuous" has a log-uniform double (grid cannot serve it).
SPACES: dict[str, list[api_pb2.ParameterSpec]] = {
    "bert": [
        _spec("learning_rate", api_pb2.DISCRETE, list=["2e-5", "3e-5", "5e-5"]),
        _spec("batch_size", api_pb2.DISCRETE, list=["16", "32"]),
        _spec("max_seq_length", api_pb2.DISCRETE, list=["128", "256"]),
        _spec("num_epochs", api_pb2.DISCRETE, list=["3", "4"]),
    ],
    "resnet": [
        _spec("learning_rate", api_pb2.DISCRETE, list=["0.001", "0.01", "0.1"]),
        _spec("batch_size", api_pb2.DISCRETE, list=["32", "64"]),
        _spec("num_epochs", api_pb2.DISCRETE, list=["10", "20"]),
        _spec("weight_decay", api_pb2.DISCRETE, list=["1e-4", "1e-3"]),
    ],
    "tuning": [
        _spec("optimizer", api_pb2.CATEGORICAL, list=["sgd", "adam", "adamw"]),
        _spec("layers", api_pb2.INT, min="1", max="8"),
        _spec("dropout", api_pb2.DOUBLE, min="0", max="0.5", step="0.05"),
        _spec("warmup", api_pb2.INT, min="0", max="300", step="100"),
    ],
    "continuous": [
        _spec("lr", api_pb2.DOUBLE, min="1e-5", max="1e-1", distribution=api_pb2.LOG_UNIFORM),
        _spec("momentum", api_pb2.DOUBLE, min="0.8", max="0.99"),
        _spec("layers", api_pb2.INT, min="1", max="12"),
        _spec("optimizer", api_pb2.CATEGORICAL, list=["sgd", "adam", "adamw"]),
    ],
}
FINITE_SPACES = ("bert", "resnet", "tuning")


@dataclass
class Case:
    """One pooled request and what a correct reply must satisfy."""

    request: api_pb2.GetSuggestionsRequest
    algorithm: str
    space_name: str
    space: SearchSpace
    tried: frozenset
    n_trials: int

    @property
    def n(self) -> int:
        """Assignments requested."""
        return self.request.current_request_number


def _objective(space: SearchSpace, raw: np.ndarray) -> float:
    """A smooth synthetic accuracy in (0.5, 0.95) of the encoded configuration."""
    x = space.encode_raw(raw[None, :])[0]
    return float(0.5 + 0.45 * np.exp(-4.0 * np.mean((x - 0.3) ** 2)))


def make_case(index: int, max_history: int, seed: int = 0) -> Case:
    """The ``index``-th request of the pool (deterministic in ``index`` and ``seed``)."""
    rng = np.random.default_rng([seed, index])
    algorithm = ALGORITHMS[index % len(ALGORITHMS)]
    names = FINITE_SPACES if algorithm == "grid" else tuple(SPACES)
    space_name = names[int(rng.integers(len(names)))]
    specs = SPACES[space_name]
    space = SearchSpace.from_proto(specs)
    n_trials = int(rng.integers(0, max_history + 1))
    conditions = [_TS.SUCCEEDED] * 16 + [_TS.RUNNING] * 2 + [_TS.FAILED, _TS.EARLYSTOPPED]
    trials = []
    for i, raw in enumerate(space.sample_raw(rng.random((n_trials, len(space.params))))):
        cond = conditions[int(rng.integers(len(conditions)))]
        t = api_pb2.Trial(name=f"trial-{i}")
        for name, value in space.assignment(raw).items():
            t.spec.parameter_assignments.assignments.add(name=name, value=value)
        t.status.condition = cond
        if cond in (_TS.SUCCEEDED, _TS.EARLYSTOPPED):
            y = _objective(space, raw) + float(rng.normal(0, 0.01))
            t.status.observation.metrics.add(name="accuracy", value=f"{y:.5f}")
            t.status.observation.metrics.add(name="gpu_seconds", value=f"{rng.uniform(10, 100):.1f}")
        trials.append(t)
    n = int(rng.integers(1, 9))
    exp = api_pb2.Experiment(name=f"load-{space_name}-{algorithm}-{index}")
    exp.spec.parameter_specs.parameters.extend(specs)
    exp.spec.objective.type = api_pb2.MAXIMIZE
    exp.spec.objective.objective_metric_name = "accuracy"
    exp.spec.objective.additional_metric_names.append("gpu_seconds")
    exp.spec.algorithm.algorithm_name = algorithm
    exp.spec.parallel_trial_count = 8
    request = api_pb2.GetSuggestionsRequest(
        experiment=exp, trials=trials, current_request_number=n, total_request_number=len(trials) + n
    )
    tried = frozenset(
        space.key({a.name: a.value for a in t.spec.parameter_assignments.assignments}) for t in trials
    )
    return Case(request, algorithm, space_name, space, tried, n_trials)


def check_reply(case: Case, reply: api_pb2.GetSuggestionsReply) -> str | None:
    """None when the reply is correct for ``case``, else what is wrong."""
    got = [{a.name: a.value for a in pa.assignments} for pa in reply.parameter_assignments]
    if len(got) != case.n:
        return f"{len(got)} assignments for {case.n} requested"
    space = case.space
    for a in got:
        if list(a) != list(space.names) or not space.contains(a):
            return f"infeasible assignment {a}"
    keys = [space.key(a) for a in got]
    if space.is_finite():
        unseen = int(space.size()) - len(case.tried)  # type: ignore[arg-type]
        m = min(case.n, unseen)
        new = keys[:m]
        if len(set(new)) != m or set(new) & case.tried:
            return f"duplicate or already-tried assignment while {unseen} configurations were unseen"
        if not set(keys[m:]) <= case.tried | set(new):
            return "an assignment beyond the unseen ones is neither tried nor new"
    elif len(set(keys)) != len(keys) or set(keys) & case.tried:
        return "duplicate or already-tried assignment in a continuous space"
    return None


@dataclass
class LoadResult:
    """What one load run measured."""

    requests: int
    clients: int
    wall_s: float
    latencies_ms: dict[str, list[float]]
    codes: collections.Counter = field(default_factory=collections.Counter)
    problems: collections.Counter = field(default_factory=collections.Counter)
    nondeterministic: int = 0
    peak_rss_mib: float = float("nan")
    start_rss_mib: float = float("nan")
    assignments: int = 0

    @property
    def invalid(self) -> int:
        """Replies (or events) that failed a check."""
        return sum(self.problems.values())

    @property
    def errors(self) -> int:
        """Replies that were not OK."""
        return sum(v for k, v in self.codes.items() if k != "OK")

    def percentiles(self, algorithm: str | None = None) -> tuple[float, float, float, float]:
        """(p50, p95, p99, max) latency in ms, for one algorithm or all."""
        values = (
            self.latencies_ms.get(algorithm, [])
            if algorithm
            else [v for vs in self.latencies_ms.values() for v in vs]
        )
        if not values:
            return (float("nan"),) * 4  # type: ignore[return-value]
        a = np.asarray(values)
        return (
            float(np.percentile(a, 50)),
            float(np.percentile(a, 95)),
            float(np.percentile(a, 99)),
            float(a.max()),
        )


def _rss_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_load(
    clients: int = 32,
    requests: int = 10_000,
    max_history: int = 500,
    pool: int = 400,
    seed: int = 0,
    workers: int = 4,
    timeout_s: float = 60.0,
    progress: bool = False,
) -> LoadResult:
    """Run the load against a fresh service child process and return the measurements.

    The server's concurrency limit is set to twice ``clients`` so that the load runs below it (the
    limit itself is tested separately); ``timeout_s`` is Katib's hard deadline per RPC.
    """
    if clients < 1 or requests < 1 or pool < 1 or max_history < 0:
        raise ValueError("clients, requests and pool must be >= 1 and max_history >= 0")
    cases = [make_case(i, max_history, seed) for i in range(min(pool, requests))]
    service = ServiceProcess(
        "--workers", str(workers), "--max-concurrent-rpcs", str(2 * clients), log_level="WARNING"
    )
    result = LoadResult(requests, clients, 0.0, collections.defaultdict(list))
    result.start_rss_mib = _rss_mib(service.pid, "VmRSS")
    first_reply: dict[int, bytes] = {}
    lock = threading.Lock()
    counter = iter(range(requests))
    done = [0]

    def client(worker: int) -> None:
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        with grpc.insecure_channel(f"127.0.0.1:{service.port}", options=options) as channel:
            stub = api_pb2_grpc.SuggestionStub(channel)
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                index = k % len(cases)
                case = cases[index]
                started = time.perf_counter()
                try:
                    reply = stub.GetSuggestions(case.request, timeout=timeout_s)
                    code, problem = "OK", check_reply(case, reply)
                except grpc.RpcError as err:
                    code, problem, reply = err.code().name, f"{err.code().name}: {err.details()}", None
                elapsed_ms = (time.perf_counter() - started) * 1000
                with lock:
                    result.codes[code] += 1
                    result.latencies_ms[case.algorithm].append(elapsed_ms)
                    if reply is not None:
                        result.assignments += len(reply.parameter_assignments)
                        blob = reply.SerializeToString(deterministic=True)
                        if first_reply.setdefault(index, blob) != blob:
                            result.nondeterministic += 1
                    if problem:
                        result.problems[
                            f"request {index} ({case.algorithm}, {case.space_name}): {problem}"
                        ] += 1
                    done[0] += 1
                    if progress and done[0] % 500 == 0:
                        print(f"  {done[0]}/{requests} replies", flush=True)

    threads = [threading.Thread(target=client, args=(i,), name=f"client-{i}") for i in range(clients)]
    started = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result.wall_s = time.perf_counter() - started
        if service.proc.poll() is not None:
            result.problems[
                f"the service exited with {service.proc.returncode}: {service.log()[-2000:]}"
            ] += 1
        result.peak_rss_mib = _rss_mib(service.pid, "VmHWM")
    finally:
        service.stop()
    result.latencies_ms = dict(result.latencies_ms)
    return result


def report(result: LoadResult, command: str) -> str:
    """The Markdown section for docs/reliability.md."""
    cpu = platform.processor() or platform.machine()
    lines = [
        "### Load: concurrent GetSuggestions",
        "",
        f"Command: `{command}`, measured {time.strftime('%Y-%m-%d', time.gmtime())}; {os.cpu_count()} CPU cores ({cpu}), shared with other work; the service is a "
        "child process with its default 4 worker threads.",
        "",
        f"- {result.requests} GetSuggestions from {result.clients} concurrent clients in {result.wall_s:.0f} s "
        f"({result.requests / result.wall_s:.1f} requests/s), {result.assignments} assignments.",
        f"- Status codes: {dict(result.codes)}; **errors: {result.errors}**; **invalid replies: "
        f"{result.invalid}** (from {len(result.problems)} distinct requests of the pool); replies differing "
        f"between repeats of the same request: {result.nondeterministic}.",
        f"- Server RSS: {result.start_rss_mib:.0f} MiB after start, **peak (VmHWM) {result.peak_rss_mib:.0f} MiB**.",
        "",
        "| algorithm | requests | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for algorithm in [*ALGORITHMS, None]:
        values = (
            result.latencies_ms.get(algorithm, [])
            if algorithm
            else [v for vs in result.latencies_ms.values() for v in vs]
        )
        p50, p95, p99, mx = result.percentiles(algorithm)
        name = algorithm or "**all**"
        lines.append(f"| {name} | {len(values)} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {mx:.0f} |")
    lines += [
        "",
        "Latency is end to end under full load (32 requests queue for 4 worker threads on 2 shared cores), "
        "so it is mostly queueing: a single request's own cost is in the service-latency benchmark.",
    ]
    if result.problems:
        lines += [
            "",
            "Problems (times seen):",
            *[f"- {p} (x{n})" for p, n in result.problems.most_common(20)],
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the load test; exit 1 if any reply was an error, invalid or not deterministic."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    ap.add_argument("--requests", type=int, default=10_000, help="GetSuggestions in total (default 10000)")
    ap.add_argument("--max-history", type=int, default=500, help="trials per request: 0..N (default 500)")
    ap.add_argument("--pool", type=int, default=400, help="distinct requests, sent round-robin (default 400)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", help="Markdown file to update (section service-load)")
    args = ap.parse_args(argv)
    command = "python bench/load_service.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = run_load(args.clients, args.requests, args.max_history, args.pool, args.seed, progress=True)
    text = report(result, command.strip())
    print(text)
    if args.write:
        write_section(args.write, "service-load", text)
    return 1 if result.errors or result.invalid or result.nondeterministic else 0


if __name__ == "__main__":
    sys.exit(main())
