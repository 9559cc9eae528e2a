"""Stage: dataset (layer 3) — samples: datasets with the physics they stand for.

An analysis over simulated and recorded events needs, for each set of files,
what it is: a process with a cross-section, how many events were generated, its
role in the measurement, and which nominal sample an alternative sample (another
generator, another scale) varies. A *samples file* says it once::

    luminosity: 3378            # integrated luminosity, pb^-1
    tree: Events                # default for every sample
    samples:
      ttbar:
        files: [ttbar/*.root]   # paths (relative to this file), globs, URLs, @catalog names
        xsec: 729.84            # pb
        generated: 1000000      # generated events, or the sum of generator weights
        role: signal            # signal | background | data
      ttbar_PS_var:
        files: [ttbar_PS_var/*.root]
        xsec: 729.84
        generated: 500000
        role: signal
        variation_of: ttbar     # an alternative sample of ttbar ...
        variation: PS_var       # ... standing for this systematic
      data:
        files: [data/*.root]
        role: data

Any other key of a sample (``nominal_process: ...``) is kept in
:attr:`Sample.metadata`.

:func:`saetta.run` over :class:`Samples` runs the analysis on every sample's
events and keys the result by sample: ``result["ttbar"]`` is what the analysis
returned for the ttbar files. The analysis gets its sample with the events,
``events.attrs["sample"]`` (a :class:`Sample`), and its normalisation as
:attr:`Sample.weight`: ``xsec × luminosity / generated`` (1 for data), to be
multiplied by each event's generator weight (:func:`event_weights` does both).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from saetta.dataset import Dataset
from saetta.errors import DatasetError
from saetta.storage import is_remote
from saetta.units import FileInfo, file_key

__all__ = [
    "ROLES",
    "Sample",
    "SampleAnalysis",
    "Samples",
    "event_weights",
    "sample_of",
    "wrapped_analysis",
]

ROLES = ("signal", "background", "data")
_KEYS = frozenset(
    {"files", "xsec", "generated", "role", "variation_of", "variation", "tree", "format"}
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample: its files and the physics they stand for (see the module docstring)."""

    name: str
    files: tuple[str, ...]
    role: str = "background"
    xsec_pb: float | None = None
    generated: float | None = None
    luminosity_pb: float | None = None
    variation_of: str | None = None
    variation: str | None = None
    tree: str = "Events"
    format: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"sample {self.name!r}"
        if self.role not in ROLES:
            msg = f"{where}: role must be one of {', '.join(ROLES)}, not {self.role!r}"
            raise DatasetError(msg)
        if not self.files:
            msg = f"{where} has no files"
            raise DatasetError(msg)
        if self.role == "data":
            return
        for label, value in (("xsec", self.xsec_pb), ("generated", self.generated)):
            if not _positive(value):
                msg = f"{where}: {label} must be a positive number, not {value!r}"
                raise DatasetError(msg)
        if (self.variation_of is None) != (self.variation is None):
            msg = f"{where}: give both variation_of and variation, or neither"
            raise DatasetError(msg)

    @property
    def weight(self) -> float:
        """The normalisation of one event of unit generator weight: ``xsec × lumi / generated``."""
        if self.role == "data":
            return 1.0
        if self.luminosity_pb is None:
            msg = f"sample {self.name!r} has no luminosity to be normalised to"
            raise DatasetError(msg)
        assert self.xsec_pb is not None
        assert self.generated is not None
        return self.xsec_pb * self.luminosity_pb / self.generated

    @property
    def is_nominal(self) -> bool:
        return self.variation_of is None

    def to_dict(self) -> dict[str, Any]:
        """What the output file records about the sample (JSON-able; no file names)."""
        return {
            "role": self.role,
            "xsec_pb": self.xsec_pb,
            "generated": self.generated,
            "luminosity_pb": self.luminosity_pb,
            "weight": self.weight if self.role == "data" or self.luminosity_pb else None,
            "variation_of": self.variation_of,
            "variation": self.variation,
            "metadata": dict(self.metadata),
        }


