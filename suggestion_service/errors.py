"""Errors the algorithm core raises for bad input from Katib (mapped to gRPC codes by the server)."""

from __future__ import annotations


class InvalidArgument(ValueError):  # noqa: N818 - named after the gRPC status code
    """A request or setting Katib sent is invalid; the server maps it to gRPC INVALID_ARGUMENT.

    The message names the field/setting, the bad value and what is allowed.
    """


class Unavailable(RuntimeError):  # noqa: N818 - named after the gRPC status code
    """A dependency failed transiently (e.g. the Kubernetes API while reading warm-start trials); the
    server maps it to gRPC UNAVAILABLE, which Katib's controller retries. The message says what failed."""
