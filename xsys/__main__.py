"""``python -m xsys``: the xsys command line."""

from xsys.cli import main

if __name__ == "__main__":
    main()
