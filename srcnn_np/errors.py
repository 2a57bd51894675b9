"""The one-line messages users see, written once: turning exceptions into them, and the few
messages that several modules give."""
PROG = "srcnn-np"
OUT_OF_MEMORY = "out of memory (try a smaller --tile)"


class UsageError(Exception):
    """The command cannot run at all (CLI exit status 2); the message is one line."""


def one_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name when it has none."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0].rstrip(":") if lines else type(error).__name__


def exists(path) -> str:
    """The message for an output that exists and may not be replaced."""
    return f"{path}: exists (use --overwrite to replace it)"


def failure_line(source, error: BaseException) -> str:
    """The one line naming `source` for what reading, upscaling or writing it raised: the error's
    own message for what srcnn_np and its readers raise (ValueError and its kin, a missing extra),
    "out of memory", or an internal error (a bug, or a library tripping over a file)."""
    if isinstance(error, MemoryError):
        return f"{source}: {OUT_OF_MEMORY}"
    if isinstance(error, (ValueError, ImportError, FileExistsError)):
        message = one_line(error) if isinstance(error, ImportError) else str(error)
        return message if message.startswith(str(source)) else f"{source}: {message}"
    return f"{source}: internal error ({type(error).__name__}: {one_line(error)}); please report it"
