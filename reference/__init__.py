"""Faithful reference copies of the audited heads, bugs included (and ``head_fixed.py``,
the corrected head that serves as the audit's positive control).

The files are loaded by path (``headaudit.subjects``), exactly like a user's own
copy, so nothing here is imported by the audit engine.
"""
