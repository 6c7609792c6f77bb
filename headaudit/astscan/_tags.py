"""The tags of the inference (see the package docstring) and the pure functions on them."""

from __future__ import annotations

import ast
from typing import Final

Tags = frozenset[str]
_EMPTY: Final[Tags] = frozenset()

# Tags (see the package docstring).
TENSOR, BOOL, PARAM, ROWS = "tensor", "bool", "param", "rows"
COUNT, PCOUNT = "count", "pcount"
PER_CLASS, CLASS_RANGE, ROW_RANGE = "per_class", "class_range", "row_range"
ELEM_TENSOR, DICT_TENSOR, SHAPE, SHAPE_ROWS, NNMOD = "elem_tensor", "dict_tensor", "shape", "shape_rows", "nnmod"
_OBJECT_PREFIXES: Final = ("inst:", "cls:", "super:", "fn:")

_NAME_SEEDS: Final[dict[str, Tags]] = {
    "num_classes": frozenset({COUNT}),
    "n_classes": frozenset({COUNT}),
    "num_class": frozenset({COUNT}),
    "proto_indices": frozenset({PER_CLASS}),
    "prototype_indices": frozenset({PER_CLASS}),
}
_ATTR_SEEDS: Final[dict[str, Tags]] = {
    "num_classes": frozenset({COUNT}),
    "n_classes": frozenset({COUNT}),
    "prototypes": frozenset({TENSOR, PARAM, ROWS}),
    "valid_mask": frozenset({TENSOR, BOOL, ROWS}),
    "protos_per_class": frozenset({TENSOR, ROWS}),
}
_METHOD_SEEDS: Final[dict[str, Tags]] = {
    "get_prototype_indices": frozenset({PER_CLASS}),
    "get_prototypes": frozenset({TENSOR, ROWS}),
}

_HOST_ATTRS: Final = frozenset(
    {"ndim", "device", "dtype", "is_cuda", "is_leaf", "requires_grad", "training", "layout", "is_sparse", "names"}
)
_TENSOR_ATTRS: Final = frozenset({"data", "T", "mT", "H", "mH", "grad", "real", "imag", "values", "indices"})
_HOST_METHODS: Final = frozenset(
    {
        "size", "dim", "ndimension", "numel", "nelement", "element_size", "stride", "storage_offset",
        "is_contiguous", "is_floating_point", "is_complex", "data_ptr", "get_device", "item", "tolist",
        "numpy", "equal", "allclose", "is_pinned", "is_shared", "has_names", "dim_order", "type_as_str",
    }
)  # fmt: skip
_BOOL_FUNCS: Final = frozenset(
    {
        "eq", "ne", "lt", "gt", "le", "ge", "greater", "less", "greater_equal", "less_equal", "not_equal",
        "isnan", "isinf", "isfinite", "isneginf", "isposinf", "isreal", "logical_and", "logical_or",
        "logical_not", "logical_xor", "isin", "isclose", "any", "all", "signbit", "bool",
    }
)  # fmt: skip
_ROW_KEEP_METHODS: Final = frozenset(
    {"detach", "clone", "contiguous", "to", "cpu", "cuda", "float", "double", "half", "bfloat16", "long", "int",
     "bool", "type", "requires_grad_", "data"}
)  # fmt: skip
_VIEW_METHODS: Final = frozenset(
    {"view", "view_as", "narrow", "select", "t", "transpose", "permute", "unsqueeze", "squeeze", "diagonal",
     "as_strided", "unfold", "expand", "expand_as", "flatten", "reshape", "__getitem__"}
)  # fmt: skip
_CONSTRUCTORS: Final = frozenset({"zeros", "ones", "empty", "full", "rand", "randn", "randint", "tensor"})
_SHAPE_SYNCS: Final = frozenset({"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount"})
_TORCH_HOST: Final = frozenset(
    {
        "is_tensor", "is_storage", "numel", "is_grad_enabled", "no_grad", "enable_grad", "inference_mode",
        "set_grad_enabled", "device", "get_default_dtype", "manual_seed", "finfo", "iinfo", "typename",
        "compile", "equal", "allclose", "is_nonzero", "is_floating_point", "is_complex",
    }
)  # fmt: skip
_HOST_PREFIXES: Final = ("is_", "are_", "get_", "set_", "has_", "use_")
_TENSOR_MODULES: Final = frozenset(
    {"torch", "torch.nn.functional", "torch.nn.init", "torch.linalg", "torch.fft", "torch.special", "torch.sparse",
     "torch.nested", "torch.masked"}
)  # fmt: skip
_TENSOR_CLASSES: Final = frozenset(
    {"Tensor", "Parameter", "Buffer", "FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor",
     "BoolTensor", "ByteTensor"}
)  # fmt: skip
_ITER_BUILTINS: Final = frozenset({"enumerate", "zip", "reversed", "sorted", "list", "tuple", "iter", "set"})
_CONVERTERS: Final = frozenset({"int", "float", "bool", "complex", "range", "print", "str", "repr", "format"})
_APPENDERS: Final = frozenset({"append", "extend", "insert", "add", "appendleft"})
_MAX_PASSES: Final = 12
_MAX_DEPTH: Final = 16


