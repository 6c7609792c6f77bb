"""Whether a loss term a check reads can train: its gradient against a finite difference.

A term that returns the right value and no gradient (``.detach()`` appended, computed under
``torch.no_grad()``) passes every comparison of values and trains nothing; a masked minimum
such as ``min(d * same_class_mask)`` is 0 whatever the distances, so it neither moves nor
trains. Every check that reads a loss term therefore also probes it here, in a state the
check already built (CHECKS.md, "A loss term must train").

The probe. The term is a function of some tensors the check controls: the similarities and
prototypes it feeds the loss, or the head's own parameters (``proto_manager.prototypes``
and the parameters the class embeddings come from, ``mixed_attn`` and ``proj``), in float64
where the head allows. They are grouped (one group per input or module); per group, one
seeded direction ``v`` of random signs and magnitudes (each entry ``±(0.5 + u)``, ``u``
uniform in ``[0, 1)``: a term that weighs many entries alike, a mean over samples, would
have a directional derivative of exactly 0 along about one direction in five of pure signs,
and a gradient that flows could then not be told from one that is wrong), and

- autograd's directional derivative ``<grad T, v>`` (0 where the term has no graph or the
  gradient does not reach the group),
- the central difference ``(T(x + h v) - T(x - h v)) / 2h`` at ``h`` and at ``h / 2``,
  with ``h`` the cube root of the epsilon of the coarsest dtype on the path (the inputs
  moved, and what produced the term, an autocast region included): the step that
  balances rounding against truncation; ``h / 10`` is tried too, which crosses fewer kinks
  of a hinge or a minimum.

Tolerance: the rounding of the term (:func:`headaudit.precision.tolerance` at its
magnitude) divided by the step, the rounding of autograd's sum (the same rule at
``sum |g v|``), ten times the gap between the differences at ``h`` and ``h / 2`` (their
truncation error), the gap between the forward and the backward difference (small where the
term is smooth, the jump of its slope where a hinge or a minimum's kink lies within the
step: a central difference across a kink averages two slopes), and ``1e-3`` of the
derivatives. The value *moves*
along a group when the difference exceeds that tolerance without the relative part.

Outcomes per term (:data:`OUTCOMES`): ``trains`` (a gradient flows and agrees with the
difference), ``inactive`` (the value does not move along any group in this state and no
gradient flows: a hinge with every distance past the margin; said, never a failure), and
three failures: ``no-gradient`` (the value moves and the term has no graph
or no gradient reaches the group), ``disagrees`` (a gradient, but not the derivative of
the value), ``identically-zero`` or ``constant`` (nothing moves where the check's own
oracle says the term is active in this state). A group fails only when it fails at every
step tried.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from headaudit.adapters import Head, loss_terms
from headaudit.context import Context
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.names import split_key
from headaudit.precision import coarsest, dtype_name, moved_in, tolerance
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = [
    "FAILING",
    "OUTCOMES",
    "PARAMETER_NEEDS",
    "READERS",
    "TermTraining",
    "TrainingLog",
    "float64_copy",
    "leaf",
    "parameter_groups",
    "probe",
    "probe_head",
    "probe_loss",
    "subject_key",
    "untrained",
    "with_case",
]

OUTCOMES = ("trains", "inactive", "unmeasured", "no-gradient", "disagrees", "identically-zero", "constant")
FAILING = frozenset({"no-gradient", "disagrees", "identically-zero", "constant"})

#: The checks that read a loss term, and so probe it here (the tests run item 2 on each).
READERS = (
    "contrastive.pairs",
    "contrastive.value",
    "contrastive.tiny",
    "losses.conflicts",
    "edges.cluster-empty",
    "edges.small-batches",
    "forward.contract",
    "loss.terms-sum",
    "loss.cluster-nearest",
    "loss.cluster-scale",
    "loss.separation-value",
    "loss.diversity-value",
    "weights.absent-classes",
    "weights.cb-vs-inverse",
)

#: Optional names of the modules the class embeddings come from (probed where present).
PARAMETER_NEEDS = ("?mixed_attn", "?proj")

_RELATIVE = 1e-3
_GAP = 10.0


@dataclass(frozen=True)
class TermTraining:
    """What the probe found for one term: the outcome, and the numbers of the group that decided it."""

    term: str
    outcome: str  # one of OUTCOMES
    along: str = "-"  # the group (input or module) where it was decided
    value: float = math.nan
    autograd: float = math.nan
    numeric: float = math.nan
    tolerance: float = math.nan
    step: float = math.nan
    dtype: str = ""
    case: str = ""  # the state probed, where a check probes several (contrastive.tiny)

    @property
    def failed(self) -> bool:
        return self.outcome in FAILING


def leaf(x: torch.Tensor, dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
    """A detached copy of ``x`` (in ``dtype``) that requires grad: an input the probe can move."""
    out = x.detach().clone()
    if dtype is not None and out.is_floating_point():
        out = out.to(dtype)
    return out.requires_grad_(True)


def float64_copy(head: Head) -> Head | None:
    """A float64 copy of ``head`` (the original is untouched), or None where it refuses."""
    twin = copy.deepcopy(head)
    try:
        call_subject("to(float64)", twin.to, torch.float64)
    except SubjectRaised:
        return None
    return twin


def parameter_groups(
    ctx: Context, head: Head, prototypes: str = "proto_manager.prototypes"
) -> list[tuple[str, list[torch.Tensor]]]:
    """The head's parameters a term can train, in two groups: the prototype rows, and the
    parameters the class embeddings come from (``mixed_attn`` and ``proj`` where the head has
    them, declared as :data:`PARAMETER_NEEDS`)."""
    groups: list[tuple[str, list[torch.Tensor]]] = []
    protos = ctx.get(head, prototypes)
    if isinstance(protos, torch.Tensor) and protos.requires_grad:
        groups.append((prototypes, [protos]))
    names, params = [], []
    for name in ("mixed_attn", "proj"):
        if ctx.has(name):
            module = ctx.get(head, name)
            found = [p for _, p in sorted(module.named_parameters(), key=lambda kv: kv[0]) if p.requires_grad]
            if found:
                names.append(name)
                params.extend(found)
    if params:  # one group (one direction across them): the class embeddings' parameters
        groups.append((", ".join(names), params))
    return groups


def subject_key(ctx: Context, declared: str) -> str:
    """The subject's own key for a declared ``source[key]`` name (after the user's maps)."""
    found = split_key(ctx.subject.names.apply(declared))
    if found is None:
        raise ValueError(f"{declared!r} is not a source[key] name")
    return found[1]


def with_case(records: Iterable[TermTraining], case: str) -> tuple[TermTraining, ...]:
    """``records`` marked with the state they were probed in."""
    return tuple(dataclasses.replace(r, case=case) for r in records)


def _as_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, float)):
        return torch.tensor(float(value), dtype=torch.float64)
    return None


def _scalar(value: object) -> float:
    t = _as_tensor(value)
    return math.nan if t is None else float(t.detach().double().sum())


def _direction(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A seeded direction along ``t``: random signs times magnitudes in ``[0.5, 1.5)``."""
    signs = torch.randint(0, 2, t.shape, generator=gen, dtype=torch.float64) * 2 - 1
    return (signs * (0.5 + torch.rand(t.shape, generator=gen, dtype=torch.float64))).to(t.dtype)


