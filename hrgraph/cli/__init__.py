"""The command line: the only code that prints to the terminal or chooses an exit code.

``main`` is the click group and registers the commands of the other modules,
one module per command family; the shared helpers (error handling, the
generated-file header, output checks) are in ``common``.  Nothing is imported
here: the command modules import ``common``, and ``main`` imports them, so the
imports run one way.
"""
