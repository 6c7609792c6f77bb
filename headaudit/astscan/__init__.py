"""Static analysis of a head's source with the standard :mod:`ast` module (no torch).

One engine for every static check: it measures and never judges. It answers four questions
about a Python file a user points the tool at:

* :func:`forward_path` -- which functions of the file run when the head class's
  ``forward`` runs (followed through ``self.m()``, ``super().m()``, ``Base.m(self)``,
  ``self.<attr>.m()`` and ``self.<attr>(...)`` where ``__init__`` assigned ``self.<attr>``
  an instance of a class defined in the file (calling it means its ``__call__`` or
  ``forward``), bound-method references and properties, constructors of in-file classes,
  and module-level functions called by name). Base classes are looked up only in the
  same file, in C3 order. Calls the engine cannot resolve are ignored, never an error.
* :func:`analyze` / :func:`scan` -- findings of the rules in :data:`RULES` on the forward
  path, or on any chosen set of functions (a whole class, the whole file):

  ``host-syncs``
      ``.item()``, ``.tolist()``, ``.numpy()``, ``.cpu()``, ``.to("cpu")`` (kind
      ``conversion``; flagged whatever the receiver, unless it is an in-file module);
      ``int()``, ``float()``, ``bool()``, ``complex()``, ``range()``, ``print()``,
      ``str()``, ``repr()``, ``format()``, f-strings, ``math.*`` and ``numpy.*`` on a
      tensor expression, ``torch.equal``/``allclose`` (``conversion``); Python ``if``,
      ``while``, ``assert``, ternary and comprehension-``if`` conditions, ``not``
      operands, and ``and``/``or`` operands whose truth Python tests, when they are
      tensor expressions (``condition``); ``nonzero``, ``argwhere``, one-argument
      ``where``, ``masked_select``, ``unique``, ``unique_consecutive``, ``bincount`` and
      reading ``x[mask]`` with a boolean-tensor mask (``data-dependent-shape``).
  ``class-loops``
      ``for``/``while`` loops and comprehension generators that iterate over classes or
      per-class structures, with their nesting depth (kinds ``class-count-range``,
      ``per-class-iterable``, ``prototype-rows``). The depth counts class loops only, and
      across calls: a function called inside a class loop adds that depth to its own loops,
      so a separation loss split into a helper still nests at depth 2.
  ``data-writes``
      writes through ``.data``: ``x.data = v``, ``x.data[i] = v``, ``x.data[i] += v``,
      ``x.data.copy_(v)`` or any ``*_`` method on ``.data`` or on an index or view of it,
      ``nn.init.*_(x.data)``-style in-place functions and ``out=x.data``.
* :func:`head_calls` -- every call of a receiver (``self.head``) in a host file, with how
  its result is used (unpacked into N names, assigned, indexed, returned, ...) and the
  ``if`` conditions that guard it (``not (...)`` for ``else`` branches and for the code
  after an ``if`` whose body returns or raises).
* :func:`follow` -- what a host method does with the head's return, for a given
  :class:`ReturnShape` (a tuple of 3 with a dict last, say) and mode: its ``len``/
  ``isinstance`` dispatch evaluated, each unpack and index checked (the error Python would
  raise, predicted), and the loss-dict keys that reach its return (:class:`HostPath`).
* :func:`attribute_uses` -- every ``<anything>.proto_manager.<name>`` use (also through a
  local alias and ``getattr``/``hasattr``/``setattr``/``delattr`` with a literal name).

**How "tensor expression" and "per-class" are decided.** Each expression gets a small set
of tags by these rules, computed per function to a fixed point (flow-insensitive: a local
name has the union of the tags of everything assigned to it), and across functions by
binding call arguments to the callee's parameters and callee return values to the call:

1. Tensors: a call into ``torch`` (``torch.*``, ``torch.nn.functional.*``,
   ``nn.Parameter``, ``torch.Tensor``; not ``torch.nn`` module classes, ``torch.device``,
   ``torch.cuda.*``, ...); the result of calling a ``torch.nn`` module instance; a method
   call, arithmetic, indexing or ``~``/``-`` on a tensor (except the host-valued methods
   ``size``, ``dim``, ``numel``, ``stride``, ``item``, ``tolist``, ``numpy``, ...);
   attributes of ``self`` registered as parameters or buffers (``nn.Parameter(...)``,
   ``register_buffer``, ``register_parameter``), found by evaluating ``__init__`` of the
   class and its in-file bases; parameters annotated ``Tensor``/``torch.Tensor``
   (``Optional``/``| None`` included); every un-annotated parameter of the head's
   ``forward`` itself (a head's inputs are tensors); and what callers pass in.
2. Boolean tensors: comparisons (``==``, ``<``, ...; not ``is``/``in``) involving a tensor,
   ``&``/``|``/``^``/``~`` on them, ``dtype=torch.bool``, ``.bool()``, ``.any()``,
   ``.all()``, ``isnan``-style predicates. ``x[m]`` is a data-dependent shape only when
   ``m`` is known boolean.
3. Host values: constants, ``.shape``, ``.size()``, ``.dim()``, ``.numel()``, ``len()``,
   ``.item()``, ``int()``, ``self.training``, ``x is None``, ``not x``. So
   ``n = x.size(0); if n <= 1`` is never flagged.
4. Class counts: the names ``num_classes``/``n_classes``/``num_class`` (a parameter,
   variable or attribute), ``self.<a>`` assigned a class count in ``__init__``, ``len()`` of
   a per-class iterable, ``+``/``-`` with a host value. ``count * host`` is a
   prototype-row count (``num_classes * max_prototypes``); ``.size(0)``, ``.shape[0]`` and
   ``len()`` of a prototype-row tensor are row counts too.
5. Per-class iterables: the names ``proto_indices``/``prototype_indices``, the result of a
   ``get_prototype_indices()`` call whatever its receiver, a list appended to inside a
   class loop that encloses its creation, a comprehension over classes, the return value of
   any function returning one (so a renamed ``get_prototype_indices`` is found from its
   body), ``enumerate``/``zip``/``list``/``sorted``/slices of one, ``.tolist()`` of a
   prototype-row tensor.
6. Prototype-row tensors: tensors whose first dimension runs over classes or prototype
   rows: built by ``torch.zeros``/``empty``/``full``/... from a class or row count, or
   ``bincount(minlength=<class count>)``; kept through ``nn.Parameter``, ``.data``,
   ``.detach()``, ``F.normalize``, dtype casts, masks and slices. The attribute names
   ``prototypes``, ``valid_mask`` and ``protos_per_class`` (the family's public API,
   ``BEHAVIOR.md``) are seeds for receivers the engine cannot resolve.
7. Class loops iterate ``range(<class count>)``, ``range(<row count>)``, a per-class
   iterable, a prototype-row tensor, or (``while``) compare with a class count.

Limitations: one file at a time (imports of other user modules are not followed); no
flow-sensitivity (a name that ever holds a tensor is a tensor everywhere in its function, so an
``isinstance``-guarded branch is not told apart); no positions inside containers (unpacking a
list of ``(name, tensor)`` pairs gives ``name`` the tensor's tags too);
attributes get their tags from ``__init__`` and the class body only; ``getattr`` with a
computed name, decorators other than ``staticmethod``/``classmethod``/``property``,
``functools.partial`` and callbacks stored in containers are not followed; a bound method
referenced without a call is assumed to be called; ``x[mask] = v`` (a write) is not
reported as a sync; loops over ``labels.unique()`` and other data-derived class sets are
not recognised as class loops (the ``unique`` itself is a sync finding).

Every function takes the source text and a display filename (the ``*_in_file`` wrappers
take a path), returns frozen, JSON-friendly records (``to_dict()``) sorted by
``(file, line, col)`` (``col`` is 1-based, in characters), and raises
:class:`SourceSyntaxError` (a :class:`SyntaxError` and a :class:`~headaudit.errors.SubjectError`)
naming the file when the source cannot be parsed.

Layout: ``_source`` parses and indexes the file (classes, C3 lookup, imports); ``_tags`` holds
the inference vocabulary above; ``_context`` holds a function's context and the interface
of the worklist that ``_infer`` and ``_frame`` use; ``_infer`` evaluates expressions and
resolves calls; ``_frame`` walks a function's statements and reports findings;
``_analysis`` runs the worklist over (function, class of ``self``) contexts and holds the
public scanning functions; ``_host`` scans host code; ``_dispatch`` walks a host method for
one return shape; ``_records`` holds the results and errors.
"""

