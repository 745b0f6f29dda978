"""The package as users get it, and one version everywhere.

The slow tests build the sdist and the wheel (``python -m build``), check them (``twine check``),
install the wheel with its dependencies from the package index into a fresh venv outside the
repository, and use it from an empty folder with no Redis configured: ``redtick --version``,
``redtick demo``, ``redtick ingest --sample`` and a second process reading the ingested ticks back.
``make test`` runs them; under ``CI=true`` a missing build tool is a failure, not a skip.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import importlib.util
import os
import pathlib
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile

import pytest

import redtick
from redtick import datasets
from redtick.cli import main
from tests.conftest import IN_CI

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]
TIMINGS: dict[str, float] = {}
"""Seconds per step of the slow tests, printed at the end of the module (``pytest -s`` shows them)."""


def test_one_version_in_pyproject_metadata_package_and_cli(capsys):
    assert importlib.metadata.version("redtick") == VERSION, "the installed metadata is stale: run `make setup`"
    assert redtick.__version__ == VERSION
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"redtick {VERSION}\n"


def test_the_http_api_reports_the_same_version(conn):
    _needs("fastapi", "api")
    from redtick.web import create_app

    assert create_app(conn, admin_token="", maintenance=False).openapi()["info"]["version"] == VERSION


def test_the_changelog_describes_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{VERSION}]" in changelog


def _run(step: str, argv: list[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess[str]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    TIMINGS[step] = TIMINGS.get(step, 0.0) + time.perf_counter() - started
    assert done.returncode == 0, f"{step}: {argv} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _needs(module: str, extra: str = "release") -> None:
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed: pip install 'redtick[{extra}]'"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module", autouse=True)
def _print_timings():
    yield
    if TIMINGS:
        print("\n" + "\n".join(f"{step:<40} {seconds:7.1f} s" for step, seconds in TIMINGS.items()))


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, pathlib.Path]:
    """The sdist and the wheel, built from this checkout (the wheel from the sdist, as ``build`` does)."""
    _needs("build")
    out = tmp_path_factory.mktemp("dist")
    _run("python -m build (sdist + wheel)", [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], timeout=900)
    built = {p.suffix: p for p in out.iterdir()}
    assert sorted(built) == [".gz", ".whl"], sorted(built)
    return {"sdist": built[".gz"], "wheel": built[".whl"]}


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> pathlib.Path:
    """A fresh venv outside the repository with the wheel and its dependencies from the index; its bin folder."""
    folder = tmp_path_factory.mktemp("venv")
    assert ROOT not in folder.parents
    _run("python -m venv", [sys.executable, "-m", "venv", str(folder)], timeout=300)
    _run("pip install the wheel (and dependencies)", [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                                      str(dist["wheel"])], timeout=1800, env=_user_env(folder))
    return folder / "bin"


def _user_env(venv: pathlib.Path, home: pathlib.Path | None = None) -> dict[str, str]:
    """A new user's environment: the venv first on PATH, no Redis configured, no redtick settings, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REDTICK_", "REDIS_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if home is not None:
        env["REDTICK_HOME"] = str(home)
    return env


@pytest.mark.slow
def test_the_sdist_and_the_wheel_pass_twine_check(dist):
    _needs("twine")
    done = _run("twine check --strict", [sys.executable, "-m", "twine", "check", "--strict", str(dist["sdist"]),
                                         str(dist["wheel"])], timeout=300)
    assert done.stdout.count("PASSED") == 2


@pytest.mark.slow
def test_the_wheel_and_the_sdist_hold_the_samples_the_scripts_and_the_licence(dist):
    scripts = sorted(p.name for p in (ROOT / "redtick" / "scripts").glob("*.lua"))
    samples = sorted(s.file for s in datasets.SAMPLES.values())
    assert dist["wheel"].name == f"redtick-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(dist["wheel"]) as archive:
        wheel = archive.namelist()
    with tarfile.open(dist["sdist"]) as archive:
        sdist = [name.partition("/")[2] for name in archive.getnames()]
    for names in (wheel, sdist):
        assert sorted(n.rpartition("/")[2] for n in names if n.startswith("redtick/scripts/") and n.endswith(".lua")) == scripts
        assert sorted(n.rpartition("/")[2] for n in names if n.startswith("redtick/datasets/") and n.endswith(".parquet")) \
            == samples
    assert f"redtick-{VERSION}.dist-info/licenses/LICENSE" in wheel
    with zipfile.ZipFile(dist["wheel"]) as archive:  # a sample in the wheel is the very file in the checkout
        assert archive.read("redtick/datasets/es_ticks_20130901.parquet") == datasets.path("es_ticks").read_bytes()


