"""``python -m qmtl.cli``: the ``qmtl`` command without its console script."""

from qmtl.cli import main

if __name__ == "__main__":
    main()