@dataclass(frozen=True)
class _Group:
    term: str
    along: str
    outcome: str
    value: float
    autograd: float
    numeric: float
    tolerance: float
    step: float
    dtype: str


def probe(
    evaluate: Callable[[], Mapping[str, object]],
    groups: Sequence[tuple[str, Sequence[torch.Tensor]]],
    gen: torch.Generator,
    *,
    active: Mapping[str, bool] | None = None,
    case: str = "",
) -> tuple[TermTraining, ...]:
    """Probe every term ``evaluate()`` returns (name -> value), along each group of ``groups``.

    ``evaluate`` recomputes the terms from the current values of the groups' tensors, which
    are leaves that require grad (the probe moves them in place and restores them).
    ``active[name]`` is the check's own oracle: True where the term must depend on the inputs
    in this state (a term that then does not move is ``identically-zero`` or ``constant``).
    A subject exception propagates, as it would from the check's own call.
    """
    base = dict(evaluate())
    tensors = [t for _, ts in groups for t in ts]
    directions = [[_direction(t, gen) for t in ts] for _, ts in groups]
    autograd: dict[str, list[float]] = {}
    mass: dict[str, list[float]] = {}
    reached: dict[str, list[bool]] = {}  # whether the term's graph reaches the group at all
    for name, value in base.items():
        t = _as_tensor(value)
        grads: Sequence[torch.Tensor | None] = [None] * len(tensors)
        if t is not None and t.requires_grad and tensors:
            grads = torch.autograd.grad(t.sum(), tensors, retain_graph=True, allow_unused=True)
        it = iter(grads)
        per_group = [[next(it) for _ in ts] for _, ts in groups]
        autograd[name] = [
            sum(float((g.double() * v.double()).sum()) for g, v in zip(gs, vs, strict=True) if g is not None)
            for gs, vs in zip(per_group, directions, strict=True)
        ]
        reached[name] = [any(g is not None for g in gs) for gs in per_group]
        mass[name] = [
            sum(float((g.double() * v.double()).abs().sum()) for g, v in zip(gs, vs, strict=True) if g is not None)
            for gs, vs in zip(per_group, directions, strict=True)
        ]
    values = {name: _scalar(v) for name, v in base.items()}
    # each term's precision: the coarsest dtype on the paths from the moved tensors to it
    # (headaudit.precision; a constant that does not depend on them rounds nothing that moves)
    moved_tensors = [t for _, ts in groups for t in ts]
    dtypes = {name: moved_in(v, moved_tensors, default=torch.float64) for name, v in base.items()}

    def moved(ts: Sequence[torch.Tensor], vs: Sequence[torch.Tensor], h: float) -> dict[str, float]:
        with torch.no_grad():
            saved = [t.detach().clone() for t in ts]
            try:
                for t, v in zip(ts, vs, strict=True):
                    t.add_(h * v)
                plus = {k: _scalar(v) for k, v in evaluate().items()}
                for t, s, v in zip(ts, saved, vs, strict=True):
                    t.copy_(s - h * v)
                minus = {k: _scalar(v) for k, v in evaluate().items()}
            finally:
                for t, s in zip(ts, saved, strict=True):
                    t.copy_(s)
        out: dict[str, float] = {}
        for k in base:
            p, m = plus.get(k, math.nan), minus.get(k, math.nan)
            out[k] = (p - m) / (2 * h)
            out[f"{k}\0mag"] = max(abs(p), abs(m))
            # forward minus backward difference: h |v'Hv| where the term is smooth, the whole jump
            # of the slope where a kink (a hinge, a minimum changing hands) lies within the step
            out[f"{k}\0kink"] = abs(p + m - 2 * values[k]) / h
            # the larger one-sided move: a value that moves at all, kink or not
            out[f"{k}\0moved"] = max(abs(p - values[k]), abs(m - values[k])) / h
        return out

    found: dict[str, list[_Group]] = {name: [] for name in base}
    for g, (along, ts) in enumerate(groups):
        if not ts:
            continue
        # the step follows the coarsest precision on the path: the inputs moved and what
        # produced each term (a loss that casts float64 inputs to float32 rounds at float32;
        # an autocast region on the way rounds at its dtype)
        floating = [t.dtype for t in ts if t.is_floating_point()] + list(dtypes.values())
        h0 = torch.finfo(coarsest(*floating)).eps ** (1 / 3)
        pending = {name for name in base if math.isfinite(values[name])}
        last: dict[str, _Group] = {}
        for h in (h0, h0 / 10):
            coarse, fine = moved(ts, directions[g], h), moved(ts, directions[g], h / 2)
            for name in sorted(pending):
                ag, fd = autograd[name][g], fine[name]
                magnitude = max(abs(values[name]), fine[f"{name}\0mag"], coarse[f"{name}\0mag"])
                if not math.isfinite(fd):  # the value itself is not finite nearby: nothing to compare
                    last[name] = _Group(name, along, "unmeasured", values[name], ag, fd, math.nan, h, "")
                    pending.discard(name)
                    continue
                if not math.isfinite(ag):  # a NaN or infinite gradient trains nothing
                    last[name] = _Group(name, along, "disagrees", values[name], ag, fd, math.nan, h / 2, "")
                    pending.discard(name)
                    continue
                noise = (
                    tolerance(dtypes[name], magnitude) / (h / 2)
                    + tolerance(dtypes[name], mass[name][g])
                    + _GAP * abs(coarse[name] - fd)
                    + fine[f"{name}\0kink"]
                )
                tol = noise + _RELATIVE * max(abs(fd), abs(ag))
                dname = dtype_name(dtypes[name])
                rounding = 2 * tolerance(dtypes[name], magnitude) / (h / 2)
                if not reached[name][g] and fine[f"{name}\0moved"] > rounding:
                    # no graph reaches the group, yet the value moves: whatever the kinks
                    # in the way, nothing can train it along this group
                    outcome = "no-gradient"
                elif abs(fd) <= noise and abs(ag) <= tol:
                    # below what the difference resolves: at rest where no gradient flows (a
                    # hinge, a constant), trained where a gradient flows and agrees (a term
                    # small in this state, such as one shrunk by its class weight)
                    outcome = "inactive" if mass[name][g] == 0.0 else "trains"
                elif abs(ag - fd) <= tol:
                    outcome = "trains"
                else:
                    outcome = "no-gradient" if mass[name][g] == 0.0 else "disagrees"
                last[name] = _Group(name, along, outcome, values[name], ag, fd, tol, h / 2, dname)
                # at rest only where the step crossed no kink that could hide a slope: else
                # the smaller step decides
                at_kink = outcome == "inactive" and fine[f"{name}\0kink"] > abs(fd) / 2 and h == h0
                if outcome in ("trains", "inactive") and not at_kink:
                    pending.discard(name)
            if not pending:
                break
        for name, record in last.items():
            found[name].append(record)

    out = []
    for name in base:
        records = found[name]
        bad = [r for r in records if r.outcome in FAILING]
        trained = [r for r in records if r.outcome == "trains"]
        chosen = bad[0] if bad else trained[0] if trained else records[0] if records else None
        if chosen is None:
            out.append(TermTraining(name, "unmeasured", value=values[name], case=case))
            continue
        outcome = chosen.outcome
        if outcome == "inactive" and (active or {}).get(name, False):
            zero = abs(values[name]) <= tolerance(dtypes[name], 0.0)
            outcome = "identically-zero" if zero else "constant"
        out.append(
            TermTraining(
                name,
                outcome,
                chosen.along,
                chosen.value,
                chosen.autograd,
                chosen.numeric,
                chosen.tolerance,
                chosen.step,
                chosen.dtype,
                case,
            )
        )
    return tuple(out)


