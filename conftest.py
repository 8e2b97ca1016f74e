
import pytest

from scripts.check_services import missing_services


def pytest_configure(config):
    problems = missing_services()
    if problems:
        raise pytest.UsageError("Required services are down:\n  " + "\n  ".join(problems))
