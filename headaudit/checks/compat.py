"""The compatibility ``Head`` (claim 2.2): does it keep the interface of the original head.py?

The class under test is the subject file's ``Head`` (the declared ``module:Head``; map
another name with ``--map module:Head=module:TheirName``). The interface it must keep is
measured, not written down: it is read from the original's ``Head`` in the bundled
reference ``headaudit:reference/head.py`` (loaded like any subject, once per process):
what its ``forward`` returns per mode, its constructor's keywords and defaults, its
manager's public names, and its state dict. So a file's own ``Head`` is compared with
the original's interface whichever slot it sits in; head.py's ``Head`` keeps it by
construction.

- ``compat.forward``: arity, kinds, shapes and dtypes of what ``forward`` returns in
  training with labels and in eval with and without labels;
- ``compat.constructor``: every keyword of the original constructor, one at a time at
  its default and at another value, then all together, then the four sizes by keyword:
  refused (the ``TypeError`` is quoted) or accepted but not taking effect (read back from
  the built head: a keyword accepted and ignored keeps the head's own default, which only
  a value other than the default shows); a keyword whose effect cannot be read back is
  named (warn), never passed silently;
- ``compat.manager-api``: the API the manager's callers use. A static scan of the host,
  the wrapper and the head's own file for ``proto_manager.<name>``: a used name the new
  manager lacks is ``fail``; the original manager's public methods and attributes it
  lacks that no scanned caller uses are ``warn``, named (with a near spelling where there
  is one); the original's buffers are state, judged by ``compat.checkpoint``;
- ``compat.checkpoint``: ``load_state_dict(strict=True)`` of an original state dict;
  ``fail`` when it raises, naming the keys left over after the head's load hooks under
  their submodules, and which differ only by name (same shape, same leaf). Whether a gap
  is one no fix can give is said by claim 2.2's text, never by a softer verdict.

The constructor and ``load_state_dict`` raising are the behaviours under test and are
recorded; any other raise of the subject is ``error``. About 0.1 s per subject.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from headaudit.astscan import attribute_uses, read_source
from headaudit.build import construct, read_setting
from headaudit.context import Context
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.names import NameMap
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject
from headaudit.subjects import Subject, bundled_reference, load_subject

__all__ = ["CHECKS", "ORDER", "original"]

_COMPAT = "module:Head"
_CLASSES, _EMB, _BATCH, _PATCHES = 3, 16, 4, 4
_MODES = ("train", "eval", "eval-no-target")
_RENAME_RATIO = 0.6  # keys this alike (difflib ratio), with the same leaf and shape, differ "only by name"


@functools.cache
def original() -> Subject:
    """The original head.py (bundled reference), whose ``Head`` defines the interface."""
    return load_subject(str(bundled_reference("head.py")), "original head.py")


def _compat(ctx: Context) -> tuple[type, Any]:
    """The subject's compatibility class and a head of it (dropout 0)."""
    cls = ctx.from_module(_COMPAT)
    if not isinstance(cls, type):
        raise SubjectRaised(_COMPAT, TypeError(f"{_COMPAT} is a {type(cls).__name__}, not a class"))
    torch.manual_seed(ctx.seed)
    return cls, ctx.build_full(head_cls=cls, num_classes=_CLASSES, emb_dim=_EMB)


def _original_head(sizes: tuple[int, int, int, int], seed: int) -> Any:
    torch.manual_seed(seed)
    return construct(original().head_cls, sizes, {"dropout_rate": 0.0}, NameMap()).head


# --- compat.forward -------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{list(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, Mapping):
        return f"dict of {len(value)}"
    return type(value).__name__


def _signature(head: Any, mode: str, batch: tuple[torch.Tensor, ...]) -> tuple[str, ...]:
    pool, img, labels = batch
    head.train(mode == "train")
    out = call_subject("forward", head, pool, img, labels=None if mode == "eval-no-target" else labels)
    return tuple(_describe(v) for v in out) if isinstance(out, (tuple, list)) else (_describe(out),)


@dataclass(frozen=True)
class ModeReturns:
    mode: str
    original: tuple[str, ...]
    subject: tuple[str, ...]

    @property
    def same(self) -> bool:
        """Same arity, kinds and shapes. The dtype is the head's own (a float64 head returns
        float64) and is shapes.dtype's to judge; it stays in the evidence."""
        return _interface(self.original) == _interface(self.subject)


