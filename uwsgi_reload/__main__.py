"""``python -m uwsgi_reload``: the command line, see :mod:`uwsgi_reload.cli`."""

import sys

from uwsgi_reload.cli import main

if __name__ == "__main__":
    sys.exit(main())
