"""The one check that a response is an RFC 9457 problem (config.api.problems)."""

from config.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX


def assert_problem(response, status: int, code: str | None = None) -> dict:
    """The response is a problem with this status (and this code, when given); returns its
    body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == status
    assert body["type"] == PROBLEM_TYPE_PREFIX + body["code"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code
    return body