def probe_loss(
    ctx: Context,
    head: Head,
    prototypes: torch.Tensor,
    sims: torch.Tensor | None,
    labels: Sequence[int] | None,
    keys: Sequence[str],
    salt: int,
    *,
    along: Sequence[str] = ("similarities", "prototypes"),
    active: dict[str, bool] | None = None,
) -> tuple[TermTraining, ...]:
    """Whether the terms ``keys`` (the subject's keys) train along the loss inputs ``along``,
    in the state the check built: float64 copies of its similarities and prototypes where
    the loss takes them, else in their own dtype (:func:`probe`)."""
    label_tensor = None if labels is None else torch.tensor(list(labels), dtype=torch.long)

    def attempt(dtype: torch.dtype | None) -> tuple[TermTraining, ...]:
        p = leaf(prototypes, dtype)
        s = None if sims is None else leaf(sims, dtype)

        def evaluate() -> dict[str, object]:
            terms = loss_terms(ctx, head, p, s, label_tensor)
            return {f"proto_loss_fn[{k}]": terms[k] for k in keys if k in terms}

        inputs = (("similarities", s), ("prototypes", p))
        groups = [(n, [t]) for n, t in inputs if t is not None and n in along]
        return probe(evaluate, groups, ctx.generator(70_000 + salt), active=active)

    try:
        return attempt(torch.float64)
    except SubjectRaised:  # a loss that cannot take float64 inputs is probed as the check measured it
        return attempt(None)


