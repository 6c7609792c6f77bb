"""A held-out list of single-change mutants of ``reference/head_optimal.py``.

Written before the component contracts were measured against any mutant, and never used
to tune them: its kill rate is reported apart from ``catalogue.py``'s, so the number says
something about mistakes the checks were not built around. The mistakes differ from the
catalogue's (other lines, or other slips on the same line) and cover every part of the
file, gradient paths and constructor wiring included. Same format and rules as
``catalogue.py`` (``old`` occurs exactly once; ``equivalent`` marks a rewrite that must
not be flagged; ``crashes`` a head that raises in a normal small forward/train step).
"""

from __future__ import annotations

from .catalogue import Mutant

__all__ = ["HELDOUT", "HELDOUT_EQUIVALENTS"]

_SIMS = "sims = F.cosine_similarity(img_proj.unsqueeze(1), class_emb, dim=-1)"
_AGG = "out[:, c] = similarities[:, c, : end - start].max(dim=-1).values"
_LOGITS = "logits = self.aggregate_similarities(similarities) * self.temperature"
_RETURN = 'return logits, total, {"ce_loss": ce, **loss_dict, "total_loss": total}'
_CLUSTER_ADD = "weighted = weighted + weights[c] * nearest.mean()"
_MIX = "gate_weights[..., 0:1] * cross_out + gate_weights[..., 1:2] * self_out + gate_weights[..., 2:3] * light_out"
_SEP_RETURN = (
    "            counted += 1\n        if counted > 0:\n            return total / counted\n        return total\n\n"
    "    def compute_diversity_loss"
)

