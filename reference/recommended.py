"""The analysis report's recommended configuration and the data it targets.

``shared/spec/BEHAVIOR.md`` section 6: the constructor keywords of ``HeadOptimal`` that
the hand-written report recommends (its section 4.1), and the per-class counts of the
long-tailed data set it was written for (ISIC 2018 task 3, 7 classes).
"""

from __future__ import annotations

__all__ = ["ISIC2018_TASK3_COUNTS", "RECOMMENDED_HEAD_CLASS", "RECOMMENDED_KWARGS"]

RECOMMENDED_HEAD_CLASS = "HeadOptimal"

RECOMMENDED_KWARGS: dict[str, object] = {
    "num_classes": 7,
    "emb_dim": 768,
    "num_heads": 12,
    "img_feat_dim": 768,
    "num_prototypes": 5,
    "max_prototypes": 10,
    "use_class_balanced": True,
    "cb_beta": 0.9999,
    "clst_scale": 0.8,
    "sep_scale": 0.08,
    "div_scale": 0.01,
    "contrastive_scale": 0.05,
}

ISIC2018_TASK3_COUNTS: tuple[int, ...] = (6705, 1113, 1099, 514, 327, 142, 115)
