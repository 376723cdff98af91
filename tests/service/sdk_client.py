"""Talk to a running suggestion service with the OFFICIAL Katib SDK stubs, in a process of its own.

Run as ``python tests/service/sdk_client.py PORT SCENARIO``; prints one JSON document. It lives in
its own process because the SDK's ``api.proto`` and ours define the same protobuf symbols, which one
descriptor pool cannot hold twice.

Scenarios:
- ``descriptor``: print the SDK's FileDescriptorProto (no server needed; PORT is ignored).
- ``bert``: GetSuggestions on the seed's BERT space (3 trials done/running/failed, ask for 3).
- ``invalid``: ValidateAlgorithmSettings with a bad setting, report the status code.
- ``health``: the kubelet-style health check for ``manager.v1beta1.Suggestion``.
"""

from __future__ import annotations

import json
import sys

import grpc


def _bert_experiment(pb, algorithm: str = "surrogate-gp", settings: tuple = ()):
    exp = pb.Experiment(name="sst2-surrogate-gp")
    spec = exp.spec
    spec.objective.type = pb.MAXIMIZE
    spec.objective.objective_metric_name = "accuracy"
    spec.objective.additional_metric_names.extend(["f1", "gpu_seconds"])
    spec.algorithm.algorithm_name = algorithm
    for name, value in settings:
        spec.algorithm.algorithm_settings.add(name=name, value=value)
    spec.parallel_trial_count = 3
    spec.max_trial_count = 12
    space = {
        "learning_rate": ["2e-5", "3e-5", "5e-5"],
        "batch_size": ["16", "32"],
        "max_seq_length": ["128", "256"],
        "num_epochs": ["3", "4"],
    }
    for name, values in space.items():
        p = spec.parameter_specs.parameters.add(name=name, parameter_type=pb.DISCRETE)
        p.feasible_space.list.extend(values)
        p.feasible_space.distribution = pb.UNIFORM
    return exp


def _trial(pb, name: str, assignment: dict, condition: int, metrics: dict | None = None):
    t = pb.Trial(name=name)
    for k, v in assignment.items():
        t.spec.parameter_assignments.assignments.add(name=k, value=v)
    t.status.condition = condition
    for k, v in (metrics or {}).items():
        t.status.observation.metrics.add(name=k, value=v)
    return t


def main() -> None:
    port, scenario = sys.argv[1], sys.argv[2]
    from kubeflow.katib import katib_api_pb2 as pb
    from kubeflow.katib import katib_api_pb2_grpc as pb_grpc

    if scenario == "descriptor":
        from google.protobuf import json_format
        from google.protobuf.descriptor_pb2 import FileDescriptorProto

        fd = FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
        print(json.dumps(json_format.MessageToDict(fd)))
        return

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=30)
    out: dict = {}
    if scenario == "bert":
        stub = pb_grpc.SuggestionStub(channel)
        cond = pb.TrialStatus.TrialConditionType
        trials = [
            _trial(
                pb,
                "t1",
                {"learning_rate": "2e-5", "batch_size": "16", "max_seq_length": "128", "num_epochs": "3"},
                cond.Value("SUCCEEDED"),
                {"accuracy": "0.91", "f1": "0.9", "gpu_seconds": "600"},
            ),
            _trial(
                pb,
                "t2",
                {"learning_rate": "5e-5", "batch_size": "32", "max_seq_length": "256", "num_epochs": "4"},
                cond.Value("RUNNING"),
            ),
            _trial(
                pb,
                "t3",
                {"learning_rate": "3e-5", "batch_size": "16", "max_seq_length": "256", "num_epochs": "3"},
                cond.Value("FAILED"),
                {"accuracy": "unavailable"},
            ),
        ]
        req = pb.GetSuggestionsRequest(
            experiment=_bert_experiment(pb), trials=trials, current_request_number=3, total_request_number=6
        )
        reply = stub.GetSuggestions(req, timeout=60)
        out["assignments"] = [{a.name: a.value for a in pa.assignments} for pa in reply.parameter_assignments]
    elif scenario == "invalid":
        stub = pb_grpc.SuggestionStub(channel)
        req = pb.ValidateAlgorithmSettingsRequest(
            experiment=_bert_experiment(pb, settings=(("acquisition", "banana"),))
        )
        try:
            stub.ValidateAlgorithmSettings(req, timeout=30)
            out["code"] = "OK"
        except grpc.RpcError as err:
            out["code"] = err.code().name
            out["details"] = err.details()
    elif scenario == "health":
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(channel)
        resp = stub.Check(health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), timeout=10)
        out["status"] = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
