"""Create (or reuse) a user with one of the three roles and issue them a new API token.

Every run creates a new token (a user may hold several; older ones stay valid until they
expire or are revoked). The token is shown once, alone on the last line, so scripts can
take it with `tail -1`; only its digest is stored."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from config.api.formats import api_datetime
from config.errors import DomainValidationError
from config.roles import Role, roles_ensure
from config.tokens import api_token_create

ROLES = {"staff": Role.STAFF, "integrator": Role.INTEGRATOR, "auditor": Role.AUDITOR}
# Integrators only use the API; the other two roles work in the admin.
ADMIN_ROLES = frozenset({Role.STAFF, Role.AUDITOR})


class Command(BaseCommand):
    help = "Issue a new API token for USERNAME, creating the user with the given role if needed."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, help=f"One of: {', '.join(ROLES)}.")
        parser.add_argument("--name", default="issue_token", help="What the token is for.")
        parser.add_argument(
            "--days", type=int, default=None, help="Lifetime (default: API_TOKEN_TTL_DAYS)."
        )

    def handle(self, *args, username: str, role: str, name: str, days: int | None, **options):
        group_name = ROLES.get(role)
        if group_name is None:
            raise CommandError(f"Unknown role {role!r}; choose one of: {', '.join(ROLES)}.")
        try:
            with transaction.atomic():
                if not Group.objects.filter(name=group_name).exists():
                    roles_ensure()
                group = Group.objects.get(name=group_name)
                user, created = get_user_model().objects.get_or_create(username=username)
                if created:
                    # Token users have no password; staff and auditors can be given one later.
                    user.set_unusable_password()
                # An existing user keeps the admin access they had; a role never takes it away.
                user.is_staff = user.is_staff or group_name in ADMIN_ROLES
                user.save()
                user.groups.add(group)
                issued = api_token_create(user=user, name=name, days=days)
        except DomainValidationError as exc:
            raise CommandError(exc.detail) from exc
        action = "Created" if created else "Found"
        self.stdout.write(f"{action} user {username!r} with role {role} (group {group_name}).")
        self.stdout.write(
            f"New token {name!r} (ot_{issued.token.prefix}_…), expires "
            f"{api_datetime(issued.token.expires_at)}. It is shown only once: store it now."
        )
        self.stdout.write(issued.key)
