"""The mutation score: single-change mistakes of ``head_fixed.py`` the audit must notice.

:mod:`~headaudit.mutation.catalogue` lists the mutants and the semantics-preserving
rewrites (of ``head_fixed.py`` and ``head_optimal.py``); :mod:`~headaudit.mutation.score`
measures which check detects each mutant (a mutant that only makes checks ``error`` is
crashed, not detected) and that no rewrite changes a verdict or a finding. ``headaudit
mutate`` runs it; the report's reproducibility section shows the score measured in that run.
"""
