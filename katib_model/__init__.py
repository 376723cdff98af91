"""One reading of a Katib Experiment manifest, shared by the client, the validator and the benchmarks.

Pure Python over already-parsed dicts. It may use the suggestion service's proto, ``SearchSpace`` and
errors; the suggestion service never imports it. See docs/experiment-model.md.
"""

from katib_model.collector import CollectorSpec
from katib_model.errors import ManifestError
from katib_model.experiment import KatibExperiment
from katib_model.parameters import Distribution, KatibType, parameter_specs, search_space
from katib_model.requests import TrialRecord
from katib_model.retry import RetryRules
from katib_model.template import TrialTemplate

__all__ = [
    "CollectorSpec",
    "Distribution",
    "KatibExperiment",
    "KatibType",
    "ManifestError",
    "RetryRules",
    "TrialRecord",
    "TrialTemplate",
    "parameter_specs",
    "search_space",
]
