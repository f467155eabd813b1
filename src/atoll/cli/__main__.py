"""``python -m atoll.cli``: the same as the ``atoll`` command."""

from atoll.cli import main

main()
