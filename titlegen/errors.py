"""The one exception a user can hit and fix."""


class TitleError(Exception):
    """An error a user can hit and fix: printed as one line by the command line, no traceback."""
