"""The two kinds of failure every task reports, each with its exit code."""


class OpsError(Exception):
    exit_code = 1
    in_summary = False  # already part of the --json result printed just before it was raised


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


def first_line(error: BaseException) -> str:
    """An exception's first line, for one-line reports; its type name when it has no text."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def last_line(text: str, default: str) -> str:
    """The last line a child process printed that says something (where CLIs put the reason)."""
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith(CLI_NOISE)]
    return lines[-1] if lines else default
