"""``python -m netcut``: the same CLI as the ``netcut`` command, without installing it."""

import sys

from .cli.main import main

sys.exit(main())
