"""What a benchmark run measured, as frozen data with a JSON round trip.

Nothing here imports torch, so the report renderers and ``headaudit bench --json``
readers can load a result without it. Every record is a frozen dataclass; a
:class:`BenchResult` converts to a JSON-safe dict (:meth:`BenchResult.to_dict`) and
back (:meth:`BenchResult.from_dict`), and ``from_dict(to_dict(r)) == r``.

JSON safety: non-finite floats never reach the JSON. Quantities that can be undefined
(a ratio against a reference that did not run, an R^2 of a fit without spread) are typed
``float | None`` and are ``None`` when undefined; the encoder turns any stray NaN or
infinity into ``None`` and the decoder then refuses it for a field that must be a number,
so the problem shows at once instead of as ``NaN`` in a report.

Times are seconds per call, FLOP rates FLOP/s, overheads seconds per operator.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

__all__ = [
    "SCHEMA_VERSION",
    "BenchResult",
    "BreakReason",
    "CompiledStep",
    "Distance",
    "Environment",
    "GraphBreaks",
    "GridPoint",
    "GrowthFit",
    "HostSyncs",
    "Kind",
    "Limit",
    "OpScaling",
    "SampleStats",
    "StepCounts",
    "StepTimes",
    "result_filename",
]

#: Bumped whenever a field is renamed, removed or changes meaning (additions too:
#: :meth:`BenchResult.from_dict` reads exactly this version).
SCHEMA_VERSION = 2

#: ``"train"``: zero_grad, forward in train mode with labels, backward.
#: ``"forward"``: forward in eval mode under ``torch.no_grad()``, without labels.
Kind = Literal["train", "forward"]


@dataclass(frozen=True)
class GridPoint:
    """One input configuration: ``pool_img_features (batch, patches, img_feat_dim)``,
    ``img_features (batch, img_feat_dim)``, ``labels (batch,)`` over ``num_classes``;
    the head is built with ``(num_classes, emb_dim)``."""

    batch: int
    num_classes: int
    emb_dim: int
    img_feat_dim: int
    patches: int = 49

    def __post_init__(self) -> None:
        for name in ("batch", "num_classes", "emb_dim", "img_feat_dim", "patches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GridPoint.{name} must be a positive int, got {value!r}")

    @classmethod
    def of(cls, batch: int, num_classes: int, emb_dim: int, *, img_feat_dim: int | None = None) -> GridPoint:
        """A point whose image features are as wide as the embedding unless said otherwise."""
        return cls(batch, num_classes, emb_dim, emb_dim if img_feat_dim is None else img_feat_dim)

    @property
    def label(self) -> str:
        """Short label for tables and test ids, e.g. ``B32-C7-E256``."""
        return f"B{self.batch}-C{self.num_classes}-E{self.emb_dim}"


@dataclass(frozen=True)
class SampleStats:
    """Robust summary of timing samples (seconds per call); ``None`` where ``n == 0``.

    ``p10`` is the statistic that ratios use (BENCH.md: a low quantile cancels the noise
    of shared machines best); ``median`` and ``iqr`` are what tables show.
    """

    n: int
    p10: float | None
    median: float | None
    q25: float | None
    q75: float | None
    iqr: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class StepTimes:
    """One row of the step-time table: every subject at one grid point and kind.

    ``samples[s]`` are the raw samples in the order they were taken, interleaved one by
    one with the other subjects' (A B B A ...). ``ratios[s] = p10(s) / p10(reference)``;
    ``None`` where either side has no samples.
    """

    kind: Kind
    point: GridPoint
    number: int
    stats: Mapping[str, SampleStats]
    samples: Mapping[str, tuple[float, ...]]
    ratios: Mapping[str, float | None]


@dataclass(frozen=True)
class StepCounts:
    """Machine-independent counts of one step of one subject at one grid point.

    ``ops``: ATen operators dispatched (views, in-place ops and backward ops included);
    ``flops``: FLOPs of matmul, convolution and attention kernels as
    ``torch.utils.flop_counter`` counts them (elementwise ops count zero);
    ``top_ops``: the most frequent operators, most frequent first.
    """

    subject: str
    kind: Kind
    point: GridPoint
    ops: int
    flops: int
    top_ops: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class GrowthFit:
    """How a count grows with a size: ``count ~ coefficient * size ** exponent``.

    ``exponent`` and ``coefficient`` come from least squares on ``log(count)`` against
    ``log(size)``; ``r2`` is the coefficient of determination of that line in log space.
    ``local_exponents`` are the slopes between successive points: a loop nest that is
    quadratic under a linear part shows them rising towards 2 while the overall fit
    stays between 1 and 2. ``quadratic`` is ``(a, b, c)`` of the least-squares fit
    ``count = a + b * size + c * size ** 2`` (``None`` with fewer than 3 sizes); ``c > 0``
    is the quadratic term.
    """

    exponent: float
    coefficient: float
    r2: float | None
    local_exponents: tuple[float, ...]
    quadratic: tuple[float, float, float] | None


@dataclass(frozen=True)
class OpScaling:
    """Operators per training step of one subject against ``num_classes``.

    Measured at a fixed ``batch`` (at least the largest class count, with labels that
    cover every class, so every per-class loop runs fully) and ``emb_dim``.
    ``error`` says why the series stopped early; ``fit`` is ``None`` with fewer than two
    points.
    """

    batch: int
    emb_dim: int
    num_classes: tuple[int, ...]
    ops: tuple[int, ...]
    fit: GrowthFit | None
    error: str | None = None


@dataclass(frozen=True)
class BreakReason:
    """One distinct reason for a graph break and where in the user's code it happens."""

    reason: str
    file: str | None
    line: int | None
    count: int

    @property
    def location(self) -> str | None:
        """``file-name:line`` of the innermost user frame, or ``None`` when unknown."""
        if self.file is None:
            return None
        name = re.split(r"[\\/]", self.file)[-1]
        return name if self.line is None else f"{name}:{self.line}"


