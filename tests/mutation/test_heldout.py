"""The held-out mutant list (``heldout.py``) is valid test data, by the catalogue's own rules.

Static: every ``old`` occurs exactly once, the mutated source compiles, ids are unique and
differ from the catalogue's, parts are known. Dynamic (the catalogue's battery): the
``crashes`` flag matches a small smoke run, every real mutant changes some output, and
every equivalent changes none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from .catalogue import MUTANTS, PARTS, Mutant, apply
from .heldout import HELDOUT, HELDOUT_EQUIVALENTS
from .test_catalogue import SOURCE, Battery, battery, differences, load, smoke


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def original_battery(tmp_path_factory: pytest.TempPathFactory) -> Battery:
    return battery(load(SOURCE, tmp_path_factory.mktemp("original"), "original"))


def test_held_out_ids_are_new_and_parts_known() -> None:
    ids = [m.id for m in HELDOUT]
    assert len(ids) == len(set(ids))
    assert not set(ids) & {m.id for m in MUTANTS}
    assert all(m.part in PARTS for m in HELDOUT)
    assert sum(not m.equivalent for m in HELDOUT) >= 25
    assert len({m.part for m in HELDOUT if not m.equivalent}) == len(PARTS)  # every part of the file
    assert HELDOUT_EQUIVALENTS


@pytest.mark.parametrize("mutant", HELDOUT, ids=[m.id for m in HELDOUT])
def test_held_out_mutant_is_what_it_says(mutant: Mutant, original_battery: Battery, tmp_path: Path) -> None:
    mutated = apply(mutant, SOURCE)
    compile(mutated, f"<{mutant.id}>", "exec")
    mod = load(mutated, tmp_path, mutant.id)
    exc = smoke(mod)
    assert (exc is not None) == mutant.crashes, exc
    if mutant.crashes:
        return
    diffs = differences(original_battery, battery(mod))
    assert bool(diffs) != mutant.equivalent, diffs[:10]
