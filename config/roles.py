"""The three kinds of user are Django groups, created by a data migration in `orders` (and
updated by every migration that adds a model the roles must see)."""

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


# app label -> models staff and auditors may see in the admin; staff may also add and
# change the ones in EDITABLE. The ledger and the outbox are never editable. Integrators
# get no model permission at all: they use the API, whose checks are the roles above
# (config.api.permissions), never model permissions; so even with `is_staff` set by
# mistake, the admin shows them nothing and lets them change nothing.
VISIBLE_MODELS = {
    "orders": ["order", "orderline", "customer"],
    "inventory": ["product", "location", "stocklevel", "reservation", "transfer"],
    "history": [
        "orderledgerentry",
        "stockledgerentry",
        "outboxevent",
        "projectioncheckpoint",
        "ordersnapshot",
        "skudemand",
        "skudailyadjustments",
        "skustocktotals",
        "accesslogentry",
        "ledgerseal",
    ],
}
# Every user's API tokens, in the admin: staff see and revoke them, auditors see them (a
# token has no add, change or delete permission). Integrators have no admin: they manage
# their own tokens through the API, as every role does.
TOKEN_MODELS = {"config": ["apitoken"]}
EDITABLE_MODELS = [
    "order",
    "orderline",
    "customer",
    "product",
    "location",
    "stocklevel",
    "reservation",
    "transfer",
]


def roles_ensure(*, group_model=None, permission_model=None) -> None:
    """Create the three role groups with their permissions (idempotent). The migration
    passes its historical models; everything else uses the real ones."""
    if group_model is None:
        from django.contrib.auth.models import Group, Permission

        group_model, permission_model = Group, Permission

    def perms(actions, models, apps=VISIBLE_MODELS):
        return list(
            permission_model.objects.filter(
                content_type__app_label__in=apps,
                content_type__model__in=models,
                codename__in=[f"{a}_{m}" for a in actions for m in models],
            )
        )

    every_model = [model for models in VISIBLE_MODELS.values() for model in models]
    viewing = perms(["view"], every_model)
    editing = perms(["add", "change"], EDITABLE_MODELS)
    token_models = [model for models in TOKEN_MODELS.values() for model in models]
    tokens_viewing = perms(["view"], token_models, TOKEN_MODELS)
    tokens_revoking = perms(["revoke"], token_models, TOKEN_MODELS)
    for role, permissions in (
        (Role.STAFF, viewing + editing + tokens_viewing + tokens_revoking),
        (Role.INTEGRATOR, []),
        (Role.AUDITOR, viewing + tokens_viewing),
    ):
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set(permissions)


def roles_migrate(apps, schema_editor) -> None:
    """A migration's step (RunPython) after it adds models the roles must see: create the
    permissions of every app's historical models, then give each role its own."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    roles_ensure(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
    )
