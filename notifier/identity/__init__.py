"""Who acts: accounts with roles, passwords (Argon2id), personal API tokens, permissions.

Everything a person does in notifier is done as an account: the CLI with a token or a password,
the console with a session. Permissions are checked in one place (permissions.py), refusals and
account changes are audited under the acting account.
"""

from .accounts import (
    add_account,
    authenticate_password,
    authenticate_token,
    disable_account,
    find_account,
    issue_token,
    list_accounts,
    reset_password,
)
from .permissions import Account, Permission, Role, authorize

__all__ = [
    "Account",
    "Permission",
    "Role",
    "add_account",
    "authenticate_password",
    "authenticate_token",
    "authorize",
    "disable_account",
    "find_account",
    "issue_token",
    "list_accounts",
    "reset_password",
]
