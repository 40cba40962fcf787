"""The one exception type users see: its message is a single line naming the file and the problem."""


class MusicGenreError(Exception):
    """Bad input or state that the user can fix; the CLI prints it as one line, no traceback."""
