"""The privacy decision, as a table: level × identity × path."""
import pytest

from dash_enterprise_auth.connectors import Identity
from dash_enterprise_auth.privacy import Decision, Policy, decide

ALICE = Identity("alice", groups=("Analysts",))
BOB = Identity("bob", groups=("contractors",))

RESTRICTED = Policy.build("restricted", allowed_users=["carol"], allowed_groups=["analysts"],
                          public_paths=["/health-page", "/docs/<path:page>"])
AUTHORIZED = Policy.build("authorized")
PUBLIC = Policy.build("unauthorized")
PREFIXED = Policy.build("restricted", allowed_users=["alice"], routes_prefix="/app/")


@pytest.mark.parametrize("policy, identity, path, expected", [
    (RESTRICTED, None, "/", Decision.SIGN_IN),
    (RESTRICTED, ALICE, "/", Decision.ALLOW),  # group match ignores case
    (RESTRICTED, BOB, "/", Decision.FORBIDDEN),
    (RESTRICTED, Identity("CAROL"), "/", Decision.ALLOW),  # user match ignores case
    (RESTRICTED, BOB, "/_dash-update-component", Decision.FORBIDDEN),
    (RESTRICTED, None, "/_dash-component-suites/dash/dash.js", Decision.SIGN_IN),
    (RESTRICTED, None, "/assets/style.css", Decision.SIGN_IN),
    (RESTRICTED, None, "/_dash-auth/login", Decision.ALLOW),
    (RESTRICTED, BOB, "/_dash-auth/logout", Decision.ALLOW),
    (RESTRICTED, None, "/health-page", Decision.ALLOW),
    (RESTRICTED, None, "/docs/intro/start", Decision.ALLOW),
    (RESTRICTED, None, "/docs", Decision.SIGN_IN),
    (RESTRICTED, None, "/health-page/../secret", Decision.SIGN_IN),
    (AUTHORIZED, None, "/", Decision.SIGN_IN),
    (AUTHORIZED, BOB, "/", Decision.ALLOW),
    (PUBLIC, None, "/", Decision.ALLOW),
    (PUBLIC, None, "/_dash-update-component", Decision.ALLOW),
    (PREFIXED, None, "/app/_dash-auth/login", Decision.ALLOW),
    (PREFIXED, None, "/_dash-auth/login", Decision.SIGN_IN),  # not this app's route
    (PREFIXED, ALICE, "/app/", Decision.ALLOW),
])
def test_decision_table(policy, identity, path, expected):
    assert decide(policy, identity, path) is expected


def test_restricted_with_nobody_listed_lets_nobody_in():
    assert decide(Policy.build("restricted"), ALICE, "/") is Decision.FORBIDDEN
