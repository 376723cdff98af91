"""``spec.trialTemplate``: trial parameters and Katib v0.19's substitution of them into the trial spec.

What Katib v0.19.0 does (read from kubeflow/katib at tag v0.19.0, commit 578e60f1:
``pkg/controller.v1beta1/experiment/manifest/generator.go`` ``applyParameters``, the constants in
``pkg/controller.v1beta1/consts/const.go`` and ``isMetaKey`` in
``pkg/webhook/v1beta1/experiment/validator/validator.go``; unchanged on master):

* A placeholder is ``${trialParameters.<name>}`` (``TrialTemplateParamReplaceFormat``); the webhook
  finds leftover ones with ``\\$\\{trialParameters\\..+?\\}`` and rejects the Experiment when a
  placeholder is not declared in ``trialParameters`` or a declared name is not used.
* A ``reference`` is trial metadata when ``\\$\\{trialSpec\\.(.+?)\\}`` matches it anywhere (the
  match is not anchored); everything else must be the name of an experiment parameter. The webhook
  accepts the keys ``Name``, ``Namespace``, ``Kind``, ``APIVersion``, ``Annotations``, ``Labels``,
  each optionally followed by ``[index]`` (parsed with ``(.+)\\[(.+)]``).
* At trial creation the values are: ``Name`` the trial's name, ``Namespace`` the trial's namespace
  (the Experiment's), ``Kind`` / ``APIVersion`` those of the trial spec, ``Labels[k]`` /
  ``Annotations[k]`` the trial spec's own ``metadata.labels`` / ``annotations`` entry ``k`` (a
  missing key fails the trial's creation). An index on the other keys is ignored
  (``Name[x]`` is the trial name). ``Labels`` / ``Annotations`` without an index look up the index
  left over from an earlier reference of the same loop (a Katib quirk); this model treats that as the
  error it is in every other case (no key ``""``).
* Every non-metadata reference must have a value in the assignment, and the assignment must have no
  other names (``len(assignments)`` must equal the number of non-metadata trial parameters).
* The template is marshalled to JSON and each placeholder is replaced by its value as plain text,
  without JSON escaping, then parsed back; ``metadata.name`` / ``namespace`` are then set to the
  trial's. A value containing ``"`` or ``\\`` therefore breaks the JSON and the trial is never
  created; this model raises ManifestError for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from katib_model.errors import ManifestError

#: ``${trialParameters.<name>}`` (Katib's TrialTemplateParamReplaceFormatRegex, with a group).
PLACEHOLDER = re.compile(r"\$\{trialParameters\.(.+?)\}")
#: A metadata reference (TrialTemplateMetaReplaceFormatRegex), searched, not anchored.
META_REFERENCE = re.compile(r"\$\{trialSpec\.(.+?)\}")
#: ``Key[index]`` inside a metadata reference (TrialTemplateMetaParseFormatRegex).
META_INDEX = re.compile(r"(.+)\[(.+)]")
#: TrialTemplateMetaKeys.
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")


def placeholder(name: str) -> str:
    """The text ``${trialParameters.<name>}`` that a trial parameter replaces."""
    return f"${{trialParameters.{name}}}"


def _meta_key(reference: str) -> tuple[str, str] | None:
    """(key, index) of a metadata reference as the generator parses it; None when it is not one."""
    match = META_REFERENCE.search(reference)
    if match is None:
        return None
    key, index = match.group(1), ""
    indexed = META_INDEX.search(key)
    if indexed is not None:
        key, index = indexed.group(1), indexed.group(2)
    return key, index


def is_meta_reference(reference: str) -> bool:
    """True when Katib's webhook reads ``reference`` as trial metadata (``isMetaKey``), so it need not
    name an experiment parameter."""
    match = META_REFERENCE.search(reference)
    if match is None:
        return False
    key = match.group(1)
    if key in META_KEYS:
        return True
    indexed = META_INDEX.search(key)
    return indexed is not None and indexed.group(1) in META_KEYS


def meta_value(reference: str, trial_name: str, namespace: str, trial_spec: Mapping[str, Any]) -> str:
    """The value Katib's generator substitutes for a metadata reference (ManifestError where Katib
    fails the trial's creation: an unknown key, a missing label or annotation)."""
    parsed = _meta_key(reference)
    if parsed is None:
        raise ManifestError(f"{reference!r} is not a ${{trialSpec.*}} reference")
    key, index = parsed
    meta = trial_spec.get("metadata") or {}
    if key == "Name":
        return trial_name
    if key == "Namespace":
        return namespace
    if key == "Kind":
        return str(trial_spec.get("kind") or "")
    if key == "APIVersion":
        return str(trial_spec.get("apiVersion") or "")
    if key in ("Labels", "Annotations"):
        entries = meta.get(key.lower()) or {}
        if index not in entries:
            raise ManifestError(
                f"trial metadata reference {reference!r}: trialSpec.metadata.{key.lower()} has no key "
                f"{index!r} (has {sorted(entries)}); Katib fails the trial's creation"
            )
        return str(entries[index])
    raise ManifestError(
        f"{reference!r} is not a supported ${{trialSpec.*}} field; allowed: {', '.join(META_KEYS)} "
        "(Labels and Annotations as Labels[key])"
    )


