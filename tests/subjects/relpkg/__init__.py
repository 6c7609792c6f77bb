"""A package whose head module uses a relative import."""