from __future__ import annotations

from headaudit.astscan._analysis import (
    analyze,
    analyze_file,
    forward_path,
    forward_path_in_file,
    list_functions,
    scan,
    scan_in_file,
)
from headaudit.astscan._dispatch import KINDS as RETURN_KINDS
from headaudit.astscan._dispatch import HostPath, ReturnShape, follow
from headaudit.astscan._host import attribute_uses, attribute_uses_in_file, head_calls, head_calls_in_file
from headaudit.astscan._records import (
    RULES,
    AstScanError,
    AttributeUse,
    Finding,
    FunctionRef,
    HeadCall,
    SourceSyntaxError,
    StaticAnalysis,
)
from headaudit.astscan._source import read_source

__all__ = [
    "RETURN_KINDS",
    "RULES",
    "AstScanError",
    "AttributeUse",
    "Finding",
    "FunctionRef",
    "HeadCall",
    "HostPath",
    "ReturnShape",
    "SourceSyntaxError",
    "StaticAnalysis",
    "analyze",
    "analyze_file",
    "attribute_uses",
    "attribute_uses_in_file",
    "follow",
    "forward_path",
    "forward_path_in_file",
    "head_calls",
    "head_calls_in_file",
    "list_functions",
    "read_source",
    "scan",
    "scan_in_file",
]
