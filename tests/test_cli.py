"""User errors on the command line are one clear line and exit code 2, not a traceback."""

from typer.testing import CliRunner

from scalelab.cli import app

runner = CliRunner()


def test_unknown_preset():
    res = runner.invoke(app, ["run", "--preset", "enormous", "--out", "x"])
    assert res.exit_code == 2
    assert "smoke, tiny, gpu" in res.output


def test_unknown_key():
    res = runner.invoke(app, ["run", "--preset", "smoke", "--set", "train.nope=1", "--out", "x"])
    assert res.exit_code == 2
    assert "train.lr" in res.output


def test_runs_without_registry(tmp_path):
    res = runner.invoke(app, ["runs", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "no registry" in res.output


def test_generate_bad_model(tmp_path):
    res = runner.invoke(app, ["generate", str(tmp_path), "hello"])
    assert res.exit_code == 2
    assert "config.json" in res.output
