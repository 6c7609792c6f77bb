"""A module without any head class."""

VALUE = 1
