"""The two kinds of failure every task reports, each with its exit code."""


class OpsError(Exception):
    exit_code = 1


class UserError(OpsError):
    """Refused before anything changed: bad input, bad config or a safety rule (exit 2)."""

    exit_code = 2


class OperationFailed(OpsError):
    """An operation started and failed; the message says what was and was not done (exit 1)."""

    exit_code = 1
