"""A head whose constructor raises: loading it must be a one-line error with exit code 2."""

from __future__ import annotations


class HeadOptimal:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise ValueError("emb_dim must be a multiple of 64")
