"""Roles, permissions and the one check every command and page goes through.

A role is a set of permissions. Unmasked personal data is a permission of its own (`unmask`),
never part of a role: it is granted to an account explicitly. Approval is per level: a reviewer
approves the levels they are bound to and no other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from ..errors import PermissionDenied


class Role(StrEnum):
    OPERATOR = "operator"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {Role.OPERATOR: "经办", Role.REVIEWER: "审核", Role.AUDITOR: "审计", Role.ADMIN: "管理员"}


class Permission(StrEnum):
    IMPORT = "residents.import"
    RULES_READ = "rules.read"  # check, preview, explain
    RULES_APPROVE = "rules.approve"
    RUNS_READ = "runs.read"
    RUNS_CREATE = "runs.create"
    RUNS_CANCEL = "runs.cancel"
    RUNS_APPROVE = "runs.approve"
    RUNS_RETRY = "runs.retry"  # send failed deliveries again
    SEND_RESOLVE = "send.resolve"  # settle `unknown` deliveries
    OPTOUTS = "optouts.manage"
    LISTS_PUBLISH = "lists.publish"  # publish a run's public 公示 list
    AUDIT_READ = "audit.read"  # verify, coverage, resident history
    EXPORT = "audit.export"
    ACCOUNTS = "accounts.manage"
    UNMASK = "unmask"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OPERATOR: frozenset(
        {
            P.IMPORT,
            P.RULES_READ,
            P.RUNS_READ,
            P.RUNS_CREATE,
            P.RUNS_CANCEL,
            P.RUNS_RETRY,
            P.SEND_RESOLVE,
            P.OPTOUTS,
            P.LISTS_PUBLISH,
        }
    ),
    Role.REVIEWER: frozenset({P.RULES_READ, P.RUNS_READ, P.RUNS_APPROVE, P.RULES_APPROVE}),
    Role.AUDITOR: frozenset({P.RULES_READ, P.RUNS_READ, P.AUDIT_READ, P.EXPORT}),
    Role.ADMIN: frozenset({P.ACCOUNTS}),
}
LEVELLED = frozenset({P.RUNS_APPROVE, P.RULES_APPROVE})
"""Permissions held per approval level."""


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    display: str | None
    roles: frozenset[Role]
    levels: frozenset[int]  # approval levels (1-based) this account may approve
    unmask: bool = False
    disabled: bool = False

    @property
    def actor(self) -> str:
        """How the audit log records this account: by id, with the name for people reading it."""
        return f"account:{self.id}:{self.name}"

    @property
    def permissions(self) -> frozenset[Permission]:
        granted = frozenset().union(*(ROLE_PERMISSIONS[r] for r in self.roles))
        return granted | ({P.UNMASK} if self.unmask else frozenset())

    def can(self, permission: Permission, level: int | None = None) -> bool:
        if self.disabled or permission not in self.permissions:
            return False
        return permission not in LEVELLED or level is None or level in self.levels


def authorize(account: Account, permission: Permission, *, level: int | None = None, what: str = "") -> None:
    """Raise PermissionDenied (saying which permission is missing) unless the account holds it
    (for approval: at this level). Callers audit the refusal (accounts.refused)."""
    if account.can(permission, level):
        return
    if account.disabled:
        exc = PermissionDenied.translatable("account %(name)s is disabled", name=account.name)
    elif level is not None and permission in LEVELLED:
        exc = PermissionDenied.translatable(
            "account %(name)s may not %(what)s: it lacks the permission %(permission)s at level %(level)s",
            name=account.name,
            what=what or permission.value,
            permission=permission.value,
            level=level,
        )
    else:
        exc = PermissionDenied.translatable(
            "account %(name)s may not %(what)s: it lacks the permission %(permission)s",
            name=account.name,
            what=what or permission.value,
            permission=permission.value,
        )
    exc.account, exc.permission = account, permission
    raise exc


def approval_gate(account: Account | None, permission: Permission, what: str) -> Callable[[int], None]:
    """For run and rule approvals: a check, called with the level an approval would take, that
    raises unless the account is bound to that level (no account: no check)."""

    def check(level: int) -> None:
        if account is not None:
            authorize(account, permission, level=level, what=what)

    return check


def parse_roles(names: Iterable[str]) -> frozenset[Role]:
    """Roles by English or Chinese name (operator / 经办 …)."""
    by_label = {label: role for role, label in ROLE_LABELS.items()}
    out = set()
    for n in names:
        key = n.strip()
        role = by_label.get(key) or next((r for r in Role if r.value == key.lower()), None)
        if role is None:
            known = ", ".join(f"{r.value} ({r.label})" for r in Role)
            raise ValueError(f"unknown role {n!r}; known: {known}")
        out.add(role)
    return frozenset(out)
