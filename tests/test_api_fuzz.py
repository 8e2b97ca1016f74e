"""Schemathesis against every operation of the published OpenAPI schema, in process.

For each operation it generates requests from the schema, valid and invalid, sends them as a
staff member (the role that may call every operation) and runs every check but one on what
comes back: never a 5xx, only documented status codes, content types, headers and bodies,
invalid input refused, a method the operation does not serve answered 405, authentication
enforced. A failure names the operation and prints the request that reproduces it.

The check left out, positive_data_acceptance, expects every schema-valid request to
succeed; here a schema-valid request may still name an unknown sku or location, repeat a
unique code or reuse an Idempotency-Key, and those are refused (400, 422) on purpose. What
the schema can say, it says (non-empty filters, page_size from 1, non-empty lists, a
non-zero stock delta, the forecast's alpha); that check found those gaps."""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from config.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_token(api_client_for) -> str:
    return api_client_for("order_staff").key


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    """Thousands of requests a minute from one token would soon be 429s, which are
    documented but test nothing here (config/tests/test_throttling.py tests the limits)."""
    settings.REST_FRAMEWORK = settings.REST_FRAMEWORK | {
        "DEFAULT_THROTTLE_RATES": dict.fromkeys(
            settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "off"
        )
    }


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """The WSGI handler closes the database connection after each request, which would end
    the test's transaction; Django's test client holds these signals back the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    # `make test` runs a fixed, small sample (the same examples every run, so CI is not a
    # lottery); `make fuzz` a large random one.
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "15")),
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_documented(case, staff_token):
    case.call_and_validate(
        headers={"Authorization": f"Token {staff_token}"},
        excluded_checks=[positive_data_acceptance],
    )


def test_sequences_of_calls_answer_as_documented(staff_token):
    """Stateful: calls chained through the schema's links (create an order, then read,
    change, adjust, cancel it...), each answer checked as above."""

    headers = {"Authorization": f"Token {staff_token}"}

    class Workflow(schema.as_state_machine()):
        # Each scenario starts from the same data, or Hypothesis could not replay one.
        def setup(self):
            super().setup()
            self._savepoint = transaction.savepoint()

        def teardown(self):
            transaction.savepoint_rollback(self._savepoint)
            super().teardown()

        def get_call_kwargs(self, case):
            return {"headers": headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response,
                headers=headers,
                excluded_checks=[positive_data_acceptance],
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Workflow.run(
        settings=settings(
            max_examples=int(os.environ.get("FUZZ_EXAMPLES", "15")),
            derandomize=not os.environ.get("FUZZ_EXAMPLES"),
            stateful_step_count=6,
            deadline=None,
            # A failing sequence is reported as found: shrinking replays it, and the
            # links Schemathesis follows adapt between runs, which Hypothesis calls flaky.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
