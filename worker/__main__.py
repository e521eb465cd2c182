"""``python -m worker`` is the ``callworker`` command."""

from worker.cli import main

main(prog_name="callworker")
