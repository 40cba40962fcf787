"""The exception types users see: a message of one line naming the file, or the setting, and the problem."""


class MusicGenreError(Exception):
    """Bad input or state that the user can fix; the CLI prints it as one line, no traceback."""


class SettingError(MusicGenreError):
    """A setting the caller chose (on the command line, an option) that cannot be honoured, rather than a file's
    problem: the CLI names the command and its --help with it, as argparse's own refusals do."""
