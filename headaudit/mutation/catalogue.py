"""Single-change mistakes a refactor of ``reference/head_fixed.py`` could make ("mutants").

Each :class:`Mutant` is a list of exact source edits (``old`` must occur exactly once in
the file at that point, ``new`` replaces it), applied to the text of a bundled reference
file (``file``) when the score is measured: there are no mutated copies to keep in step
with the reference. Most edit the subject ``head_fixed.py``; a mutant of the training
wrapper (``timm_imagenet_exp.py``, :data:`WRAPPER_FILE`) is audited with the unmutated
head inside the mutated wrapper. ``hint`` names the checks expected to notice the
mistake; they only decide the order the checks are tried in (and which checks the tests
run), the detection itself is measured (:mod:`headaudit.mutation.score`). For a rewrite,
``hint`` names the checks that read the rewritten code (the tests run those;
``headaudit mutate`` runs every check).

Several mutants are single changes taken from bug reports of published prototype-network
code: a loss term cut from the graph by ``.detach()``, a masked minimum
(``(d * mask).min()``) that is 0 whatever the distances, an EMA written into a copy, a
compatibility constructor that drops or ignores a keyword, a detection with its
condition inverted.

:data:`EQUIVALENTS` are rewrites that keep the semantics (renamed locals, independent
statements reordered, an operator spelled another way), of ``head_fixed.py`` and of
``head_optimal.py`` (a head with many findings, so a rewrite must keep every one of
them): a correct audit must give each of them exactly the verdicts and findings of the
unmutated file.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EQUIVALENTS", "MUTANTS", "SUBJECT_FILE", "WRAPPER_FILE", "Mutant", "apply"]

#: The bundled file most mutants edit, and the training wrapper some edit instead.
SUBJECT_FILE = "head_fixed.py"
WRAPPER_FILE = "timm_imagenet_exp.py"


@dataclass(frozen=True)
class Mutant:
    """A named source transformation: ``edits`` are ``(old, new)`` pairs applied in order
    to the bundled reference ``file``."""

    id: str
    part: str
    description: str
    edits: tuple[tuple[str, str], ...]
    hint: tuple[str, ...] = ()
    file: str = SUBJECT_FILE


def apply(mutant: Mutant, source: str) -> str:
    """``source`` with ``mutant``'s edits; each ``old`` must occur exactly once when applied."""
    for old, new in mutant.edits:
        count = source.count(old)
        if count != 1:
            raise ValueError(f"mutant {mutant.id!r}: {old!r} occurs {count} times in the source, expected once")
        source = source.replace(old, new, 1)
    return source


def _m(id: str, part: str, description: str, old: str, new: str, *hint: str) -> Mutant:
    return Mutant(id, part, description, ((old, new),), hint)


def _wrapper(id: str, part: str, description: str, old: str, new: str, *hint: str) -> Mutant:
    return Mutant(id, part, description, ((old, new),), hint, WRAPPER_FILE)


_CON_PAIRS = "pairs = valid.unsqueeze(0) & valid.unsqueeze(1) & (owner.unsqueeze(0) != owner.unsqueeze(1))"
_GATE = "gate_weights = F.softmax(self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)), dim=-1)"
_EMA_MIX = "mixed = m * old + (1 - m) * F.normalize(new_value.to(old.dtype), p=2, dim=-1)"
_EMA_WRITE = "self.prototypes[proto_idx].copy_(torch.where(norm > _EMA_EPS, mixed / norm.clamp(min=_EMA_EPS), old))"
_AGG = 'return similarities.masked_fill(~valid, float("-inf")).amax(-1)'
_SEP_OTHER = "other = valid.unsqueeze(0) & ~onehot.bool().unsqueeze(-1)  # (B, C, M)"
_SEP_NEAREST = 'nearest = distances.masked_fill(~other, float("inf")).flatten(1).amin(-1)'
_SIMS = "sims = F.cosine_similarity(img_proj.unsqueeze(1), class_emb, dim=-1)"
_CLUSTER_NEAREST = 'nearest = own.masked_fill(~own_valid, float("inf")).amin(-1)'
_DIV_PAIRS = "pairs = valid.unsqueeze(-1) & valid.unsqueeze(-2) & ~eye"
_PROTO_SUM = 'terms["cluster_loss"] + terms["sep_loss"] + terms["div_loss"] + terms["contrastive_loss"]'
_LOGITS = "logits = self.aggregate_similarities(similarities) * self.temperature"
_ATTN = "updated, attn_weights = self.mixed_attn(queries, pool_proj)"
_SEP_TERM = '"sep_loss": self.sep_scale * self.compute_separation_loss(distances, labels, valid_mask=valid)'
_DIV_TERM = '"div_loss": self.div_scale * self.compute_diversity_loss(prototypes, valid_mask=valid)'
_LOSS_IN = (
    "        distances = 1 - similarities\n        valid = self._valid(proto_indices, valid_mask, distances.device)\n"
)

