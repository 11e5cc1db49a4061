"""When a stdio child that exited is started again (shared by the stdio host, or a worker's own)."""

from __future__ import annotations

from only1mcp.backends.child import RestartPolicy, child_environment
from only1mcp.config.models import StdioBackend


def test_quick_exits_back_off_doubling_up_to_the_cap() -> None:
    policy = RestartPolicy(max_failures=100, failure_window=1000.0, failed_retry=300.0)
    delays = [policy.exited(started=t, now=t + 1.0)[0] for t in range(10)]
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]


def test_exit_after_a_long_run_restarts_at_once() -> None:
    policy = RestartPolicy(max_failures=5, failure_window=60.0, failed_retry=300.0)
    assert policy.exited(started=0.0, now=1.0) == (0.2, False)
    assert policy.exited(started=1.0, now=40.0) == (0.0, False)


def test_too_many_exits_within_the_window_fail_then_start_over() -> None:
    policy = RestartPolicy(max_failures=3, failure_window=60.0, failed_retry=300.0)
    assert policy.exited(0.0, 1.0) == (0.2, False)
    assert policy.exited(1.0, 2.0) == (0.4, False)
    assert policy.exited(2.0, 3.0) == (300.0, True)
    assert policy.recent_exits == 0  # after the failed pause it gets a fresh budget
    assert policy.exited(303.0, 304.0) == (0.2, False)


def test_exits_older_than_the_window_are_forgotten() -> None:
    policy = RestartPolicy(max_failures=3, failure_window=10.0, failed_retry=300.0)
    policy.exited(0.0, 1.0)
    policy.exited(1.0, 2.0)
    assert policy.exited(30.0, 31.0) == (0.2, False)  # the first two fell out of the window
    assert policy.recent_exits == 1


def test_a_child_environment_is_the_minimal_set_plus_what_is_asked_for() -> None:
    gateway = {"PATH": "/bin", "HOME": "/home/g", "LANG": "C.UTF-8", "ONLY1MCP_SESSION_SECRET": "x" * 32,
               "AWS_SECRET_ACCESS_KEY": "k", "LC_ALL": "C", "REGION_EU": "1"}
    backend = StdioBackend(name="b", command="cmd", env={"OWN": "v", "PATH": "/opt/bin"}, env_allow=["LC_*"])
    assert child_environment(backend, gateway) == {"HOME": "/home/g", "LANG": "C.UTF-8", "LC_ALL": "C",
                                                   "OWN": "v", "PATH": "/opt/bin"}
    assert child_environment(StdioBackend(name="b", command="cmd"), gateway) == {
        "PATH": "/bin", "HOME": "/home/g", "LANG": "C.UTF-8"}
