"""What a correct audit concludes, per check: the data the verdict tests iterate over.

One block per area of the catalogue, so areas can be added side by side:

- ``REFERENCES_*``: check id -> (verdict on head.py, verdict on head_optimal.py), from
  CHECKS.md (the references' expected conclusions).
- ``HAND_MADE_*``: (subject in tests/subjects, as ``file`` or ``file:Class``, check id,
  verdict). With the references they give every check a subject where it must fail and
  one where it must pass; every case runs in both slots.
- ``MUST_FAIL_*``: search check id -> the subjects its search must refute at every seed
  (``head.py`` and ``head_optimal.py`` name the bundled references).
"""

from __future__ import annotations

# --- section 1: theory (claims 1.1-1.4) ---------------------------------------------------

REFERENCES_THEORY: dict[str, tuple[str, str]] = {
    "contrastive.pairs": ("fail", "pass"),
    "contrastive.value": ("fail", "pass"),
    "contrastive.tiny": ("fail", "pass"),
    "gate.convex": ("fail", "pass"),
    "gate.sum-to-one": ("n/a", "pass"),
    "ema.standard": ("fail", "pass"),
    "ema.unit-norm": ("fail", "fail"),
    "ema.initial-norm": ("fail", "fail"),
    "ema.isolation": ("pass", "pass"),
    "losses.conflicts": ("fail", "fail"),
}

HAND_MADE_THEORY: list[tuple[str, str, str]] = [
    ("float32_loss", "contrastive.pairs", "pass"),
    ("float32_loss", "contrastive.value", "pass"),
    ("float32_loss", "contrastive.tiny", "pass"),
    ("hinge_contrastive", "contrastive.pairs", "pass"),
    ("hinge_contrastive", "contrastive.value", "fail"),
    ("contrastive_variants:IgnoresValidMask", "contrastive.pairs", "fail"),
    ("contrastive_variants:Attracts", "contrastive.pairs", "fail"),
    ("contrastive_variants:Attracts", "contrastive.value", "fail"),
    ("channel_gate", "gate.convex", "pass"),
    ("channel_gate", "gate.sum-to-one", "n/a"),
    ("gate_unnormalised", "gate.convex", "pass"),
    ("gate_unnormalised", "gate.sum-to-one", "fail"),
    ("ema_safe", "ema.standard", "pass"),
    ("ema_safe", "ema.unit-norm", "pass"),
    ("ema_safe", "ema.initial-norm", "pass"),
    ("ema_safe", "ema.isolation", "pass"),
    ("ema_leaky", "ema.isolation", "fail"),
    ("ema_noop", "ema.isolation", "fail"),
    ("ema_noop", "ema.standard", "fail"),
    ("compat_kwargs:Head", "ema.standard", "pass"),
    ("loss_aligned", "losses.conflicts", "pass"),
    ("loss_opposed:Head", "losses.conflicts", "fail"),
]

MUST_FAIL_THEORY: dict[str, tuple[str, ...]] = {
    "contrastive.pairs": ("head.py", "contrastive_variants:IgnoresValidMask", "contrastive_variants:Attracts"),
    "contrastive.value": ("head.py", "contrastive_variants:Attracts", "hinge_contrastive"),
    "gate.convex": ("head.py",),
    "gate.sum-to-one": ("gate_unnormalised",),
    "ema.unit-norm": ("head.py", "head_optimal.py"),
}

# --- section 2: engineering (claims 2.1-2.5; issue 8) --------------------------------------

REFERENCES_ENGINEERING: dict[str, tuple[str, str]] = {}
HAND_MADE_ENGINEERING: list[tuple[str, str, str]] = []
MUST_FAIL_ENGINEERING: dict[str, tuple[str, ...]] = {}

# --- section 3: what the original report missed (issue 9) -----------------------------------

REFERENCES_MISSED: dict[str, tuple[str, str]] = {}
HAND_MADE_MISSED: list[tuple[str, str, str]] = []
MUST_FAIL_MISSED: dict[str, tuple[str, ...]] = {}

# --- section 3b: component contracts (issue 7) ----------------------------------------------

REFERENCES_CONTRACTS: dict[str, tuple[str, str]] = {}
HAND_MADE_CONTRACTS: list[tuple[str, str, str]] = []
MUST_FAIL_CONTRACTS: dict[str, tuple[str, ...]] = {}

# --- section 4: performance (issue 10) -------------------------------------------------------

REFERENCES_PERFORMANCE: dict[str, tuple[str, str]] = {}
HAND_MADE_PERFORMANCE: list[tuple[str, str, str]] = []
MUST_FAIL_PERFORMANCE: dict[str, tuple[str, ...]] = {}

# --- all of them ------------------------------------------------------------------------------

EXPECTED: dict[str, tuple[str, str]] = {
    **REFERENCES_THEORY,
    **REFERENCES_ENGINEERING,
    **REFERENCES_MISSED,
    **REFERENCES_CONTRACTS,
    **REFERENCES_PERFORMANCE,
}
HAND_MADE: list[tuple[str, str, str]] = [
    *HAND_MADE_THEORY,
    *HAND_MADE_ENGINEERING,
    *HAND_MADE_MISSED,
    *HAND_MADE_CONTRACTS,
    *HAND_MADE_PERFORMANCE,
]
MUST_FAIL: dict[str, tuple[str, ...]] = {
    **MUST_FAIL_THEORY,
    **MUST_FAIL_ENGINEERING,
    **MUST_FAIL_MISSED,
    **MUST_FAIL_CONTRACTS,
    **MUST_FAIL_PERFORMANCE,
}