MUTANTS: tuple[Mutant, ...] = (
    # ------------------------------------------------------------------ contrastive
    _m("con-same-class-pairs", "contrastive", "a same-class pair is left in the contrastive mask (only the diagonal is removed)",
       _CON_PAIRS, "pairs = valid.unsqueeze(0) & valid.unsqueeze(1) & ~torch.eye(unit.size(0), dtype=torch.bool, device=prototypes.device)",
       "contrastive.pairs", "contrastive.value"),
    _m("con-empty-guard-dropped", "contrastive", "no clamp on the pair count: with no different-class pair the term is 0/0",
       "pairs.sum().to(prototypes.dtype).clamp(min=1)", "pairs.sum().to(prototypes.dtype)", "contrastive.tiny"),
    _m("con-unnormalised", "contrastive", "the contrastive Gram matrix is built from the raw rows, not the unit rows",
       "        unit = F.normalize(prototypes, p=2, dim=-1)\n        owner", "        unit = prototypes * 2\n        owner",
       "contrastive.value"),
    # ------------------------------------------------------------------ layout
    _m("valid-rows-off-by-one", "layout", "off-by-one in the valid rows: one unused slot per class is marked valid",
       "torch.arange(total) % max_prototypes < num_prototypes", "torch.arange(total) % max_prototypes <= num_prototypes",
       "manager.layout", "forward.aggregation"),
    # ------------------------------------------------------------------ gate
    _m("gate-softmax-wrong-dim", "gate", "the gate's softmax runs over the prototypes (dim -2) instead of the three branches",
       _GATE, _GATE[: -len("dim=-1)")] + "dim=-2)", "gate.sum-to-one", "gate.convex"),
    _m("gate-sigmoid", "gate", "the gate's softmax is replaced by a sigmoid (weights no longer sum to 1)",
       _GATE, "gate_weights = torch.sigmoid(self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)))",
       "gate.sum-to-one", "gate.convex"),
    # ------------------------------------------------------------------ EMA
    _m("ema-drops-old-row", "ema", "the EMA drops the old row: p <- normalize((1 - m) * normalize(v))",
       _EMA_MIX, "mixed = (1 - m) * F.normalize(new_value.to(old.dtype), p=2, dim=-1)", "ema.standard"),
    _m("ema-no-renormalisation", "ema", "the EMA result is written without renormalising it",
       _EMA_WRITE, "self.prototypes[proto_idx].copy_(torch.where(norm > _EMA_EPS, mixed, old))", "ema.unit-norm", "ema.standard"),
    _m("ema-momentum-swapped", "ema", "the EMA weighs the old row by 1 - m and the new value by m",
       _EMA_MIX, "mixed = (1 - m) * old + m * F.normalize(new_value.to(old.dtype), p=2, dim=-1)", "ema.standard"),
    _m("ema-writes-two-rows", "ema", "the update writes its row and the next one",
       _EMA_WRITE, _EMA_WRITE.replace("self.prototypes[proto_idx]", "self.prototypes[proto_idx : proto_idx + 2]"),
       "ema.isolation"),
    _m("init-not-unit-norm", "ema", "the rows are no longer normalised at construction (xavier rows only)",
       "            self.prototypes.copy_(F.normalize(self.prototypes, p=2, dim=-1))", "            pass",
       "ema.initial-norm"),
    # ------------------------------------------------------------------ class weights
    _m("weights-absent-classes-back", "class-weights", "absent classes are back in the weights (their weight is not zeroed)",
       "        raw = raw * present\n", "", "weights.absent-classes"),
    _m("cluster-divided-by-all-classes", "class-weights", "the weighted cluster sum is divided by num_classes, not the classes present",
       "return (weights * per_class).sum() / present.sum().clamp(min=1)", "return (weights * per_class).sum() / self.num_classes",
       "loss.cluster-scale", "weights.absent-classes"),
    # ------------------------------------------------------------------ batch
    _m("patches-flattened-together", "batch", "the patches of the whole batch are flattened into one key sequence again",
       _ATTN, "updated, attn_weights = self.mixed_attn(queries, pool_proj.reshape(1, -1, pool_proj.size(-1)).expand(batch, -1, -1))",
       "shapes.batch-independence", "shapes.permutation"),
    # ------------------------------------------------------------------ aggregation
    _m("agg-min-for-max", "aggregation", "a class logit takes the smallest similarity over its valid prototypes",
       _AGG, 'return similarities.masked_fill(~valid, float("inf")).amin(-1)', "forward.aggregation"),
    _m("agg-temperature-dropped", "aggregation", "the temperature is never applied to the logits",
       _LOGITS, "logits = self.aggregate_similarities(similarities)", "forward.aggregation"),
    _m("agg-class-loop", "aggregation", "aggregation loops over classes in Python again",
       _AGG, 'return torch.stack([similarities[:, c].masked_fill(~valid[:, c], float("-inf")).amax(-1) for c in range(self.num_classes)], 1)',
       "static.class-loops"),
    # ------------------------------------------------------------------ separation / cluster / diversity
    _m("sep-includes-own-class", "separation", "separation's other classes include the sample's own class",
       _SEP_OTHER, "other = valid.unsqueeze(0).expand(onehot.size(0), -1, -1)", "loss.separation-value"),
    _m("sep-mean-not-min", "separation", "separation uses the mean distance to other-class prototypes instead of the nearest",
       _SEP_NEAREST, "nearest = (distances * other).flatten(1).sum(-1) / other.flatten(1).sum(-1).clamp(min=1)",
       "loss.separation-value"),
    _m("cluster-mean-not-min", "cluster", "the cluster term uses the mean distance to the own prototypes instead of the nearest",
       _CLUSTER_NEAREST, "nearest = (own * own_valid).sum(-1) / own_valid.sum(-1).clamp(min=1)", "loss.cluster-nearest"),
    _m("div-diagonal-included", "diversity", "diversity's pairs keep the diagonal (self-similarity 1 enters the hinge)",
       _DIV_PAIRS, "pairs = valid.unsqueeze(-1) & valid.unsqueeze(-2)", "loss.diversity-value"),
    _m("div-threshold-moved", "diversity", "the diversity hinge threshold 0.5 becomes 0.3",
       "F.relu(gram - 0.5)", "F.relu(gram - 0.3)", "loss.diversity-value"),
    # ------------------------------------------------------------------ loss scales and sums
    _m("scale-sep-uses-clst", "loss-scales", "the separation term is multiplied by clst_scale instead of sep_scale",
       '"sep_loss": self.sep_scale *', '"sep_loss": self.clst_scale *', "loss.terms-sum"),
    _m("proto-loss-missing-div", "loss-scales", "proto_loss forgets the diversity term",
       _PROTO_SUM, 'terms["cluster_loss"] + terms["sep_loss"] + terms["contrastive_loss"]', "loss.terms-sum"),
    _m("uw-exp-sign-ce", "uncertainty-weighting", "ce is weighted by exp(+log_sigma_ce) instead of exp(-log_sigma_ce)",
       "torch.exp(-self.log_sigma_ce) * ce", "torch.exp(self.log_sigma_ce) * ce", "forward.contract"),
    # ------------------------------------------------------------------ dtype and host reads
    _m("float32-scratch", "dtype", "the similarities are computed in a float32 scratch copy, whatever the input dtype",
       _SIMS, "sims = F.cosine_similarity(img_proj.unsqueeze(1).float(), class_emb.float(), dim=-1)", "shapes.dtype"),
    _m("host-read-in-loss", "host-sync", "the loss reads a device value on the host to validate labels",
       _LOSS_IN, _LOSS_IN + '        if bool((labels < 0).any()):\n            raise ValueError("labels must be non-negative")\n',
       "static.host-syncs", "compile.graph-breaks"),
    # ------------------------------------------------------------------ similarity and wiring
    _m("sim-dot-not-cos", "similarity", "the cosine similarity is replaced by a dot product of the unnormalised vectors",
       _SIMS, "sims = (img_proj.unsqueeze(1) * class_emb).sum(dim=-1)", "forward.similarity"),
    _m("attn-self-on-queries", "attention-wiring", "the self-attention reads the raw queries instead of the cross-attention output",
       "self_att, _ = self.self_attn(cross_out, cross_out, cross_out)", "self_att, _ = self.self_attn(proto, proto, proto)",
       "attn.wiring"),
    _m("global-3d-first-token", "projection", "a 3-D global feature takes its first token instead of the mean over dim 1",
       "img_features = img_features.mean(dim=1)", "img_features = img_features[:, 0]", "shapes.global-3d"),
    # ------------------------------------------------------------------ manager and inputs
    _m("expand-no-mask", "expand", "expanding does not mark the new row valid",
       "        self.valid_mask[row] = True\n", "", "manager.expand"),
    _m("expand-past-capacity", "expand", "the capacity test uses > instead of >=, so a full class writes past its block",
       "if used >= self.max_prototypes:", "if used > self.max_prototypes:", "manager.expand"),
    _m("zero-prototypes-accepted", "inputs", "num_prototypes=0 is accepted by the manager",
       '_check_count("num_prototypes", num_prototypes, 1)\n        _check_count("max_prototypes"',
       '_check_count("num_prototypes", num_prototypes, 0)\n        _check_count("max_prototypes"', "edges.zero-prototypes"),
    _m("label-range-unchecked", "inputs", "labels out of range are no longer refused with a message naming them",
       '            torch._assert_async(in_range, f"labels must lie in [0, {self.num_classes})")\n', "", "shapes.bad-input"),
    # ------------------------------------------------------------------ compatibility
    _m("manager-api-renamed", "compat", "the manager's head.py name expand_prototypes is renamed",
       "    def expand_prototypes(self, class_idx: int", "    def expand_protos(self, class_idx: int", "compat.manager-api"),
    _m("checkpoint-rename-lost", "compat", "the head.py checkpoint rename local_self_attn -> light_attn no longer matches",
       'old = prefix + "local_self_attn."', 'old = prefix + "local_attn."', "compat.checkpoint"),
    _m("data-write", "engineering", "the EMA writes the parameter through .data again",
       _EMA_WRITE, "self.prototypes.data[proto_idx] = torch.where(norm > _EMA_EPS, mixed / norm.clamp(min=_EMA_EPS), old)",
       "static.data-writes"),
    # ------------------------------------------------------------------ from bug reports
    _m("sep-detached", "trains", "the separation term is computed with .detach(): its value is right, it never trains",
       _SEP_TERM, _SEP_TERM + ".detach()", "forward.contract", "loss.separation-value", "losses.conflicts"),
    _m("div-detached", "trains", "the diversity term is computed with .detach(): its value is right, it never trains",
       _DIV_TERM, _DIV_TERM + ".detach()", "loss.diversity-value", "losses.conflicts", "forward.contract"),
    Mutant("masked-min-is-zero", "trains",
           "cluster and separation take the minimum of (distance * mask): 0 at every masked-out slot, so the "
           "nearest distance is always 0 (cluster is 0, separation the constant margin)",
           ((_CLUSTER_NEAREST, "nearest = (own * own_valid).amin(-1)"),
            (_SEP_NEAREST, "nearest = (distances * other).flatten(1).amin(-1)")),
           ("loss.cluster-nearest", "loss.separation-value", "losses.conflicts")),
    _m("ema-writes-copy", "ema", "the EMA writes into a copy of the row (list indexing copies), so the update has no effect",
       _EMA_WRITE, _EMA_WRITE.replace("self.prototypes[proto_idx]", "self.prototypes[[proto_idx]]"),
       "ema.standard", "ema.isolation"),
    _m("compat-ignores-max-prototypes", "compat", "the compatibility Head accepts max_prototypes but always uses 2 * num_prototypes",
       "max_prototypes=2 * num_prototypes if max_prototypes is None else max_prototypes,",
       "max_prototypes=2 * num_prototypes,", "compat.constructor"),
    _m("compat-drops-var-threshold", "compat", "the compatibility Head accepts var_threshold but does not pass it on",
       "            var_threshold=var_threshold,\n", "", "compat.constructor"),
    _m("keyword-margin-ignored", "compat", "HeadOptimal accepts margin but never passes it to the loss (the default 0.3 is used)",
       "            margin=margin,\n", "", "compat.constructor", "loss.separation-value"),
    _wrapper("wrapper-detection-inverted", "wrapper", "the wrapper's multi-prototype detection has its condition inverted",
             'if hasattr(head, "proto_manager"):', 'if not hasattr(head, "proto_manager"):', "trainer.detect"),
    _m("helper-detection-inverted", "helpers", "has_multi_prototype_head with its condition inverted",
       'return isinstance(head, (HeadOptimal, Head)) or hasattr(head, "proto_manager")',
       'return not (isinstance(head, (HeadOptimal, Head)) or hasattr(head, "proto_manager"))', "trainer.detect"),
)  # fmt: skip

