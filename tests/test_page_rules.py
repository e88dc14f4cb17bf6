"""Reading page rules from dash.page_registry entries: what is accepted, and the start-up errors."""
import pytest

from dash_enterprise_auth.dash_pages import read_rules
from dash_enterprise_auth.errors import ConfigurationError
from dash_enterprise_auth.privacy import PageRule


def page(**keywords):
    return {"module": "pages.finance", "path": "/finance", "name": "Finance", "layout": None,
            "supplied_path": "/finance", **keywords}


def test_rules_are_read_with_names_folded_and_other_keywords_left_alone():
    rules = read_rules({"pages.finance": page(allowed_groups=["Finance "], allowed_users=("Dana",), icon="bank"),
                        "pages.about": page(public=True), "pages.home": page(icon="house")})
    assert rules == {"pages.finance": PageRule(False, frozenset({"dana"}), frozenset({"finance"})),
                     "pages.about": PageRule(public=True)}


@pytest.mark.parametrize("keywords, message", [
    ({"allowed_group": ["x"]}, "unknown keyword allowed_group=['x'] (did you mean allowed_groups?)"),
    ({"allow_users": ["x"]}, "unknown keyword allow_users=['x'] (did you mean allowed_users?)"),
    ({"Public": True}, "unknown keyword Public=True (did you mean public?)"),
    ({"restricted": True}, "unknown keyword restricted=True"),
    ({"allowed_groups": "finance"}, "allowed_groups= takes a list of names, e.g. allowed_groups=['finance'], "
                                    "not 'finance'"),
    ({"allowed_users": ["ok", ""]}, "allowed_users= must list non-empty names"),
    ({"allowed_users": [], "allowed_groups": []}, "would open it to nobody"),
    ({"public": "yes"}, "public= takes True or False, not 'yes'"),
    ({"public": True, "allowed_groups": ["x"]}, "cannot also have allowed_users or allowed_groups"),
])
def test_a_bad_rule_names_the_page_and_the_keyword(keywords, message):
    with pytest.raises(ConfigurationError) as raised:
        read_rules({"pages.finance": page(**keywords)})
    assert str(raised.value).startswith("page 'pages.finance': ")
    assert message in str(raised.value)


def test_public_false_alone_is_the_app_wide_rule():
    assert read_rules({"pages.finance": page(public=False)}) == {}
