"""The hand-written report's claims, as data: one record per claim, keyed to check ids.

``shared/spec/original_report_zh.md`` is the report this tool replaces. Each record
quotes what it says and what it concluded; the checks listed in ``checks`` are the
measurements that judge it. ``about`` names the subjects the claim speaks of: most
claims are about the candidate (the "fixed" file); claim 1.4 also makes a claim about
the baseline (that its contrastive term conflicted with diversity).

A claim none of whose checks is registered yet is rendered as "not judged".
"""

from __future__ import annotations

from dataclasses import dataclass

from headaudit.model import Text

__all__ = ["CLAIMS", "SECTIONS", "Claim"]


@dataclass(frozen=True)
class Claim:
    ref: str
    section: int  # 1 = 一 理论分析, 2 = 二 工程分析
    title: Text
    says: Text
    original_verdict: str
    checks: tuple[str, ...]
    about: tuple[str, ...] = ("candidate",)


SECTIONS: dict[int, Text] = {
    1: Text("1. Theory", "一、理论分析"),
    2: Text("2. Engineering", "二、工程分析"),
}

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "1.1",
        1,
        Text("Contrastive loss fix", "Contrastive Loss 修复"),
        Text(
            "The fix is correct: the contrastive loss now pushes apart only prototypes of different classes.",
            "修复正确，Contrastive Loss 现在只推开异类原型。",
        ),
        "✅ 正确",
        ("contrastive.pairs", "contrastive.value"),
    ),
    Claim(
        "1.2",
        1,
        Text("Three-way gated fusion", "三路门控融合"),
        Text(
            "The fix is correct: a three-way softmax fuses cross_out, self_out and light_out, and the three "
            "weights sum to 1.",
            "修复正确：三路 softmax 融合 cross_out、self_out 与 light_out，三个权重和为 1。",
        ),
        "✅ 正确",
        ("gate.convex", "gate.sum-to-one"),
    ),
    Claim(
        "1.3",
        1,
        Text("EMA momentum update", "EMA 动量更新"),
        Text(
            "The fix is correct: the momentum update is now the standard EMA (the original averaged a cache).",
            "修复正确，现在是标准 EMA（原实现为 cache/count 平均）。",
        ),
        "✅ 正确",
        ("ema.standard", "ema.unit-norm", "ema.isolation", "ema.initial-norm"),
    ),
    Claim(
        "1.4",
        1,
        Text("Interaction of the loss terms", "损失函数交互分析"),
        Text(
            "The original contrastive loss pushed all prototypes apart and conflicted with the diversity loss; "
            "after the fix the four prototype losses do not conflict.",
            "原 head.py 的 Contrastive Loss 推开所有原型（包括同类），与 Diversity Loss 冲突；修复后四种损失互不冲突。",
        ),
        "✅ 无冲突",
        ("losses.conflicts",),
        about=("baseline", "candidate"),
    ),
    Claim(
        "2.1",
        2,
        Text("`main_model.forward` loses `loss_dict`", "`main_model.forward` 丢失 `loss_dict`"),
        Text(
            "The host only loses the loss breakdown; severity low: training is unaffected, only monitoring.",
            "宿主代码只是丢失了损失分解；严重程度低——不影响训练，只影响监控。",
        ),
        "⚠️ 低",
        ("host.loss-dict",),
    ),
    Claim(
        "2.2",
        2,
        Text("Compatibility interface", "兼容接口"),
        Text(
            "The compatibility `Head` implements the same interface as the original head.py.",
            "`Head` 类正确实现了与原 `head.py` 相同的接口。",
        ),
        "✅ 正确",
        ("compat.forward", "compat.constructor", "compat.manager-api", "compat.checkpoint"),
    ),
    Claim(
        "2.3",
        2,
        Text("Tensor shape handling", "张量形状处理"),
        Text(
            "Tensor shapes are handled correctly, 3-D global features included.",
            "张量形状处理正确，自动处理 3D 输入。",
        ),
        "✅ 正确",
        ("shapes.global-3d",),
    ),
    Claim(
        "2.4",
        2,
        Text("Edge cases", "边界情况处理"),
        Text(
            "Edge cases are handled: n <= 1 valid prototypes gives a zero contrastive loss, and no class present "
            "gives a zero cluster loss.",
            "边界情况处理正确：有效原型 n <= 1 时对比损失为 0，没有类别出现时聚类损失为 0。",
        ),
        "✅ 正确",
        ("contrastive.tiny", "edges.cluster-empty", "edges.small-batches"),
    ),
    Claim(
        "2.5",
        2,
        Text("`timm_imagenet_exp.py` compatibility", "`timm_imagenet_exp.py` 兼容性"),
        Text(
            "The training wrapper detects and handles multi-prototype heads correctly.",
            "`Model` 类正确检测和处理多原型头模型。",
        ),
        "✅ 正确",
        ("trainer.detect", "trainer.step"),
    ),
)
