"""Faithful reference copies of the audited heads, bugs included.

The files are loaded by path (``headaudit.subjects``), exactly like a user's own
copy, so nothing here is imported by the audit engine.
"""
