"""``python -m slipway``: the same as the ``slipway`` command."""

from slipway.cli import main

if __name__ == "__main__":
    main()