@dataclass(frozen=True)
class GraphBreaks:
    """What ``torch._dynamo.explain`` found on a subject's training forward (with labels).

    ``error`` is set (and the counts are ``None``) when dynamo itself could not run; it
    says why. ``graph_break_count`` is dynamo's own count; ``reasons`` groups the break
    reasons it recorded by (shortened reason, location). The reasons' counts need not
    add up to ``graph_break_count``: dynamo keeps the two apart (head.py at 4 classes:
    5 breaks, 3 recorded reasons).
    """

    num_classes: int
    batch: int
    graph_count: int | None
    graph_break_count: int | None
    reasons: tuple[BreakReason, ...]
    error: str | None = None


@dataclass(frozen=True)
class CompiledStep:
    """The training step of one subject under ``torch.compile`` at one grid point.

    ``status``: ``"timed"`` (the head traced as one graph, compiled, and was timed),
    ``"n/a"`` (``torch._dynamo.explain`` found ``graph_breaks`` breaks, the first of them
    ``reason``; a compiled step that falls back to eager between graphs is not the
    compiled head, so it is not timed) or ``"error"`` (tracing or compiling raised:
    ``error`` says what). ``compile_s`` is the wall time of the first compiled call (the
    compilation; never part of a sample). ``compiled`` and ``eager`` are the samples of
    the compiled and the eager step, interleaved one by one in one loop with every other
    compiled subject, so ``speedup = p10(eager) / p10(compiled)`` comes from one loop;
    ``ratio = p10(compiled) / p10(reference compiled)`` where the reference compiled too.
    """

    subject: str
    point: GridPoint
    status: Literal["timed", "n/a", "error"]
    graph_breaks: int | None = None
    reason: str | None = None
    error: str | None = None
    compile_s: float | None = None
    compiled: SampleStats | None = None
    eager: SampleStats | None = None
    speedup: float | None = None
    ratio: float | None = None


@dataclass(frozen=True)
class HostSyncs:
    """Device-to-host synchronisations per training step; ``count is None`` means n/a.

    ``note`` says how it was measured or why it is n/a (the CPU build has no sync debug
    mode, and a CPU step has nothing to synchronise with); ``error`` is set when the
    subject raised while being measured.
    """

    count: int | None
    note: str
    error: str | None = None


@dataclass(frozen=True)
class Limit:
    """The machine's limits measured in the same run as the subjects.

    ``per_op_overhead_s``: p10 time of one trivial operator (``overhead_op``);
    ``flop_rate``: FLOP/s of a square ``matmul_n`` float32 matmul (p10 time).
    A step cannot be faster than ``max(flops / flop_rate, ops * per_op_overhead_s)``.
    """

    per_op_overhead_s: float
    overhead_op: str
    flop_rate: float
    matmul_n: int
    threads: int


@dataclass(frozen=True)
class Distance:
    """How far a subject's measured step is from the machine's floor for that step.

    ``floor_s = max(flop_floor_s, overhead_floor_s)``; ``bound`` names the larger one;
    ``distance = measured_p10_s / floor_s`` (1 would be at the limit).
    """

    subject: str
    kind: Kind
    point: GridPoint
    measured_p10_s: float | None
    flop_floor_s: float
    overhead_floor_s: float
    floor_s: float
    bound: Literal["flops", "overhead"]
    distance: float | None


@dataclass(frozen=True)
class Environment:
    """Where the numbers come from: ``threads`` is the intra-op thread count while timing."""

    device: str
    device_name: str
    threads: int
    torch_version: str
    python_version: str
    platform: str
    cuda_version: str | None


