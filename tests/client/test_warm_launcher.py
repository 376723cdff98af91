"""The warm trial launcher: same exit codes, logs and metrics as a fresh subprocess, kills, fallback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client.module_preload import check_entries, resolve, scan_imports
from client.process_usage import MeteredProcess
from client.warm_launcher import WarmLauncher, module_command
from tests.client.test_local import DATA, FAKE_TRAINER, _kill_and_resume, run_local, stored

CASES = """
import atexit, json, os, sys, threading, time
case = sys.argv[1]
if case == "env":
    print(json.dumps({"trial": os.environ.get("KATIB_TRIAL_NAME"), "cwd": os.getcwd(), "argv": sys.argv,
                      "path0": sys.path[0], "stdin": sys.stdin.read(), "name": __name__,
                      "omp": os.environ.get("OMP_NUM_THREADS")}))
elif case == "exit":
    print("exiting", flush=True)
    sys.exit(int(sys.argv[2]))
elif case == "exitmsg":
    sys.exit("a message instead of a code")
elif case == "raise":
    print("about to fail", flush=True)
    raise RuntimeError("boom")
elif case == "sigint":
    raise KeyboardInterrupt
elif case == "streams":
    for i in range(3):
        print(f"out {i}")
        print(f"err {i}", file=sys.stderr)
elif case == "thread":
    threading.Thread(target=lambda: (time.sleep(0.2), print("thread finished", flush=True))).start()
    atexit.register(lambda: print("atexit ran", flush=True))
    print("main done", flush=True)
elif case == "sleep":
    print("sleeping", flush=True)
    time.sleep(float(sys.argv[2]))
elif case == "burn":  # CPU-seconds in this process, CPU-seconds in a child it waits for, then asleep
    import subprocess
    spin = "import time\\nend = time.process_time() + {}\\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", spin.format(sys.argv[3])], check=True)
    end = time.process_time() + float(sys.argv[2])
    while time.process_time() < end:
        pass
    time.sleep(float(sys.argv[4]))
"""


def make_packages(root: Path) -> Path:
    """toyheavy (records each import), toytrainer (PRELOAD_MODULES + the fake trainer), toycases."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "toyheavy.py").write_text(
        'import os\n\nwith open(os.environ["TOY_IMPORT_LOG"], "a") as fh:\n    fh.write(f"{os.getpid()}\\n")\n'
    )
    (root / "toytrainer").mkdir(exist_ok=True)
    (root / "toytrainer" / "__init__.py").write_text('PRELOAD_MODULES = ["toyheavy"]\n')
    trainer = FAKE_TRAINER.read_text().replace("import argparse\n", "import argparse\n\nimport toyheavy\n", 1)
    (root / "toytrainer" / "__main__.py").write_text(trainer)
    (root / "toycases").mkdir(exist_ok=True)
    (root / "toycases" / "__init__.py").write_text("")
    (root / "toycases" / "__main__.py").write_text(CASES)
    return root


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_packages(tmp_path / "pkgs")
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.setenv("TOY_IMPORT_LOG", str(tmp_path / "imports.log"))
    return root


def module_manifests(tmp_path: Path) -> Path:
    """The test Experiments with ``python -m toytrainer`` as the trial command."""
    text = (DATA / "experiments.yaml").read_text()
    text = text.replace("- tests/client/data/fake_trainer.py\n", "- -m\n                  - toytrainer\n")
    folder = tmp_path / "module-manifests"
    folder.mkdir()
    (folder / "experiments.yaml").write_text(text)
    return folder


def imports(tmp_path: Path) -> list[str]:
    path = tmp_path / "imports.log"
    return path.read_text().split() if path.exists() else []


def _normalize(text: str) -> str:
    """Drop timestamps and the interpreter's own runpy frames (a fresh ``python -m`` has two more)."""
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "T", text)
    return "\n".join(line for line in text.splitlines() if "<frozen runpy>" not in line)


# --- parsing and preload resolution ------------------------------------------------------------------
def test_module_command_only_matches_this_python_dash_m() -> None:
    py = sys.executable
    assert module_command([py, "-m", "trainer", "train", "--x"], py) == ("trainer", ["train", "--x"])
    assert module_command([py, "-m", "pkg.sub"], py) == ("pkg.sub", [])
    assert module_command([py, "script.py", "-m", "x"], py) is None
    assert module_command(["/other/python", "-m", "trainer"], py) is None
    assert module_command([py, "-u", "-m", "trainer"], py) is None
    assert module_command([py, "-m", "not a module"], py) is None
    assert module_command(["sh", "-c", "true"], py) is None