class Samples(Mapping[str, Sample]):
    """The samples of an analysis, by name, with the luminosity they are normalised to.

    Examples
    --------
    >>> samples = saetta.Samples.from_yaml("data/agc/samples.yaml")  # doctest: +SKIP
    >>> result = saetta.run(saetta.analyses.agc.analysis, samples)  # doctest: +SKIP
    >>> result["ttbar"]["4j2b"]["nominal"].plot()  # doctest: +SKIP
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        luminosity_pb: float | None = None,
        *,
        storage_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if luminosity_pb is not None and not _positive(luminosity_pb):
            msg = f"the luminosity must be a positive number of pb^-1, not {luminosity_pb!r}"
            raise DatasetError(msg)
        self.luminosity_pb = luminosity_pb
        self.storage_options = dict(storage_options or {})
        self._samples: dict[str, Sample] = {}
        for sample in samples:
            if sample.name in self._samples:
                msg = f"sample {sample.name!r} is given twice"
                raise DatasetError(msg)
            self._samples[sample.name] = replace(sample, luminosity_pb=luminosity_pb)
        if any(s.role != "data" for s in self._samples.values()) and luminosity_pb is None:
            msg = "the samples need a luminosity (pb^-1) to normalise simulated samples to"
            raise DatasetError(msg)
        for sample in self._samples.values():
            if sample.variation_of is not None and sample.variation_of not in self._samples:
                msg = (
                    f"sample {sample.name!r} varies {sample.variation_of!r}, which is not "
                    f"among the samples ({', '.join(self._samples)})"
                )
                raise DatasetError(msg)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Samples:
        """Read a samples file (see the module docstring); relative paths are taken from
        the file's own folder."""
        path = Path(path)
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            reason = " ".join(str(exc).split())[:200]
            msg = f"cannot read samples file {path}: {reason}"
            raise DatasetError(msg, path=str(path)) from exc
        if not isinstance(document, Mapping) or not isinstance(document.get("samples"), Mapping):
            msg = f"samples file {path} must have a 'samples:' mapping of names to samples"
            raise DatasetError(msg, path=str(path))
        tree = document.get("tree", "Events")
        folder = path.parent
        samples = []
        for name, entry in document["samples"].items():
            if not isinstance(entry, Mapping):
                msg = f"sample {name!r} in {path} must be a mapping, not {type(entry).__name__}"
                raise DatasetError(msg, path=str(path))
            files = entry.get("files")
            if isinstance(files, str):
                files = [files]
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                msg = f"sample {name!r} in {path}: files must be a list of paths or URLs"
                raise DatasetError(msg, path=str(path))
            try:
                sample = Sample(
                    name=str(name),
                    files=tuple(_resolve(f, folder) for f in files),
                    role=entry.get("role", "background"),
                    xsec_pb=entry.get("xsec"),
                    generated=entry.get("generated"),
                    variation_of=entry.get("variation_of"),
                    variation=entry.get("variation"),
                    tree=entry.get("tree", tree),
                    format=entry.get("format"),
                    metadata={k: v for k, v in entry.items() if k not in _KEYS},
                )
            except DatasetError as exc:
                msg = f"{exc} (in {path})"
                raise DatasetError(msg, path=str(path)) from None
            samples.append(sample)
        return cls(
            samples,
            document.get("luminosity"),
            storage_options=document.get("storage_options"),
        )

    def __getitem__(self, name: str) -> Sample:
        return self._samples[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def dataset(self, **options: Any) -> Dataset:
        """All samples' files as one dataset (``options`` go to :meth:`Dataset.open`).

        Raises
        ------
        DatasetError
            A file belongs to two samples (its events would count twice).
        """
        return self._open(options)[0]

    def analysis(
        self, function: Callable[[Any], Any], **options: Any
    ) -> tuple[SampleAnalysis, Dataset]:
        """``function`` run per sample (its result keyed by sample), and the dataset of
        all samples' files to run it on."""
        dataset, owners = self._open(options)
        return SampleAnalysis(function, owners, self._samples), dataset

    def _open(self, options: Mapping[str, Any]) -> tuple[Dataset, dict[str, str]]:
        infos: list[FileInfo] = []
        owners: dict[str, str] = {}
        storage = None
        for sample in self._samples.values():
            for opened in self._datasets(sample, options):
                storage = storage or opened.storage
                for info in opened.files:
                    key = file_key(info.path)
                    if key in owners:
                        msg = f"{info.path} is in both sample {owners[key]!r} and {sample.name!r}"
                        raise DatasetError(msg, path=info.path)
                    owners[key] = sample.name
                infos.extend(opened.files)
        assert storage is not None
        return Dataset(tuple(infos), name=", ".join(self._samples), storage=storage), owners

    def _datasets(self, sample: Sample, options: Mapping[str, Any]) -> Iterator[Dataset]:
        paths = [f for f in sample.files if not f.startswith("@")]
        if paths:
            yield Dataset.open(
                paths,
                sample.tree,
                format=sample.format,
                name=sample.name,
                storage_options=self.storage_options,
                **options,
            )
        for name in sample.files:
            if name.startswith("@"):
                yield Dataset.from_catalog(name[1:], **options)

    def to_dict(self) -> dict[str, Any]:
        """The samples as the output file records them."""
        return {
            "luminosity_pb": self.luminosity_pb,
            "samples": {name: s.to_dict() for name, s in self._samples.items()},
        }

    def __repr__(self) -> str:
        lumi = f", {self.luminosity_pb:g} pb^-1" if self.luminosity_pb else ""
        return f"Samples({', '.join(self._samples)}{lumi})"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{s.name}</td><td>{s.role}</td><td>{s.xsec_pb or ''}</td>"
            f"<td>{s.generated or ''}</td><td>{s.weight:.4g}</td>"
            f"<td>{s.variation_of or ''} {s.variation or ''}</td></tr>"
            for s in self._samples.values()
        )
        return (
            f"<b>{self!r}</b><table><tr><th>sample</th><th>role</th><th>xsec [pb]</th>"
            f"<th>generated</th><th>weight</th><th>varies</th></tr>{rows}</table>"
        )


