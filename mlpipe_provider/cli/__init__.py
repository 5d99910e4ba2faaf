"""The ``mlpipe`` command (``main.py``) and its subcommands, one module each.

The top layer: it may use the client, the compiler and the SDK; nothing imports it.
"""
