"""Create (or reuse) a user with one of the three roles and print their API token.

The token is printed alone on the last line, so scripts can take it with `tail -1`."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from config.roles import Role, roles_ensure

ROLES = {"staff": Role.STAFF, "integrator": Role.INTEGRATOR, "auditor": Role.AUDITOR}
# Integrators only use the API; the other two roles work in the admin.
ADMIN_ROLES = frozenset({Role.STAFF, Role.AUDITOR})


class Command(BaseCommand):
    help = "Print an API token for USERNAME, creating the user with the given role if needed."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, help=f"One of: {', '.join(ROLES)}.")

    def handle(self, *args, username: str, role: str, **options):
        group_name = ROLES.get(role)
        if group_name is None:
            raise CommandError(f"Unknown role {role!r}; choose one of: {', '.join(ROLES)}.")
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
            token, _ = Token.objects.get_or_create(user=user)
        action = "Created" if created else "Found"
        self.stdout.write(f"{action} user {username!r} with role {role} (group {group_name}).")
        self.stdout.write(token.key)
