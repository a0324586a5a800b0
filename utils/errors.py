"""The one exception type for mistakes a user can fix (bad flags, missing files, invalid architectures)."""


class UsageError(Exception):
    """A user-facing error: the CLIs print its message on one line and exit with status 2."""
