"""API tokens: hashed, expiring, named, several per user (config.tokens creates and revokes
them, config.api.authentication checks them).

A token is `ot_<prefix>_<secret>`. Only the prefix (for the lookup) and the SHA-256 of the
secret are stored, so the database never holds a usable token."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

PREFIX_LENGTH = 8
PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'erp-sync'.")
    prefix = models.CharField(
        max_length=PREFIX_LENGTH,
        editable=False,
        help_text="The public part of the token (ot_<prefix>_...), used to find it.",
    )
    digest = models.CharField(
        max_length=64, editable=False, help_text="SHA-256 of the secret part, hex."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Updated at most once a minute."
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        # Nobody adds, edits or deletes a token in the admin: tokens are issued by
        # config.tokens (which shows the secret once) and revoked, never deleted.
        default_permissions = ("view",)
        permissions = [("revoke_apitoken", "Can revoke API tokens")]
        constraints = [
            # A unique index, the lookup of every token request (unique=True would add a
            # second, LIKE index that nothing uses).
            models.UniqueConstraint(fields=["prefix"], name="apitoken_prefix_unique"),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("created_at")), name="apitoken_expires_after_creation"
            ),
            models.CheckConstraint(
                condition=Q(digest__regex=r"^[0-9a-f]{64}$"), name="apitoken_digest_is_sha256_hex"
            ),
            models.CheckConstraint(
                condition=Q(prefix__regex=rf"^[a-z0-9]{{{PREFIX_LENGTH}}}$"),
                name="apitoken_prefix_format",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (ot_{self.prefix}_…)"

    def is_expired(self, now=None) -> bool:
        return self.expires_at <= (now or timezone.now())

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired()
