"""``python -m resnetlab``: the command line (also the entry point for ``torchrun``)."""

from resnetlab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