HELDOUT: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- projection
    Mutant(
        "h-img-from-patches",
        "projection",
        "the sample's projected feature is taken from the mean of its patches instead of the global feature",
        "img_proj = self.proj(img_features)",
        "img_proj = self.proj(pool_img_features.mean(dim=1))",
    ),
    Mutant(
        "h-global-3d-max",
        "projection",
        "a 3-D global feature is max-pooled over its tokens instead of averaged (needs T > 1 to show)",
        "img_features = img_features.mean(dim=1)",
        "img_features = img_features.max(dim=1).values",
    ),
    Mutant(
        "h-patches-drop-first",
        "projection",
        "the first patch of every sample is dropped from the keys, as if it were a class token",
        "img_seq = pool_proj.reshape(1, B * N, -1)",
        "img_seq = pool_proj[:, 1:].reshape(1, B * (N - 1), -1)",
    ),
    # ---------------------------------------------------------------- similarity
    Mutant(
        "h-sim-class-emb-detached",
        "similarity",
        "the class embeddings are detached before the cosine (values unchanged, no gradient to the attention path)",
        _SIMS,
        "sims = F.cosine_similarity(img_proj.unsqueeze(1), class_emb.detach(), dim=-1)",
    ),
    Mutant(
        "h-sim-clamped",
        "similarity",
        "negative similarities are clamped to zero",
        _SIMS,
        "sims = F.cosine_similarity(img_proj.unsqueeze(1), class_emb, dim=-1).clamp(min=0)",
    ),
    # ---------------------------------------------------------------- aggregation
    Mutant(
        "h-agg-logsumexp",
        "aggregation",
        "a 'smooth max' (logsumexp) replaces the max over the class's prototypes",
        _AGG,
        "out[:, c] = similarities[:, c, : end - start].logsumexp(dim=-1)",
    ),
    Mutant(
        "h-agg-temperature-divides",
        "aggregation",
        "the aggregated similarities are divided by the temperature instead of multiplied",
        _LOGITS,
        "logits = self.aggregate_similarities(similarities) / self.temperature",
    ),
    # ---------------------------------------------------------------- forward-returns
    Mutant(
        "h-ret-dict-summary-only",
        "forward-returns",
        "the training loss dict keeps only ce, proto and total: the per-term entries are dropped",
        _RETURN,
        'return logits, total, {"ce_loss": ce, "proto_loss": loss_dict["proto_loss"], "total_loss": total}',
    ),
    Mutant(
        "h-ret-eval-loss-none",
        "forward-returns",
        "eval returns None instead of a zero tensor as its loss",
        "return logits, torch.tensor(0.0), {}",
        "return logits, None, {}",
    ),
    Mutant(
        "h-train-without-labels",
        "forward-returns",
        "the training branch is taken in training mode even without labels (cross_entropy of None raises)",
        "if self.training and labels is not None:",
        "if self.training:",
    ),
    # ---------------------------------------------------------------- uncertainty-weighting
    Mutant(
        "h-uw-double-log-sigma",
        "uncertainty-weighting",
        "the prototype loss is weighted by exp(-2 s) (a variance parameterisation mixed with a log-sigma one)",
        "torch.exp(-self.log_sigma_proto) * proto_loss",
        "torch.exp(-2 * self.log_sigma_proto) * proto_loss",
    ),
    Mutant(
        "h-uw-reg-ce-twice",
        "uncertainty-weighting",
        "the regulariser of the prototype loss uses log_sigma_ce (copy-paste)",
        "* proto_loss\n                + self.log_sigma_proto\n",
        "* proto_loss\n                + self.log_sigma_ce\n",
    ),
    # ---------------------------------------------------------------- cluster
    Mutant(
        "h-cluster-squared",
        "cluster",
        "the cluster term averages squared nearest distances",
        _CLUSTER_ADD,
        "weighted = weighted + weights[c] * (nearest**2).mean()",
    ),
    Mutant(
        "h-cluster-farthest",
        "cluster",
        "the cluster term uses the farthest own prototype (max) instead of the nearest (min)",
        "nearest = distances[mask, c, : end - start].min(dim=-1).values",
        "nearest = distances[mask, c, : end - start].max(dim=-1).values",
    ),
    Mutant(
        "h-cluster-sum-samples",
        "cluster",
        "the per-class term sums over the class's samples instead of averaging",
        _CLUSTER_ADD,
        "weighted = weighted + weights[c] * nearest.sum()",
    ),
    # ---------------------------------------------------------------- class-weights
    Mutant(
        "h-cw-plus-one",
        "class-weights",
        "the plain weighting adds one to the counts before the square root (1/sqrt(n + 1))",
        "weights = 1.0 / torch.sqrt(class_count + 1e-6)",
        "weights = 1.0 / torch.sqrt(class_count + 1.0)",
    ),
    Mutant(
        "h-cw-bincount-short",
        "class-weights",
        "the counts are taken without minlength, so absent trailing classes leave the weight vector"
        " (needs an absent last class to show)",
        "class_count = torch.bincount(labels, minlength=self.num_classes).float()",
        "class_count = torch.bincount(labels).float()",
    ),
    # ---------------------------------------------------------------- separation
    Mutant(
        "h-sep-squared-hinge",
        "separation",
        "separation squares its hinge",
        "total = total + F.relu(self.margin - nearest_other).mean()",
        "total = total + F.relu(self.margin - nearest_other).pow(2).mean()",
    ),
    Mutant(
        "h-sep-divide-num-classes",
        "separation",
        "separation divides by num_classes instead of the number of classes it counted (needs an absent class)",
        _SEP_RETURN,
        "            counted += 1\n        if counted > 0:\n            return total / self.num_classes\n"
        "        return total\n\n    def compute_diversity_loss",
    ),
    Mutant(
        "h-sep-cat-wrong-dim",
        "separation",
        "the other classes' distances are concatenated along the sample dim instead of the prototype dim",
        "nearest_other = torch.cat(others, dim=-1).min(dim=-1).values",
        "nearest_other = torch.cat(others, dim=0).min(dim=-1).values",
    ),
    # ---------------------------------------------------------------- diversity
    Mutant(
        "h-div-abs",
        "diversity",
        "diversity penalises |cos - 0.5| instead of relu(cos - 0.5)",
        "total = total + F.relu(gram[off_diag] - 0.5).mean()",
        "total = total + (gram[off_diag] - 0.5).abs().mean()",
    ),
    Mutant(
        "h-div-all-slots",
        "diversity",
        "diversity reads all max_prototypes rows of every class, unused ones included",
        "            k = end - start\n",
        "            end = start + self.max_prototypes\n            k = end - start\n",
    ),
    # ---------------------------------------------------------------- contrastive
    Mutant(
        "h-con-all-rows",
        "contrastive",
        "the contrastive term takes every prototype row, valid or not",
        "valid_protos = prototypes[valid_mask]",
        "valid_protos = prototypes",
    ),
    # ---------------------------------------------------------------- loss-scales
    Mutant(
        "h-proto-loss-mean",
        "loss-scales",
        "proto_loss is the mean of the four scaled terms instead of their sum",
        'terms["proto_loss"] = terms["cluster_loss"] + terms["sep_loss"] + terms["div_loss"]'
        ' + terms["contrastive_loss"]',
        'terms["proto_loss"] = (terms["cluster_loss"] + terms["sep_loss"] + terms["div_loss"]'
        ' + terms["contrastive_loss"]) / 4',
    ),
    # ---------------------------------------------------------------- ema
    Mutant(
        "h-ema-fixed-momentum",
        "ema",
        "the update uses a literal 0.9 instead of the manager's momentum",
        "        m = self.momentum\n        self.prototypes.data[proto_idx] = m",
        "        m = 0.9\n        self.prototypes.data[proto_idx] = m",
    ),
    # ---------------------------------------------------------------- expand
    Mutant(
        "h-expand-unnormalised",
        "expand",
        "expanding writes the new prototype as given, not normalised",
        "self.prototypes.data[row] = F.normalize(new_proto, p=2, dim=-1)",
        "self.prototypes.data[row] = new_proto",
    ),
    Mutant(
        "h-expand-early-refusal",
        "expand",
        "expanding refuses one slot early (k >= max - 1)",
        "if k >= self.max_prototypes:",
        "if k >= self.max_prototypes - 1:",
    ),
    # ---------------------------------------------------------------- layout
    Mutant(
        "h-layout-mask-packed",
        "layout",
        "the initial valid_mask packs the classes' rows (start = c * num_prototypes)",
        "            start = c * max_prototypes\n            valid_mask",
        "            start = c * num_prototypes\n            valid_mask",
    ),
    # ---------------------------------------------------------------- indices
    Mutant(
        "h-indices-end-minus-one",
        "indices",
        "get_prototype_indices ends each class one row early",
        "indices.append((start, start + int(self.protos_per_class[c].item())))",
        "indices.append((start, start + int(self.protos_per_class[c].item()) - 1))",
    ),
    # ---------------------------------------------------------------- attention-wiring
    Mutant(
        "h-attn-self-residual-dropped",
        "attention-wiring",
        "the self-attention branch loses its residual connection",
        "self_out = self.norm2(cross_out + self.dropout(self_att))",
        "self_out = self.norm2(self.dropout(self_att))",
    ),
    Mutant(
        "h-attn-light-not-batch-first",
        "attention-wiring",
        "the third attention is built without batch_first, so each prototype attends only to itself",
        "self.light_attn = nn.MultiheadAttention(emb_dim, max(1, num_heads // 2), dropout=dropout, batch_first=True)",
        "self.light_attn = nn.MultiheadAttention(emb_dim, max(1, num_heads // 2), dropout=dropout)",
    ),
    Mutant(
        "h-attn-light-residual-from-cross",
        "attention-wiring",
        "the third branch's residual adds cross_out instead of self_out",
        "light_out = self.norm3(self_out + self.dropout(light))",
        "light_out = self.norm3(cross_out + self.dropout(light))",
    ),
    # ---------------------------------------------------------------- gate
    Mutant(
        "h-gate-mix-reversed",
        "gate",
        "the weighted sum applies the gate weights to the branches in reversed order",
        _MIX,
        "gate_weights[..., 0:1] * light_out + gate_weights[..., 1:2] * self_out + gate_weights[..., 2:3] * cross_out",
    ),
    # ---------------------------------------------------------------- ffn
    Mutant(
        "h-ffn-relu",
        "ffn",
        "the FFN uses ReLU instead of GELU",
        "nn.Linear(emb_dim, 4 * emb_dim),\n            nn.GELU(),",
        "nn.Linear(emb_dim, 4 * emb_dim),\n            nn.ReLU(),",
    ),
    Mutant(
        "h-ffn-pre-norm",
        "ffn",
        "the FFN block is rewritten pre-norm: updated + ffn(ffn_norm(updated))",
        "class_emb = self.ffn_norm(updated + self.ffn(updated))",
        "class_emb = updated + self.ffn(self.ffn_norm(updated))",
    ),
    # ---------------------------------------------------------------- constructor
    Mutant(
        "h-ctor-temperature-ignored",
        "constructor",
        "the temperature parameter is initialised to 10.0 whatever the constructor was given",
        "self.temperature = nn.Parameter(torch.tensor(temperature))",
        "self.temperature = nn.Parameter(torch.tensor(10.0))",
    ),
    Mutant(
        "h-ctor-div-scale-copy",
        "constructor",
        "HeadOptimal passes contrastive_scale as the loss's div_scale (copy-paste)",
        "            div_scale=div_scale,\n",
        "            div_scale=contrastive_scale,\n",
    ),
    Mutant(
        "h-ctor-cb-beta-dropped",
        "constructor",
        "HeadOptimal does not pass cb_beta to the loss, which keeps 0.9999 (needs use_class_balanced and another beta)",
        "            cb_beta=cb_beta,\n",
        "",
    ),
    # ================================================================ equivalents
    Mutant(
        "h-eq-sims-reshape",
        "similarity",
        "the similarities' view written as reshape (identical on a contiguous tensor)",
        "return sims.view(sims.size(0), self.num_classes, self.max_prototypes)",
        "return sims.reshape(sims.size(0), self.num_classes, self.max_prototypes)",
        equivalent=True,
    ),
    Mutant(
        "h-eq-agg-flat-rows",
        "aggregation",
        "the class's slots read from the flattened similarities by absolute row range (identical values)",
        _AGG,
        "out[:, c] = similarities.flatten(1)[:, start:end].max(dim=-1).values",
        equivalent=True,
    ),
    Mutant(
        "h-eq-cw-mean",
        "class-weights",
        "w / w.sum() * num_classes written as w / w.mean() (equal up to float rounding)",
        "return weights / weights.sum() * self.num_classes",
        "return weights / weights.mean()",
        equivalent=True,
    ),
    Mutant(
        "h-eq-ema-dim0",
        "ema",
        "the 1-D new value normalised over dim 0 instead of dim -1 (the same dim)",
        "new_value_norm = F.normalize(new_value, p=2, dim=-1)",
        "new_value_norm = F.normalize(new_value, p=2, dim=0)",
        equivalent=True,
    ),
    Mutant(
        "h-eq-ffn-sum-order",
        "ffn",
        "updated + ffn(updated) written as ffn(updated) + updated (bitwise identical)",
        "class_emb = self.ffn_norm(updated + self.ffn(updated))",
        "class_emb = self.ffn_norm(self.ffn(updated) + updated)",
        equivalent=True,
    ),
    Mutant(
        "h-eq-ce-nll",
        "forward-returns",
        "cross_entropy written as nll_loss of log_softmax (equal up to float rounding)",
        "ce = F.cross_entropy(logits, labels)",
        "ce = F.nll_loss(F.log_softmax(logits, dim=-1), labels)",
        equivalent=True,
    ),
    Mutant(
        "h-eq-sep-amin",
        "separation",
        "min(...).values written as amin (identical values)",
        "nearest_other = torch.cat(others, dim=-1).min(dim=-1).values",
        "nearest_other = torch.cat(others, dim=-1).amin(dim=-1)",
        equivalent=True,
    ),
    Mutant(
        "h-eq-gate-torch-softmax",
        "gate",
        "F.softmax written as Tensor.softmax (identical)",
        "gate_weights = F.softmax(self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)), dim=-1)",
        "gate_weights = self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)).softmax(dim=-1)",
        equivalent=True,
    ),
)

HELDOUT_EQUIVALENTS: tuple[Mutant, ...] = tuple(m for m in HELDOUT if m.equivalent)
