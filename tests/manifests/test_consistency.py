"""The manifests agree with the code they drive: trainer CLI and metrics, the seed's search spaces,
the suggestion service's CLI and settings, and the images."""

from __future__ import annotations

import importlib.util
import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import ALGORITHMS, MANIFESTS, TASKS, experiment_files, load_one, training_container

# The seed's search spaces (the project brief): discrete lists, exactly these strings, in this order.
SEED_SPACES = {
    "bert": {
        "learning_rate": ["2e-5", "3e-5", "5e-5"],
        "batch_size": ["16", "32"],
        "max_seq_length": ["128", "256"],
        "num_epochs": ["3", "4"],
    },
    "resnet": {
        "learning_rate": ["0.001", "0.01", "0.1"],
        "batch_size": ["32", "64"],
        "num_epochs": ["10", "20"],
        "weight_decay": ["1e-4", "1e-3"],
    },
}
FAMILY = {"sst2": "bert", "mrpc": "bert", "cifar10": "resnet"}
FLAG_FOR = {"learning_rate": "learning_rate", "batch_size": "batch_size", "max_seq_length": "max_seq_length",
            "num_epochs": "num_epochs", "weight_decay": "weight_decay"}  # fmt: skip
EXPERIMENTS = [
    p for p in experiment_files() if load_one(p)["spec"]["trialTemplate"]["trialSpec"]["kind"] == "Job"
]


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


needs_trainer_cli = pytest.mark.skipif(
    _missing("trainer.cli"), reason="trainer.cli (the trainer helper's CLI) does not exist yet"
)
needs_katib_metrics = pytest.mark.skipif(
    _missing("trainer.katib_metrics"), reason="trainer.katib_metrics does not exist yet"
)


def _assignments(exp: dict) -> list[dict[str, str]]:
    params = exp["spec"]["parameters"]
    lists = [p["feasibleSpace"]["list"] for p in params]
    return [dict(zip([p["name"] for p in params], combo, strict=True)) for combo in itertools.product(*lists)]


def _command(exp: dict, assignment: dict[str, str], trial: str = "t-abc") -> list[str]:
    refs = {tp["name"]: tp["reference"] for tp in exp["spec"]["trialTemplate"]["trialParameters"]}
    out = []
    for arg in training_container(exp)["command"]:
        for name, ref in refs.items():
            arg = arg.replace(
                f"${{trialParameters.{name}}}",
                trial if ref == "${trialSpec.Name}" else assignment.get(ref, ""),
            )
        out.append(arg)
    return out


@pytest.mark.parametrize("task", TASKS)
def test_search_spaces_match_the_seed(task: str) -> None:
    for algorithm in ALGORITHMS:
        exp = load_one(MANIFESTS / f"30-experiment-{task}-{algorithm}.yaml")
        space = {p["name"]: p["feasibleSpace"] for p in exp["spec"]["parameters"]}
        assert {k: v["list"] for k, v in space.items()} == SEED_SPACES[FAMILY[task]]
        assert all(set(v) == {"list"} for v in space.values()), "discrete lists only"
        assert {p["parameterType"] for p in exp["spec"]["parameters"]} == {"discrete"}


@needs_trainer_cli
@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_trial_command_is_accepted_by_the_trainer_cli(path: Path) -> None:
    from trainer.cli import build_parser

    exp = load_one(path)
    parser = build_parser()
    task = exp["metadata"]["labels"]["katib-surrogate/task"]
    for assignment in _assignments(exp):
        cmd = _command(exp, assignment)
        assert cmd[:4] == ["python", "-m", "trainer", "train"]
        try:
            args = parser.parse_args(cmd[3:])
        except SystemExit as exc:  # argparse prints the reason to stderr
            pytest.fail(f"{path.name}: trainer rejected {cmd[3:]} (exit {exc.code})")
        assert args.task == task
        for name, value in assignment.items():
            assert float(getattr(args, FLAG_FOR[name])) == float(value), name
        assert args.checkpoint_dir == "/checkpoints/t-abc"
        assert args.cache_dir == "/cache"
        # the local runner appends its own overrides; the last value wins
        local = parser.parse_args(
            [*cmd[3:], "--preset", "tiny", "--cache-dir", "c", "--output-dir", "o", "--checkpoint-dir", "k"]
        )
        assert (local.preset, local.cache_dir, local.checkpoint_dir) == ("tiny", "c", "k")


@needs_trainer_cli
def test_trainer_cli_check_can_fail() -> None:
    from trainer.cli import build_parser

    exp = load_one(MANIFESTS / "30-experiment-sst2-grid.yaml")
    cmd = _command(exp, _assignments(exp)[0])
    cmd[cmd.index("--batch-size")] = "--batchsize"
    with pytest.raises(SystemExit):
        build_parser().parse_args(cmd[3:])


@needs_trainer_cli
def test_cache_job_command_is_accepted_by_the_trainer_cli() -> None:
    from trainer.cli import build_parser

    (job,) = [
        d for d in yaml.safe_load_all((MANIFESTS / "20-cache.yaml").read_text()) if d and d["kind"] == "Job"
    ]
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    python_part = script.split("&&")[0].split()
    assert python_part[:3] == ["python", "-m", "trainer"]
    args = build_parser().parse_args(python_part[3:])
    assert list(args.tasks) == list(TASKS) or sorted(args.tasks) == sorted(TASKS)
    assert args.cache_dir == "/cache"