class SampleAnalysis:
    """An analysis run per sample: each unit's events carry their :class:`Sample` in
    ``events.attrs["sample"]``, and its result is ``{sample name: result}``.

    ``__wrapped__`` is the analysis itself, which is what names the run and
    travels to workers (see :mod:`saetta.execute.fingerprint`).
    """

    def __init__(
        self,
        function: Callable[[Any], Any],
        sample_by_file: Mapping[str, str],
        samples: Mapping[str, Sample],
    ) -> None:
        self.__wrapped__ = function
        self.sample_by_file = dict(sample_by_file)
        self.samples = dict(samples)

    def __call__(self, events: Any) -> dict[str, Any]:
        sample = self.samples[self.sample_by_file[file_key(events.attrs["path"])]]
        events.attrs["sample"] = sample
        return {sample.name: self.__wrapped__(events)}

    @property
    def digest(self) -> str:
        """What the samples contribute to the run's fingerprint: their physics, not their order."""
        facts = {
            "files": sorted(self.sample_by_file.items()),
            "samples": {n: s.to_dict() for n, s in sorted(self.samples.items())},
        }
        text = json.dumps(facts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def wrapped_analysis(analysis: Any) -> Any:
    """The user's analysis inside a :class:`SampleAnalysis`; any other analysis itself
    (a decorated function keeps its wrapper: the wrapper's arguments name the run too)."""
    return analysis.__wrapped__ if isinstance(analysis, SampleAnalysis) else analysis


def sample_of(events: Any) -> Sample | None:
    """The sample of a unit's events, when the run is over :class:`Samples`."""
    sample = events.attrs.get("sample") if hasattr(events, "attrs") else None
    return sample if isinstance(sample, Sample) else None


def event_weights(events: Any) -> np.ndarray:
    """Each event's weight: the sample's normalisation times ``genWeight`` (where the file
    has one; data and files without it: the normalisation alone). Outside a samples run,
    ``genWeight`` alone, or ones."""
    sample = sample_of(events)
    norm = sample.weight if sample is not None else 1.0
    if (sample is None or sample.role != "data") and "genWeight" in events.fields:
        return norm * np.asarray(events.genWeight, dtype=np.float64)
    return np.full(len(events), norm, dtype=np.float64)


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _resolve(name: str, folder: Path) -> str:
    if name.startswith("@") or is_remote(name) or os.path.isabs(os.path.expanduser(name)):
        return name
    return str(folder / name)