def probe_head(
    ctx: Context,
    head: Head,
    evaluate: Callable[[Head, torch.dtype | None], Mapping[str, object]],
    salt: int,
    *,
    active: Mapping[str, bool] | None = None,
    case: str = "",
) -> tuple[TermTraining, ...]:
    """Whether the terms ``evaluate(h, dtype)`` returns train along ``h``'s parameters
    (:func:`parameter_groups`), on a float64 copy of ``head`` where it allows (``evaluate``
    casts its inputs to ``dtype``), else on a copy in its own dtype (``dtype`` None).
    ``head`` itself is never moved."""
    gen = ctx.generator(80_000 + salt)
    twin = float64_copy(head)
    if twin is not None:
        try:
            return probe(
                lambda: evaluate(twin, torch.float64), parameter_groups(ctx, twin), gen, active=active, case=case
            )
        except SubjectRaised:  # a head that builds in float64 but cannot run so: its own dtype
            gen = ctx.generator(80_000 + salt)
    own = copy.deepcopy(head)
    return probe(lambda: evaluate(own, None), parameter_groups(ctx, own), gen, active=active, case=case)


class TrainingLog:
    """The probes of one check: each term is probed until one state decides it.

    A term is decided by a failure or by ``trains``; ``inactive`` leaves it open for the
    next state the check builds (a hinge may be active there). :meth:`wants` says whether
    a probe is still worth its cost.
    """

    def __init__(self) -> None:
        self._records: dict[str, TermTraining] = {}

    def wants(self, terms: Iterable[str] | None = None) -> bool:
        """Whether any of ``terms`` (any term, or none probed yet, when None) is still open."""
        if terms is None:
            return not self._records or any(r.outcome in ("inactive", "unmeasured") for r in self._records.values())
        return any(t not in self._records or self._records[t].outcome in ("inactive", "unmeasured") for t in terms)

    def add(self, records: Iterable[TermTraining]) -> None:
        for r in records:
            old = self._records.get(r.term)
            # a decided term stays decided; an open one takes any measured outcome
            if old is None or (old.outcome in ("inactive", "unmeasured") and r.outcome != "unmeasured"):
                self._records[r.term] = r

    def records(self) -> tuple[TermTraining, ...]:
        return tuple(self._records[k] for k in sorted(self._records))


def untrained(records: Sequence[TermTraining]) -> Finding | None:
    """``fail`` naming the first term that cannot train (and how many others), or None."""
    # a term without a gradient first: a sum that merely contains it disagrees because of it
    order = ("no-gradient", "identically-zero", "constant", "disagrees")
    bad = sorted((r for r in records if r.failed), key=lambda r: order.index(r.outcome))
    if not bad:
        return None
    first = bad[0]
    params: dict[str, Any] = {
        "term": first.term,
        "along": first.along,
        "value": first.value,
        "autograd": first.autograd,
        "numeric": first.numeric,
        "tolerance": first.tolerance,
        "step": first.step,
        "dtype": first.dtype or "?",
        "case": first.case or "-",
        "others": sorted({r.term for r in bad[1:] if r.term != first.term}) or "-",
    }
    return Finding("fail", Msg(f"trains.{first.outcome}", params))
