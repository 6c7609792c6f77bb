"""The training section, "What the defects cost in training", from the session's JSON and the
``train.*`` results (:mod:`headaudit.train`). The same function renders it inside the report
(``--train``) and for ``headaudit train``; every figure is read from the run that made it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headaudit.messages import Msg, msg_from_dict, render
from headaudit.model import Report, Result
from headaudit.render._blocks import _role, _verdict

__all__ = ["render_training", "training_advice", "training_section"]


def _t(key: str, lang: str, **params: Any) -> str:
    return render(Msg(f"train.section.{key}", params), lang)


def _ci(value: Any, lang: str, digits: int = 3) -> str:
    if not isinstance(value, Mapping):
        return _t("no_interval", lang)
    mean, hw = value.get("mean"), value.get("half_width")
    if not isinstance(mean, (int, float)):
        return _t("no_interval", lang)
    if not isinstance(hw, (int, float)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {hw:.{digits}f}"


def _hw(value: Mapping[str, Any], lang: str) -> str:
    hw = value.get("half_width")
    return f"{hw:.3f}" if isinstance(hw, (int, float)) else _t("no_interval", lang)


def _direction(value: Mapping[str, Any], lang: str) -> Msg:
    low, high = value.get("low"), value.get("high")
    if isinstance(low, (int, float)) and low > 0:
        return Msg("train.direction.better")
    if isinstance(high, (int, float)) and high < 0:
        return Msg("train.direction.worse")
    return Msg("train.direction.none")


def _name(role: str, lang: str) -> str:
    return _role(role, lang) if role in ("baseline", "candidate", "control") else f"`{role}`"


def _advice(section: Mapping[str, Any], lang: str) -> list[str]:
    """What the recommended configuration changed against the same head with it off, if trained."""
    recommended, heads = section.get("recommended"), section["heads"]
    if not recommended:
        return []
    diff = section["pairs"].get(f"{recommended[0]} - {recommended[1]}")
    if diff is None:
        on, off = (heads.get(role, {}).get("not_measured") for role in recommended)
        missing = on or off
        reason = render(msg_from_dict(missing["message"]), lang) if missing else "-"
        return [_t("advice_none", lang, reason=reason), ""]
    acc, rare = diff["balanced_accuracy"], diff["rare_recall"]
    says = {"acc_says": _direction(acc, lang), "rare_says": _direction(rare, lang)}
    params = {"acc": acc["mean"], "acc_hw": _hw(acc, lang), "rare": rare["mean"], "rare_hw": _hw(rare, lang)}
    return [_t("advice", lang, **params, **says, seeds=acc["n"]), ""]


def training_advice(report: Report, lang: str) -> list[str]:
    """The advice section's paragraph on the recommended configuration, when the run trained."""
    section = report.extra.get("training")
    return _advice(section, lang) if isinstance(section, Mapping) else []


def render_training(
    section: Mapping[str, Any],
    results: Sequence[Result],
    lang: str,
    *,
    plots: Sequence[str] = (),
) -> list[str]:
    """The section's Markdown lines."""
    data, config, heads = section["data"], section["config"], section["heads"]
    seeds = config["seeds"]
    lines = [
        f"## {_t('title', lang)}",
        "",
        _t(
            "intro",
            lang,
            steps=config["steps"],
            batch=config["batch"],
            lr=config["lr"],
            seeds=len(seeds),
            seed_list=", ".join(str(s) for s in seeds),
            source=data["source"],
            classes=data["num_classes"],
            train_counts=", ".join(str(n) for n in data["train_counts"]),
            test_counts=", ".join(str(n) for n in data["test_counts"]),
        ),
        "",
    ]
    if data["kind"] == "images":
        lines += [_t("proxy", lang, imbalance=data["imbalance"], rarest=min(data["train_counts"])), ""]
    lines += [_t("table_head", lang), "|---|---|---|---|---|---|---|"]
    for role, head in heads.items():
        s = head.get("summary")
        if s is None:
            continue
        cells = [
            _ci(s["balanced_accuracy"], lang),
            _ci(s["macro_f1"], lang),
            _ci(s["rare_recall"], lang),
            _ci(s["eval_batch_spread"], lang),
            _ci(s["same_class_cosine"], lang),
            _ci(s["other_class_cosine"], lang),
        ]
        lines.append(f"| {_name(role, lang)} | " + " | ".join(cells) + " |")
    lines.append("")
    for role, head in heads.items():
        missing = head.get("not_measured")
        if missing:
            reason = render(msg_from_dict(missing["message"]), lang)
            lines += [f"- {_t('not_measured', lang, role=_name(role, lang), reason=reason)}"]
    sizes = [str(s) for s in section["batch_sizes"]]
    lines += ["", _t("by_batch", lang), "", "| | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    for role, head in heads.items():
        if head.get("summary"):
            by = head["summary"]["by_eval_batch"]
            lines.append(f"| {_name(role, lang)} | " + " | ".join(_ci(by[s], lang) for s in sizes) + " |")
    classes = [str(c) for c in range(data["num_classes"])]
    lines += ["", _t("recall", lang), "", "| | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for role, head in heads.items():
        if head.get("summary"):
            rec = head["summary"]["recall"]
            lines.append(f"| {_name(role, lang)} | " + " | ".join(f"{r['mean']:.2f}" for r in rec) + " |")
    lines += ["", _t("absent", lang, share=section["absent_share"]), ""]
    if section["pairs"]:
        lines += [_t("pairs", lang), ""]
        for pair, diff in section["pairs"].items():
            acc, rare = diff["balanced_accuracy"], diff["rare_recall"]
            lines.append(
                _t(
                    "pair_row",
                    lang,
                    pair=pair,
                    acc=acc["mean"],
                    acc_hw=_hw(acc, lang),
                    acc_says=_direction(acc, lang),
                    rare=rare["mean"],
                    rare_hw=_hw(rare, lang),
                    rare_says=_direction(rare, lang),
                )
            )
        lines.append("")
    lines += _advice(section, lang)
    if results:
        lines += [_t("verdicts", lang), ""]
        for r in results:
            title = render(Msg(f"{r.check}.title"), lang)
            verdict = _verdict(r.verdict, lang)
            lines.append(f"- `{r.check}` ({title}), {_name(r.subject, lang)}: {verdict}: {r.summary(lang)}")
        lines.append("")
    for path in plots:
        lines += [_t("loss_plot", lang, path=path), ""]
    return lines


def training_section(report: Report, lang: str) -> list[str]:
    """The section in the report, when the run trained (``--train``)."""
    section = report.extra.get("training")
    if not isinstance(section, Mapping):
        return []
    results = [r for r in report.results if r.check.startswith("train.")]
    plots = section.get("plots") or []
    return render_training(section, results, lang, plots=[str(p) for p in plots] if isinstance(plots, list) else [])
