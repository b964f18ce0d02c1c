"""The project's user-facing error.

Anything the user can fix (a missing file, a bad flag value, an empty folder) raises
``ToonFaceError`` with one line that says what was expected and where. The CLIs catch it,
print ``error: <message>`` and exit with code 2; every other exception is a bug.
"""


class ToonFaceError(Exception):
    """A problem with the user's input, reported as one line; CLIs exit with code 2."""

    exit_code = 2
