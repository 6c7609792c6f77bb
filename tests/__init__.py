"""The test suite of headaudit (a package, so modules import shared helpers as ``tests.*``)."""
