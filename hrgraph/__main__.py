"""``python -m hrgraph ...``: the same as the ``hrgraph`` command."""

from .cli import main

main(prog_name="hrgraph")
