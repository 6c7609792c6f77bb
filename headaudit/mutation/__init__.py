"""The mutation score: single-change mistakes of ``head_fixed.py`` the audit must notice.

:mod:`~headaudit.mutation.catalogue` lists the mutants and the semantics-preserving
rewrites; :mod:`~headaudit.mutation.score` measures which check kills each mutant and
that no rewrite changes a verdict. ``headaudit mutate`` runs it; the report's
reproducibility section shows the score measured in that run.
"""
