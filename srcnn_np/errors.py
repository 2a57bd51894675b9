"""Turning exceptions into the one-line messages users see."""


def one_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name when it has none."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0].rstrip(":") if lines else type(error).__name__
