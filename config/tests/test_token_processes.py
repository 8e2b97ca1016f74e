"""Revocation and deactivation count on the next request in every process, not only in the
one that made them: a second Python process serves requests with the same token (through
the same Redis token cache and database) while this one revokes it."""

import json
import os
import subprocess
import sys

import pytest
from django.db import connections

from config.tokens import api_tokens_revoke
from tests.problems import PROBLEM_CONTENT_TYPE

pytestmark = pytest.mark.django_db(transaction=True)

# Reads a token per line on stdin, answers the status of GET /api/v1/orders/ with it.
SERVER = """
import json, sys
import django
from django.conf import settings
django.setup()
settings.DATABASES["default"].update(json.loads(sys.argv[1]))
from django.test.utils import setup_test_environment
setup_test_environment()
from django.test import Client
client = Client()
for line in sys.stdin:
    response = client.get("/api/v1/orders/", HTTP_AUTHORIZATION="Token " + line.strip())
    print(response.status_code, response.get("Content-Type"), flush=True)
"""


@pytest.fixture
def other_process():
    database = connections["default"].settings_dict
    target = {"NAME": database["NAME"], "USER": database["USER"]}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, json.dumps(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )

    def ask(key: str) -> tuple[int, str]:
        process.stdin.write(key + "\n")
        process.stdin.flush()
        status, content_type = process.stdout.readline().split(" ", 1)
        return int(status), content_type.strip()

    yield ask
    process.stdin.close()
    process.wait(timeout=10)


def test_a_revocation_here_is_refused_there_on_the_next_request(api_client_for, other_process):
    # given: the other process has used the token (and it is in the token cache)
    api = api_client_for("integrator")
    assert other_process(api.key) == (200, "application/json")
    assert other_process(api.key) == (200, "application/json")

    # when
    api_tokens_revoke(token_ids=[api.token.pk])

    # then
    assert other_process(api.key) == (401, PROBLEM_CONTENT_TYPE)


def test_a_deactivation_here_is_refused_there_on_the_next_request(api_client_for, other_process):
    # given
    api = api_client_for("integrator")
    assert other_process(api.key) == (200, "application/json")

    # when
    api.user.is_active = False
    api.user.save(update_fields=["is_active"])

    # then
    assert other_process(api.key) == (401, PROBLEM_CONTENT_TYPE)