EQUIVALENTS: tuple[Mutant, ...] = (
    Mutant(
        "rename-separation-locals",
        "separation",
        "renamed locals in compute_separation_loss (hinge -> penalty, counted -> included)",
        (
            ("hinge = torch.where(has_other", "penalty = torch.where(has_other"),
            ("(onehot * hinge.unsqueeze(1))", "(onehot * penalty.unsqueeze(1))"),
            ("counted = ((counts > 0)", "included = ((counts > 0)"),
            ("return (per_class * counted).sum() / counted.sum().clamp(min=1)",
             "return (per_class * included).sum() / included.sum().clamp(min=1)"),
        ),
        ("loss.separation-value", "static.class-loops"),
    ),
    Mutant(
        "reorder-cluster-statements",
        "cluster",
        "independent statements of compute_cluster_loss reordered (one-hot counts before the nearest distances)",
        (
            ("        valid = self._valid(proto_indices, valid_mask, distances.device)\n        batch = distances.size(0)\n",
             "        onehot = self._onehot(labels, distances.dtype)\n        counts = onehot.sum(0)\n"
             "        valid = self._valid(proto_indices, valid_mask, distances.device)\n        batch = distances.size(0)\n"),
            ("        onehot = self._onehot(labels, distances.dtype)\n        counts = onehot.sum(0)\n        per_class = (onehot * nearest",
             "        per_class = (onehot * nearest"),
        ),
        ("loss.cluster-nearest", "loss.cluster-scale"),
    ),
    Mutant(
        "amax-spelled-as-function",
        "aggregation",
        "the aggregation's method call written as the torch function (same operator)",
        ((_AGG, 'return torch.amax(similarities.masked_fill(~valid, float("-inf")), dim=-1)'),),
        ("forward.aggregation", "static.class-loops"),
    ),
    # ------------------------------------------------------------------ head_optimal.py (many findings)
    Mutant(
        "optimal-rename-cluster-locals",
        "cluster",
        "head_optimal.py: renamed locals of compute_cluster_loss's loop (weighted -> acc, valid_classes -> present)",
        (
            ("        weighted = torch.tensor(0.0, device=distances.device)\n        valid_classes = 0\n",
             "        acc = torch.tensor(0.0, device=distances.device)\n        present = 0\n"),
            ("weighted = weighted + weights[c] * nearest.mean()\n            valid_classes += 1",
             "acc = acc + weights[c] * nearest.mean()\n            present += 1"),
            ("        if valid_classes > 0:\n            return weighted / valid_classes",
             "        if present > 0:\n            return acc / present"),
        ),
        ("loss.cluster-nearest", "loss.cluster-scale", "static.class-loops", "static.host-syncs"),
        "head_optimal.py",
    ),
    Mutant(
        "optimal-reorder-ema-statements",
        "ema",
        "head_optimal.py: the two independent first statements of momentum_update swapped",
        (("        new_value_norm = F.normalize(new_value, p=2, dim=-1)\n        m = self.momentum\n",
          "        m = self.momentum\n        new_value_norm = F.normalize(new_value, p=2, dim=-1)\n"),),
        ("ema.standard", "ema.unit-norm", "static.data-writes"),
        "head_optimal.py",
    ),
    Mutant(
        "optimal-min-spelled-as-function",
        "separation",
        "head_optimal.py: separation's method call .min(dim=-1) written as torch.min (same operator)",
        (("nearest_other = torch.cat(others, dim=-1).min(dim=-1).values",
          "nearest_other = torch.min(torch.cat(others, dim=-1), dim=-1).values"),),
        ("loss.separation-value", "static.class-loops", "static.host-syncs"),
        "head_optimal.py",
    ),
)  # fmt: skip
