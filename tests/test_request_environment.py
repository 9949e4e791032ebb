"""The test client's requests from several threads at once leave the worker's
environment as it was: the real ``os.environ``, which later tests (and the
processes they start) read."""
import os
import threading

from local.stack.launcher import Ports


def test_requests_from_many_threads_leave_the_real_environment(threadsafe_app, api, services,
                                                              monkeypatch):
    real, before = os.environ, dict(os.environ)
    answers = []

    def ask():
        for _ in range(40):
            answers.append(api.http.get("/health").status_code)
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert answers == [200] * 320
    assert os.environ is real, "a request left a copy of the environment in its place"
    assert dict(os.environ) == before
    # What a test sets is seen by code that holds the environment (a default argument).
    monkeypatch.setenv("ROLLCALL_SITE_PORT", "8765")
    assert Ports.from_env().site == 8765
