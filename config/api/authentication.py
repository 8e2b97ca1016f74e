"""Token authentication with a short per-process cache.

Every API request would otherwise pay two database round trips before any work is done
(token + user, then the user's roles). The price: deleting a token, deactivating a user or
changing their roles takes up to AUTH_CACHE_SECONDS (30 s by default; 0 turns the cache
off) to reach a process that has the token cached."""

import time

from django.conf import settings
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from config.roles import user_roles

_clock = time.monotonic
_cache: dict[str, tuple[float, object]] = {}
_MAX_ENTRIES = 10_000


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        now = _clock()
        cached = _cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1], key
        token = Token.objects.select_related("user").filter(key=key).first()
        if token is None:
            _cache.pop(key, None)
            raise AuthenticationFailed("Invalid token.")
        user = token.user
        if not user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        user_roles(user)  # looked up now, so the cached user carries its roles
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (now + settings.AUTH_CACHE_SECONDS, user)
        return user, key


def clear_cache() -> None:
    _cache.clear()
