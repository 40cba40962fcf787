"""`python -m musicgenre`: the command line, as `musicgenre`."""

from musicgenre.cli import run

run()
