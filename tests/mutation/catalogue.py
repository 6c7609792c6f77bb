"""Single-change refactoring mistakes ("mutants") of ``reference/head_optimal.py``.

Test data for the audit's regression-guard promise: a user refactors their head, makes
one of these mistakes, and the audit must notice. Each entry replaces one exact piece of
the reference source (``old``, which occurs exactly once) by ``new``.

- ``equivalent=True`` marks a semantics-preserving rewrite: same outputs (up to float
  rounding where the description says so), same state changes, same exceptions. A correct
  audit must NOT flag it.
- ``crashes=True`` marks a mutant whose head raises during a normal small forward and
  training step (``tests/mutation/test_catalogue.py`` checks that the flag is accurate).

Every other mutant changes some observable output of a small fixed battery of inputs
(the test proves it); the description says when only a special input shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EQUIVALENTS", "MUTANTS", "PARTS", "Mutant", "apply"]

PARTS: tuple[str, ...] = (
    "projection",
    "similarity",
    "aggregation",
    "forward-returns",
    "uncertainty-weighting",
    "cluster",
    "class-weights",
    "separation",
    "diversity",
    "contrastive",
    "loss-scales",
    "ema",
    "expand",
    "layout",
    "indices",
    "attention-wiring",
    "gate",
    "ffn",
    "constructor",
)


@dataclass(frozen=True)
class Mutant:
    id: str  # short slug, unique
    part: str  # one of PARTS
    description: str  # one line: what the refactor did wrong (or, for equivalents, what it rewrote)
    old: str  # exact source text occurring exactly once in reference/head_optimal.py
    new: str  # its replacement
    equivalent: bool = False  # a semantics-preserving rewrite: must not be flagged
    crashes: bool = False  # the mutated head raises during a normal small forward/train step


def apply(m: Mutant, source: str) -> str:
    """``source`` with ``m.old`` replaced by ``m.new``; raises unless ``old`` occurs exactly once."""
    count = source.count(m.old)
    if count != 1:
        raise ValueError(f"mutant {m.id!r}: `old` occurs {count} times in the source, expected exactly once")
    return source.replace(m.old, m.new, 1)


# Source fragments used by several entries.
_AGG = "out[:, c] = similarities[:, c, : end - start].max(dim=-1).values"
_CLUSTER = "nearest = distances[mask, c, : end - start].min(dim=-1).values"
_SIMS = "sims = F.cosine_similarity(img_proj.unsqueeze(1), class_emb, dim=-1)"
_LOGITS = "logits = self.aggregate_similarities(similarities) * self.temperature"
_RETURN = 'return logits, total, {"ce_loss": ce, **loss_dict, "total_loss": total}'
_EMA = "self.prototypes.data[proto_idx] = m * self.prototypes.data[proto_idx] + (1 - m) * new_value_norm"
_EMA_NORM = "self.prototypes.data[proto_idx] = F.normalize(self.prototypes.data[proto_idx], p=2, dim=-1)"
_GATE = "gate_weights = F.softmax(self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)), dim=-1)"
_MIX = "gate_weights[..., 0:1] * cross_out + gate_weights[..., 1:2] * self_out + gate_weights[..., 2:3] * light_out"
_PROTO_SUM = 'terms["cluster_loss"] + terms["sep_loss"] + terms["div_loss"] + terms["contrastive_loss"]'
_MANAGER_ARGS = "num_classes, emb_dim, num_prototypes, max_prototypes, momentum\n"
_SAME_BLOCK = "same_class_mask[idx:stop, idx:stop] = True"
_SEP_SKIP = "if o == c or end - start == 0:"
_FFN = "class_emb = self.ffn_norm(updated + self.ffn(updated))"
_IDX_APPEND = "indices.append((start, start + int(self.protos_per_class[c].item())))"

MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- projection
    Mutant(
        "proj-pool-skips-norm",
        "projection",
        "patch features go through the projection's Linear only, skipping its LayerNorm (and Dropout)",
        "pool_proj = self.proj(pool_img_features)",
        "pool_proj = self.proj[0](pool_img_features)",
    ),
    Mutant(
        "proj-img-skips-norm",
        "projection",
        "the global feature goes through the projection's Linear only, skipping its LayerNorm (and Dropout)",
        "img_proj = self.proj(img_features)",
        "img_proj = self.proj[0](img_features)",
    ),
    Mutant(
        "proj-patches-averaged",
        "projection",
        "patch features are averaged per sample before attention (keys become B tokens, batch coupling changes)",
        "img_seq = pool_proj.reshape(1, B * N, -1)",
        "img_seq = pool_proj.mean(dim=1).unsqueeze(0)",
    ),
    Mutant(
        "global-3d-first-token",
        "projection",
        "a 3-D global feature takes its first token instead of the mean over dim 1 (needs T > 1 to show)",
        "img_features = img_features.mean(dim=1)",
        "img_features = img_features[:, 0]",
    ),
    # ---------------------------------------------------------------- similarity
    Mutant(
        "sim-dot-not-cos",
        "similarity",
        "the cosine similarity is replaced by a plain dot product of the unnormalised vectors",
        _SIMS,
        "sims = (img_proj.unsqueeze(1) * class_emb).sum(dim=-1)",
    ),
    Mutant(
        "sim-one-side-normalised",
        "similarity",
        "'cosine' normalises the sample's feature but not the class embeddings",
        _SIMS,
        "sims = (F.normalize(img_proj, p=2, dim=-1).unsqueeze(1) * class_emb).sum(dim=-1)",
    ),
    Mutant(
        "sim-view-transposed",
        "similarity",
        "the flat P similarities are viewed as (B, M, C) and transposed, scrambling the class/slot layout",
        "return sims.view(sims.size(0), self.num_classes, self.max_prototypes)",
        "return sims.view(sims.size(0), self.max_prototypes, self.num_classes).transpose(1, 2)",
    ),
    Mutant(
        "sim-cos-wrong-dim",
        "similarity",
        "the cosine is taken over dim 1 (the prototypes) instead of the feature dim; the view then fails",
        _SIMS,
        "sims = F.cosine_similarity(img_proj.unsqueeze(1), class_emb, dim=1)",
        crashes=True,
    ),
    # ---------------------------------------------------------------- aggregation
    Mutant(
        "agg-mean-not-max",
        "aggregation",
        "the class logit averages the similarities of its prototypes instead of taking the max",
        _AGG,
        "out[:, c] = similarities[:, c, : end - start].mean(dim=-1)",
    ),
    Mutant(
        "agg-slice-short",
        "aggregation",
        "off-by-one slice: the class's last valid prototype is left out of the max",
        _AGG,
        "out[:, c] = similarities[:, c, : end - start - 1].max(dim=-1).values",
    ),
    Mutant(
        "agg-slice-all-slots",
        "aggregation",
        "the max runs over all max_prototypes slots, invalid (unused) rows included",
        _AGG,
        "out[:, c] = similarities[:, c, :].max(dim=-1).values",
    ),
    Mutant(
        "agg-max-wrong-dim",
        "aggregation",
        "the max runs over the batch dim instead of the prototype dim; the assignment then fails",
        _AGG,
        "out[:, c] = similarities[:, c, : end - start].max(dim=0).values",
        crashes=True,
    ),
    Mutant(
        "agg-temperature-dropped",
        "aggregation",
        "the logits are the raw aggregated similarities: the temperature is never applied",
        _LOGITS,
        "logits = self.aggregate_similarities(similarities)",
    ),
    Mutant(
        "agg-temperature-twice",
        "aggregation",
        "the temperature is applied twice",
        _LOGITS,
        "logits = self.aggregate_similarities(similarities) * self.temperature * self.temperature",
    ),
    # ---------------------------------------------------------------- forward-returns
    Mutant(
        "ret-features-swapped",
        "forward-returns",
        "forward_features returns the attention weights and class embeddings in swapped positions",
        "return similarities, class_emb, attn_weights, img_proj",
        "return similarities, attn_weights, class_emb, img_proj",
    ),
    Mutant(
        "ret-ce-not-total",
        "forward-returns",
        "training forward returns the cross-entropy instead of the uncertainty-weighted total",
        _RETURN,
        'return logits, ce, {"ce_loss": ce, **loss_dict, "total_loss": total}',
    ),
    Mutant(
        "ret-dict-total-is-ce",
        "forward-returns",
        "the loss dict's total_loss holds the cross-entropy, not the returned total",
        _RETURN,
        'return logits, total, {"ce_loss": ce, **loss_dict, "total_loss": ce}',
    ),
    Mutant(
        "ret-dict-missing-ce",
        "forward-returns",
        "the loss dict loses its ce_loss key",
        _RETURN,
        'return logits, total, {**loss_dict, "total_loss": total}',
    ),
    Mutant(
        "ret-dict-key-renamed",
        "forward-returns",
        "the loss dict's ce_loss key is renamed to ce",
        _RETURN,
        'return logits, total, {"ce": ce, **loss_dict, "total_loss": total}',
    ),
    Mutant(
        "ret-eval-nonzero-loss",
        "forward-returns",
        "eval mode with labels computes and returns the training loss and dict (needs labels in eval to show)",
        "if self.training and labels is not None:",
        "if labels is not None:",
    ),
    # ---------------------------------------------------------------- uncertainty-weighting
    Mutant(
        "uw-exp-sign-ce",
        "uncertainty-weighting",
        "ce is weighted by exp(+log_sigma_ce) instead of exp(-log_sigma_ce) (same value at log_sigma = 0)",
        "torch.exp(-self.log_sigma_ce) * ce",
        "torch.exp(self.log_sigma_ce) * ce",
    ),
    Mutant(
        "uw-exp-sign-proto",
        "uncertainty-weighting",
        "proto_loss is weighted by exp(+log_sigma_proto) instead of exp(-log_sigma_proto)",
        "torch.exp(-self.log_sigma_proto) * proto_loss",
        "torch.exp(self.log_sigma_proto) * proto_loss",
    ),
    Mutant(
        "uw-no-reg-proto",
        "uncertainty-weighting",
        "the + log_sigma_proto regulariser is dropped from the total (same value at log_sigma = 0)",
        "* proto_loss\n                + self.log_sigma_proto\n",
        "* proto_loss\n",
    ),
    Mutant(
        "uw-sigmas-swapped",
        "uncertainty-weighting",
        "ce is weighted with the prototype loss's log sigma",
        "torch.exp(-self.log_sigma_ce) * ce",
        "torch.exp(-self.log_sigma_proto) * ce",
    ),
    # ---------------------------------------------------------------- cluster
    Mutant(
        "cluster-mean-not-min",
        "cluster",
        "cluster uses the mean distance to the class's prototypes instead of the nearest one",
        _CLUSTER,
        "nearest = distances[mask, c, : end - start].mean(dim=-1)",
    ),
    Mutant(
        "cluster-all-slots",
        "cluster",
        "cluster's min runs over all slots, invalid rows included",
        _CLUSTER,
        "nearest = distances[mask, c, :].min(dim=-1).values",
    ),
    Mutant(
        "cluster-slice-short",
        "cluster",
        "off-by-one slice: cluster ignores the class's last valid prototype",
        _CLUSTER,
        "nearest = distances[mask, c, : end - start - 1].min(dim=-1).values",
    ),
    Mutant(
        "distances-no-one-minus",
        "cluster",
        "distances are the similarities themselves (the `1 -` is dropped), for cluster and separation",
        "distances = 1 - similarities",
        "distances = similarities",
    ),
    Mutant(
        "cluster-divide-by-num-classes",
        "cluster",
        "the weighted cluster sum is divided by num_classes, not by the number of present classes"
        " (needs a batch with an absent class to show)",
        "return weighted / valid_classes",
        "return weighted / self.num_classes",
    ),
    # ---------------------------------------------------------------- class-weights
    Mutant(
        "cw-no-normalisation",
        "class-weights",
        "class weights are not normalised to sum to num_classes",
        "return weights / weights.sum() * self.num_classes",
        "return weights",
    ),
    Mutant(
        "cw-len-present",
        "class-weights",
        "class weights are normalised to sum to the number of PRESENT classes (needs an absent class to show)",
        "return weights / weights.sum() * self.num_classes",
        "return weights / weights.sum() * (class_count > 0).sum()",
    ),
    Mutant(
        "cw-cb-pow-swapped",
        "class-weights",
        "class-balanced weights use count**beta instead of beta**count (needs use_class_balanced to show)",
        "torch.pow(self.cb_beta, class_count)",
        "torch.pow(class_count, self.cb_beta)",
    ),
    Mutant(
        "cw-sqrt-dropped",
        "class-weights",
        "the plain weighting uses 1/n instead of 1/sqrt(n)",
        "weights = 1.0 / torch.sqrt(class_count + 1e-6)",
        "weights = 1.0 / (class_count + 1e-6)",
    ),
    # ---------------------------------------------------------------- separation
    Mutant(
        "sep-relu-reversed",
        "separation",
        "separation hinges the wrong way: relu(d - margin) instead of relu(margin - d)",
        "F.relu(self.margin - nearest_other)",
        "F.relu(nearest_other - self.margin)",
    ),
    Mutant(
        "sep-includes-own-class",
        "separation",
        "separation's 'other classes' include the sample's own class",
        _SEP_SKIP,
        "if end - start == 0:",
    ),
    Mutant(
        "sep-mean-not-min",
        "separation",
        "separation uses the mean distance to other-class prototypes instead of the nearest",
        "torch.cat(others, dim=-1).min(dim=-1).values",
        "torch.cat(others, dim=-1).mean(dim=-1)",
    ),
    Mutant(
        "sep-mask-dropped",
        "separation",
        "separation collects distances of ALL samples for every class, not of the class's own samples",
        "others.append(distances[mask, o, : end - start])",
        "others.append(distances[:, o, : end - start])",
    ),
    Mutant(
        "sep-skip-empty-dropped",
        "separation",
        "classes with zero prototypes are no longer skipped; with no other-class prototype at all, min raises"
        " (needs a direct loss call with zero-prototype classes to show)",
        _SEP_SKIP,
        "if o == c:",
    ),
    # ---------------------------------------------------------------- diversity
    Mutant(
        "div-threshold-zero",
        "diversity",
        "the diversity hinge threshold 0.5 becomes 0.0",
        "F.relu(gram[off_diag] - 0.5)",
        "F.relu(gram[off_diag] - 0.0)",
    ),
    Mutant(
        "div-includes-k1",
        "diversity",
        "classes with a single prototype enter diversity (mean over an empty set: NaN; needs k_c = 1 to show)",
        "if k > 1:",
        "if k >= 1:",
    ),
    Mutant(
        "div-diagonal-not-off",
        "diversity",
        "the `~` on the eye mask is dropped: diversity reads the self-similarities instead of the pairs",
        "off_diag = ~torch.eye(k, dtype=torch.bool, device=prototypes.device)",
        "off_diag = torch.eye(k, dtype=torch.bool, device=prototypes.device)",
    ),
    Mutant(
        "div-unnormalised",
        "diversity",
        "diversity's Gram matrix is built from the raw (not unit-norm) prototype rows",
        "normed = F.normalize(prototypes, p=2, dim=-1)",
        "normed = prototypes",
    ),
    Mutant(
        "div-slice-off-by-one",
        "diversity",
        "off-by-one slice start:end+1 for the class's rows; the Gram matrix no longer fits the k x k mask",
        "gram = normed[start:end] @ normed[start:end].t()",
        "gram = normed[start : end + 1] @ normed[start : end + 1].t()",
        crashes=True,
    ),
    # ---------------------------------------------------------------- contrastive
    Mutant(
        "con-same-class-mask-dropped",
        "contrastive",
        "the same-class mask is not applied: contrastive averages all off-diagonal pairs (the original bug)",
        "diff_class_mask = ~same_class_mask & ~eye",
        "diff_class_mask = ~eye",
    ),
    Mutant(
        "con-block-off-by-one",
        "contrastive",
        "each same-class block is one row and column too large, swallowing the next class's first prototype",
        _SAME_BLOCK,
        "same_class_mask[idx : stop + 1, idx : stop + 1] = True",
    ),
    Mutant(
        "con-absolute-indices",
        "contrastive",
        "same-class blocks use the absolute row range (start, end) instead of the position among valid rows",
        _SAME_BLOCK,
        "same_class_mask[start:end, start:end] = True",
    ),
    Mutant(
        "con-unnormalised",
        "contrastive",
        "the valid rows are not normalised before the Gram matrix",
        "        valid_protos = F.normalize(valid_protos, p=2, dim=-1)\n",
        "",
    ),
    Mutant(
        "con-empty-guard-dropped",
        "contrastive",
        "no zero fallback when no different-class pair exists: mean over an empty set gives NaN"
        " (needs a state whose valid rows all belong to one class)",
        "        if diff_class_mask.sum() == 0:\n            return torch.tensor(0.0, device=prototypes.device)\n",
        "",
    ),
    # ---------------------------------------------------------------- loss-scales
    Mutant(
        "scale-sep-uses-clst",
        "loss-scales",
        "the separation term is multiplied by clst_scale instead of sep_scale",
        '"sep_loss": self.sep_scale *',
        '"sep_loss": self.clst_scale *',
    ),
    Mutant(
        "scale-cluster-dropped",
        "loss-scales",
        "the cluster term is not multiplied by clst_scale",
        '"cluster_loss": self.clst_scale * self.compute_cluster_loss',
        '"cluster_loss": self.compute_cluster_loss',
    ),
    Mutant(
        "scale-div-contrastive-swapped",
        "loss-scales",
        "div_scale and contrastive_scale are swapped between the diversity and contrastive terms",
        '"div_loss": self.div_scale * self.compute_diversity_loss(prototypes, proto_indices),\n'
        '            "contrastive_loss": self.contrastive_scale\n',
        '"div_loss": self.contrastive_scale * self.compute_diversity_loss(prototypes, proto_indices),\n'
        '            "contrastive_loss": self.div_scale\n',
    ),
    Mutant(
        "proto-loss-missing-div",
        "loss-scales",
        "proto_loss sums cluster, separation and contrastive but forgets diversity (needs an active diversity term)",
        _PROTO_SUM,
        'terms["cluster_loss"] + terms["sep_loss"] + terms["contrastive_loss"]',
    ),
    # ---------------------------------------------------------------- ema
    Mutant(
        "ema-momentum-swapped",
        "ema",
        "the EMA weighs the old row by 1 - m and the new value by m",
        _EMA,
        "self.prototypes.data[proto_idx] = (1 - m) * self.prototypes.data[proto_idx] + m * new_value_norm",
    ),
    Mutant(
        "ema-v-not-normalised",
        "ema",
        "the new value enters the EMA without being normalised",
        "new_value_norm = F.normalize(new_value, p=2, dim=-1)",
        "new_value_norm = new_value",
    ),
    Mutant(
        "ema-result-not-normalised",
        "ema",
        "the updated row is not renormalised after the EMA step",
        "        " + _EMA_NORM + "\n",
        "",
    ),
    Mutant(
        "ema-writes-next-row",
        "ema",
        "the renormalised row is written into the next row (proto_idx + 1), leaving the target unnormalised",
        _EMA_NORM,
        "self.prototypes.data[proto_idx + 1] = F.normalize(self.prototypes.data[proto_idx], p=2, dim=-1)",
    ),
    # ---------------------------------------------------------------- expand
    Mutant(
        "expand-row-plus-one",
        "expand",
        "the new prototype goes to row c*max + k + 1, skipping the next free slot",
        "row = class_idx * self.max_prototypes + k",
        "row = class_idx * self.max_prototypes + k + 1",
    ),
    Mutant(
        "expand-no-count",
        "expand",
        "expanding does not increment the class's prototype count",
        "        self.protos_per_class[class_idx] += 1\n",
        "",
    ),
    Mutant(
        "expand-no-mask",
        "expand",
        "expanding does not mark the new row in valid_mask",
        "        self.valid_mask[row] = True\n",
        "",
    ),
    Mutant(
        "expand-past-capacity",
        "expand",
        "the capacity test uses > instead of >=, so a full class writes into the next class's first row"
        " (needs an expand at capacity to show)",
        "if k >= self.max_prototypes:",
        "if k > self.max_prototypes:",
    ),
    # ---------------------------------------------------------------- layout
    Mutant(
        "layout-mask-plus-one",
        "layout",
        "the initial valid_mask marks num_prototypes + 1 rows per class",
        "valid_mask[start : start + num_prototypes] = True",
        "valid_mask[start : start + num_prototypes + 1] = True",
    ),
    Mutant(
        "layout-counts-max",
        "layout",
        "protos_per_class starts at max_prototypes instead of num_prototypes (disagrees with valid_mask)",
        "torch.full((num_classes,), num_prototypes, dtype=torch.long)",
        "torch.full((num_classes,), max_prototypes, dtype=torch.long)",
    ),
    Mutant(
        "layout-total-wrong",
        "layout",
        "the parameter gets num_classes * num_prototypes rows instead of num_classes * max_prototypes",
        "total = num_classes * max_prototypes",
        "total = num_classes * num_prototypes",
        crashes=True,
    ),
    # ---------------------------------------------------------------- indices
    Mutant(
        "indices-from-max",
        "indices",
        "get_prototype_indices ends every class at start + max_prototypes instead of start + k_c",
        _IDX_APPEND,
        "indices.append((start, start + self.max_prototypes))",
    ),
    Mutant(
        "indices-loop-short",
        "indices",
        "get_prototype_indices loops over range(num_classes - 1), dropping the last class",
        "        indices = []\n        for c in range(self.num_classes):\n",
        "        indices = []\n        for c in range(self.num_classes - 1):\n",
    ),
    Mutant(
        "indices-start-compacted",
        "indices",
        "a class's start row is c * k_c instead of c * max_prototypes (shows where rows are read by position:"
        " diversity, so it needs an active diversity term)",
        "start = c * self.max_prototypes",
        "start = c * int(self.protos_per_class[c].item())",
    ),
    # ---------------------------------------------------------------- attention-wiring
    Mutant(
        "attn-cross-kv-protos",
        "attention-wiring",
        "cross attention takes keys and values from the prototypes instead of the image patches",
        "cross, attn_weights = self.cross_attn(proto, img, img)",
        "cross, attn_weights = self.cross_attn(proto, proto, proto)",
    ),
    Mutant(
        "attn-self-reads-pre-norm",
        "attention-wiring",
        "self attention reads the raw cross-attention output instead of cross_out (after residual and norm1)",
        "self_att, _ = self.self_attn(cross_out, cross_out, cross_out)",
        "self_att, _ = self.self_attn(cross, cross, cross)",
    ),
    Mutant(
        "attn-cross-residual-dropped",
        "attention-wiring",
        "the cross-attention branch loses its residual connection",
        "cross_out = self.norm1(proto + self.dropout(cross))",
        "cross_out = self.norm1(self.dropout(cross))",
    ),
    Mutant(
        "attn-norm2-reused",
        "attention-wiring",
        "the third branch reuses norm2 instead of norm3 (same values while both norms are at their init)",
        "light_out = self.norm3(self_out + self.dropout(light))",
        "light_out = self.norm2(self_out + self.dropout(light))",
    ),
    Mutant(
        "attn-light-reads-cross-out",
        "attention-wiring",
        "the third (light) attention reads cross_out instead of self_out",
        "light, _ = self.light_attn(self_out, self_out, self_out)",
        "light, _ = self.light_attn(cross_out, cross_out, cross_out)",
    ),
    Mutant(
        "attn-queries-unnormalised",
        "attention-wiring",
        "the attention queries are the raw prototype rows instead of the normalised ones",
        "protos = self.proto_manager.get_prototypes().unsqueeze(0)",
        "protos = self.proto_manager.prototypes.unsqueeze(0)",
    ),
    # ---------------------------------------------------------------- gate
    Mutant(
        "gate-input-order-permuted",
        "gate",
        "the gate's input concatenates the branches in a different order than the weighted sum uses",
        _GATE,
        "gate_weights = F.softmax(self.gate(torch.cat([light_out, self_out, cross_out], dim=-1)), dim=-1)",
    ),
    Mutant(
        "gate-softmax-wrong-dim",
        "gate",
        "the gate softmax runs over the prototype dim instead of the three branch weights",
        _GATE,
        "gate_weights = F.softmax(self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)), dim=1)",
    ),
    Mutant(
        "gate-sigmoid",
        "gate",
        "the gate weights come from a sigmoid (independent, not summing to 1) instead of a softmax",
        _GATE,
        "gate_weights = torch.sigmoid(self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)))",
    ),
    Mutant(
        "gate-light-dropped",
        "gate",
        "the weighted sum forgets the third branch",
        _MIX,
        "gate_weights[..., 0:1] * cross_out + gate_weights[..., 1:2] * self_out",
    ),
    # ---------------------------------------------------------------- ffn
    Mutant(
        "ffn-residual-dropped",
        "ffn",
        "the FFN loses its residual connection",
        _FFN,
        "class_emb = self.ffn_norm(self.ffn(updated))",
    ),
    Mutant(
        "ffn-norm-skipped",
        "ffn",
        "ffn_norm is skipped after the FFN residual",
        _FFN,
        "class_emb = updated + self.ffn(updated)",
    ),
    # ---------------------------------------------------------------- constructor
    Mutant(
        "ctor-margin-dropped",
        "constructor",
        "HeadOptimal does not pass margin to the loss, which keeps its default 0.3 (needs a non-default margin)",
        "            margin=margin,\n",
        "",
    ),
    Mutant(
        "ctor-momentum-dropped",
        "constructor",
        "HeadOptimal does not pass momentum to the manager, which keeps its default 0.9 (needs a non-default momentum)",
        _MANAGER_ARGS,
        "num_classes, emb_dim, num_prototypes, max_prototypes\n",
    ),
    Mutant(
        "ctor-class-balanced-dropped",
        "constructor",
        "HeadOptimal does not pass use_class_balanced to the loss, so it is ignored (needs it set to show)",
        "            use_class_balanced=use_class_balanced,\n",
        "",
    ),
    Mutant(
        "ctor-attn-dropout-default",
        "constructor",
        "dropout_rate is not passed to the attention block, which keeps its default 0.1 (shows in training)",
        "MixedAttentionBlockOptimal(emb_dim, num_heads, dropout_rate)",
        "MixedAttentionBlockOptimal(emb_dim, num_heads)",
    ),
    Mutant(
        "ctor-counts-swapped",
        "constructor",
        "num_prototypes and max_prototypes are passed to the manager in swapped positions",
        _MANAGER_ARGS,
        "num_classes, emb_dim, max_prototypes, num_prototypes, momentum\n",
        crashes=True,
    ),
    Mutant(
        "ctor-compat-max",
        "constructor",
        "the compatibility Head passes max_prototypes=num_prototypes instead of 2 * num_prototypes",
        "max_prototypes=2 * num_prototypes,",
        "max_prototypes=num_prototypes,",
    ),
    # ================================================================ equivalents
    Mutant(
        "eq-global-mean-sum-count",
        "projection",
        "the 3-D global feature's mean is written as sum / size(1) (equal up to float rounding)",
        "img_features = img_features.mean(dim=1)",
        "img_features = img_features.sum(dim=1) / img_features.size(1)",
        equivalent=True,
    ),
    Mutant(
        "eq-sim-normalize-dot",
        "similarity",
        "cosine similarity written as normalize-then-dot (equal up to float rounding; the eps guards differ"
        " only for vectors of norm < 1e-8)",
        _SIMS,
        "sims = (F.normalize(img_proj, p=2, dim=-1).unsqueeze(1) * F.normalize(class_emb, p=2, dim=-1)).sum(dim=-1)",
        equivalent=True,
    ),
    Mutant(
        "eq-uw-divide-exp",
        "uncertainty-weighting",
        "exp(-s) * ce written as ce / exp(s) (equal up to float rounding)",
        "torch.exp(-self.log_sigma_ce) * ce",
        "ce / torch.exp(self.log_sigma_ce)",
        equivalent=True,
    ),
    Mutant(
        "eq-cluster-reciprocal",
        "cluster",
        "x / y written as x * (1.0 / y) in the cluster average (equal up to float rounding)",
        "return weighted / valid_classes",
        "return weighted * (1.0 / valid_classes)",
        equivalent=True,
    ),
    Mutant(
        "eq-cw-rsqrt",
        "class-weights",
        "1 / sqrt(n + eps) written as rsqrt(n + eps) (equal up to float rounding)",
        "weights = 1.0 / torch.sqrt(class_count + 1e-6)",
        "weights = torch.rsqrt(class_count + 1e-6)",
        equivalent=True,
    ),
    Mutant(
        "eq-sep-relu-clamp",
        "separation",
        "F.relu(a) written as torch.clamp(a, min=0) (same values; the subgradient differs only at exactly"
        " d == margin, where clamp passes 1 and relu 0)",
        "F.relu(self.margin - nearest_other)",
        "torch.clamp(self.margin - nearest_other, min=0)",
        equivalent=True,
    ),
    Mutant(
        "eq-div-sum-count",
        "diversity",
        "the mean over the k*(k-1) off-diagonal pairs written as sum / (k * (k - 1)) (equal up to float rounding)",
        "total = total + F.relu(gram[off_diag] - 0.5).mean()",
        "total = total + F.relu(gram[off_diag] - 0.5).sum() / (k * (k - 1))",
        equivalent=True,
    ),
    Mutant(
        "eq-con-demorgan",
        "contrastive",
        "~a & ~b written as ~(a | b) (bitwise identical)",
        "diff_class_mask = ~same_class_mask & ~eye",
        "diff_class_mask = ~(same_class_mask | eye)",
        equivalent=True,
    ),
    Mutant(
        "eq-con-eye-redundant",
        "contrastive",
        "`& ~eye` dropped from the different-class mask: redundant, the diagonal lies in the same-class blocks"
        " whenever valid_mask agrees with the per-class counts (every state the head can reach); it differs"
        " only for a direct loss call with more valid rows than the counts cover",
        "diff_class_mask = ~same_class_mask & ~eye",
        "diff_class_mask = ~same_class_mask",
        equivalent=True,
    ),
    Mutant(
        "eq-con-no-clip",
        "contrastive",
        "the block end is not clipped at n: slicing clips anyway and later blocks start past n and are empty"
        " (bitwise identical for non-negative class sizes; 'not clipping idx' is NOT a bug)",
        "stop = min(idx + num_valid, n)",
        "stop = idx + num_valid",
        equivalent=True,
    ),
    Mutant(
        "eq-proto-loss-sum",
        "loss-scales",
        "proto_loss written as sum(terms.values()) over the four terms in the same order (bitwise identical)",
        _PROTO_SUM,
        "sum(terms.values())",
        equivalent=True,
    ),
    Mutant(
        "eq-ema-commuted",
        "ema",
        "the two EMA summands are written in the other order (bitwise identical: IEEE addition commutes, so"
        " the exact-cancellation zero row of ema.unit-norm is kept; a torch.lerp rewrite need not keep it)",
        _EMA,
        "self.prototypes.data[proto_idx] = (1 - m) * new_value_norm + m * self.prototypes.data[proto_idx]",
        equivalent=True,
    ),
    Mutant(
        "eq-expand-assign-count",
        "expand",
        "the count increment written as an assignment of k + 1, k having just been read from the same entry",
        "self.protos_per_class[class_idx] += 1",
        "self.protos_per_class[class_idx] = k + 1",
        equivalent=True,
    ),
    Mutant(
        "eq-indices-comprehension",
        "indices",
        "get_prototype_indices' loop rewritten as a list comprehension (still a Python loop over classes with"
        " one .item() per class, so the static checks must still see it)",
        "        indices = []\n"
        "        for c in range(self.num_classes):\n"
        "            start = c * self.max_prototypes\n"
        "            # Defect (static.host-syncs): .item() reads a device value on the host.\n"
        "            " + _IDX_APPEND + "\n"
        "        return indices\n",
        "        # Defect (static.host-syncs): .item() reads a device value on the host.\n"
        "        return [\n"
        "            (c * self.max_prototypes, c * self.max_prototypes + int(self.protos_per_class[c].item()))\n"
        "            for c in range(self.num_classes)\n"
        "        ]\n",
        equivalent=True,
    ),
    Mutant(
        "eq-attn-rename-local",
        "attention-wiring",
        "the local `self_att` is renamed `attended` (bitwise identical)",
        "self_att, _ = self.self_attn(cross_out, cross_out, cross_out)\n"
        "        self_out = self.norm2(cross_out + self.dropout(self_att))",
        "attended, _ = self.self_attn(cross_out, cross_out, cross_out)\n"
        "        self_out = self.norm2(cross_out + self.dropout(attended))",
        equivalent=True,
    ),
    Mutant(
        "eq-gate-nested-cat",
        "gate",
        "the gate input built as cat([cross_out, cat([self_out, light_out])]): same order (bitwise identical)",
        "torch.cat([cross_out, self_out, light_out], dim=-1)",
        "torch.cat([cross_out, torch.cat([self_out, light_out], dim=-1)], dim=-1)",
        equivalent=True,
    ),
    Mutant(
        "eq-ctor-manager-keywords",
        "constructor",
        "the manager's settings passed by keyword instead of by position (identical)",
        _MANAGER_ARGS,
        "num_classes, emb_dim, num_prototypes=num_prototypes, max_prototypes=max_prototypes, momentum=momentum\n",
        equivalent=True,
    ),
)

EQUIVALENTS: tuple[Mutant, ...] = tuple(m for m in MUTANTS if m.equivalent)
