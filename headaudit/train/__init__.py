"""What the defects cost in training: a seeded long-tailed training run, head by head (issue 27).

``headaudit train`` (and ``headaudit report --train``) trains the baseline, the candidate and
the control the same way, per seed, and measures what the unit checks state in other terms:

- :mod:`headaudit.train.data`: the bundled digits made long-tailed with the ISIC 2018 ratios,
  or the user's own features (``--data FILE.npz``);
- :mod:`headaudit.train.loop`: one (head, seed) run, a pure function of picklable inputs;
- :mod:`headaudit.train.pool`: the runs and cluster weights spread over the audit's workers;
- :mod:`headaudit.train.stored`: their keys and JSON form in the result cache;
- :mod:`headaudit.train.stats`: means with 95 % t-intervals and paired differences;
- :mod:`headaudit.train.session`: every run of a session and the measurements from them;
- :mod:`headaudit.train.checks`: the ``train.*`` checks (pure judges);
- :mod:`headaudit.train.command`: the command and the report's section;
- :mod:`headaudit.train.plots`: loss curves (the ``plots`` extra).

Importing this package imports neither torch nor scikit-learn.
"""