def test_scan_imports_and_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "scanme"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import json\nfrom . import inner\n")
    (pkg / "inner.py").write_text(
        "from __future__ import annotations\n\n"
        "def f():\n    import scanme.other\n    from email.mime import text as t, base\n    import xml.dom\n"
    )
    (pkg / "broken.py").write_text("def (:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert scan_imports("scanme") == [
        "json",
        "email.mime",
        "email.mime:text",
        "email.mime:base",
        "xml.dom",
    ]
    assert scan_imports("no_such_package_here") == []
    entries, origin = resolve("scanme.inner", None)
    assert origin == "imports found in scanme's source" and "xml.dom" in entries
    assert resolve("scanme", ["json", "a.b:C"]) == (["json", "a.b:C"], "--preload")
    (pkg / "__init__.py").write_text('PRELOAD_MODULES = ("json",)\n')
    sys.modules.pop("scanme", None)
    assert resolve("scanme", None) == (["json"], "scanme.PRELOAD_MODULES")
    (pkg / "__init__.py").write_text('PRELOAD_MODULES = "json"\n')
    sys.modules.pop("scanme", None)
    with pytest.raises(ValueError, match="PRELOAD_MODULES must be a list or tuple"):
        resolve("scanme", None)
    sys.modules.pop("scanme", None)
    with pytest.raises(ValueError, match=r"--preload: 'torch nn' is not a module name"):
        check_entries(["torch", "torch nn"], "--preload")


