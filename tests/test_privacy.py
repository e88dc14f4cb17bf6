"""The privacy decision, as a table: level × identity × path."""
import pytest

from dash_enterprise_auth.connectors import Identity
from dash_enterprise_auth.privacy import Decision, PageRule, Pages, Policy, decide

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


# -- pages: a rule per page, the shell open to whoever may open some page ---------------------------

CAROL = Identity("carol", groups=("hr",))
FINANCE = Identity("fin", groups=("Finance",))
PAGE_OF = {"/about": "about", "/finance": "finance", "/hr/carol": "hr", "/": "home"}
RULES = {"about": PageRule.build(public=True), "finance": PageRule.build(allowed_groups=["finance"]),
         "hr": PageRule.build(allowed_users=["Carol"])}
SHELL = ("/_dash-update-component", "/_dash-layout", "/assets/")
PAGES = Pages(RULES, PAGE_OF.get, SHELL)
WITHOUT_PUBLIC_PAGE = Pages({k: v for k, v in RULES.items() if k != "about"}, PAGE_OF.get, SHELL)
ONLY_PUBLIC_CALLBACKS = Pages({}, PAGE_OF.get, SHELL, open_callbacks=True)


@pytest.mark.parametrize("pages, policy, identity, path, expected", [
    # A page's rule replaces the app's, both ways.
    (PAGES, RESTRICTED, None, "/about", Decision.ALLOW),
    (PAGES, RESTRICTED, BOB, "/about", Decision.ALLOW),
    (PAGES, RESTRICTED, FINANCE, "/finance", Decision.ALLOW),  # not allowed app-wide, allowed here
    (PAGES, RESTRICTED, ALICE, "/finance", Decision.FORBIDDEN),  # allowed app-wide, not here
    (PAGES, RESTRICTED, None, "/finance", Decision.SIGN_IN),
    (PAGES, RESTRICTED, CAROL, "/hr/carol", Decision.ALLOW),  # names ignore case
    (PAGES, PUBLIC, None, "/hr/carol", Decision.SIGN_IN),  # a public app's private page
    # A page without a rule, and any other path: the app's rule.
    (PAGES, RESTRICTED, None, "/", Decision.SIGN_IN),
    (PAGES, RESTRICTED, BOB, "/", Decision.FORBIDDEN),
    (PAGES, RESTRICTED, None, "/export", Decision.SIGN_IN),
    # The shell: open to whoever may open some page; closed to whoever may open none.
    (PAGES, RESTRICTED, None, "/_dash-update-component", Decision.ALLOW),
    (PAGES, RESTRICTED, BOB, "/_dash-layout", Decision.ALLOW),
    (WITHOUT_PUBLIC_PAGE, RESTRICTED, None, "/_dash-update-component", Decision.SIGN_IN),
    (WITHOUT_PUBLIC_PAGE, RESTRICTED, BOB, "/_dash-layout", Decision.FORBIDDEN),
    (WITHOUT_PUBLIC_PAGE, RESTRICTED, FINANCE, "/assets/app.css", Decision.ALLOW),
    (ONLY_PUBLIC_CALLBACKS, RESTRICTED, None, "/_dash-update-component", Decision.ALLOW),
    (ONLY_PUBLIC_CALLBACKS, RESTRICTED, BOB, "/_dash-update-component", Decision.FORBIDDEN),
    # The package's routes and public paths stay open.
    (WITHOUT_PUBLIC_PAGE, RESTRICTED, None, "/_dash-auth/login", Decision.ALLOW),
    (WITHOUT_PUBLIC_PAGE, RESTRICTED, None, "/health-page", Decision.ALLOW),
])
def test_page_decision_table(pages, policy, identity, path, expected):
    assert decide(policy, identity, path, pages) is expected
