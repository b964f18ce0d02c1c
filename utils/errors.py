"""The project's user-facing error.

Anything the user can fix (a missing file, a bad flag value, an empty folder) raises
``ToonFaceError`` with one line that says what was expected and where. The CLIs catch it,
print ``error: <message>`` and exit with code 2; every other exception is a bug.
"""


class ToonFaceError(Exception):
    """A problem with the user's input, reported as one line; CLIs exit with code 2."""

    exit_code = 2
    prefix = "error"  # what the CLI line starts with


def call_or_exit(fn, *args, interrupted: str = "interrupted", **kwargs):
    """Run ``fn(*args, **kwargs)`` for a CLI and return its result.

    A ``ToonFaceError`` prints ``error: <message>`` on stderr (each line of a message that lists
    several problems prefixed alike) and exits with its code (2 unless the error says otherwise); Ctrl-C prints ``interrupted`` and exits with 130. Everything
    else propagates: it is a bug and deserves its traceback.
    """
    import sys

    try:
        return fn(*args, **kwargs)
    except ToonFaceError as exc:
        # an error that lists several problems (a study file's) prints one line each
        lines = str(exc).splitlines() or [""]
        print("\n".join(f"{exc.prefix}: {line}" for line in lines), file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr, flush=True)
        sys.exit(130)
