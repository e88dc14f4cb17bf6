"""The basic connector's users file: every edit is read again at once."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dash_enterprise_auth.connectors.basic import BasicConnector
from dash_enterprise_auth.errors import InvalidCredentials

from .conftest import PASSWORDS


@pytest.fixture
def own_users(tmp_path: Path, users_file: Path) -> Path:
    """A users file of this test's own, to edit."""
    path = tmp_path / "own-users.json"
    shutil.copy(users_file, path)
    return path


def test_same_size_in_place_edit_with_the_old_mtime_is_read_again(own_users):
    """A password changed in place, to a hash of the same length, with the mtime restored:
    the size and mtime alone would not see it; the ctime does."""
    connector = BasicConnector(own_users)
    assert connector.authenticate("alice", "wonderland").username == "alice"
    before = os.stat(own_users)
    data = json.loads(own_users.read_text())
    data["users"]["alice"]["password_hash"] = data["users"]["bob"]["password_hash"]  # alice now has bob's
    text = json.dumps(data)
    assert len(text.encode()) == before.st_size
    with open(own_users, "w") as out:
        out.write(text)
    os.utime(own_users, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(InvalidCredentials):
        connector.authenticate("alice", "wonderland")
    assert connector.authenticate("alice", PASSWORDS["bob"]).username == "alice"
