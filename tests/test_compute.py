"""CPU-only work of a sign-in (python3-saml's validation) runs on the ASGI server's event loop.

On a thread it would compete with the loop for the interpreter at every accept, read and
write of the worker (bench/saml_acs.py: 0.72 of python3-saml's own rate on FastAPI, 0.82 with
it on the loop). What a person would notice if this broke: an error raised by the work lost
or turned into a 500, or a worker that never exits because a sign-in thread waits for a loop
that has stopped. Exercised here with real loops and the adapter's real sign-in pool.
"""
from __future__ import annotations

import asyncio
import base64
import threading
import time

import pytest

from dash_enterprise_auth import asgi
from dash_enterprise_auth.blocking import compute
from dash_enterprise_auth.connectors.base import ProviderRequest
from dash_enterprise_auth.connectors.saml import MAX_RESPONSE_ON_LOOP, SamlConnector
from dash_enterprise_auth.errors import ProviderRefused

from .conftest import SAML_SP_ACS_URL


def on_loop(func):
    """Run ``func`` as a sign-in of the ASGI adapter on a fresh loop; (its result, the loop's thread)."""
    async def main():
        return await asgi._signing_in(func), threading.get_ident()
    return asyncio.run(main())


def test_work_of_a_sign_in_runs_on_the_loops_thread_and_its_result_comes_back():
    (sign_in_thread, work_thread), loop_thread = on_loop(lambda: (threading.get_ident(), compute(threading.get_ident)))
    assert work_thread == loop_thread != sign_in_thread


def test_an_error_of_the_work_reaches_the_sign_in_as_raised():
    def refuse():
        raise ProviderRefused(log_detail="SAML response refused: signature")

    with pytest.raises(ProviderRefused) as raised:
        on_loop(lambda: compute(refuse))
    assert raised.value.log_detail == "SAML response refused: signature"


def test_outside_an_asgi_sign_in_the_work_runs_where_it_is_called():
    assert compute(threading.get_ident) == threading.get_ident()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(compute(threading.get_ident) == threading.get_ident()))
    thread.start()
    thread.join()
    assert seen == [True]  # Flask's threads, and the sign-in pool's other work, are unchanged


@pytest.mark.parametrize("then", ["stops", "closes"])
def test_a_sign_in_whose_loop_stopped_runs_the_work_itself_instead_of_waiting_forever(then):
    """A server shutting down mid sign-in: the thread must finish, or the worker never exits."""
    loop = asyncio.new_event_loop()
    go, done = threading.Event(), {}

    def sign_in():
        go.wait(10)
        done["where"] = compute(threading.get_ident), threading.get_ident()

    task = loop.create_task(asgi._signing_in(sign_in))
    loop.run_until_complete(asyncio.sleep(0.1))  # the sign-in thread now waits on `go`; the loop stops
    if then == "closes":
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        loop.close()
    go.set()
    deadline = time.monotonic() + 10
    while "where" not in done and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "where" in done, "the sign-in thread is still waiting for its loop"
    work_thread, sign_in_thread = done["where"]
    assert work_thread == sign_in_thread
    if then == "stops":
        loop.run_until_complete(task)
        loop.close()


class WatchedSaml(SamlConnector):
    """The real connector, noting which thread validates each response."""

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self.validated_on: list[int] = []

    def _validated(self, *args):
        self.validated_on.append(threading.get_ident())
        return super()._validated(*args)


def test_python3_saml_validates_on_the_loop_except_a_response_too_large_to_pause_it_for(saml_idp):
    connector = WatchedSaml(metadata_url=saml_idp.metadata_url)
    for size, on_the_loop in ((20_000, True), (MAX_RESPONSE_ON_LOOP + 4, False)):
        xml = b"<samlp:Response xmlns:samlp='urn:oasis:names:tc:SAML:2.0:protocol'>" + b" " * size
        form = {"SAMLResponse": base64.b64encode(xml).decode()[:size], "RelayState": "state"}
        request = ProviderRequest("POST", {}, form, SAML_SP_ACS_URL, "127.0.0.1")

        def sign_in():
            try:
                connector.complete(request, {"request_id": "ONELOGIN_1"})
            except ProviderRefused:  # not a SAML response python3-saml accepts: refused, wherever it ran
                return threading.get_ident()
            raise AssertionError("a broken response was accepted")

        sign_in_thread, loop_thread = on_loop(sign_in)
        assert connector.validated_on[-1] == (loop_thread if on_the_loop else sign_in_thread), size
