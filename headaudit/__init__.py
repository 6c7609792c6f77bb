"""headaudit: an evidence-based audit of multi-prototype classification heads."""

__version__ = "0.1.0"
