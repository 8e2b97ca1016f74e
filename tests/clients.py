"""A DRF test client whose requests go through the middleware stack that production picks
for them (config/handlers.py): a token request to /api/ through the shorter one."""

from django.test.client import ClientHandler
from rest_framework.test import APIClient

from config.handlers import TokenApiStack, token_api_request


class _TokenApiClientHandler(TokenApiStack, ClientHandler):
    pass


class _StackChoosingHandler:
    def __init__(self, enforce_csrf_checks: bool):
        self.full = ClientHandler(enforce_csrf_checks)
        self.token_api = _TokenApiClientHandler(enforce_csrf_checks)
        self.enforce_csrf_checks = enforce_csrf_checks

    def __call__(self, environ):
        handler = self.token_api if token_api_request(environ) else self.full
        return handler(environ)


class ApiClient(APIClient):
    def __init__(self, enforce_csrf_checks: bool = False, **defaults):
        super().__init__(enforce_csrf_checks, **defaults)
        self.handler = _StackChoosingHandler(enforce_csrf_checks)

    def force_authenticate(self, user=None, token=None):
        raise TypeError("ApiClient sends real credentials; use rest_framework's APIClient.")
