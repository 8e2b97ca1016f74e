"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium, never a downloaded
build) against a live server on the test database. Each test saves a screenshot into
var/screenshots/<test name>.png."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import (
    Browser,
    BrowserType,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from scripts.check_services import CHROMIUM
from tests.factories import UserFactory

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
VIEWPORT = {"width": 1366, "height": 900}
PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory's


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run these tests last. They are transactional (the live server), so each ends with a
    flush that empties every table, the migrations' data too (the roles' groups).
    pytest-django runs transactional tests after the others, but pytest-playwright's
    session-scoped `browser_name` parameter makes pytest regroup these among them."""
    here = Path(__file__).parent
    browser_tests = [item for item in items if here in item.path.parents]
    if browser_tests:
        items[:] = [item for item in items if here not in item.path.parents] + browser_tests


# pytest-playwright's Playwright, browser and context arguments, but package-scoped: they
# live only while this package's tests run (see `playwright`).
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright, with Django's async-unsafe guard lifted while it runs.

    Playwright's sync API runs an asyncio event loop in this thread (in a greenlet) from its
    start until it stops, so Django sees a running loop and refuses every ORM call made here
    (SynchronousOnlyOperation), although nothing runs concurrently. DJANGO_ALLOW_ASYNC_UNSAFE
    lifts the guard; it is set only while Playwright runs and removed when it stops, so the
    other tests (and the subprocesses they start) keep the guard."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as pw:
            yield pw


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright) -> BrowserType:
    return playwright.chromium


@pytest.fixture(scope="package")
def launch_browser(browser_type_launch_args: dict, browser_type: BrowserType) -> Callable:
    return lambda **kwargs: browser_type.launch(**{**browser_type_launch_args, **kwargs})


@pytest.fixture(scope="package")
def browser(launch_browser: Callable) -> Iterator[Browser]:
    browser = launch_browser()
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        # This machine has no network beyond the package registries: no background fetches.
        "args": ["--disable-background-networking", "--disable-component-update"],
    }


@pytest.fixture(scope="package")
def browser_context_args(base_url: str) -> dict:
    return {"base_url": base_url, "viewport": VIEWPORT}


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def base_url(live_server) -> str:
    """Pages open paths on the live server: page.goto("/admin/"). (Also replaces
    pytest-playwright's own fixture, which pytest 9 warns about.)"""
    return live_server.url


@pytest.fixture
def browser_user(transactional_db) -> Callable[[str], User]:
    """A user with a role (order_staff, auditor: both are staff, so may log in to the admin)."""

    def make(role: str) -> User:
        return UserFactory(role=role)

    return make


@pytest.fixture
def admin_login(live_server) -> Callable[[Page, User], None]:
    """Log a user in through the real admin login form."""

    def login(page: Page, user: User) -> None:
        page.goto("/admin/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#user-tools")).to_contain_text(user.username)

    return login


@pytest.fixture
def screenshot(request) -> Callable[..., Path]:
    """Save a full-page screenshot as var/screenshots/<test name>[-<suffix>].png."""

    def save(page: Page, suffix: str = "") -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = request.node.originalname + (f"-{suffix}" if suffix else "")
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return save
