"""Errors that name the thing: the spec key path, the op, the position."""


def one_line(text: str) -> str:
    """``text`` with every character that is not printable written as an escape (``\\n``, ``\\x85``,
    ``\\x1b``, an unassigned code point): an error that quotes a user's key or value stays one line
    and cannot drive the terminal.  Printable text (any script) is kept as it is."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class InputError(Exception):
    """Unusable command-line input; printed as one line, exit code 2.

    Defined here, not in ``cli``: under ``python -m derive.cli`` that module runs as ``__main__``,
    and a class defined there would not be the one the subcommands raise."""

    def __str__(self) -> str:
        return one_line(super().__str__())


class SpecError(ValueError):
    """Bad user input, reported as one line: ``key.path: what was expected``."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(one_line(f"{path}: {message}" if path else message))
