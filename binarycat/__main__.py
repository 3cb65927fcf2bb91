"""``python -m binarycat`` is the ``binarycat`` command."""

from binarycat.cli.app import main

main()
