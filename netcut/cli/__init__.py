"""The `netcut` command-line interface."""
