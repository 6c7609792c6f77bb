"""The training wrapper ``Model`` of ``timm_imagenet_exp.py`` (claim 2.5).

The original report says the wrapper detects multi-prototype heads and trains them with
the head's own loss. The wrapper is the one under audit (``--wrapper``, default the bundled
reference), built as ``Model(model)``; the host inside it is an instance of a host class
made without its constructor (see :mod:`headaudit.checks._hosting`) holding the head under
test. Where the wrapper decides that a head is multi-prototype is read from its source
(:func:`~headaudit.checks._hosting.detection_site`): the run evaluates that decision on the
built wrapper, and the source reading evaluates the same text without importing the file.

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

A wrapper that does not import here (the real one imports timm and its project's packages)
is judged from its source, as ``host.loss-dict`` judges such a host: ``trainer.detect``
evaluates the detection's own text (and the wrapper methods and file functions it calls)
on the host holding each head and the ``nn.Linear`` control, and ``trainer.step`` reads
every ``self.model(...)`` call of the wrapper class, its unpack arity and guards (the
detection flag included), against what the host returned with each head in training and
eval. A reading that shows a defect fails, naming the missing module as why it was not
run; otherwise the check is ``n/a`` naming the module, the reading in its sentence (the
loss's shape and its gradient need the run). Whatever the reading needs from a missing
import, or from a constructor argument the audit does not pass, is named as unresolved.

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
    CallSite,
    Cell,
    DetectionSite,
    HeadReturn,
    SourceDetection,
    WrapperSource,
    build_head,
    call_sites,
    constructor_locals,
    detection_site,
    head_classes,
    host_return,
    inputs,
    run_matrix,
    source_detection,
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
    return _wrap_model(ctx, host.stand_in(head, stand_in_backbone))


def _wrap_model(ctx: Context, model: Any) -> Any:
    wrapper_cls = ctx.hosts.wrapper.host_cls
    if wrapper_cls is None:
        raise SubjectRaised("import of the training wrapper", ImportError(ctx.hosts.wrapper.unavailable or ""))
    return call_subject(f"{ctx.hosts.wrapper.class_name}(...)", wrapper_cls, model)


# --- trainer.detect ------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    head: str
    detected: bool  # what the wrapper's detection returned (`_detect_multi_prototype_head()`)
    used: bool | None  # the flag the wrapper's forward reads (`_use_multi_prototype_head`)


@dataclass(frozen=True)
class DetectMeasurement:
    wrapper: str
    host: str
    heads: tuple[Detection, ...]
    linear: Detection | None  # the negative control: an nn.Linear head in the same host (None: not run)
    site: DetectionSite | None = None  # where the wrapper decides, read from its source
    runtime: str | None = None  # None: the wrapper imported and ran; else why it did not import
    missing_module: str | None = None
    from_source: tuple[SourceDetection, ...] = ()  # the decision's own text on each head, and the control
    # the file's own helper `has_multi_prototype_head(model)` on each head class and the control
    # (empty: the file defines none)
    helper: tuple[Detection, ...] = ()


def _detect(ctx: Context, host: HostFile, head: Any, name: str, site: DetectionSite) -> Detection:
    model = host.stand_in(head, stand_in_backbone)
    wrapper = _wrap_model(ctx, model)
    module = ctx.hosts.wrapper.module
    local = {"self": wrapper}
    if site.function.endswith(".__init__") and ctx.hosts.wrapper.host_cls is not None:
        local.update(constructor_locals(ctx.hosts.wrapper.host_cls, model))
    namespace = dict(vars(module)) if module is not None else {}
    code = compile(site.expression, ctx.hosts.wrapper.display, "eval")
    detected = call_subject(site.expression, eval, code, namespace, local)  # the wrapper's decision, as written
    used = getattr(wrapper, site.flag, None) if site.flag else None
    return Detection(name, bool(detected), None if used is None else bool(used))


def _measure_detect(ctx: Context) -> DetectMeasurement:
    _, host = _carrier(ctx)
    wrapper = ctx.hosts.wrapper
    site = detection_site(wrapper)
    classes = head_classes(ctx)
    heads: tuple[Detection, ...] = ()
    linear: Detection | None = None
    if wrapper.runnable and site is not None:
        heads = tuple(_detect(ctx, host, build_head(ctx, cls, train=False), cls.__name__, site) for cls in classes)
        torch.manual_seed(ctx.seed)
        linear = _detect(ctx, host, nn.Linear(16, 3), "nn.Linear", site)
    # each head class and the nn.Linear control in a stand-in host: what the decisions are read on
    models: list[tuple[str, Any]] = []
    if site is not None or ctx.has(_HELPER):
        models = [(cls.__name__, build_head(ctx, cls, train=False)) for cls in classes]
        torch.manual_seed(ctx.seed)
        models.append(("nn.Linear", nn.Linear(16, 3)))
    hosts = [(name, host.stand_in(head, stand_in_backbone)) for name, head in models]
    from_source: tuple[SourceDetection, ...] = ()
    if site is not None:
        source = WrapperSource(wrapper)
        from_source = tuple(source_detection(source, site, model, name) for name, model in hosts)
    helper: tuple[Detection, ...] = ()
    if ctx.has(_HELPER):
        function = ctx.from_module(_HELPER)
        helper = tuple(
            Detection(name, bool(call_subject(_HELPER_NAME, function, model)), None) for name, model in hosts
        )
    return DetectMeasurement(
        wrapper.display,
        host.display,
        heads,
        linear,
        site,
        wrapper.unavailable,
        wrapper.missing_module,
        from_source,
        helper,
    )


def _judge_helper(m: DetectMeasurement) -> Finding | None:
    """The file's ``has_multi_prototype_head``: true for every head class, false for the control."""
    if not m.helper:
        return None
    heads = [d for d in m.helper if d.head != "nn.Linear"]
    missed = [d.head for d in heads if not d.detected]
    if missed:
        return Finding("fail", Msg("trainer.detect.helper_missed", {"heads": missed}))
    if any(d.detected for d in m.helper if d.head == "nn.Linear"):
        return Finding("fail", Msg("trainer.detect.helper_linear", {"heads": [d.head for d in heads]}))
    return None


