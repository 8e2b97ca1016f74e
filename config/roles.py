"""The three kinds of user are Django groups, created by a data migration in `orders`."""

from enum import StrEnum


class Role(StrEnum):
    STAFF = "order_staff"
    INTEGRATOR = "integrator"
    AUDITOR = "auditor"


WRITERS = frozenset({Role.STAFF, Role.INTEGRATOR})
READERS = frozenset({Role.STAFF, Role.INTEGRATOR, Role.AUDITOR})


def user_roles(user) -> frozenset[str]:
    """The user's role names, looked up once per user object."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_role_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._role_names = cached
    return cached


def user_has_role(user, roles: frozenset[str]) -> bool:
    return user.is_authenticated and (user.is_superuser or bool(user_roles(user) & roles))
