"""`python -m anystore`: the same as the `anystore` command."""

import sys

from anystore.cli import main

sys.exit(main())