# --- the launcher against fresh subprocesses ----------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "expected_code", "expected_line"),
    [
        (["env"], 0, None),
        (["exit", "3"], 3, "exiting"),
        (["exitmsg"], 1, "a message instead of a code"),
        (["raise"], 1, "RuntimeError: boom"),
        (["sigint"], -signal.SIGINT, "KeyboardInterrupt"),
        (["streams"], 0, "err 2"),
        (["thread"], 0, "atexit ran"),
    ],
)
def test_same_exit_code_and_log_as_a_subprocess(
    tmp_path: Path, packages: Path, case: list[str], expected_code: int, expected_line: str | None
) -> None:
    env = {**os.environ, "KATIB_TRIAL_NAME": "t-1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "toycases", *case]
    cold_log = tmp_path / "cold.log"
    with open(cold_log, "wb") as log:
        cold = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    launcher = WarmLauncher(tmp_path / "work", log=lambda _m: None)
    try:
        warm_log = tmp_path / "warm.log"
        process = launcher.start(argv, sys.executable, env, warm_log)
        assert process is not None and process.pid != os.getpid()
        code = process.wait(timeout=30)
    finally:
        launcher.close()
    assert code == cold.returncode == expected_code
    cold_text, warm_text = cold_log.read_text(), warm_log.read_text()
    assert _normalize(warm_text) == _normalize(cold_text)
    if expected_line is not None:
        assert expected_line in warm_text
    if case == ["env"]:
        seen = json.loads(warm_text)
        assert seen["trial"] == "t-1" and seen["cwd"] == os.getcwd() and seen["stdin"] == ""
        assert seen["name"] == "__main__" and seen["argv"][0].endswith("toycases/__main__.py")
        assert seen["path0"] == os.getcwd() and seen["omp"] == "1"


def test_runner_gives_the_same_results_with_both_launchers(
    tmp_path: Path, packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = module_manifests(tmp_path)
    monkeypatch.setenv("FAKE_TRAINER_RAISE_UNITS", "16")
    results = {}
    for launcher in ("warm", "subprocess"):
        run_dir = tmp_path / launcher
        run_dir.mkdir()
        before = len(imports(tmp_path))
        code, out = run_local(run_dir, manifests, "--algorithm", "grid", "--launcher", launcher)
        assert code == 0, out
        # warm: toyheavy imported once by the launcher; subprocess: once per trial
        assert len(imports(tmp_path)) - before == (1 if launcher == "warm" else 4)
        rows = {str(t["name"]): t for t in stored(run_dir, "toy-grid")}
        assert all(float(str(t["cpu_seconds"])) > 0 for t in rows.values())  # the local cost, failed too
        results[launcher] = {
            name: (
                t["condition"],
                t["exit_code"],
                t["parameters"],
                t["observation"],
                t["message"],
                _normalize((Path(str(t["trial_dir"])) / "stdout.log").read_text()),
            )
            for name, t in rows.items()
        }
    assert results["warm"] == results["subprocess"]
    conditions = sorted(v[0] for v in results["warm"].values())
    assert conditions == ["Failed", "Failed", "Succeeded", "Succeeded"]
    failed = [v for v in results["warm"].values() if v[0] == "Failed"]
    assert all(v[1] == 1 and "ValueError: simulated crash for units=16" in v[4] for v in failed)
    assert all("Traceback (most recent call last)" in v[5] for v in failed)
    assert list((tmp_path / "warm" / "work").glob(".warm-launcher-toytrainer-*.log"))
    assert not list((tmp_path / "subprocess" / "work").glob(".warm-launcher-*"))


def test_timed_out_trials_are_killed_the_same_way(
    tmp_path: Path, packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = module_manifests(tmp_path)
    monkeypatch.setenv("FAKE_TRAINER_SLEEP", "30")
    for launcher in ("warm", "subprocess"):
        run_dir = tmp_path / launcher
        run_dir.mkdir()
        started = time.monotonic()
        code, out = run_local(run_dir, manifests, "--algorithm", "grid", "--max-trials", "2",
                              "--trial-timeout", "1", "--launcher", launcher)  # fmt: skip
        assert code == 0, out
        assert time.monotonic() - started < 20
        rows = stored(run_dir, "toy-grid")
        assert [(t["condition"], t["exit_code"]) for t in rows] == [("Failed", -signal.SIGTERM)] * 2
        assert all("timed out after 1 s" in str(t["message"]) for t in rows)
        assert all(t["cpu_seconds"] is not None for t in rows)  # a killed trial was paid for too


def test_both_launchers_report_the_trial_processs_cpu_time(tmp_path: Path, packages: Path) -> None:
    """0.3 CPU-s in the trial, 0.2 CPU-s in a child it waits for, then 1.5 s asleep: the cost counts
    the CPU time (user + sys) of both processes and not the sleep, as it would not count a wait for a
    busy CPU."""
    argv = [sys.executable, "-m", "toycases", "burn", "0.3", "0.2", "1.5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = WarmLauncher(tmp_path / "work", log=lambda _m: None)
    try:
        warm = launcher.start(argv, sys.executable, env, tmp_path / "warm.log")
        assert warm is not None and warm.cpu_seconds is None
        assert warm.wait(timeout=60) == 0
    finally:
        launcher.close()
    with open(tmp_path / "cold.log", "wb") as log:
        popen = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        cold = MeteredProcess(popen)
        assert cold.poll() is None and cold.cpu_seconds is None
        started = time.monotonic()
        assert cold.wait(timeout=60) == 0 and time.monotonic() - started >= 1.5
    assert popen.returncode == 0  # the Popen agrees, so it will not try to reap the child again
    for process in (warm, cold):
        # 0.5 s of spinning plus interpreter start-ups; far below the 2 s of wall time
        assert process.cpu_seconds is not None and 0.5 <= process.cpu_seconds < 1.2, process.cpu_seconds


def test_script_commands_are_not_launched_warm(tmp_path: Path, packages: Path) -> None:
    text = (
        (DATA / "experiments.yaml")
        .read_text()
        .replace("tests/client/data/fake_trainer.py", str(FAKE_TRAINER))
    )
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "experiments.yaml").write_text(text)
    code, out = run_local(tmp_path, folder, "--algorithm", "grid")
    assert code == 0, out
    assert [t["condition"] for t in stored(tmp_path, "toy-grid")] == ["Succeeded"] * 4
    assert not list((tmp_path / "work").glob(".warm-launcher-*"))


def test_a_broken_launcher_falls_back_to_subprocesses(
    tmp_path: Path, packages: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (packages / "toytrainer" / "__init__.py").write_text('PRELOAD_MODULES = "toyheavy"\n')
    code, out = run_local(tmp_path, module_manifests(tmp_path), "--algorithm", "grid")
    assert code == 0, out
    assert "PRELOAD_MODULES must be a list or tuple of module names" in out
    assert "running its trials as subprocesses" in out
    assert [t["condition"] for t in stored(tmp_path, "toy-grid")] == ["Succeeded"] * 4
    assert len(imports(tmp_path)) == 4


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--preload", "torch,not a module"], "--preload: 'not a module' is not a module name"),
        (["--preload", "json", "--launcher", "subprocess"], "cannot be used with --launcher subprocess"),
        (["--launcher", "docker"], "argument --launcher: invalid choice: 'docker'"),
    ],
)
def test_launcher_flag_errors(
    tmp_path: Path, packages: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
) -> None:
    code, _ = run_local(tmp_path, module_manifests(tmp_path), *flags)
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err


def test_explicit_preload_replaces_the_declared_list(tmp_path: Path, packages: Path) -> None:
    code, out = run_local(tmp_path, module_manifests(tmp_path), "--algorithm", "grid", "--preload", "json")
    assert code == 0, out
    assert "1 modules preloaded from --preload" in out
    assert len(imports(tmp_path)) == 4  # toyheavy was not preloaded, so every trial imported it


@pytest.mark.slow
def test_resume_after_sigkill_with_warm_trials(tmp_path: Path, packages: Path) -> None:
    manifests = module_manifests(tmp_path)
    env = {**os.environ, "FAKE_TRAINER_SLEEP": "2"}
    argv = ["compare", "--local", "--manifests", str(manifests), "--algorithm", "grid", "--parallel", "2",
            "--store", str(tmp_path / "store.sqlite"), "--workdir", str(tmp_path / "w"),
            "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    _kill_and_resume(tmp_path, argv, "toy-grid", env, timeout=60)
    rows = stored(tmp_path, "toy-grid")
    assert len(rows) == 4 and all(t["condition"] == "Succeeded" for t in rows)


def test_missing_module_fails_like_python(tmp_path: Path, packages: Path) -> None:
    argv = [sys.executable, "-m", "no_such_module_xyz", "--flag"]
    cold = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    launcher = WarmLauncher(tmp_path / "work", log=lambda _m: None)
    try:
        process = launcher.start(argv, sys.executable, dict(os.environ), tmp_path / "warm.log")
        assert process is not None
        code = process.wait(timeout=30)
    finally:
        launcher.close()
    assert code == cold.returncode == 1
    assert (
        (tmp_path / "warm.log").read_text()
        == cold.stderr
        == f"{sys.executable}: No module named no_such_module_xyz\n"
    )
