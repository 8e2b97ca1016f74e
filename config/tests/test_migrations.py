"""The switch from rest_framework.authtoken: its plaintext tokens are dropped, not carried
over, and the models and migrations agree."""

import importlib
import io

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

from config.roles import roles_ensure
from tests.database import acting_as_owner

pytestmark = pytest.mark.django_db


def _exists(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_plaintext_token_table_is_dropped_and_forgotten():
    with acting_as_owner():  # migrations run as the owner
        _the_plaintext_token_table_is_dropped_and_forgotten()


def _the_plaintext_token_table_is_dropped_and_forgotten():
    # given: a database that had rest_framework.authtoken, with a token and its permission
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz, "
            "user_id integer)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), 1)", ["0" * 40])
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) "
            "VALUES ('authtoken', '0001_initial', now())"
        )
    content_type = ContentType.objects.create(app_label="authtoken", model="token")
    permission = Permission.objects.create(
        content_type=content_type, codename="view_token", name="Can view Token"
    )
    roles_ensure()  # a transactional test may follow a flush that emptied the groups
    Group.objects.get(name="auditor").permissions.add(permission)
    migration = importlib.import_module("config.migrations.0003_forget_authtoken")

    # when
    with connection.schema_editor() as editor:
        migration.forget_authtoken(apps, editor)

    # then
    assert not _exists("authtoken_token")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'authtoken'")
        assert cursor.fetchone()[0] == 0
    assert not Permission.objects.filter(content_type__app_label="authtoken").exists()
    assert not ContentType.objects.filter(app_label="authtoken").exists()


@pytest.mark.django_db(transaction=True)
def test_a_database_that_never_had_authtoken_is_left_alone():
    # given
    migration = importlib.import_module("config.migrations.0003_forget_authtoken")

    # when
    with acting_as_owner(), connection.schema_editor() as editor:
        migration.forget_authtoken(apps, editor)

    # then
    assert _exists("config_apitoken")


def test_no_model_change_lacks_a_migration():
    # when / then: exits non-zero if a migration is missing
    call_command("makemigrations", "--check", "--dry-run", stdout=io.StringIO())