def _interface(described: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(d.rsplit(" ", 1)[0] if d.startswith("tensor") else d for d in described)


@dataclass(frozen=True)
class ForwardMeasurement:
    original: str
    compat_class: str
    modes: tuple[ModeReturns, ...]


def _measure_forward(ctx: Context) -> ForwardMeasurement:
    cls, built = _compat(ctx)
    reference = _original_head(built.sizes, ctx.seed)
    gen = ctx.generator(0)
    dim = built.sizes[3]
    batch = (
        torch.randn(_BATCH, _PATCHES, dim, generator=gen),
        torch.randn(_BATCH, dim, generator=gen),
        torch.arange(_BATCH) % _CLASSES,
    )
    modes = tuple(
        ModeReturns(mode, _signature(reference, mode, batch), _signature(built.head, mode, batch)) for mode in _MODES
    )
    return ForwardMeasurement(original().display, cls.__name__, modes)


def _judge_forward(m: ForwardMeasurement) -> Finding:
    differ = [
        Msg(
            "compat.forward.mode",
            {
                "mode": Msg(f"report.engineering.mode.{r.mode}"),
                "original": "(" + ", ".join(r.original) + ")",
                "subject": "(" + ", ".join(r.subject) + ")",
            },
        )
        for r in m.modes
        if not r.same
    ]
    if differ:
        return Finding("fail", Msg("compat.forward.fail", {"cls": m.compat_class, "modes": differ}))
    returned = sorted({"(" + ", ".join(r.subject) + ")" for r in m.modes})
    return Finding("pass", Msg("compat.forward.pass", {"cls": m.compat_class, "returns": returned}))


# --- compat.constructor ---------------------------------------------------------------------


@dataclass(frozen=True)
class KeywordTry:
    keyword: str  # one keyword, "*together" (all of them) or "*sizes" (the four sizes by keyword)
    outcome: str  # accepted | refused | ignored
    detail: str | None = None  # the constructor's exception, or the value read back
    value: Any = None  # the value given (one keyword)
    unreadable: tuple[str, ...] = ()  # accepted keywords whose effect the built head does not show


@dataclass(frozen=True)
class ConstructorMeasurement:
    original: str
    compat_class: str
    keywords: tuple[str, ...]
    tries: tuple[KeywordTry, ...]
    # keywords with no value other than the default to try (not a bool, int or float)
    no_other_value: tuple[str, ...] = ()

    @property
    def unreadable(self) -> tuple[str, ...]:
        """Keywords accepted whose effect could not be read back from the built head."""
        return tuple(dict.fromkeys(k for t in self.tries if not t.keyword.startswith("*") for k in t.unreadable))


def _same(wanted: Any, got: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(got, bool):
        return bool(wanted) == bool(got)
    if isinstance(wanted, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(float(wanted), float(got), rel_tol=1e-6, abs_tol=1e-9)
    return bool(wanted == got)


def _other(value: Any) -> Any:
    """A value other than the default ``value``, valid wherever the default is: the negation
    of a bool, one more than an int (one more prototype, a larger capacity), half a float
    (a rate, a scale, a momentum or a temperature stays in its range). None: no such value."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    return None


def _dropout_rates(head: Any) -> list[float]:
    if not isinstance(head, nn.Module):
        return []
    rates = [float(m.p) for m in head.modules() if isinstance(m, nn.Dropout)]
    return rates + [float(m.dropout) for m in head.modules() if isinstance(m, nn.MultiheadAttention)]


def _read_back(head: Any, key: str, wanted: Any, names: NameMap) -> tuple[bool, bool, Any]:
    """``(readable, applied, value read)`` of one keyword on a built head. The dropout rate is
    applied when some dropout of the head has the given rate (a head may keep others fixed);
    every other keyword is read at its place on the head (``build.SETTING_PATHS``)."""
    if key == "dropout_rate":
        rates = _dropout_rates(head)
        return bool(rates), any(_same(wanted, r) for r in rates), sorted(set(rates))
    readable, got = read_setting(head, key, names)
    return readable, readable and _same(wanted, got), got


def _try(ctx: Context, cls: type, label: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> KeywordTry:
    torch.manual_seed(ctx.seed)
    value = kwargs.get(label)
    try:
        head = call_subject(f"{cls.__name__}(...)", cls, *args, **kwargs)
    except SubjectRaised as exc:  # refusing a keyword is the behaviour under test
        return KeywordTry(label, "refused", exc.detail, value)
    unreadable = []
    for key, wanted in kwargs.items():
        readable, applied, got = _read_back(head, key, wanted, ctx.subject.names)
        if not readable:
            unreadable.append(key)
        elif not applied:
            return KeywordTry(label, "ignored", f"{key}={got!r}", value)
    return KeywordTry(label, "accepted", None, value, tuple(unreadable))


def _measure_constructor(ctx: Context) -> ConstructorMeasurement:
    """Each keyword at its default, then (unless refused there) at another value, so that a
    keyword accepted but ignored (the head's own default kept) shows; then all keywords
    together at their defaults, then the four sizes by keyword."""
    cls, built = _compat(ctx)
    params = inspect.signature(original().head_cls).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    positional = [p.name for p in params if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    sizes = built.sizes
    tries = []
    for key, default in defaults.items():
        at_default = _try(ctx, cls, key, sizes, {key: default})
        tries.append(at_default)
        other = _other(default)
        if at_default.outcome != "refused" and other is not None:
            tries.append(_try(ctx, cls, key, sizes, {key: other}))
    tries.append(_try(ctx, cls, "*together", sizes, dict(defaults)))
    tries.append(_try(ctx, cls, "*sizes", (), dict(zip(positional, sizes, strict=False))))
    no_other = tuple(k for k, v in defaults.items() if _other(v) is None)
    return ConstructorMeasurement(original().display, cls.__name__, tuple(defaults), tuple(tries), no_other)


def _label(t: KeywordTry) -> str | Msg:
    if t.keyword.startswith("*"):
        return Msg(f"compat.constructor.label.{t.keyword[1:]}")
    return f"`{t.keyword}={t.value!r}`"


def _judge_constructor(m: ConstructorMeasurement) -> Finding:
    """Fail when a keyword is refused or does not take effect (at its default or at another
    value); warn when all are accepted but the effect of some cannot be read back from the
    built head (named: accepted is not applied); else pass."""
    bad = [t for t in m.tries if t.outcome != "accepted"]
    if bad:
        listing = [
            Msg(f"compat.constructor.{t.outcome}", {"keyword": _label(t), "detail": t.detail or ""}) for t in bad
        ]
        single = list(dict.fromkeys(t.keyword for t in bad if not t.keyword.startswith("*")))
        params = {"cls": m.compat_class, "bad": single or "-", "cases": listing}
        return Finding("fail", Msg("compat.constructor.fail", params))
    unseen = [f"`{k}`" for k in (*m.unreadable, *m.no_other_value)]
    if unseen:
        warned = {"cls": m.compat_class, "count": len(m.keywords), "unseen": unseen}
        return Finding("warn", Msg("compat.constructor.warn", warned))
    return Finding("pass", Msg("compat.constructor.pass", {"cls": m.compat_class, "count": len(m.keywords)}))


# --- compat.manager-api ---------------------------------------------------------------------

_MODULE_NAMES = frozenset(dir(nn.Module)) | {"training"}


def _api(obj: Any) -> dict[str, str]:
    """Public names of a module beyond ``nn.Module``'s own, with their kind."""
    buffers = dict(getattr(obj, "_buffers", {}) or {})
    out = {}
    for name in dir(obj):
        if name.startswith("_") or name in _MODULE_NAMES:
            continue
        value = getattr(obj, name, None)
        if isinstance(value, nn.Parameter):
            kind = "parameter"
        elif name in buffers:
            kind = "buffer"
        elif isinstance(value, nn.Module):
            kind = "module"
        elif callable(value):
            kind = "method"
        else:
            kind = "attribute"
        out[name] = kind
    return out


@dataclass(frozen=True)
class MissingName:
    name: str
    kind: str
    renamed_to: str | None  # a new name of the same kind that differs only in spelling
    used_by_hosts: tuple[str, ...]  # file:line of the scanned callers' uses


@dataclass(frozen=True)
class HostUse:
    """One ``proto_manager.<name>`` use in a scanned caller (a host file or the head's own file)."""

    file: str
    line: int
    name: str
    access: str
    present: bool  # the new manager has it


@dataclass(frozen=True)
class ManagerApiMeasurement:
    original: str
    compat_class: str
    original_api: tuple[str, ...]  # "name (kind)" of the original manager's methods and attributes
    missing: tuple[MissingName, ...]  # of those, the names the new manager lacks
    hosts_scanned: tuple[str, ...]  # every caller file scanned: host, wrapper, the head's own file(s)
    host_uses: tuple[HostUse, ...]
    # the original's buffers: state, judged by compat.checkpoint (a caller's use is still judged here)
    buffers: tuple[str, ...] = ()


def _caller_files(ctx: Context, cls: type) -> list[tuple[str, str]]:
    """``(display, source)`` of each file whose ``proto_manager.<name>`` uses are the manager's
    callers: the host and the wrapper under audit, the subject file, and the file defining
    its compatibility class when that is another file (a subject that re-exports a head)."""
    files = [(ctx.hosts.host.display, ctx.hosts.host.source), (ctx.hosts.wrapper.display, ctx.hosts.wrapper.source)]
    own = ctx.subject.path.resolve()
    if own.is_file():  # a subject made in memory from a class may have no file of its own
        files.append((ctx.subject.display, read_source(own)[0]))
    try:
        defining = inspect.getsourcefile(cls)
    except TypeError:  # a class made at runtime has no file
        defining = None
    if defining is not None and Path(defining).resolve() != own and Path(defining).is_file():
        files.append((cls.__module__, read_source(defining)[0]))
    return files


def _measure_manager(ctx: Context) -> ManagerApiMeasurement:
    cls, built = _compat(ctx)
    old = _api(_original_head(built.sizes, ctx.seed).proto_manager)
    manager = ctx.get(built.head, "proto_manager")
    new = _api(manager)
    added = {n: k for n, k in new.items() if n not in old}
    files = _caller_files(ctx, cls)
    uses = tuple(
        HostUse(display, use.line, use.name, use.access, hasattr(manager, use.name))
        for display, source in files
        for use in attribute_uses(source, display)
    )
    missing = []
    for name, kind in sorted(old.items()):
        if name in new or kind == "buffer":
            continue
        same_kind = [n for n, k in added.items() if k == kind]
        near = difflib.get_close_matches(name, same_kind, n=1, cutoff=0.8)
        used = tuple(f"{u.file}:{u.line}" for u in uses if u.name == name)
        missing.append(MissingName(name, kind, near[0] if near else None, used))
    return ManagerApiMeasurement(
        original().display,
        cls.__name__,
        tuple(f"{n} ({k})" for n, k in sorted(old.items()) if k != "buffer"),
        tuple(missing),
        tuple(display for display, _ in files),
        uses,
        tuple(sorted(n for n, k in old.items() if k == "buffer")),
    )


def _judge_manager(m: ManagerApiMeasurement) -> Finding:
    """Fail when a scanned caller uses a name the new manager lacks (it would raise
    ``AttributeError`` there); warn when the manager only lacks methods or attributes of the
    original that no scanned caller uses (named: callers elsewhere may); else pass. The
    original's buffers are state, judged by ``compat.checkpoint``."""
    broken = [f"{u.name} ({u.file}:{u.line})" for u in m.host_uses if not u.present]
    unused = [
        Msg(
            "compat.manager-api.renamed" if n.renamed_to else "compat.manager-api.missing_name",
            {"name": n.name, "kind": Msg(f"compat.manager-api.kind.{n.kind}"), "renamed": n.renamed_to or ""},
        )
        for n in m.missing
        if not n.used_by_hosts
    ]
    scanned = {"scanned": len(m.hosts_scanned), "found": len(m.host_uses), "buffers": list(m.buffers) or "-"}
    if broken:
        params = {"count": len(broken), "uses": broken, "unused": unused or "-", **scanned}
        return Finding("fail", Msg("compat.manager-api.fail", params))
    if unused:
        params = {"count": len(unused), "total": len(m.original_api), "names": unused, **scanned}
        return Finding("warn", Msg("compat.manager-api.warn", params))
    return Finding("pass", Msg("compat.manager-api.pass", {"total": len(m.original_api), **scanned}))


# --- compat.checkpoint ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleKeys:
    """The keys left over in one submodule (the deepest module holding each key, in the head
    that has the key: the compat head for missing keys, the original for unexpected ones),
    named relative to that submodule."""

    module: str  # "" for the head itself
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    reshaped: tuple[str, ...]


@dataclass(frozen=True)
class CheckpointMeasurement:
    original: str
    compat_class: str
    strict_load: str | None  # None: loaded; else what load_state_dict(strict=True) raised
    checkpoint_keys: int
    missing: tuple[str, ...]  # expected by the compat head, absent from the checkpoint (after its load hooks)
    unexpected: tuple[str, ...]  # in the checkpoint, unknown to the compat head (after its load hooks)
    renamed: tuple[tuple[str, str], ...]  # (checkpoint key, compat key): same shape and leaf
    shape_mismatches: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    by_module: tuple[ModuleKeys, ...] = ()
    # submodules in both heads under one name but with other tensors, holding left-over keys
    # that are neither renames nor buffers: weights no key mapping can carry. Evidence for
    # claim 2.2's text (a gap no fix can give), never a softer verdict.
    changed_modules: tuple[str, ...] = ()


def _renames(
    state: Mapping[str, torch.Tensor], mine: Mapping[str, torch.Tensor], missing: list[str], extra: list[str]
) -> tuple[tuple[str, str], ...]:
    """Pairs (checkpoint key, compat key) with the same leaf name and shape, closest names first."""
    candidates = []
    for old in extra:
        leaf = old.rsplit(".", 1)[-1]
        for new in missing:
            if new.rsplit(".", 1)[-1] == leaf and tuple(mine[new].shape) == tuple(state[old].shape):
                ratio = difflib.SequenceMatcher(None, old, new).ratio()
                if ratio >= _RENAME_RATIO:
                    candidates.append((-ratio, old, new))
    pairs: list[tuple[str, str]] = []
    for _, old, new in sorted(candidates):
        if all(old != a and new != b for a, b in pairs):
            pairs.append((old, new))
    return tuple(sorted(pairs))


def _structures(module: nn.Module) -> dict[str, tuple[tuple[str, tuple[int, ...]], ...]]:
    """Each submodule path (root ``""``) with the names and shapes of the tensors under it."""
    state = module.state_dict()
    out: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}
    for path, _ in module.named_modules():
        lead = f"{path}." if path else ""
        out[path] = tuple(sorted((k[len(lead) :], tuple(v.shape)) for k, v in state.items() if k.startswith(lead)))
    return out


def _changed_modules(
    keys: Sequence[str],
    old: Mapping[str, tuple[tuple[str, tuple[int, ...]], ...]],
    new: Mapping[str, tuple[tuple[str, tuple[int, ...]], ...]],
) -> tuple[str, ...]:
    """The submodules, present by name in both heads with another structure, that hold some of ``keys``.

    A key in the root, or in a submodule one head lacks, belongs to none of them: that is
    state a fix could keep or map."""
    found: set[str] = set()
    for key in keys:
        parts = key.split(".")[:-1]
        owner = next(
            (
                ".".join(parts[:n])
                for n in range(len(parts), 0, -1)
                if ".".join(parts[:n]) in old and ".".join(parts[:n]) in new
            ),
            "",
        )
        if owner and old[owner] != new[owner]:
            found.add(owner)
    return tuple(sorted(found))


def _owner(key: str, modules: frozenset[str]) -> str:
    """The deepest of ``modules`` (paths, root ``""``) that holds ``key``."""
    parts = key.split(".")[:-1]
    return next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules), "")


def _by_module(
    missing: Sequence[str],
    unexpected: Sequence[str],
    reshaped: Sequence[str],
    original_modules: frozenset[str],
    compat_modules: frozenset[str],
) -> tuple[ModuleKeys, ...]:
    """The left-over keys grouped by the submodule they belong to, relative names."""
    groups: dict[str, tuple[list[str], list[str], list[str]]] = {}
    for index, (keys, modules) in enumerate(
        ((missing, compat_modules), (unexpected, original_modules), (reshaped, compat_modules))
    ):
        for key in keys:
            owner = _owner(key, modules)
            groups.setdefault(owner, ([], [], []))[index].append(key[len(owner) + 1 :] if owner else key)
    return tuple(ModuleKeys(m, *(tuple(sorted(g)) for g in groups[m])) for m in sorted(groups))


def _measure_checkpoint(ctx: Context) -> CheckpointMeasurement:
    cls, built = _compat(ctx)
    reference = _original_head(built.sizes, ctx.seed)
    state = reference.state_dict()
    mine = built.head.state_dict()
    try:
        call_subject("load_state_dict", built.head.load_state_dict, state, strict=True)
        loaded = None
    except SubjectRaised as exc:  # whether the checkpoint loads is the behaviour under test
        loaded = exc.detail
    if loaded is None:  # it loaded: after the head's own load hooks nothing was left over
        return CheckpointMeasurement(original().display, cls.__name__, None, len(state), (), (), (), ())
    mismatched = tuple(
        (k, tuple(state[k].shape), tuple(mine[k].shape))
        for k in sorted(set(state) & set(mine))
        if tuple(state[k].shape) != tuple(mine[k].shape)
    )
    missing = sorted(k for k in mine if k not in state)
    extra = sorted(k for k in state if k not in mine)
    if not mismatched:  # the keys the head's own load hooks leave over
        try:
            keys = call_subject("load_state_dict", built.head.load_state_dict, state, strict=False)
            missing, extra = sorted(keys.missing_keys), sorted(keys.unexpected_keys)
        except (SubjectRaised, AttributeError):
            pass
    buffers = {name for name, _ in reference.named_buffers()} | {name for name, _ in built.head.named_buffers()}
    renamed = _renames(state, mine, missing, extra)
    mapped = {k for pair in renamed for k in pair}
    changed: tuple[str, ...] = ()
    if not mismatched:  # keys neither renamed nor buffers (state), in a submodule redesigned under its name
        left = [k for k in (*missing, *extra) if k not in mapped and k not in buffers]
        changed = _changed_modules(left, _structures(reference), _structures(built.head))
    groups = _by_module(
        missing,
        extra,
        [k for k, _, _ in mismatched],
        frozenset(p for p, _ in reference.named_modules()),
        frozenset(p for p, _ in built.head.named_modules()),
    )
    return CheckpointMeasurement(
        original().display,
        cls.__name__,
        loaded,
        len(state),
        tuple(missing),
        tuple(extra),
        renamed,
        mismatched,
        groups,
        changed,
    )


def _judge_checkpoint(m: CheckpointMeasurement) -> Finding:
    """Pass when ``load_state_dict(strict=True)`` loaded the original's checkpoint; else fail,
    naming each left-over key under its submodule. A gap that no key mapping can close (a
    submodule redesigned under the same name) is still a checkpoint that does not load: the
    verdict says what happened, and the claim text says whether a fix could give it."""
    if m.strict_load is None:
        return Finding("pass", Msg("compat.checkpoint.pass", {"cls": m.compat_class, "keys": m.checkpoint_keys}))
    modules = [
        Msg(
            "compat.checkpoint.module",
            {
                "module": Msg("compat.checkpoint.root") if not g.module else f"`{g.module}`",
                "keys": [
                    Msg(f"compat.checkpoint.{kind}", {"keys": [f"`{k}`" for k in keys]})
                    for kind, keys in (("missing", g.missing), ("unexpected", g.unexpected), ("reshaped", g.reshaped))
                    if keys
                ],
            },
        )
        for g in m.by_module
    ]
    redesigned = (
        Msg("compat.checkpoint.redesigned", {"modules": [f"`{c}`" for c in m.changed_modules]})
        if m.changed_modules
        else ""
    )
    params = {
        "cls": m.compat_class,
        "missing": len(m.missing),
        "unexpected": len(m.unexpected),
        "renamed": [f"{a} -> {b}" for a, b in m.renamed] or "-",
        "mismatched": len(m.shape_mismatches),
        "detail": m.strict_load.split(" ...")[0],
        "modules": modules or "-",
        "redesigned": redesigned,
    }
    return Finding("fail", Msg("compat.checkpoint.fail", params))


ORDER = 220

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="compat.forward",
        catalogue=2,
        measure=_measure_forward,
        judge=_judge_forward,
        needs=(_COMPAT,),
        severity="high",
    ),
    Check(
        id="compat.constructor",
        catalogue=2,
        measure=_measure_constructor,
        judge=_judge_constructor,
        needs=(_COMPAT,),
        severity="high",
    ),
    Check(
        id="compat.manager-api",
        catalogue=2,
        measure=_measure_manager,
        judge=_judge_manager,
        needs=(_COMPAT, "proto_manager"),
        severity="medium",
    ),
    Check(
        id="compat.checkpoint",
        catalogue=2,
        measure=_measure_checkpoint,
        judge=_judge_checkpoint,
        needs=(_COMPAT,),
        severity="high",
    ),
)
