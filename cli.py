"""Thin entry point: ``python cli.py ...`` is the same as the ``graphrec`` command."""

from graphrec.cli import main

if __name__ == "__main__":
    main()
