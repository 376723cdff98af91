"""The server speaks Katib's wire format: proven with the official kubeflow-katib SDK stubs.

The server runs as ``python -m suggestion_service`` (the image's entrypoint) in a subprocess; the SDK
client runs in another (``sdk_client.py``), because the SDK's protobuf symbols and ours cannot share
one descriptor pool. Nothing here imports the SDK into the test process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor_pb2 import FileDescriptorProto

from suggestion_service.process import ServiceProcess
from suggestion_service.proto import api_pb2

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SDK_CLIENT = HERE / "sdk_client.py"

BERT_SPACE = {
    "learning_rate": {"2e-5", "3e-5", "5e-5"},
    "batch_size": {"16", "32"},
    "max_seq_length": {"128", "256"},
    "num_epochs": {"3", "4"},
}
SEEN = [
    {"learning_rate": "2e-5", "batch_size": "16", "max_seq_length": "128", "num_epochs": "3"},
    {"learning_rate": "5e-5", "batch_size": "32", "max_seq_length": "256", "num_epochs": "4"},
    {"learning_rate": "3e-5", "batch_size": "16", "max_seq_length": "256", "num_epochs": "3"},
]


@pytest.fixture
def server() -> Iterator[ServiceProcess]:
    srv = ServiceProcess("--grace-seconds", "5", metrics=True)
    yield srv
    srv.stop()


def sdk(port: int, scenario: str) -> dict:
    """Run one SDK-client scenario against ``port`` and return its JSON output."""
    done = subprocess.run(
        [sys.executable, "-P", str(SDK_CLIENT), str(port), scenario],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _normalise(node: object) -> object:
    """Drop what buf and protoc render differently (json names, file name, options); sort by name."""
    if isinstance(node, dict):
        return {
            k: _normalise(v) for k, v in node.items() if k not in {"jsonName", "options", "sourceCodeInfo"}
        }
    if isinstance(node, list):
        items = [_normalise(v) for v in node]
        if all(isinstance(v, dict) and "name" in v for v in items):
            items.sort(key=lambda v: v["name"])
        return items
    return node


def test_our_proto_matches_the_sdk_descriptor() -> None:
    theirs = sdk(0, "descriptor")
    ours = json_format.MessageToDict(FileDescriptorProto.FromString(api_pb2.DESCRIPTOR.serialized_pb))
    for doc in (theirs, ours):
        doc.pop("name")
    assert theirs["package"] == "api.v1.beta1"
    assert _normalise(ours) == _normalise(theirs)


def test_sdk_client_gets_valid_new_assignments(server: ServiceProcess) -> None:
    out = sdk(server.port, "bert")
    assignments = out["assignments"]
    assert len(assignments) == 3
    keys = {tuple(sorted(a.items())) for a in assignments}
    assert len(keys) == 3, "duplicates inside one reply"
    for a in assignments:
        assert set(a) == set(BERT_SPACE)
        for name, value in a.items():
            assert value in BERT_SPACE[name], (name, value)
        assert a not in SEEN, "re-proposed a completed, running or failed configuration"


def test_sdk_client_sees_invalid_argument(server: ServiceProcess) -> None:
    out = sdk(server.port, "invalid")
    assert out["code"] == "INVALID_ARGUMENT"
    assert "acquisition" in out["details"] and "banana" in out["details"]


def test_health_reports_serving_for_katibs_probe_key(server: ServiceProcess) -> None:
    assert sdk(server.port, "health") == {"status": "SERVING"}


def test_restarted_server_returns_the_same_reply() -> None:
    first = ServiceProcess()
    try:
        before = sdk(first.port, "bert")
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.stop()
    second = ServiceProcess()
    try:
        after = sdk(second.port, "bert")
    finally:
        second.stop()
    assert before == after


def test_sigterm_drains_and_exits_cleanly(server: ServiceProcess) -> None:
    sdk(server.port, "health")
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=15) == 0  # a hang guard, not a speed bound
    log = server.log()
    assert "received SIGTERM: NOT_SERVING" in log and "stopped" in log
