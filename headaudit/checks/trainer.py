"""The training wrapper ``Model`` of ``timm_imagenet_exp.py`` (claim 2.5).

The original report says the wrapper detects multi-prototype heads and trains them with
the head's own loss. The wrapper is the bundled reference; the host inside it is an
instance of a host class made without its constructor (see :mod:`headaudit.checks._hosting`)
holding the head under test.

- ``trainer.detect``: the wrapper's detection is true for every head class of the file and
  false for a plain ``nn.Linear`` head (the negative control, in the same host).
- ``trainer.step``: one training step and one eval step through wrapper, host and head per
  head class. This judges the wrapper, so each head class is wrapped around the first host
  variant (the host under audit, the report's suggested fix, the fix that unpacks by the
  return) whose own cells all run; the cells of the hosts passed over are kept in the
  evidence and belong to ``host.loss-dict``. The loss must have one element, be finite,
  and its gradient must reach ``proto_manager.prototypes`` (finite, not all zero); eval
  must return logits of shape ``(B, num_classes)``. A raise of the wrapper here is its
  measured behaviour; a raise of the head is the subject's (``error``).

Costs about 0.1 s per subject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from headaudit.checks._hosting import (
    HEAD_CLASS_NEEDS,
    Cell,
    build_head,
    head_classes,
    inputs,
    run_matrix,
    stand_in_backbone,
)
from headaudit.context import Context
from headaudit.hosts import HostFile
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = ["CHECKS", "ORDER", "DetectMeasurement", "Step", "StepMeasurement"]

_PROTOS = "proto_manager.prototypes"


def _carrier(ctx: Context) -> tuple[str, HostFile]:
    """The host class that carries the head into the wrapper: the host under audit if it imported."""
    if ctx.hosts.host.runnable:
        return "host", ctx.hosts.host
    return "fixed", ctx.hosts.fixed


def _wrap(ctx: Context, host: HostFile, head: Any) -> Any:
    wrapper_cls = ctx.hosts.wrapper.host_cls
    if wrapper_cls is None:
        raise SubjectRaised("import of the training wrapper", ImportError(ctx.hosts.wrapper.unavailable or ""))
    model = host.stand_in(head, stand_in_backbone)
    return call_subject(f"{ctx.hosts.wrapper.class_name}(...)", wrapper_cls, model)


# --- trainer.detect ------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    head: str
    detected: bool  # what `_detect_multi_prototype_head()` returned
    used: bool | None  # the flag the wrapper's forward reads (`_use_multi_prototype_head`)


@dataclass(frozen=True)
class DetectMeasurement:
    wrapper: str
    host: str
    heads: tuple[Detection, ...]
    linear: Detection  # the negative control: an nn.Linear head in the same host


def _detect(ctx: Context, host: HostFile, head: Any, name: str) -> Detection:
    wrapper = _wrap(ctx, host, head)
    detected = call_subject("_detect_multi_prototype_head", wrapper._detect_multi_prototype_head)
    used = getattr(wrapper, "_use_multi_prototype_head", None)
    return Detection(name, bool(detected), None if used is None else bool(used))


def _measure_detect(ctx: Context) -> DetectMeasurement:
    _, host = _carrier(ctx)
    heads = tuple(_detect(ctx, host, build_head(ctx, cls, train=False), cls.__name__) for cls in head_classes(ctx))
    torch.manual_seed(ctx.seed)
    linear = _detect(ctx, host, nn.Linear(16, 3), "nn.Linear")
    return DetectMeasurement(ctx.hosts.wrapper.display, host.display, heads, linear)


def _judge_detect(m: DetectMeasurement) -> Finding:
    missed = [d.head for d in m.heads if not d.detected or d.used is False]
    if missed:
        return Finding("fail", Msg("trainer.detect.missed", {"heads": missed}))
    if m.linear.detected or m.linear.used:
        return Finding("fail", Msg("trainer.detect.linear", {"heads": [d.head for d in m.heads]}))
    return Finding("pass", Msg("trainer.detect.pass", {"heads": [d.head for d in m.heads]}))


# --- trainer.step --------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One head class's training and eval step through the wrapper."""

    head: str
    host: str | None  # the host variant it ran in; None: no variant runs this head
    passed_over: tuple[Cell, ...]  # cells of the hosts tried first that did not run (see host.loss-dict)
    train_raised: str | None = None
    loss_shape: tuple[int, ...] | None = None
    loss_finite: bool | None = None
    backward_raised: str | None = None
    prototype_gradient: str | None = None  # ok | none | zero | non-finite
    gradient_norm: float | None = None
    extra_keys: tuple[str, ...] = ()
    eval_raised: str | None = None
    logits_shape: tuple[int, ...] | None = None
    logits_finite: bool | None = None
    expected_logits: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return (
            self.host is not None
            and self.train_raised is None
            and self.loss_shape is not None
            and math.prod(self.loss_shape) == 1
            and bool(self.loss_finite)
            and self.backward_raised is None
            and self.prototype_gradient == "ok"
            and self.eval_raised is None
            and self.logits_shape == self.expected_logits
            and bool(self.logits_finite)
        )


@dataclass(frozen=True)
class StepMeasurement:
    wrapper: str
    steps: tuple[Step, ...]


