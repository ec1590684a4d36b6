"""The errors a user can cause and fix, apart from the bugs they cannot.

Every error a user can fix by changing an input — a config key, a corpus file, a checkpoint folder, a policy,
a constitution — derives from `UserError`, and its message names the input and the fix. The command line
catches only these (one clear line, exit 2); anything else is a bug and shows its traceback (exit 1), so a
real defect never hides behind a message that looks like bad input.

`InputError` and `MissingInput` are the two general kinds (an invalid value; a file or folder that is not
there). They also derive from `ValueError` and `FileNotFoundError`, so callers that catch the built-in
kinds keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix by changing an input; the message says which input and how."""


class InputError(UserError, ValueError):
    """An input value, name or file content is invalid."""


class MissingInput(UserError, FileNotFoundError):
    """A file or folder the user pointed at (or that a step needs from an earlier one) does not exist."""
