"""`python -m vigia.cli`: the `vigia` command."""

from vigia.cli import main

if __name__ == "__main__":  # not when a spawned stage process imports the main module
    main()
