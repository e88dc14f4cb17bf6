"""``next`` only ever leads to a path on this origin."""
import pytest

from dash_enterprise_auth.urls import safe_next


@pytest.mark.parametrize("value", [
    "//evil.example", "https://evil.example", "http://evil.example/", "/\\evil.example",
    "\\\\evil.example", "javascript:alert(1)", "evil.example", "/\nx", "/\tx",
    "", None, "///evil.example", "/" + "a" * 3000,
])
def test_foreign_or_odd_targets_fall_back_to_the_app(value):
    assert safe_next(value, "/app/") == "/app/"


@pytest.mark.parametrize("value", ["/", "/page?x=1&y=2", "/app/reports/2024#top", "/a//b"])
def test_same_origin_paths_are_kept(value):
    assert safe_next(value, "/") == value
