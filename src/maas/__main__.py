"""`python -m maas` runs the command-line interface."""

from maas.cli import main

if __name__ == "__main__":
    main()
