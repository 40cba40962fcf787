"""`python -m musicgenre`: the command line, as `musicgenre`."""

import sys

from musicgenre.cli import main

sys.exit(main())
