"""head_optimal.py with its temperature kept fixed: a registered buffer, or a frozen parameter.

A fixed temperature is a design choice (many cosine classifiers fix their scale), not a
cut graph: forward.contract must warn and say how the temperature is kept, never fail;
every other contract passes as on head_optimal.py. ``FrozenTemperature`` keeps it as a
parameter with ``requires_grad=False``.
"""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        value = self.temperature.detach().clone()
        del self.temperature
        self.register_buffer("temperature", value)


class FrozenTemperature(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.temperature.requires_grad_(False)
