"""`cnnlab serve` on the command line: a generated token off loopback, one-line errors with exit code 2."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import httpx

from cnnlab.cli import main


def test_serving_beyond_loopback_prints_a_token_and_every_request_needs_it(digits_run):
    process = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", str(digits_run), "--host", "0.0.0.0",
                                "--port", "0", "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        line = process.stdout.readline()
        found = re.search(r"open http://0\.0\.0\.0:(\d+)/\?token=([A-Za-z0-9_-]{32})(?![A-Za-z0-9_-])", line)
        assert found, line + process.stderr.read() if process.poll() is not None else line
        port, token = found.groups()
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/health", timeout=30).status_code == 401
        answer = httpx.get(f"{base}/api/model", headers={"authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 200 and answer.json()["input_shape"] == [1, 16, 16]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode in (0, 130)


def test_a_port_in_use_is_one_line_and_exit_code_2(digits_run, capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        code = main(["serve", str(digits_run), "--port", str(port)])
    finally:
        taken.close()
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in error and "--port" in error


def test_a_short_token_and_a_missing_run_are_refused(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--token", "short"]) == 2
    assert "token" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing"), "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "does not exist" in error
