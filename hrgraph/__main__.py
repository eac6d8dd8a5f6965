"""``python -m hrgraph ...``: the same as the ``hrgraph`` command."""

from .cli.main import main

main(prog_name="hrgraph")
