"""The contrastive term: which pairs it pushes apart, its value, and its edge cases.

Claim 1.1 of the original report: the fixed contrastive loss pushes apart only
prototypes of different classes and equals their mean similarity. Claim 2.4: with
``n <= 1`` valid prototypes it is 0. The term is read through
``compute_contrastive_loss`` where it exists, else isolated from the loss forward
with an empty label batch (:func:`headaudit.adapters.contrastive_term`).
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from headaudit.adapters import Head, SubjectRaised, contrastive_term, loss_terms
from headaudit.checks._common import Layout, describe, fmt, head_for_layout, layouts, pairs, row_classes
from headaudit.context import Context, Refuted, refutation_outcome
from headaudit.model import Outcome, Text
from headaudit.registry import Check

__all__ = ["CHECKS", "different_class_mean"]

_EMB = 48  # >= 8 classes x 6 rows, so every valid row can be orthonormal
_EPS = 0.5  # size of the one-pair move
_TOL = 1e-9  # float64 throughout


def different_class_mean(prototypes: torch.Tensor, layout: Layout) -> float:
    """The oracle: mean cosine similarity over ordered pairs of valid rows of different classes.

    0.0 when there is no such pair. Written independently of any subject.
    """
    owner = row_classes(layout)
    rows = sorted(owner)
    unit = prototypes / prototypes.norm(dim=-1, keepdim=True)
    total, count = 0.0, 0
    for i in rows:
        for j in rows:
            if i != j and owner[i] != owner[j]:
                total += float(unit[i] @ unit[j])
                count += 1
    return total / count if count else 0.0


def _orthonormal_state(ctx: Context, layout: Layout) -> torch.Tensor:
    """Valid rows orthonormal; invalid rows large and random (they must not matter)."""
    gen = ctx.generator(salt=layout.num_classes * 100 + layout.max_prototypes)
    basis, _ = torch.linalg.qr(torch.randn(_EMB, _EMB, generator=gen, dtype=torch.float64))
    x = 5.0 * torch.randn(layout.num_classes * layout.max_prototypes, _EMB, generator=gen, dtype=torch.float64)
    for n, row in enumerate(layout.valid_rows):
        x[row] = basis[n]
    return x


def _value(head: Head, x: torch.Tensor) -> float:
    return float(contrastive_term(head, x))


def _run_pairs(ctx: Context) -> Outcome:
    stats = {"pairs_checked": 0, "largest_same_class_change": 0.0, "smallest_cross_class_change": math.inf}

    def prop(layout: Layout) -> None:
        head, layout = head_for_layout(ctx, layout, _EMB)
        owner = row_classes(layout)
        x = _orthonormal_state(ctx, layout)
        base = _value(head, x)
        invalid = [r for r in range(x.size(0)) if r not in owner]
        if invalid:
            shuffled = x.clone()
            shuffled[invalid] = -3.0 * x[invalid].flip(-1)
            change = _value(head, shuffled) - base
            if abs(change) > _TOL:
                raise Refuted(
                    Text(
                        f"changing only invalid rows changed the loss by {fmt(change)} ({describe(layout).en})",
                        f"只改变无效行就使损失变化 {fmt(change)}（{describe(layout).zh}）",
                    ),
                    {"layout": layout.as_evidence(), "invalid_rows": invalid, "loss_change": change},
                )

        for i, j in pairs(sorted(owner)):
            moved = x.clone()
            moved[i] = x[i] + _EPS * x[j]
            moved[i] = moved[i] / moved[i].norm()
            change = _value(head, moved) - base
            stats["pairs_checked"] += 1
            where = {"layout": layout.as_evidence(), "pair_rows": [i, j], "loss_change": change}
            if owner[i] == owner[j]:
                stats["largest_same_class_change"] = max(stats["largest_same_class_change"], abs(change))
                if abs(change) > _TOL:
                    raise Refuted(
                        Text(
                            f"moving the same-class pair (rows {i}, {j}) of class {owner[i]} changed the loss "
                            f"by {fmt(change)} ({describe(layout).en})",
                            f"移动同类原型对（第 {i}、{j} 行，类别 {owner[i]}）使损失变化 {fmt(change)}"
                            f"（{describe(layout).zh}）",
                        ),
                        {**where, "pair_classes": [owner[i], owner[j]]},
                    )
            else:
                stats["smallest_cross_class_change"] = min(stats["smallest_cross_class_change"], change)
                if change <= _TOL:
                    raise Refuted(
                        Text(
                            f"raising the similarity of the different-class pair (rows {i}, {j}) did not raise "
                            f"the loss (change {fmt(change)}; {describe(layout).en})",
                            f"提高异类原型对（第 {i}、{j} 行）的相似度没有使损失增大（变化 {fmt(change)}；"
                            f"{describe(layout).zh}）",
                        ),
                        {**where, "pair_classes": [owner[i], owner[j]]},
                    )

    found = ctx.search(layouts(min_rows=2), prop, ci_examples=25)
    if found is not None:
        return refutation_outcome(found.error, ctx.examples)
    return Outcome(
        "pass",
        Text(
            f"over {stats['pairs_checked']} one-pair moves, same-class pairs never moved the loss "
            f"(largest |change| {fmt(stats['largest_same_class_change'])}) and every different-class pair "
            f"raised it (smallest change {fmt(stats['smallest_cross_class_change'])}); invalid rows did not matter",
            f"在 {stats['pairs_checked']} 次单对移动中，同类原型对从未改变损失（最大 |变化| "
            f"{fmt(stats['largest_same_class_change'])}），每个异类原型对都使损失增大（最小变化 "
            f"{fmt(stats['smallest_cross_class_change'])}）；无效行不影响损失",
        ),
        dict(stats),
        ctx.examples,
    )


def _run_value(ctx: Context) -> Outcome:
    worst = {"largest_abs_difference": 0.0}

    @st.composite
    def cases(draw: st.DrawFn) -> tuple[Layout, int]:
        return draw(layouts(min_classes_with_rows=2)), draw(st.integers(0, 99))

    def prop(case: tuple[Layout, int]) -> None:
        layout, salt = case
        head, layout = head_for_layout(ctx, layout, 16)
        gen = ctx.generator(salt)
        x = torch.randn(layout.num_classes * layout.max_prototypes, 16, generator=gen, dtype=torch.float64)
        x = x * torch.rand(x.size(0), 1, generator=gen, dtype=torch.float64).add(0.2) * 2
        expected = different_class_mean(x, layout)
        measured = _value(head, x)
        diff = abs(measured - expected)
        worst["largest_abs_difference"] = max(worst["largest_abs_difference"], diff)
        if not diff <= 1e-9 * max(1.0, abs(expected)):
            raise Refuted(
                Text(
                    f"the loss is {fmt(measured, 6)} where the mean different-class similarity is "
                    f"{fmt(expected, 6)} ({describe(layout).en})",
                    f"损失为 {fmt(measured, 6)}，而异类原型平均相似度为 {fmt(expected, 6)}（{describe(layout).zh}）",
                ),
                {"layout": layout.as_evidence(), "prototype_seed": salt, "measured": measured, "oracle": expected},
            )

    found = ctx.search(cases(), prop, ci_examples=25)
    if found is not None:
        return refutation_outcome(found.error, ctx.examples)
    return Outcome(
        "pass",
        Text(
            f"equal to the independent oracle on every example (largest |difference| "
            f"{fmt(worst['largest_abs_difference'])})",
            f"所有样例都与独立的参照实现一致（最大 |差值| {fmt(worst['largest_abs_difference'])}）",
        ),
        dict(worst),
        ctx.examples,
    )


_TINY_CASES: tuple[tuple[str, Layout], ...] = (
    ("n=0", Layout(3, 2, (0, 0, 0))),
    ("n=1", Layout(3, 2, (1, 0, 0))),
    ("one class, n=3", Layout(3, 3, (3, 0, 0))),
)


def _run_tiny(ctx: Context) -> Outcome:
    cases: dict[str, dict[str, object]] = {}
    bad: list[str] = []
    for name, layout in _TINY_CASES:
        head, layout = head_for_layout(ctx, layout, 8)
        x = torch.randn(layout.num_classes * layout.max_prototypes, 8, generator=ctx.generator(7))
        x.requires_grad_(True)
        record: dict[str, object] = {}
        try:
            value = contrastive_term(head, x)
            record["value"] = float(value.detach())
            grad_ok = True
            if value.requires_grad:
                (grad,) = torch.autograd.grad(value, x, allow_unused=True)
                grad_ok = grad is None or bool(torch.isfinite(grad).all())
            record["finite_gradient"] = grad_ok
            number = float(value.detach())
            if not (math.isfinite(number) and abs(number) <= 1e-12 and grad_ok):
                bad.append(f"{name}: {fmt(number)}")
        except SubjectRaised as exc:
            record["raised"] = str(exc)
            bad.append(f"{name}: {exc}")
        # With labels present the per-class terms run too; report what happens.
        labels = torch.zeros(2, dtype=torch.long)
        sims = torch.rand(2, layout.num_classes, layout.max_prototypes, generator=ctx.generator(8))
        try:
            terms = loss_terms(head, x.detach(), sims, labels)
            record["with_labels"] = {k: float(v) for k, v in sorted(terms.items())}
        except SubjectRaised as exc:
            record["with_labels"] = str(exc)
        cases[name] = record
    evidence = {"cases": cases}
    if bad:
        listing = "; ".join(bad)
        return Outcome(
            "fail",
            Text(
                f"not 0 with finite gradients in {len(bad)} of {len(_TINY_CASES)} cases ({listing})",
                f"{len(_TINY_CASES)} 个情形中有 {len(bad)} 个不是 0 或梯度不有限（{listing}）",
            ),
            evidence,
        )
    return Outcome(
        "pass",
        Text(
            "0 with finite gradients for n=0, n=1 and all rows in one class",
            "n=0、n=1 以及所有有效原型同属一类时均为 0，梯度有限",
        ),
        evidence,
    )


CHECKS: tuple[Check, ...] = (
    Check(
        id="contrastive.pairs",
        catalogue=1,
        title=Text(
            "The contrastive loss pushes apart only prototypes of different classes",
            "对比损失只推开不同类别的原型",
        ),
        method=Text(
            "Orthonormal valid prototypes; raise one pair's similarity at a time "
            "(p_i <- normalize(p_i + 0.5 p_j)) and read the change of the loss; invalid rows must not matter. "
            "Hypothesis generates the layouts and shrinks any counterexample.",
            "有效原型取正交单位向量；每次只提高一对原型的相似度（p_i <- normalize(p_i + 0.5 p_j)），"
            "读取损失的变化；无效行不应有影响。布局由 Hypothesis 生成并收缩反例。",
        ),
        run=_run_pairs,
        needs=("proto_manager", "proto_loss_fn"),
        severity="high",
    ),
    Check(
        id="contrastive.value",
        catalogue=1,
        title=Text(
            "The contrastive loss is the mean similarity over different-class valid pairs",
            "对比损失等于有效异类原型对的平均相似度",
        ),
        method=Text(
            "Random prototypes of random norms on generated layouts with at least two classes holding rows; "
            "compare with an independent oracle (mean cosine over ordered different-class pairs).",
            "在至少两个类别拥有原型的生成布局上取随机范数的随机原型，与独立参照实现（有序异类对的平均余弦）比较。",
        ),
        run=_run_value,
        needs=("proto_manager", "proto_loss_fn"),
        severity="high",
    ),
    Check(
        id="contrastive.tiny",
        catalogue=1,
        title=Text(
            "With n <= 1 valid prototypes the contrastive loss is 0, finite, with finite gradients",
            "有效原型数 n <= 1 时对比损失为 0、有限且梯度有限",
        ),
        method=Text(
            "n = 0, n = 1, and all valid rows in one class, with an empty label batch; the evidence also "
            "shows what the full loss does with labels present.",
            "n = 0、n = 1 以及所有有效原型同属一类，使用空标签批次；证据中也列出有标签时完整损失的表现。",
        ),
        run=_run_tiny,
        needs=("proto_manager", "proto_loss_fn"),
        severity="medium",
    ),
)
