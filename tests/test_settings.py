"""Settings: one clear line naming the variable for every bad value; secrets never shown."""
import logging

import pytest

from dash_enterprise_auth.config import CORE_OPTIONS, CoreConfig
from dash_enterprise_auth.errors import ConfigurationError
from dash_enterprise_auth.install import load_configuration
from dash_enterprise_auth.settings import Secret, Settings

KEY = "k" * 40
BASE = {"DASH_AUTH_SECRET_KEY": KEY, "DASH_AUTH_ALLOWED_GROUPS": "analysts"}


def config(**env):
    return CoreConfig.from_settings(Settings.load(CORE_OPTIONS, environ={**BASE, **env}))


def test_defaults_are_restricted_with_day_long_sessions():
    c = config()
    assert c.privacy.value == "restricted"
    assert (c.idle_timeout, c.max_age, c.proxy_hops) == (8 * 3600, 24 * 3600, 0)
    assert c.allowed_groups == ("analysts",)


@pytest.mark.parametrize("env, named, allowed", [
    ({"DASH_AUTH_PRIVACY": "public"}, "DASH_AUTH_PRIVACY", "unauthorized, authorized, restricted"),
    ({"DASH_AUTH_SESSION_IDLE_TIMEOUT": "ten"}, "DASH_AUTH_SESSION_IDLE_TIMEOUT", "greater than 0"),
    ({"DASH_AUTH_SESSION_MAX_AGE": "-5"}, "DASH_AUTH_SESSION_MAX_AGE", "greater than 0"),
    ({"DASH_AUTH_PROXY_HOPS": "many"}, "DASH_AUTH_PROXY_HOPS", "0 or more"),
])
def test_malformed_values_name_the_variable_and_the_allowed_values(env, named, allowed):
    with pytest.raises(ConfigurationError) as err:
        config(**env)
    assert named in str(err.value) and allowed in str(err.value)


def test_missing_secret_key_stops_start_up_with_how_to_make_one():
    with pytest.raises(ConfigurationError, match="DASH_AUTH_SECRET_KEY is not set.*secrets.token_urlsafe"):
        CoreConfig.from_settings(Settings.load(CORE_OPTIONS, environ={"DASH_AUTH_PRIVACY": "authorized"}))


def test_short_secret_key_is_refused_without_showing_it():
    with pytest.raises(ConfigurationError) as err:
        config(DASH_AUTH_SECRET_KEY="hunter2")
    assert "hunter2" not in str(err.value) and "at least 32" in str(err.value)


def test_secret_key_file_is_read_and_stays_hidden(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    c = CoreConfig.from_settings(Settings.load(CORE_OPTIONS, environ={
        "DASH_AUTH_SECRET_KEY_FILE": str(key_file), "DASH_AUTH_PRIVACY": "authorized"}))
    assert c.secret_key.reveal() == KEY
    assert KEY not in repr(c) and KEY not in str(c.secret_key)


def test_unreadable_secret_key_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="DASH_AUTH_SECRET_KEY_FILE=.*cannot be read"):
        config(DASH_AUTH_SECRET_KEY=None, DASH_AUTH_SECRET_KEY_FILE=str(tmp_path / "missing"))


def test_restricted_without_users_or_groups_is_refused():
    with pytest.raises(ConfigurationError, match="lets nobody in.*DASH_AUTH_ALLOWED_USERS"):
        CoreConfig.from_settings(Settings.load(CORE_OPTIONS, environ={"DASH_AUTH_SECRET_KEY": KEY}))


def test_lists_and_booleans_accept_documented_spellings():
    c = config(DASH_AUTH_ALLOWED_USERS=" alice, bob ,,", DASH_AUTH_PUBLIC_PATHS="/a,/b/<x>")
    assert c.allowed_users == ("alice", "bob") and c.public_paths == ("/a", "/b/<x>")
    from dash_enterprise_auth.settings import boolean
    assert [boolean(v) for v in ("true", "1", "YES", "false", "0", "no")] == [True] * 3 + [False] * 3


def test_keyword_overrides_win_over_the_environment():
    c = CoreConfig.from_settings(Settings.load(CORE_OPTIONS, {"privacy": "authorized"},
                                               environ={**BASE, "DASH_AUTH_PRIVACY": "restricted"}))
    assert c.privacy.value == "authorized"


def test_unknown_keyword_suggests_the_right_one():
    with pytest.raises(ConfigurationError, match="allowed_groupz.*did you mean allowed_groups"):
        Settings.load(CORE_OPTIONS, {"allowed_groupz": ["x"]}, environ={})


def test_unknown_variable_is_warned_about_with_did_you_mean(caplog):
    with caplog.at_level(logging.WARNING, logger="dash_enterprise_auth"):
        Settings.warn_unknown(CORE_OPTIONS, environ={"DASH_AUTH_ALLOWED_GROUP": "x", "DASH_AUTH_PRIVACY": "x"})
    assert len(caplog.records) == 1
    assert "DASH_AUTH_ALLOWED_GROUP" in caplog.text and "did you mean DASH_AUTH_ALLOWED_GROUPS" in caplog.text


def test_unknown_connector_lists_the_installed_ones(monkeypatch):
    monkeypatch.setenv("DASH_AUTH_CONNECTOR", "ldapp")
    monkeypatch.setenv("DASH_AUTH_SECRET_KEY", KEY)
    monkeypatch.setenv("DASH_AUTH_PRIVACY", "authorized")
    with pytest.raises(ConfigurationError, match="DASH_AUTH_CONNECTOR='ldapp' is not valid: use one of.*basic"):
        load_configuration()


def test_basic_connector_without_users_file_explains_how_to_make_one(monkeypatch):
    monkeypatch.setenv("DASH_AUTH_CONNECTOR", "basic")
    monkeypatch.setenv("DASH_AUTH_SECRET_KEY", KEY)
    monkeypatch.setenv("DASH_AUTH_PRIVACY", "authorized")
    with pytest.raises(ConfigurationError, match="DASH_AUTH_USERS_FILE is not set.*add-user"):
        load_configuration()


def test_secret_repr_is_masked():
    assert repr(Secret("topsecret")) == "'**********'" and "topsecret" not in f"{Secret('topsecret')}"