def _annotation_tags(ann: ast.expr | None) -> Tags:
    """``Tensor`` -> tensor; ``Optional[Tensor]``/``Tensor | None`` too; ``list[Tensor]`` -> elements."""
    if ann is None:
        return _EMPTY
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        try:
            return _annotation_tags(ast.parse(ann.value, mode="eval").body)
        except SyntaxError:
            return _EMPTY
    if isinstance(ann, (ast.Name, ast.Attribute)):
        name = ann.id if isinstance(ann, ast.Name) else ann.attr
        return frozenset({TENSOR}) if name in ("Tensor", "Parameter") else _EMPTY
    if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
        return _annotation_tags(ann.left) | _annotation_tags(ann.right)
    if isinstance(ann, ast.Subscript):
        base = ann.value.id if isinstance(ann.value, ast.Name) else getattr(ann.value, "attr", "")
        args = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
        inner = frozenset().union(*(_annotation_tags(a) for a in args))
        if base in ("Optional", "Union"):
            return inner
        if TENSOR in inner or ELEM_TENSOR in inner:
            return frozenset({DICT_TENSOR}) if base in ("dict", "Dict", "Mapping") else frozenset({ELEM_TENSOR})
    return _EMPTY


def _objects(tags: Tags) -> Tags:
    return frozenset(t for t in tags if t.startswith(_OBJECT_PREFIXES))


def _elements(tags: Tags) -> Tags:
    """Tags of the items obtained by iterating or unpacking a value."""
    out = set(_objects(tags) - {t for t in tags if t.startswith(("super:", "fn:"))})
    if TENSOR in tags:
        out.add(TENSOR)
        out |= tags & {BOOL}
    if ELEM_TENSOR in tags:
        out.add(TENSOR)
    if NNMOD in tags:
        out.add(NNMOD)
    return frozenset(out)


def _container(tags: Tags) -> Tags:
    """Tags of a list or tuple holding a value with ``tags``."""
    out = set(_objects(tags))
    if tags & {TENSOR, ELEM_TENSOR, DICT_TENSOR}:
        out.add(ELEM_TENSOR)
    if NNMOD in tags:
        out.add(NNMOD)
    return frozenset(out)


def _iter_tags(tags: Tags) -> Tags:
    """What ``enumerate``/``zip``/``list``/... keep of an iterable's tags."""
    out = set(tags & {PER_CLASS, CLASS_RANGE, ROW_RANGE, ELEM_TENSOR, NNMOD}) | _objects(tags)
    if TENSOR in tags:
        out.add(ROW_RANGE if ROWS in tags else ELEM_TENSOR)
    return frozenset(out)


def _loop_kind(tags: Tags) -> str | None:
    if CLASS_RANGE in tags:
        return "class-count-range"
    if PER_CLASS in tags:
        return "per-class-iterable"
    if ROW_RANGE in tags or {TENSOR, ROWS} <= tags:
        return "prototype-rows"
    return None


def _is_object(tags: Tags) -> bool:
    return bool(_objects(tags)) or NNMOD in tags


def _bool_mask_index(index: ast.expr) -> list[ast.expr]:
    return list(index.elts) if isinstance(index, ast.Tuple) else [index]


def _is_self_attr(target: ast.expr, self_name: str | None) -> bool:
    return isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self_name


def _data_base(expr: ast.expr) -> ast.Attribute | None:
    """The ``X.data`` under ``X.data``, ``X.data[i]``, ``X.data.view(...)[i]``..., else None."""
    node: ast.expr = expr
    while True:
        if isinstance(node, ast.Attribute) and node.attr == "data":
            return node
        if isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _VIEW_METHODS:
            node = node.func.value
        elif isinstance(node, ast.Attribute) and node.attr in ("T", "mT"):
            node = node.value
        else:
            return None
