"""The one error the Experiment model raises."""

from __future__ import annotations

from suggestion_service.errors import InvalidArgument


class ManifestError(InvalidArgument):
    """An Experiment manifest (or a reading of it) that Katib or the suggestion service would reject.

    A subclass of the service's ``InvalidArgument``: the search-space checks are the service's own, so
    code that catches ``InvalidArgument`` around a space also catches this. The message names the field,
    the bad value and what is allowed.
    """
