"""A new SQLite tracking store is copied from an empty migrated one; existing stores are untouched."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from gates import sqlite_store


def test_a_new_store_is_a_working_copy_of_the_template(tmp_path, monkeypatch):
    monkeypatch.setenv("GATES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'one.db'}"
    sqlite_store.seed(uri)
    assert sqlite_store.template_path().is_file() and (tmp_path / "one.db").is_file()
    client = MlflowClient(uri, uri)
    (default,) = client.search_experiments()
    assert default.artifact_location == str(tmp_path / "mlruns" / "0")  # what MLflow would choose here
    client.create_experiment("x")
    client.create_registered_model("m")

    other = f"sqlite:///{tmp_path / 'two.db'}"
    sqlite_store.seed(other)  # from the template, which is not rebuilt
    assert [e.name for e in MlflowClient(other, other).search_experiments()] == ["Default"]


def test_an_existing_store_and_other_uris_are_left_to_mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("GATES_CACHE_DIR", str(tmp_path / "cache"))
    store = tmp_path / "kept.db"
    store.write_bytes(b"not touched")
    sqlite_store.seed(f"sqlite:///{store}")
    assert store.read_bytes() == b"not touched"
    sqlite_store.seed("http://127.0.0.1:5000")
    sqlite_store.seed(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    assert not (tmp_path / "cache").exists()  # nothing was built for any of them
