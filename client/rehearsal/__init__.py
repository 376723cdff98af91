"""Rehearsal helpers: run the cluster's own commands on one machine against loopback stand-ins.

- :mod:`client.rehearsal.hub`: a Hugging Face hub (and plain file host) on 127.0.0.1 that speaks the
  protocol the pinned ``huggingface_hub``/``datasets``/``transformers`` clients use.
- :mod:`client.rehearsal.standins`: tiny, deterministic stand-ins for the real models and datasets,
  laid out under their real names for that hub.
"""
