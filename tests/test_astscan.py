"""The static engine (``headaudit.astscan``): forward path, rules, host call sites, attribute uses.

Every rule has snippets that must be flagged and snippets that must not; the references and
a renamed rewrite of ``head_optimal.py`` (``tests/snippets/renamed_head.py``) must give the
same findings by category, which proves the engine follows data flow, not names or lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from textwrap import dedent

import pytest

from headaudit import astscan
from headaudit.astscan import (
    AstScanError,
    Finding,
    SourceSyntaxError,
    analyze,
    analyze_file,
    attribute_uses,
    forward_path,
    head_calls,
    scan,
)
from headaudit.errors import HeadAuditError, SubjectError

ROOT = Path(__file__).resolve().parents[1]
HEAD = ROOT / "reference" / "head.py"
OPTIMAL = ROOT / "reference" / "head_optimal.py"
RENAMED = Path(__file__).parent / "snippets" / "renamed_head.py"

PRELUDE = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n"


def _src(body: str) -> str:
    return PRELUDE + dedent(body)


def _found(body: str, rule: str) -> list[Finding]:
    return [f for f in scan(_src(body), "snippet.py") if f.rule == rule]


def _lines_of(path: Path, text: str) -> list[int]:
    return [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]


def _categories(findings: tuple[Finding, ...]) -> Counter[tuple[str, str, int]]:
    return Counter((f.rule, f.kind, f.depth) for f in findings)


# ---------------------------------------------------------------------------------------
# host-syncs
# ---------------------------------------------------------------------------------------

HOST_SYNC_FLAGGED = {
    "item": ("def f(x: torch.Tensor):\n    return x.sum().item()", "conversion", ".item()"),
    "tolist": ("def f(x):\n    return x.tolist()", "conversion", ".tolist()"),
    "cpu": ("def f(x: torch.Tensor):\n    return x.cpu()", "conversion", ".cpu()"),
    "numpy": ("def f(x: torch.Tensor):\n    return x.detach().numpy()", "conversion", ".numpy()"),
    "to-cpu": ("def f(x: torch.Tensor):\n    return x.to('cpu')", "conversion", ".to('cpu')"),
    "int": ("def f(x: torch.Tensor):\n    return int(x.sum())", "conversion", "int(tensor)"),
    "float-param": (
        """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.temperature = nn.Parameter(torch.tensor(10.0))

            def g(self):
                return float(self.temperature)
        """,
        "conversion",
        "float(tensor)",
    ),
    "bool": ("def f(m: torch.Tensor):\n    return bool(m.any())", "conversion", "bool(tensor)"),
    "f-string": ("def f(loss: torch.Tensor):\n    print(f'loss={loss}')", "conversion", "f-string"),
    "if-mask-sum": (
        """
        def f(labels: torch.Tensor, c: int):
            mask = labels == c
            if mask.sum() == 0:
                return 0
            return 1
        """,
        "condition",
        "if",
    ),
    "if-buffer": (
        """
        class M(nn.Module):
            def __init__(self, total: int):
                super().__init__()
                self.register_buffer("cache_count", torch.zeros(total))

            def g(self, idx: int):
                if self.cache_count[idx] > 0:
                    return 1
                return 0
        """,
        "condition",
        "if",
    ),
    "while": (
        "def f(err: torch.Tensor):\n    while err.abs().max() > 1e-3:\n        err = err / 2\n",
        "condition",
        "while",
    ),
    "ternary": ("def f(t: torch.Tensor, a, b):\n    return a if t.any() else b", "condition", "ternary"),
    "assert": ("def f(x: torch.Tensor):\n    assert x.min() >= 0", "condition", "assert"),
    "and-operand": (
        "def f(t: torch.Tensor, flag: bool):\n    if t.any() and flag:\n        return 1\n",
        "condition",
        "and operand",
    ),
    "or-value": ("def f(t: torch.Tensor, flag: bool):\n    ok = t.any() or flag\n    return ok", "condition", "or"),
    "not": ("def f(t: torch.Tensor):\n    if not t.any():\n        return 1\n", "condition", "not"),
    "comprehension-if": (
        "def f(t: torch.Tensor):\n    return [i for i in range(3) if t[i] > 0]",
        "condition",
        "comprehension-if",
    ),
    "torch.nonzero": ("def f(m: torch.Tensor):\n    return torch.nonzero(m)", "data-dependent-shape", "nonzero"),
    "method-nonzero": ("def f(m: torch.Tensor):\n    return m.nonzero()", "data-dependent-shape", "nonzero"),
    "unique": ("def f(y: torch.Tensor):\n    return torch.unique(y)", "data-dependent-shape", "unique"),
    "bool-mask": (
        "def f(x: torch.Tensor):\n    mask = x > 0\n    return x[mask]",
        "data-dependent-shape",
        "boolean-mask",
    ),
    "bool-dtype-mask": (
        "def f(g: torch.Tensor, k: int):\n    off = ~torch.eye(k, dtype=torch.bool)\n    return g[off]",
        "data-dependent-shape",
        "boolean-mask",
    ),
    "mask-through-call": (
        """
        def pick(x, m):
            return x[m]

        def f(x: torch.Tensor):
            return pick(x, x.isnan())
        """,
        "data-dependent-shape",
        "boolean-mask",
    ),
}


@pytest.mark.parametrize("case", sorted(HOST_SYNC_FLAGGED))
def test_host_syncs_flagged(case: str) -> None:
    body, kind, detail = HOST_SYNC_FLAGGED[case]
    found = _found(body, "host-syncs")
    assert any(f.kind == kind and detail in f.detail for f in found), found


HOST_SYNC_CLEAN = {
    "size-compare": "def f(x: torch.Tensor):\n    n = x.size(0)\n    if n <= 1:\n        return x\n    return x * 2",
    "dim-shape-len-numel": """
        def f(x: torch.Tensor):
            if x.dim() == 3 or x.shape[0] > 2 or len(x) > 1 or x.numel() == 0 or x.ndim == 2:
                return x
            b, n, c = x.shape
            return x.reshape(b * n, c)
        """,
    "training-and-none": """
        class M(nn.Module):
            def g(self, labels=None):
                if self.training and labels is not None:
                    return 1
                return 0
        """,
    "int-of-python-int": "def f(k: int, x: torch.Tensor):\n    return int(k) + int(x.size(0)) + int(len(x))",
    "float-of-config": """
        class M(nn.Module):
            def __init__(self, margin: float = 0.3, use_cb: bool = False):
                super().__init__()
                self.margin = margin
                self.use_cb = use_cb

            def g(self, x: torch.Tensor):
                if self.use_cb:
                    return x * float(self.margin)
                return x
        """,
    "int-counter": """
        def f(x: torch.Tensor):
            counted = 0
            for _ in range(3):
                counted += 1
            if counted > 0:
                return x / counted
            return x
        """,
    "list-of-tensors": """
        def f(x: torch.Tensor):
            others = []
            others.append(x)
            if not others:
                return x
            return torch.cat(others)
        """,
    "integer-index": """
        def f(x: torch.Tensor, c: int):
            idx = torch.arange(3)
            return x[c] + x[:, c] + x[idx] + x[..., 0:1]
        """,
    "mask-write": "def f(x: torch.Tensor):\n    x[x > 0] = 0\n    return x",
    "module-cpu": """
        class M(nn.Module):
            def g(self):
                return self.cpu()
        """,
    "host-ternary": "def f(x: torch.Tensor, seen: int):\n    return x / seen if seen > 0 else x",
    "is-none": "def f(x: torch.Tensor | None):\n    if x is None:\n        return 0\n    return 1",
}


@pytest.mark.parametrize("case", sorted(HOST_SYNC_CLEAN))
def test_host_syncs_not_flagged(case: str) -> None:
    assert _found(HOST_SYNC_CLEAN[case], "host-syncs") == []


def test_unannotated_forward_inputs_are_tensors_but_helpers_are_not() -> None:
    source = _src(
        """
        class H(nn.Module):
            def forward(self, x, labels=None):
                if x.sum() > 0:
                    return x
                return x

            def helper(self, y):
                if y > 0:
                    return y
                return y
        """
    )
    on_path = analyze(source, "h.py", "H")
    assert [(f.function, f.detail) for f in on_path.findings] == [("H.forward", "if")]
    assert [f.function for f in on_path.file_findings if f.rule == "host-syncs"] == ["H.forward"]


# ---------------------------------------------------------------------------------------
# class-loops
# ---------------------------------------------------------------------------------------

CLASS_LOOPS_FLAGGED = {
    "self-num-classes": (
        """
        class L(nn.Module):
            def __init__(self, num_classes: int):
                super().__init__()
                self.num_classes = num_classes

            def g(self, x: torch.Tensor):
                for c in range(self.num_classes):
                    x = x + c
                return x
        """,
        "class-count-range",
    ),
    "param-num-classes": ("def f(num_classes):\n    for c in range(num_classes):\n        pass\n", "class-count-range"),
    "bound-count": (
        """
        class L(nn.Module):
            def __init__(self, num_classes: int):
                super().__init__()
                self.k = num_classes

            def g(self):
                C = self.k
                for c in range(C):
                    pass
        """,
        "class-count-range",
    ),
    "len-of-indices": (
        "def f(proto_indices):\n    for c in range(len(proto_indices)):\n        pass\n",
        "class-count-range",
    ),
    "enumerate-indices": (
        "def f(proto_indices):\n    for c, (s, e) in enumerate(proto_indices):\n        pass\n",
        "per-class-iterable",
    ),
    "unpack-indices": ("def f(proto_indices):\n    for s, e in proto_indices:\n        pass\n", "per-class-iterable"),
    "unknown-manager": (
        "def f(manager):\n    idx = manager.get_prototype_indices()\n    for s, e in idx:\n        pass\n",
        "per-class-iterable",
    ),
    "built-per-class": (
        """
        def spans(n_classes, width):
            out = []
            for c in range(n_classes):
                out.append((c * width, c * width + 1))
            return out

        def f(num_classes):
            for a, b in spans(num_classes, 4):
                pass
        """,
        "per-class-iterable",
    ),
    "prototype-rows": (
        """
        class P(nn.Module):
            def __init__(self, num_classes: int, max_prototypes: int, dim: int):
                super().__init__()
                total = num_classes * max_prototypes
                self.weight = nn.Parameter(torch.empty(total, dim))

            def g(self):
                for i in range(self.weight.size(0)):
                    pass
        """,
        "prototype-rows",
    ),
    "comprehension": (
        "def f(x: torch.Tensor, num_classes: int):\n    return [x[:, c].max() for c in range(num_classes)]",
        "class-count-range",
    ),
    "while-count": (
        "def f(num_classes):\n    c = 0\n    while c < num_classes:\n        c += 1\n",
        "class-count-range",
    ),
}


@pytest.mark.parametrize("case", sorted(CLASS_LOOPS_FLAGGED))
def test_class_loops_flagged(case: str) -> None:
    body, kind = CLASS_LOOPS_FLAGGED[case]
    found = _found(body, "class-loops")
    # ``built-per-class`` also has the builder's own loop over ``range(n_classes)``.
    assert len(found) == (2 if case == "built-per-class" else 1), found
    assert found[-1].kind == kind
    assert found[-1].function in ("f", "L.g", "P.g")
    assert {f.depth for f in found} == {1}


CLASS_LOOPS_CLEAN = {
    "heads": """
        class A(nn.Module):
            def __init__(self, num_heads: int):
                super().__init__()
                self.num_heads = num_heads
                self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(num_heads)])

            def g(self, x: torch.Tensor):
                for h in range(self.num_heads):
                    x = x + h
                for layer in self.layers:
                    x = layer(x)
                return x
        """,
    "batch": """
        def f(x: torch.Tensor):
            for b in range(x.size(0)):
                pass
            for i in range(3):
                pass
        """,
    "dict-items": "def f(terms: dict):\n    for k, v in terms.items():\n        pass\n",
    "same-depth-list": """
        def f(num_classes):
            for c in range(num_classes):
                others = []
                others.append(c)
                for o in others:
                    pass
        """,
}


@pytest.mark.parametrize("case", sorted(CLASS_LOOPS_CLEAN))
def test_class_loops_not_flagged(case: str) -> None:
    found = _found(CLASS_LOOPS_CLEAN[case], "class-loops")
    # A list created and appended in the same class-loop body is not per-class.
    expected = ["for: range(num_classes)"] if case == "same-depth-list" else []
    assert [f.detail for f in found] == expected


def test_nesting_depth_within_and_across_functions() -> None:
    body = """
        def inner(spans):
            for s, e in spans:
                pass

        def f(num_classes, proto_indices):
            for c in range(num_classes):
                for o, (s, e) in enumerate(proto_indices):
                    pass
                inner(proto_indices)
            inner(proto_indices)
        """
    source = _src(body)
    found = {(f.function, f.depth) for f in scan(source, "s.py", ["f"]) if f.rule == "class-loops"}
    assert found == {("f", 1), ("f", 2)}
    via_call = [f for f in scan(source, "s.py") if f.function == "inner"]
    assert [f.depth for f in via_call] == [2]  # called inside a class loop somewhere in the file


def test_per_class_flows_through_parameters() -> None:
    source = _src(
        """
        class Bank(nn.Module):
            def spans(self):
                return [(0, 1), (1, 2)]

        def walk(pairs):
            for a, b in pairs:
                pass

        class H(nn.Module):
            def __init__(self):
                super().__init__()
                self.bank = Bank()

            def forward(self, x):
                walk(self.bank.spans())
                return x
        """
    )
    assert [f for f in analyze(source, "h.py", "H").findings if f.rule == "class-loops"] == []
    seeded = source.replace("def spans(self)", "def get_prototype_indices(self)").replace(
        "self.bank.spans()", "self.bank.get_prototype_indices()"
    )
    loops = [f for f in analyze(seeded, "h.py", "H").findings if f.rule == "class-loops"]
    assert [(f.function, f.kind) for f in loops] == [("walk", "per-class-iterable")]


# ---------------------------------------------------------------------------------------
# data-writes
# ---------------------------------------------------------------------------------------

DATA_WRITES = {
    "assign": ("def f(w: torch.Tensor, x):\n    w.data = x", "assign"),
    "index-assign": ("def f(w: torch.Tensor, x):\n    w.data[0] = x", "index-assign"),
    "augmented": ("def f(w: torch.Tensor, x):\n    w.data[0] += x", "augmented-assign"),
    "copy_": ("def f(w: torch.Tensor, x):\n    w.data.copy_(x)", "in-place-method"),
    "mul_": ("def f(w: torch.Tensor):\n    w.data.mul_(0.9)", "in-place-method"),
    "indexed-copy_": ("def f(w: torch.Tensor, x):\n    w.data[3].copy_(x)", "in-place-method"),
    "view-zero_": ("def f(w: torch.Tensor):\n    w.data.view(-1)[0].zero_()", "in-place-method"),
    "init": ("def f(w: torch.Tensor):\n    nn.init.zeros_(w.data)", "in-place-function"),
    "out": ("def f(w: torch.Tensor, a, b):\n    torch.add(a, b, out=w.data)", "out-argument"),
}


@pytest.mark.parametrize("case", sorted(DATA_WRITES))
def test_data_writes_flagged(case: str) -> None:
    body, kind = DATA_WRITES[case]
    assert [f.kind for f in _found(body, "data-writes")] == [kind]


def test_data_reads_and_plain_writes_not_flagged() -> None:
    body = """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.zeros(3))

            @torch.no_grad()
            def g(self, x: torch.Tensor):
                y = self.w.data[0] * 2 + self.w.data.sum()
                z = self.w.data.clone()
                self.w.copy_(x)
                self.w[0] = y
                self.data = z
                return y
        """
    assert _found(body, "data-writes") == []


def test_parameter_writes_are_named() -> None:
    body = """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.zeros(3))

            def g(self, x):
                self.w.data[0] = x
        """
    (found,) = _found(body, "data-writes")
    assert found.detail == "self.w (parameter)"


# ---------------------------------------------------------------------------------------
# forward path resolution
# ---------------------------------------------------------------------------------------

RESOLUTION = _src(
    """
    def scale(x):
        return x * 2

    class Block(nn.Module):
        def forward(self, x):
            return self._inner(x)

        def _inner(self, x):
            return x

    class Callable:
        def __call__(self, x):
            return x

        def forward(self, x):
            return x

    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.blocks = nn.ModuleList([Block() for _ in range(2)])
            self.fn = Callable()

        def forward(self, x):
            return self.step(x)

        def step(self, x):
            return x

        def unused(self, x):
            return x

        @property
        def width(self):
            return 3

        @staticmethod
        def static_helper(x):
            return x

        @classmethod
        def build(cls):
            return cls

    class Left(Base):
        def step(self, x):
            return super().step(x)

    class Right(Base):
        def step(self, x):
            return Base.step(self, x)

    class Head(Left, Right):
        def forward(self, x):
            y = super(Head, self).forward(x)
            fn = self.block
            y = fn(y) + self.fn(y) + scale(y) + self.width + self.static_helper(y)
            for blk in self.blocks:
                y = blk(y)
            getattr(self, "dyn" + "amic")(y)
            self.not_there(y)
            unknown_function(y)
            self.build()
            return y
    """
)


def test_forward_path_follows_every_kind_of_call() -> None:
    names = [ref.qualname for ref in forward_path(RESOLUTION, "r.py", "Head")]
    expected = {
        "Head.forward",
        "Base.forward",
        "Left.step",
        "Right.step",
        "Base.step",
        "Block.forward",
        "Block._inner",
        "Callable.__call__",
        "scale",
        "Base.width",
        "Base.static_helper",
        "Base.build",
    }
    assert set(names) == expected
    assert "Base.unused" not in names
    assert "Callable.forward" not in names
    refs = forward_path(RESOLUTION, "r.py", "Head")
    assert [r.line for r in refs] == sorted(r.line for r in refs)
    assert refs == forward_path(RESOLUTION, "r.py", "Head")  # stable
    assert {r.qualname: r.via for r in refs}["Block._inner"] == "Block.forward"


def test_c3_order_picks_the_first_override() -> None:
    source = _src(
        """
        class A(nn.Module):
            def forward(self, x):
                return self.m(x)

            def m(self, x):
                return x

        class B(A):
            def m(self, x):
                return x

        class C(A):
            def m(self, x):
                return x

        class D(B, C):
            pass
        """
    )
    assert [r.qualname for r in forward_path(source, "d.py", "D")] == ["A.forward", "B.m"]


def test_reference_forward_paths() -> None:
    for path, head, loss, manager, block in [
        (
            OPTIMAL,
            "HeadOptimal",
            "OptimalPrototypeLoss",
            "DynamicPrototypeManagerOptimal",
            "MixedAttentionBlockOptimal",
        ),
        (OPTIMAL, "Head", "OptimalPrototypeLoss", "DynamicPrototypeManagerOptimal", "MixedAttentionBlockOptimal"),
        (HEAD, "Head", "BalancedPrototypeLoss", "DynamicPrototypeManager", "MixedAttentionBlock"),
    ]:
        result = analyze_file(path, head)
        names = {ref.qualname for ref in result.forward_path}
        assert {f"{loss}.forward", f"{manager}.get_prototype_indices", f"{block}.forward"} <= names
        assert not {n for n in names if n.endswith(("momentum_update", "expand_prototype", "expand_prototypes"))}
        assert not {n for n in names if n.endswith(("apply_momentum_updates", "__init__"))}
    listed = {r.qualname for r in astscan.list_functions(OPTIMAL.read_text(), "o.py")}
    assert {"DynamicPrototypeManagerOptimal.expand_prototype", "has_multi_prototype_head"} <= listed
    assert analyze_file(OPTIMAL, "Head").reaches("MixedAttentionBlockOptimal.forward")
    optimal = {r.qualname for r in analyze_file(OPTIMAL, "HeadOptimal").forward_path}
    compat = {r.qualname for r in analyze_file(OPTIMAL, "Head").forward_path}
    assert "OptimalPrototypeLoss.compute_separation_loss" in optimal
    assert compat == optimal | {"Head.forward"}


# ---------------------------------------------------------------------------------------
# the references and the renamed rewrite
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "head"), [(OPTIMAL, "HeadOptimal"), (OPTIMAL, "Head"), (HEAD, "Head")])
def test_reference_findings(path: Path, head: str) -> None:
    result = analyze_file(path, head)
    loops = result.by_rule("class-loops")
    assert max(f.depth for f in loops) == 2
    (deepest,) = [f for f in loops if f.depth == 2]
    assert "separation" in deepest.function or deepest.function == "BalancedPrototypeLoss.forward"
    assert deepest.line > min(_lines_of(path, "def forward(") + _lines_of(path, "def compute_separation_loss"))

    syncs = result.by_rule("host-syncs")
    item_lines = set(_lines_of(path, "int(self.protos_per_class[c].item())"))
    assert {f.line for f in syncs if f.detail == ".item()"} == item_lines
    assert all(f.function.endswith("get_prototype_indices") for f in syncs if f.detail == ".item()")
    mask_lines = set(_lines_of(path, "if mask.sum() == 0"))
    assert len(mask_lines) == 2
    assert mask_lines <= {f.line for f in syncs if f.kind == "condition"}

    assert result.by_rule("data-writes") == ()
    writes = result.by_rule("data-writes", whole_file=True)
    assert {f.line for f in writes} == set(_lines_of(path, ".data[")) - set(_lines_of(path, "= m * self.momentum"))
    assert writes
    assert all(f.on_forward_path is False for f in writes)
    assert all(("expand" in f.function) or ("momentum" in f.function) for f in writes)
    assert all(f.on_forward_path for f in result.findings)


def test_reference_counts() -> None:
    optimal = _categories(analyze_file(OPTIMAL, "HeadOptimal").findings)
    assert optimal == _categories(analyze_file(OPTIMAL, "Head").findings)
    assert sum(n for (rule, _, _), n in optimal.items() if rule == "class-loops") == 7
    assert sum(n for (rule, _, _), n in optimal.items() if rule == "host-syncs") == 10
    original = _categories(analyze_file(HEAD, "Head").findings)
    assert sum(n for (rule, _, _), n in original.items() if rule == "class-loops") == 6
    assert sum(n for (rule, _, _), n in original.items() if rule == "host-syncs") == 8
    everywhere = analyze_file(HEAD, "Head").file_findings
    off_path = {(f.rule, f.function) for f in everywhere if not f.on_forward_path}
    assert ("class-loops", "DynamicPrototypeManager.apply_momentum_updates") in off_path
    assert ("host-syncs", "DynamicPrototypeManager.apply_momentum_updates") in off_path


@pytest.mark.parametrize("head", ["ProtoHead", "CompatProtoHead"])
def test_renamed_copy_gives_the_same_findings(head: str) -> None:
    renamed = analyze_file(RENAMED, head)
    reference = analyze_file(OPTIMAL, "HeadOptimal")
    assert _categories(renamed.findings) == _categories(reference.findings)
    names = {r.qualname for r in renamed.forward_path}
    assert {"separation_term", "_nearest_other", "PrototypeBank.class_spans", "TriBranchAttention.forward"} <= names
    assert not names & {"PrototypeBank.grow", "PrototypeBank.ema"}
    (deepest,) = [f for f in renamed.findings if f.depth == 2]
    assert deepest.function == "_nearest_other"
    whole = _categories(renamed.file_findings)
    assert whole[("data-writes", "in-place-method", 0)] == 1
    assert whole[("data-writes", "index-assign", 0)] == 1


def test_statements_inside_try_with_match_and_nested_functions() -> None:
    body = """
        def f(x: torch.Tensor, num_classes: int):
            try:
                v = x.item()
            except* ValueError:
                pass
            with torch.no_grad():
                match num_classes:
                    case 3:
                        for c in range(num_classes):
                            pass

            def inner():
                return x.tolist()

            return inner
        """
    found = {(f.rule, f.detail.split(":")[0]) for f in scan(_src(body), "s.py")}
    assert found == {("host-syncs", ".item()"), ("host-syncs", ".tolist()"), ("class-loops", "for")}


# ---------------------------------------------------------------------------------------
# scanning chosen functions
# ---------------------------------------------------------------------------------------


def test_scan_a_class_or_a_function() -> None:
    source = OPTIMAL.read_text()
    manager = astscan.scan(source, "o.py", ["DynamicPrototypeManagerOptimal"], rules=["data-writes"])
    assert {f.function for f in manager} == {
        "DynamicPrototypeManagerOptimal.expand_prototype",
        "DynamicPrototypeManagerOptimal.momentum_update",
    }
    only = astscan.scan(source, "o.py", ["DynamicPrototypeManagerOptimal.get_prototype_indices"])
    assert {f.rule for f in only} == {"class-loops", "host-syncs"}
    assert astscan.scan_in_file(OPTIMAL, ["has_multi_prototype_head"]) == ()


# ---------------------------------------------------------------------------------------
# host call sites and manager attribute uses
# ---------------------------------------------------------------------------------------

HOST = _src(
    """
    class main_model(nn.Module):
        def forward(self, images, target=None):
            features, poolling_feature = self.forward_train(images)
            logits, head_loss = self.head(poolling_feature, features, labels=target)
            if self.training:
                return head_loss, {"head_loss": head_loss.detach()}
            return logits, head_loss

    class main_model_fixed(nn.Module):
        def forward(self, images, target=None):
            features, pooled = self.forward_train(images)
            if self.training and target is not None:
                logits, head_loss, loss_dict = self.head(pooled, features, labels=target)
                return head_loss, {k: v.detach() for k, v in loss_dict.items()}
            logits, head_loss = self.head(pooled, features, labels=target)
            return logits, head_loss

    class Other(nn.Module):
        def forward(self, x, y):
            if self.training:
                out = self.head(x, y)
            else:
                first = self.head(x, y)[0]
            logits, *rest = self.head.forward(x, y)
            print(self.head(x, y))
            z = self.head(x, y) if self.flag else None
            return self.head(x, y)
    """
)


def test_head_calls_quoted_and_fixed_hosts() -> None:
    calls = head_calls(HOST, "host.py")
    quoted = [c for c in calls if c.function == "main_model.forward"]
    assert [(c.usage, c.arity, c.conditions) for c in quoted] == [("unpack", 2, ())]
    assert quoted[0].arguments == ("poolling_feature", "features", "labels=target")
    assert quoted[0].targets == ("logits", "head_loss")
    fixed = [c for c in calls if c.function == "main_model_fixed.forward"]
    assert [(c.arity, c.conditions) for c in fixed] == [
        (3, ("self.training and target is not None",)),
        (2, ("not (self.training and target is not None)",)),
    ]
    assert [c.line for c in calls] == sorted(c.line for c in calls)


def test_head_call_usages() -> None:
    other = [c for c in head_calls(HOST, "host.py") if c.function == "Other.forward"]
    assert [(c.usage, c.conditions) for c in other] == [
        ("assign", ("self.training",)),
        ("index", ("not (self.training)",)),
        ("unpack", ()),
        ("argument", ()),
        ("other", ("self.flag",)),
        ("return", ()),
    ]
    assert other[1].detail == "[0]"
    assert other[1].targets == ("first",)
    assert other[2].starred
    assert other[2].arity == 1
    assert other[3].detail == "print"
    custom = head_calls(HOST.replace("self.head(", "self.model.head("), "host.py", receiver="self.model . head")
    assert len(custom) == len(head_calls(HOST, "host.py")) - 1  # the .forward call kept its old receiver
    with pytest.raises(ValueError, match="not a Python expression"):
        head_calls(HOST, "host.py", receiver="self.(")


@pytest.mark.parametrize(("name", "arities"), [("models_mae.py", [2]), ("models_mae_suggested.py", [3, 2])])
def test_head_calls_on_the_host_references(name: str, arities: list[int]) -> None:
    path = ROOT / "reference" / name
    if not path.exists():
        pytest.skip(f"{name} is not in this checkout")
    calls = astscan.head_calls_in_file(path)
    assert [c.arity for c in calls] == arities
    assert all(c.usage == "unpack" and c.function == "main_model.forward" for c in calls)
    if len(calls) == 2:  # the suggested fix: the two-value unpack is the code after the early return
        assert calls[1].conditions == (f"not ({calls[0].conditions[-1]})",)


def test_attribute_uses() -> None:
    source = _src(
        """
        class Model(nn.Module):
            def _detect(self):
                return hasattr(self.model.head, "proto_manager")

            def step(self, x):
                pm = self.model.head.proto_manager
                pm.expand_prototypes(0, x)
                self.model.head.proto_manager.apply_momentum_updates()
                t = self.model.head.proto_manager.var_threshold
                getattr(self.model.head.proto_manager, "momentum", None)
                self.model.head.proto_manager.momentum = 0.5
                return t
        """
    )
    uses = attribute_uses(source, "host.py")
    assert [(u.name, u.access) for u in uses] == [
        ("expand_prototypes", "call"),
        ("apply_momentum_updates", "call"),
        ("var_threshold", "load"),
        ("momentum", "getattr"),
        ("momentum", "store"),
    ]
    assert uses[0].owner == "pm"
    assert uses[1].owner == "self.model.head.proto_manager"
    assert {u.function for u in uses} == {"Model.step"}
    assert attribute_uses(OPTIMAL.read_text(), "o.py")  # the head's own uses are listed too


# ---------------------------------------------------------------------------------------
# errors, records, purity
# ---------------------------------------------------------------------------------------


def test_unparsable_source_names_the_file() -> None:
    with pytest.raises(SourceSyntaxError, match=r"broken\.py:2") as info:
        scan("x = 1\ndef f(:\n", "broken.py")
    assert isinstance(info.value, SyntaxError)
    assert isinstance(info.value, SubjectError)
    assert isinstance(info.value, HeadAuditError)
    assert str(info.value).startswith("broken.py:2:")
    assert "(broken.py" not in str(info.value)
    assert info.value.filename == "broken.py"
    assert info.value.lineno == 2
    with pytest.raises(SourceSyntaxError, match=r"nul\.py"):
        head_calls("x = 1\0", "nul.py")


def test_bad_names_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AstScanError, match=r"no class 'Nope'.*HeadOptimal"):
        analyze_file(OPTIMAL, "Nope")
    with pytest.raises(AstScanError, match="no forward"):
        forward_path("class H:\n    pass\n", "h.py", "H")
    with pytest.raises(AstScanError, match="no such file"):
        analyze_file(tmp_path / "missing.py", "H")
    with pytest.raises(AstScanError, match=r"'Nope\.m'"):
        scan("def f():\n    pass\n", "s.py", ["Nope.m"])
    with pytest.raises(ValueError, match="unknown rule 'speed'"):
        scan("", "s.py", rules=["speed"])
    with pytest.raises(ValueError, match="not an attribute name"):
        attribute_uses("", "s.py", base="a.b")


def test_records_are_json_friendly_and_sorted() -> None:
    result = analyze_file(OPTIMAL, "Head")
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["head_class"] == "Head"
    assert Finding(**payload["findings"][0]) == result.findings[0]
    for group in (result.findings, result.file_findings):
        keys = [(f.file, f.line, f.col) for f in group]
        assert keys == sorted(keys)
    first = result.findings[0]
    assert first.location == f"{first.file}:{first.line}:{first.col}"
    assert first.source == OPTIMAL.read_text().splitlines()[first.line - 1].strip()
    json.dumps([c.to_dict() for c in head_calls(HOST, "host.py")])
    with pytest.raises(ValueError, match="unknown rule"):
        result.by_rule("nope")


def test_engine_does_not_import_torch() -> None:
    code = "import sys, headaudit.astscan; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