def _judge_source_detect(m: DetectMeasurement, site: DetectionSite) -> Finding:
    where = {"detail": m.runtime or "", "expression": site.expression, "line": site.line}
    heads = [d for d in m.from_source if d.head != "nn.Linear"]
    control = next((d for d in m.from_source if d.head == "nn.Linear"), None)
    missed = [d.head for d in heads if d.detected is False]
    if missed:
        return Finding("fail", Msg("trainer.detect.fail_static", {**where, "heads": missed}))
    if control is not None and control.detected is True:
        return Finding("fail", Msg("trainer.detect.fail_static_linear", {**where, "heads": [d.head for d in heads]}))
    unresolved = sorted({d.unresolved for d in m.from_source if d.unresolved})
    if unresolved or not heads or control is None:
        return Finding("n/a", Msg("trainer.detect.na_unresolved", {**where, "names": unresolved or "-"}))
    return Finding("n/a", Msg("trainer.detect.na_runtime", {**where, "heads": [d.head for d in heads]}))


def _judge_detect(m: DetectMeasurement) -> Finding:
    found = _judge_wrapper(m)
    if found.verdict == "fail":
        return found
    return _judge_helper(m) or found


def _judge_wrapper(m: DetectMeasurement) -> Finding:
    if m.site is None:
        return Finding("n/a", Msg("trainer.detect.no_site", {"wrapper": m.wrapper}))
    if m.runtime is not None or m.linear is None:
        return _judge_source_detect(m, m.site)
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
    runtime: str | None = None  # None: the wrapper imported; else why it did not (no step was run)
    missing_module: str | None = None
    calls: tuple[CallSite, ...] = ()  # the wrapper's self.model(...) calls, read from its source
    host_returns: tuple[HeadReturn, ...] = ()  # how many values the carrying host returned, per head and mode


def _keys(value: Any) -> tuple[str, ...]:
    return tuple(sorted(str(k) for k in value)) if isinstance(value, dict) else ()