def metric_mismatches(exp: dict, km) -> list[str]:
    """Where the Experiment's metrics disagree with what the trainer prints (empty when consistent)."""
    task = exp["metadata"]["labels"]["katib-surrogate/task"]
    objective = exp["spec"]["objective"]
    out = []
    if objective["objectiveMetricName"] != km.OBJECTIVE_METRIC or objective["type"] != "maximize":
        out.append(f"objective must be {km.OBJECTIVE_METRIC} maximize")
    printed = set(km.metric_names_for_task(task))
    collected = [objective["objectiveMetricName"], *objective["additionalMetricNames"]]
    if set(collected) - printed:
        out.append(f"not printed by the trainer: {sorted(set(collected) - printed)}")
    quality = km.TEXT_METRICS if task in km.TEXT_TASKS else km.VISION_METRICS
    if set(collected) != {km.OBJECTIVE_METRIC, *quality, km.EVAL_LOSS, *km.COST_METRICS}:
        out.append(f"collected {sorted(collected)}, expected the objective, {quality}, eval_loss and costs")
    strategies = {s["name"]: s["value"] for s in objective["metricStrategies"]}
    expected = {km.OBJECTIVE_METRIC: "max", **dict.fromkeys(quality, "max"), km.EVAL_LOSS: "min"}
    expected.update(dict.fromkeys(km.COST_METRICS, "latest"))
    if strategies != expected:
        out.append(f"metricStrategies {strategies} != {expected}")
    name_re = re.compile(r"[\w|-]+")
    out += [f"{n} would not parse with Katib's regex" for n in collected if not name_re.fullmatch(n)]
    return out


@needs_katib_metrics
@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_collected_metrics_are_what_the_trainer_prints(path: Path) -> None:
    from trainer import katib_metrics as km

    assert metric_mismatches(load_one(path), km) == []


@needs_katib_metrics
def test_metric_check_can_fail() -> None:
    from trainer import katib_metrics as km

    exp = load_one(MANIFESTS / "30-experiment-cifar10-grid.yaml")
    exp["spec"]["objective"]["additionalMetricNames"][0] = "f1"  # a text metric on a vision task
    exp["spec"]["objective"]["metricStrategies"][1]["name"] = "f1"
    problems = metric_mismatches(exp, km)
    assert any("collected" in p for p in problems), problems
    exp["spec"]["objective"]["additionalMetricNames"].append("val/loss")
    problems = metric_mismatches(exp, km)
    assert any(p.startswith("not printed by the trainer:") and "'val/loss'" in p for p in problems), problems
    assert "val/loss would not parse with Katib's regex" in problems


@needs_katib_metrics
@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_tiny_trial_run_from_the_manifest_reports_every_metric(task: str, tmp_path: Path) -> None:
    """Run the manifest's own trial command (tiny preset) and parse it the way Katib's collector does."""
    from trainer import katib_metrics as km

    exp = load_one(MANIFESTS / f"30-experiment-{task}-surrogate-gp.yaml")
    cmd = _command(exp, _assignments(exp)[-1])
    cmd = [
        sys.executable, *cmd[1:],
        "--preset", "tiny", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"),
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--num-epochs", "1",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    objective = exp["spec"]["objective"]
    names = [objective["objectiveMetricName"], *objective["additionalMetricNames"]]
    strategies = {s["name"]: s["value"] for s in objective["metricStrategies"]}
    points = km.parse_metric_lines(result.stdout + result.stderr, names)
    observed = km.observation(points, strategies)
    missing = [n for n in names if observed.get(n, km.UNAVAILABLE) == km.UNAVAILABLE]
    assert not missing, f"metrics the Experiment collects but the trial did not print: {missing}"


def test_suggestion_entries_match_the_service_cli() -> None:
    from suggestion_service.__main__ import build_parser

    config = yaml.safe_load(
        load_one(MANIFESTS / "optional" / "katib-config-standalone.yaml")["data"]["katib-config.yaml"]
    )
    ours = [s for s in config["runtime"]["suggestions"] if s["algorithmName"].startswith("surrogate-")]
    assert [s["algorithmName"] for s in ours] == ["surrogate-gp", "surrogate-rf"]
    for entry in ours:
        assert entry["command"] == ["python", "-m", "suggestion_service"]
        args = build_parser().parse_args(entry["args"])
        assert (args.port, args.metrics_port) == (6789, 8000)
        assert [p["containerPort"] for p in entry["ports"]] == [args.metrics_port]
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in entry["env"]}
        assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"
        # bare warm_start_experiments names resolve to the pod's namespace (suggestion_service.priors)
        assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        assert entry["resources"]["limits"]["memory"] == "1Gi"


def test_algorithm_settings_are_accepted_by_the_service() -> None:
    from suggestion_service.errors import InvalidArgument
    from suggestion_service.settings import parse_settings

    for path in experiment_files():
        algorithm = load_one(path)["spec"]["algorithm"]
        settings = [(s["name"], s["value"]) for s in algorithm.get("algorithmSettings") or []]
        parse_settings(algorithm["algorithmName"], settings)
    with pytest.raises(InvalidArgument):
        parse_settings("grid", [("n_initial_points", "3")])


def test_images_are_ours_or_katib_builtins_and_pinned() -> None:
    gen_header = (MANIFESTS / "00-namespace.yaml").read_text().splitlines()[2]
    registry = gen_header.split("--registry ")[1].split()[0]
    tag = gen_header.split("--tag ")[1].split()[0]
    texts = [p.read_text() for p in MANIFESTS.rglob("*.yaml") if "templates" not in p.parts]
    images = {
        line.split("image:", 1)[1].strip()
        for text in texts
        for line in text.splitlines()
        if line.strip().startswith("image:")
    }
    ours = {i for i in images if not i.startswith("ghcr.io/kubeflow/katib/")}
    assert ours == {f"{registry}/suggestion:{tag}", f"{registry}/trainer:{tag}"}
    assert all(i.endswith(":v0.19.0") for i in images - ours)
    assert not any(i.endswith(":latest") for i in images)
