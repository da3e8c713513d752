"""The two kinds of failure every task reports, each with its exit code."""


class OpsError(Exception):
    exit_code = 1
    in_summary = False  # already part of the --json result printed just before it was raised
    brief = ""  # the failure without where it happened, for a list that already says where (first_line)


class UserError(OpsError):
    """Refused before anything changed: bad input, bad config or a safety rule (exit 2)."""

    exit_code = 2


class NotConfigured(OpsError):
    """What a check or comparison needs is not set up (no URL, keys or token): it is skipped with
    `fix` as the hint, and that is no failure."""

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(what)
        self.fix = fix


class OperationFailed(OpsError):
    """An operation started and failed; the message says what was and was not done (exit 1)."""

    exit_code = 1


CLI_NOISE = ("Try rerunning the command with --debug",)  # the Supabase CLI's closing advice


MAX_LINE = 300  # characters of an error's line: a server may put a whole response body in its message


def first_line(error: BaseException, *, typed: bool = False) -> str:
    """An exception in one line, for one-line reports: its first line, or its type name when it has
    no text. `typed`, for a line that stands alone (a crash, one failed object in a list): the type
    name first (`KeyError: 'nme'`, `ContentMismatch: ...`), or the error's `brief` when it has one
    (an S3 error: the server's answer, `400 InvalidKey: ...`)."""
    if typed and isinstance(error, OpsError) and error.brief:
        return error.brief
    lines = str(error).strip().splitlines()
    line = lines[0].strip() if lines else ""
    if len(line) > MAX_LINE:
        line = line[:MAX_LINE] + "..."
    if not line:
        return type(error).__name__
    return f"{type(error).__name__}: {line}" if typed else line


def last_line(text: str, default: str) -> str:
    """The last line a child process printed that says something (where CLIs put the reason)."""
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith(CLI_NOISE)]
    return lines[-1] if lines else default
