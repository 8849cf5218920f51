"""The ``numbers`` command line."""
