"""`python -m vigia.cli`: the `vigia` command."""

from vigia.cli import main

main()
