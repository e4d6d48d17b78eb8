"""bench/peers.py: a peer that cannot be installed is skipped with the reason, not a crash."""

from __future__ import annotations

from bench import peers


def test_a_venv_that_cannot_be_made_is_skipped_with_what_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("PEERS_PYTHON", str(tmp_path / "no-such-python3.11"))
    lock = tmp_path / "peers.lock"
    lock.write_text("numpy==1.26.4\n")

    python, reason = peers.peers_python(venv=tmp_path / "venv", lock=lock)

    assert python is None
    assert "no-such-python3.11" in reason and "could not start" in reason
    assert not (tmp_path / "venv" / ".installed").exists()
    # and the peer rows then carry the reason instead of figures
    skipped = peers.run_peers(None, {"kind": "data", "skip": f"peers venv not made: {reason}"}, tmp_path, "x")
    assert "no-such-python3.11" in skipped["error"]


def test_a_lock_that_pip_rejects_is_skipped_with_pips_message(tmp_path, monkeypatch):
    """A real venv and a real pip run on a lock naming a package that does not exist here."""
    monkeypatch.delenv("PEERS_PYTHON", raising=False)
    lock = tmp_path / "peers.lock"
    lock.write_text("./no-such-wheel-file-0.0.0-py3-none-any.whl\n")

    python, reason = peers.peers_python(venv=tmp_path / "venv", lock=lock)

    assert python is None
    assert "exited" in reason and "no-such-wheel-file" in reason
    assert not (tmp_path / "venv" / ".installed").exists()