@dataclass(frozen=True)
class TrialTemplate:
    """One ``spec.trialTemplate`` (the dict as written; nothing is copied or defaulted)."""

    body: Mapping[str, Any]

    @property
    def trial_spec(self) -> Mapping[str, Any] | None:
        """The inline ``trialSpec`` (None for a ``configMap`` template)."""
        spec = self.body.get("trialSpec")
        return spec if isinstance(spec, Mapping) else None

    @property
    def primary_container_name(self) -> str:
        """``primaryContainerName`` ("" when unset)."""
        return str(self.body.get("primaryContainerName") or "")

    @property
    def trial_parameters(self) -> dict[str, str]:
        """trialParameters name -> reference (an experiment parameter or ``${trialSpec...}`` metadata)."""
        return {str(p["name"]): str(p["reference"]) for p in self.body.get("trialParameters") or []}

    @property
    def kind(self) -> str:
        """The trial workload's kind ("" when unset or not inline)."""
        return str((self.trial_spec or {}).get("kind") or "")

    def _inline(self, where: str) -> Mapping[str, Any]:
        spec = self.trial_spec
        if spec is None:
            raise ManifestError(
                f"{where}: only an inline trialTemplate.trialSpec can be read here (not configMap)"
            )
        return spec

    def values(
        self, assignment: Mapping[str, str], trial_name: str, namespace: str, where: str = "trialTemplate"
    ) -> dict[str, str]:
        """trial parameter name -> the value Katib substitutes for it (ManifestError where Katib fails
        the trial's creation: a reference with no value, an assignment name no trial parameter uses)."""
        trial_spec = self._inline(where)
        out: dict[str, str] = {}
        used = 0
        for name, reference in self.trial_parameters.items():
            if META_REFERENCE.search(reference):
                try:
                    out[name] = meta_value(reference, trial_name, namespace, trial_spec)
                except ManifestError as err:
                    raise ManifestError(f"{where}: trial parameter {name}: {err}") from None
            elif reference in assignment:
                out[name] = str(assignment[reference])
                used += 1
            else:
                raise ManifestError(
                    f"{where}: trial parameter {name} references {reference!r}, which is neither an "
                    "experiment parameter nor a supported ${trialSpec.*} field"
                )
        if used != len(assignment):
            unused = sorted(set(assignment) - set(self.trial_parameters.values()))
            raise ManifestError(
                f"{where}: assignment names {unused} are referenced by no trial parameter; Katib needs "
                "exactly one trial parameter per experiment parameter"
            )
        return out

    def substitute(
        self, assignment: Mapping[str, str], trial_name: str, namespace: str, where: str = "trialTemplate"
    ) -> dict[str, Any]:
        """The trial workload Katib creates for ``assignment`` (see the module docstring for the rules);
        a placeholder no trial parameter declares is an error, as in Katib's webhook."""
        values = self.values(assignment, trial_name, namespace, where)
        text = json.dumps(self._inline(where))
        for name, value in values.items():
            text = text.replace(placeholder(name), value)
        undeclared = sorted(set(PLACEHOLDER.findall(text)))
        if undeclared:
            raise ManifestError(
                f"{where}: {', '.join(placeholder(u) for u in undeclared)} "
                f"{'is' if len(undeclared) == 1 else 'are'} used but not declared in trialTemplate.trialParameters"
            )
        try:
            workload = json.loads(text)
        except json.JSONDecodeError:
            bad = {n: v for n, v in values.items() if any(c in v for c in '"\\')}
            raise ManifestError(
                f"{where}: values {bad} contain '\"' or '\\', which Katib inserts unescaped into the "
                "template's JSON: the trial could not be created"
            ) from None
        metadata = workload.setdefault("metadata", {})
        metadata.update({"name": trial_name, "namespace": namespace})
        return workload

    def primary_container(self, workload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The first container named ``primaryContainerName`` in ``workload`` (default: the template's
        trialSpec); ManifestError when there is none."""
        source = self._inline("trialTemplate") if workload is None else workload
        for container in containers(source):
            if container.get("name") == self.primary_container_name:
                return container
        raise ManifestError(f"the trial template has no container named {self.primary_container_name!r}")


def containers(obj: Any) -> Iterator[dict[str, Any]]:
    """Every container dict anywhere under a Job-like object (init containers are not ``containers``)."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if key == "containers" and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from containers(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from containers(item)
