"""The one exception type that means "the user asked for something we cannot do".

Command lines catch it, print its message as one line and exit with code 2; library callers get
an ordinary exception. The message says what is wrong and what to do about it.
"""


class UserError(Exception):
    """A bad input or setting, with a one-line message that tells the user what to do."""