@pytest.mark.slow
def test_the_wheel_metadata_is_complete(dist):
    with zipfile.ZipFile(dist["wheel"]) as archive:
        meta = email.parser.Parser().parsestr(archive.read(f"redtick-{VERSION}.dist-info/METADATA").decode())
    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Summary"] and meta["Author"] == "redtick developers" and meta["Keywords"]
    assert meta["Description-Content-Type"] == "text/markdown"
    assert sorted(meta.get_all("Provides-Extra")) == sorted(PROJECT["optional-dependencies"])
    classifiers = meta.get_all("Classifier")
    for wanted in ("Programming Language :: Python :: 3.11", "Programming Language :: Python :: 3.12",
                   "Programming Language :: Python :: 3.13", "Framework :: Jupyter", "Topic :: Database",
                   "Topic :: Office/Business :: Financial :: Investment"):
        assert wanted in classifiers
    _needs("trove_classifiers")
    import trove_classifiers

    assert [c for c in classifiers if c not in trove_classifiers.classifiers] == []  # PyPI refuses unknown ones


@pytest.mark.slow
def test_a_new_user_installs_the_wheel_and_works_from_an_empty_folder(venv, tmp_path):
    empty, home = tmp_path / "work", tmp_path / "redtick-home"
    empty.mkdir()
    env = _user_env(venv.parent, home)
    run = {"cwd": empty, "env": env}
    python = str(venv / "python")
    try:
        version = _run("redtick --version", [str(venv / "redtick"), "--version"], timeout=120, **run).stdout
        installed = _run("python: the installed metadata", [python, "-c", "import importlib.metadata as m, redtick; "
                                                            "print(m.version('redtick'), redtick.__version__, redtick.__file__)"],
                         timeout=120, **run).stdout.split()
        assert version == f"redtick {VERSION}\n"
        assert installed[:2] == [VERSION, VERSION]
        assert pathlib.Path(installed[2]).is_relative_to(venv.parent)  # the venv's copy, not this checkout

        demo = _run("redtick demo (throwaway local store)", [str(venv / "redtick"), "demo"], timeout=1200, **run).stdout
        assert "ticks in the sample file" in demo and "500,000" in demo
        assert (empty / "reports" / "redtick_report.html").is_file()

        ingest = _run("redtick ingest --sample es_ticks", [str(venv / "redtick"), "ingest", "--sample", "es_ticks",
                                                           "--symbol", "ES", "-q"], timeout=1200, **run).stdout
        assert "500,000" in ingest and str(home) in ingest  # stored in the local store under REDTICK_HOME
        read_back = _run("second process: load_ticks('ES')", [python, "-c", (
            "import redtick; ticks = redtick.load_ticks('ES'); sample = redtick.datasets.es_ticks(); "
            "print(len(ticks), len(sample), (ticks['price'].to_numpy() == sample['price'].to_numpy()).all())")],
            timeout=600, **run).stdout.split()
        assert read_back == ["500000", "500000", "True"]

        serve = subprocess.run([str(venv / "redtick"), "serve"], capture_output=True, text=True, timeout=120, **run)
        assert serve.returncode == 2  # the api extra is not installed: one line naming it
        assert serve.stderr.splitlines() == ["redtick: MissingExtra: redtick serve needs FastAPI: pip install 'redtick[api]'"]
        assert sorted(p.name for p in empty.iterdir()) == ["reports"]  # nothing else written into the user's folder
    finally:
        stop = subprocess.run([str(venv / "redtick"), "stop"], capture_output=True, text=True, timeout=120, **run)
    assert stop.returncode == 0, stop.stderr
    assert "stopped the local store's server" in stop.stdout
