from __future__ import annotations

import pytest

from servelab import cli


def test_help_lists_only_commands_whose_modules_exist(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in cli.available():
        assert name.split()[0] in out
    assert "workloads" in out and "demo" in out


def test_missing_module_is_not_available(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("servelab.core.no_such_module", "x"))
    assert "ghost" not in cli.available()
    assert cli._module_exists("servelab.core.policies.fifo")


def test_errors_become_messages_and_exit_codes(capsys):
    assert cli.main(["workloads", "no-such-workload"]) == 2
    assert "unknown workload" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["no-such-command"])


def test_workloads_command(capsys):
    assert cli.main(["workloads", "mixed"]) == 0
    out = capsys.readouterr().out
    assert "generated (seed 3)" in out and "distilbert" in out


def test_exit_now_waits_for_threads_runs_exit_handlers_and_keeps_the_code() -> None:
    """The fast exit skips only module finalization: a non-daemon thread still finishes, atexit
    handlers still run, output is flushed, and the exit code is the command's."""
    import subprocess
    import sys

    code = ("import atexit, threading, time\n"
            "from servelab.cli import exit_now\n"
            "atexit.register(lambda: print('handler ran'))\n"
            "def work():\n    time.sleep(0.2)\n    print('thread done')\n"
            "threading.Thread(target=work).start()\n"
            "print('main done')\n"
            "exit_now(3)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3
    assert r.stdout.split() == ["main", "done", "thread", "done", "handler", "ran"]
