"""Building a subject's head deterministically, and proving the settings took effect.

The four sizes go positionally (``num_classes, emb_dim, num_heads, img_feat_dim``, the
order of every head of this family). A keyword goes in when the constructor's signature
names it or takes ``**kwargs``; otherwise it is recorded as refused. When the
constructor still raises ``TypeError`` naming one keyword we passed (a compatibility
subclass that fixes ``max_prototypes`` itself and forwards ``**kwargs`` raises
"multiple values for keyword argument 'max_prototypes'"), exactly that keyword is
dropped and recorded; nothing else is ever dropped, and no blind retry happens.

After construction every setting that has a known place on the head is read back
(:data:`SETTING_PATHS`). A check lists the settings it relies on; where one was refused
or reads back a different value, :class:`SettingNotApplied` makes the check ``n/a``
naming the setting instead of measuring another configuration.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from headaudit.names import NameMap, walk
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = [
    "SETTING_PATHS",
    "Built",
    "SettingNotApplied",
    "accepts_keyword",
    "construct",
    "read_setting",
]

#: Where each constructor setting lives on a built head (canonical names; user maps apply).
SETTING_PATHS: dict[str, str] = {
    "num_classes": "proto_manager.num_classes",
    "emb_dim": "proto_manager.emb_dim",
    "max_prototypes": "proto_manager.max_prototypes",
    "num_prototypes": "proto_manager.protos_per_class",
    "momentum": "proto_manager.momentum",
    "var_threshold": "proto_manager.var_threshold",
    "margin": "proto_loss_fn.margin",
    "temperature": "temperature",
    "clst_scale": "proto_loss_fn.clst_scale",
    "sep_scale": "proto_loss_fn.sep_scale",
    "div_scale": "proto_loss_fn.div_scale",
    "contrastive_scale": "proto_loss_fn.contrastive_scale",
    "use_class_balanced": "proto_loss_fn.use_class_balanced",
    "cb_beta": "proto_loss_fn.cb_beta",
    "num_heads": "mixed_attn.cross_attn.num_heads",
}

_REFUSED = re.compile(r"(?:multiple values for (?:keyword )?argument|unexpected keyword argument) '(\w+)'")


class SettingNotApplied(Exception):
    """A setting a check relies on was refused by the constructor or did not take effect.

    ``reason`` is a message code (``no-keyword``, ``refused``, ``unreadable``,
    ``differs``, ``refused-all``); ``detail`` the subject's own words where there are any.
    """

    def __init__(self, name: str, wanted: Any, got: Any, reason: str, detail: str = "") -> None:
        self.name, self.wanted, self.got, self.reason, self.detail = name, wanted, got, reason, detail
        super().__init__(f"{name}={wanted!r}: {reason} {detail}".strip())


def accepts_keyword(cls: type, name: str) -> bool | None:
    """Whether ``cls(...)`` takes keyword ``name`` by signature (None: no signature)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if name in params and params[name].kind in (params[name].POSITIONAL_OR_KEYWORD, params[name].KEYWORD_ONLY):
        return True
    return any(p.kind is p.VAR_KEYWORD for p in params.values())


def _dropout_rates(head: nn.Module) -> list[float]:
    rates = []
    for module in head.modules():
        if isinstance(module, nn.Dropout):
            rates.append(float(module.p))
        elif isinstance(module, nn.MultiheadAttention):
            rates.append(float(module.dropout))
    return rates


def read_setting(head: Any, name: str, names: NameMap) -> tuple[bool, Any]:
    """``(readable, value)`` of a setting on a built head."""
    if name == "dropout_rate":
        rates = _dropout_rates(head) if isinstance(head, nn.Module) else []
        return bool(rates), max(rates) if rates else None
    path = SETTING_PATHS.get(name)
    if path is None:
        return False, None
    found, value, _ = walk(head, names.apply(path))
    if not found:
        return False, None
    if hasattr(value, "detach"):  # a parameter or buffer
        flat = value.detach().flatten().tolist()
        if name == "num_prototypes":
            return True, flat[0] if flat and all(v == flat[0] for v in flat) else flat
        return True, flat[0] if len(flat) == 1 else flat
    return True, value


def _same(wanted: Any, got: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(got, bool):
        return bool(wanted) == bool(got)
    if isinstance(wanted, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(float(wanted), float(got), rel_tol=1e-6, abs_tol=1e-9)
    return bool(wanted == got)


@dataclass(frozen=True)
class Built:
    """A constructed head and what is known about its configuration."""

    head: Any
    sizes: tuple[int, int, int, int]
    passed: Mapping[str, Any]
    refused: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # keyword -> (reason code, detail)
    settings: Mapping[str, Any] = field(default_factory=dict)  # read back from the head

    def require(self, names: Sequence[str], wanted: Mapping[str, Any]) -> None:
        """Raise :class:`SettingNotApplied` unless each of ``names`` took its wanted value."""
        for name in names:
            if name not in wanted:
                continue
            if name in self.refused:
                raise SettingNotApplied(name, wanted[name], None, *self.refused[name])
            if name not in self.settings:
                raise SettingNotApplied(name, wanted[name], None, "unreadable", SETTING_PATHS.get(name, name))
            if not _same(wanted[name], self.settings[name]):
                raise SettingNotApplied(name, wanted[name], self.settings[name], "differs", repr(self.settings[name]))


def construct(
    cls: Callable[..., Any],
    sizes: tuple[int, int, int, int],
    kwargs: Mapping[str, Any],
    names: NameMap,
) -> Built:
    """Build ``cls(*sizes, **kwargs)`` as described in the module docstring."""
    passing: dict[str, Any] = {}
    refused: dict[str, tuple[str, str]] = {}
    for key, value in kwargs.items():
        accepted = accepts_keyword(cls, key) if isinstance(cls, type) else None
        if accepted is False:
            refused[key] = ("no-keyword", "")
        else:
            passing[key] = value
    where = f"{getattr(cls, '__name__', 'head')}(...)"
    while True:
        try:
            head = call_subject(where, cls, *sizes, **passing)
            break
        except SubjectRaised as raised:
            match = _REFUSED.search(str(raised.exc)) if isinstance(raised.exc, TypeError) else None
            if match is None or match.group(1) not in passing:
                raise
            refused[match.group(1)] = ("refused", raised.detail)
            del passing[match.group(1)]
    settings: dict[str, Any] = {}
    for key in [*passing, "num_classes", "emb_dim", "num_heads", "max_prototypes"]:
        readable, value = read_setting(head, key, names)
        if readable:
            settings[key] = value
    return Built(head, sizes, dict(passing), refused, settings)