def _choose(ctx: Context, name: str, cells: tuple[Cell, ...]) -> tuple[tuple[str, HostFile] | None, list[Cell]]:
    """The first host variant whose own cells with this head all run, and the cells passed over."""
    passed: list[Cell] = []
    for variant, file in ctx.hosts.variants():
        mine = [c for c in cells if c.host == variant and c.head == name]
        bad = [c for c in mine if c.outcome not in ("works", "loses-breakdown")]
        if not bad:
            return (variant, file), passed
        passed += bad
    return None, passed


def _step(ctx: Context, cls: type, cells: tuple[Cell, ...]) -> Step:
    name = cls.__name__
    chosen, passed = _choose(ctx, name, cells)
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


_WRAPPER_MODES = ("train", "eval")  # the wrapper is stepped with a target in both


def _read_step(ctx: Context, classes: list[type], cells: tuple[Cell, ...]) -> StepMeasurement:
    """The wrapper's ``self.model(...)`` calls against what the carrying host returns (source only)."""
    wrapper = ctx.hosts.wrapper
    source = WrapperSource(wrapper)
    returns: list[HeadReturn] = []
    models: dict[str, Any] = {}
    for cls in classes:
        chosen, _ = _choose(ctx, cls.__name__, cells)
        if chosen is None:
            continue
        _, host = chosen
        models[cls.__name__] = host.stand_in(build_head(ctx, cls, train=False), stand_in_backbone)
        for mode in _WRAPPER_MODES:
            values = host_return(ctx, host, cls, mode)
            if values is not None:
                returns.append(HeadReturn(cls.__name__, mode, values, ()))

    def view(r: HeadReturn) -> Any:
        return source.instance(models[r.head], training=r.mode == "train")

    calls = call_sites(wrapper, returns, receiver="self.model", view=view)
    return StepMeasurement(wrapper.display, (), wrapper.unavailable, wrapper.missing_module, calls, tuple(returns))


def _measure_step(ctx: Context) -> StepMeasurement:
    classes = head_classes(ctx)
    cells = run_matrix(ctx, classes, ctx.hosts.variants())
    if not ctx.hosts.wrapper.runnable:
        return _read_step(ctx, classes, cells)
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


def _judge_source_step(m: StepMeasurement) -> Finding:
    detail = m.runtime or ""
    predictions = [(site, p) for site in m.calls for p in site.predictions]
    raising = [(site, p) for site, p in predictions if p.outcome == "raises" and p.reached is True]
    if raising:
        site, p = raising[0]
        params = {
            "line": site.line,
            "arity": site.arity or 0,
            "head": p.head,
            "mode": Msg(f"report.engineering.mode.{p.mode}"),
            "returned": p.returned,
            "count": len(raising),
            "detail": detail,
        }
        return Finding("fail", Msg("trainer.step.fail_static", params))
    heads = sorted({r.head for r in m.host_returns})
    if not m.calls:
        reading = Msg("trainer.step.source_none", {})
    elif not heads:
        reading = Msg("trainer.step.source_no_host", {})
    else:
        undecided = sorted({site.line for site, p in predictions if p.outcome == "depends"})
        unpacked = {(p.head, p.mode) for _, p in predictions if p.outcome in ("unpacks", "no-unpack") and p.reached}
        if undecided:
            reading = Msg("trainer.step.source_depends", {"lines": undecided})
        elif all((h, mode) in unpacked for h in heads for mode in _WRAPPER_MODES):
            reading = Msg("trainer.step.source_unpacks", {"calls": len(m.calls), "heads": heads})
        else:
            reading = Msg("trainer.step.source_unreached", {"heads": heads})
    return Finding("n/a", Msg("trainer.step.na_runtime", {"detail": detail, "reading": reading}))


def _judge_step(m: StepMeasurement) -> Finding:
    if m.runtime is not None:
        return _judge_source_step(m)
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

_HELPER_NAME = "has_multi_prototype_head"
_HELPER = f"module:{_HELPER_NAME}"

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="trainer.detect",
        catalogue=2,
        measure=_measure_detect,
        judge=_judge_detect,
        needs=(*HEAD_CLASS_NEEDS, f"?{_HELPER}"),
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