@dataclass(frozen=True)
class BenchResult:
    """Everything one ``run_bench`` measured: the data of the report's Performance section.

    ``subjects`` keeps the order the subjects were given in; ``reference`` is the one the
    ratios divide by. Subjects that raised are listed in ``errors`` (subject -> stage and
    message) and are missing from the measurements after the stage that failed; the key
    ``"(limit)"`` holds the error of the limit probes, if they failed (``limit`` is then
    ``None`` and so are the distances). ``elapsed_s`` is the run's wall time. ``compiled``: the training
    step under ``torch.compile`` at each of the config's ``compiled_points`` (empty when
    none were asked for).
    """

    schema_version: int
    mode: Literal["quick", "full"]
    seed: int
    reference: str
    subjects: tuple[str, ...]
    environment: Environment
    limit: Limit | None
    times: tuple[StepTimes, ...]
    counts: tuple[StepCounts, ...]
    scaling: Mapping[str, OpScaling]
    graph_breaks: Mapping[str, GraphBreaks]
    host_syncs: Mapping[str, HostSyncs]
    distances: tuple[Distance, ...]
    errors: Mapping[str, str]
    elapsed_s: float
    compiled: tuple[CompiledStep, ...] = ()

    # -- lookups -------------------------------------------------------------------

    def times_for(self, kind: Kind, point: GridPoint) -> StepTimes | None:
        """The table row for ``kind`` at ``point``, if it was measured."""
        return next((t for t in self.times if t.kind == kind and t.point == point), None)

    def counts_for(self, subject: str, kind: Kind, point: GridPoint) -> StepCounts | None:
        """The counts of ``subject``'s ``kind`` step at ``point``, if they were measured."""
        return next(
            (c for c in self.counts if c.subject == subject and c.kind == kind and c.point == point),
            None,
        )

    # -- JSON ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (str keys, lists, finite floats or ``None``)."""
        encoded = _encode(self)
        assert isinstance(encoded, dict)
        return encoded

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchResult:
        """Rebuild a result written by :meth:`to_dict`; refuses another schema version."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"bench result schema_version {version!r} is not {SCHEMA_VERSION}; re-run `headaudit bench`"
            )
        decoded = _decode(cls, data, "result")
        assert isinstance(decoded, cls)
        return decoded

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON (``allow_nan=False``), keys in field order."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        return cls.from_dict(json.loads(text))


def result_filename(device: str, device_name: str, day: date) -> str:
    """File name of a saved run: ``<device>-<device-name-slug>-<YYYY-MM-DD>.json``.

    ``result_filename("cuda", "NVIDIA H200", date(2025, 1, 2))`` is
    ``"cuda-nvidia-h200-2025-01-02.json"``; the slug keeps ``[a-z0-9]`` runs joined by ``-``.
    """
    kind = device.split(":", 1)[0]
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-") or "unknown"
    return f"{kind}-{slug}-{day.isoformat()}.json"


# -- a small typed codec for the dataclasses above ---------------------------------------


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"cannot encode {type(value).__name__} {value!r} in a bench result")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _decode(tp: Any, data: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _decode(option, data, path)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError(f"{path}: {data!r} fits none of {tp}: {'; '.join(errors)}")
    if origin is Literal:
        if data not in args:
            raise ValueError(f"{path}: {data!r} is not one of {args}")
        return data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, Mapping):
            raise TypeError(f"{path}: expected an object for {tp.__name__}, got {data!r}")
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = _decode(hints[f.name], data[f.name], f"{path}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{path}: missing field {f.name!r} of {tp.__name__}")
        return tp(**kwargs)
    if origin in (Mapping, dict):
        if not isinstance(data, Mapping):
            raise TypeError(f"{path}: expected an object, got {data!r}")
        return {str(k): _decode(args[1], v, f"{path}.{k}") for k, v in data.items()}
    if origin is tuple:
        if not isinstance(data, (list, tuple)):
            raise TypeError(f"{path}: expected a list, got {data!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{path}[{i}]") for i, v in enumerate(data))
        if len(args) != len(data):
            raise ValueError(f"{path}: expected {len(args)} items, got {len(data)}")
        return tuple(_decode(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, data, strict=True)))
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise TypeError(f"{path}: expected a number, got {data!r}")
        return float(data)
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise TypeError(f"{path}: expected an integer, got {data!r}")
        return data
    if tp is str:
        if not isinstance(data, str):
            raise TypeError(f"{path}: expected a string, got {data!r}")
        return data
    if tp is bool:
        if not isinstance(data, bool):
            raise TypeError(f"{path}: expected true or false, got {data!r}")
        return data
    raise TypeError(f"{path}: no decoder for {tp!r}")