def _keys(value: Any) -> tuple[str, ...]:
    return tuple(sorted(str(k) for k in value)) if isinstance(value, dict) else ()


def _step(ctx: Context, cls: type, cells: tuple[Cell, ...]) -> Step:
    name = cls.__name__
    passed: list[Cell] = []
    chosen: tuple[str, HostFile] | None = None
    for variant, file in ctx.hosts.variants():
        mine = [c for c in cells if c.host == variant and c.head == name]
        bad = [c for c in mine if c.outcome not in ("works", "loses-breakdown")]
        if not bad:
            chosen = (variant, file)
            break
        passed += bad
    if chosen is None:
        return Step(name, None, tuple(passed))
    variant, host = chosen
    head = build_head(ctx, cls, train=True)
    images, labels = inputs(ctx)
    wrapper = _wrap(ctx, host, head)
    record: dict[str, Any] = {"expected_logits": (images.shape[0], int(labels.max()) + 1)}
    wrapper.train()
    try:
        loss, extra = call_subject("Model.forward (training)", wrapper, images, target=labels)
    except SubjectRaised as exc:  # the wrapper's step failing is what this check measures
        return Step(name, variant, tuple(passed), train_raised=exc.detail, **record)
    record.update(loss_shape=tuple(loss.shape), loss_finite=bool(torch.isfinite(loss).all()), extra_keys=_keys(extra))
    protos = ctx.get(head, _PROTOS)
    if loss.numel() == 1:
        try:
            call_subject("loss.backward()", loss.backward)
        except SubjectRaised as exc:
            record["backward_raised"] = exc.detail
        grad = protos.grad
        if grad is None:
            record["prototype_gradient"] = "none"
        else:
            record["gradient_norm"] = float(grad.double().norm())
            finite = bool(torch.isfinite(grad).all())
            record["prototype_gradient"] = "non-finite" if not finite else "zero" if not grad.any() else "ok"
    wrapper.eval()
    try:
        with torch.no_grad():
            out = call_subject("Model.forward (eval)", wrapper, images, target=labels)
    except SubjectRaised as exc:
        record["eval_raised"] = exc.detail
    else:
        logits = out[0] if isinstance(out, (tuple, list)) else out
        if isinstance(logits, torch.Tensor):
            record.update(logits_shape=tuple(logits.shape), logits_finite=bool(torch.isfinite(logits).all()))
    return Step(name, variant, tuple(passed), **record)


def _measure_step(ctx: Context) -> StepMeasurement:
    classes = head_classes(ctx)
    cells = run_matrix(ctx, classes, ctx.hosts.variants())
    return StepMeasurement(ctx.hosts.wrapper.display, tuple(_step(ctx, cls, cells) for cls in classes))


def _problem(s: Step) -> Msg:
    params: dict[str, Any] = {"head": s.head, "host": Msg(f"report.engineering.variant.{s.host}")}
    if s.train_raised is not None:
        return Msg("trainer.step.train_raised", {**params, "detail": s.train_raised})
    if s.loss_shape is None or math.prod(s.loss_shape) != 1:
        return Msg("trainer.step.not_scalar", {**params, "shape": list(s.loss_shape or ())})
    if not s.loss_finite:
        return Msg("trainer.step.not_finite", params)
    if s.backward_raised is not None:
        return Msg("trainer.step.backward_raised", {**params, "detail": s.backward_raised})
    if s.prototype_gradient != "ok":
        return Msg(f"trainer.step.gradient_{s.prototype_gradient}", params)
    if s.eval_raised is not None:
        return Msg("trainer.step.eval_raised", {**params, "detail": s.eval_raised})
    return Msg("trainer.step.bad_logits", {**params, "shape": list(s.logits_shape or ())})


def _judge_step(m: StepMeasurement) -> Finding:
    ran = [s for s in m.steps if s.host is not None]
    if not ran:
        return Finding("error", Msg("trainer.step.no_host", {"heads": [s.head for s in m.steps]}))
    bad = [s for s in ran if not s.ok]
    if bad:
        return Finding("fail", Msg("trainer.step.fail", {"problems": [_problem(s) for s in bad]}))
    used = [
        Msg("trainer.step.used", {"head": s.head, "host": Msg(f"report.engineering.variant.{s.host}")}) for s in ran
    ]
    passed_over = sorted({c.host for s in m.steps for c in s.passed_over})
    params = {
        "shapes": sorted({str(list(s.loss_shape or ())) for s in ran}),
        "used": used,
        "passed_over": [Msg(f"report.engineering.variant.{v}") for v in passed_over] or "-",
    }
    unstepped = [s.head for s in m.steps if s.host is None]
    if unstepped:  # the wrapper could not be judged on these: no host variant runs them
        return Finding("warn", Msg("trainer.step.unstepped", {**params, "heads": unstepped}))
    return Finding("pass", Msg("trainer.step.pass", params))


ORDER = 250

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="trainer.detect",
        catalogue=2,
        measure=_measure_detect,
        judge=_judge_detect,
        needs=HEAD_CLASS_NEEDS,
        severity="medium",
    ),
    Check(
        id="trainer.step",
        catalogue=2,
        measure=_measure_step,
        judge=_judge_step,
        needs=(*HEAD_CLASS_NEEDS, _PROTOS),
        severity="high",
    ),
)
