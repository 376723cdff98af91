"""Prometheus metrics served while a trial trains (``--metrics-port``)."""

from __future__ import annotations

from typing import Any


class TrainingExporter:
    """Gauges for step, epoch, samples/s, loss and GPU utilisation on their own registry."""

    def __init__(self, port: int | None, task: str, addr: str = "0.0.0.0") -> None:
        from prometheus_client import CollectorRegistry, Gauge

        self.registry = CollectorRegistry()
        labels = ["task"]
        self._step = Gauge("trainer_step", "optimizer steps done", labels, registry=self.registry)
        self._epoch = Gauge("trainer_epoch", "epochs completed", labels, registry=self.registry)
        self._sps = Gauge(
            "trainer_samples_per_second",
            "training samples per second (recent)",
            labels,
            registry=self.registry,
        )
        self._loss = Gauge(
            "trainer_train_loss", "mean training loss (recent)", labels, registry=self.registry
        )
        self._util = Gauge(
            "trainer_gpu_utilization_percent",
            "mean GPU utilisation from NVML",
            labels,
            registry=self.registry,
        )
        self._task = task
        self._server: Any = None
        if port is not None:
            from prometheus_client import start_http_server

            self._server = start_http_server(port, addr=addr, registry=self.registry)

    def update(
        self,
        *,
        step: int | None = None,
        epoch: int | None = None,
        samples_per_second: float | None = None,
        loss: float | None = None,
        gpu_utilization: float | None = None,
    ) -> None:
        """Set whichever gauges are given."""
        for gauge, value in (
            (self._step, step),
            (self._epoch, epoch),
            (self._sps, samples_per_second),
            (self._loss, loss),
            (self._util, gpu_utilization),
        ):
            if value is not None:
                gauge.labels(task=self._task).set(value)

    def close(self) -> None:
        """Stop the HTTP server, if one was started."""
        if self._server is not None:
            server, _thread = self._server
            server.shutdown()
            server.server_close()
            self._server = None
