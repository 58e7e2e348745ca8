"""The version matrix in docs/compatibility.md is the recorded result of `make compat`.

``scripts/compat_matrix.py`` renders the table from ``docs/compat-results.json`` (written by
``make compat`` from each environment's report and junit XML) and the compat selection from
its own lists. These tests fail when a generated block is edited by hand, when the recorded
versions are not what ``scripts/compat/<env>.txt`` pins (the record is of another matrix),
when a compat environment was never recorded, or when a test left out of the compat
selection no longer exists; and they check the
report, record and render steps on a small made-up run. No environment is built here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("compat_matrix", ROOT / "scripts" / "compat_matrix.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_doc_blocks_are_what_the_recorded_results_render():
    cm = _script()
    text = (ROOT / "docs" / "compatibility.md").read_text(encoding="utf-8")
    assert cm.update_doc(text, cm.load()) == text, (
        "docs/compatibility.md's generated blocks are not the recorded result: run "
        "`make compat` (or `python scripts/compat_matrix.py render`)")
    assert cm.main(["check"]) == 0


def test_every_compat_environment_has_a_recorded_result_of_its_pins():
    from packaging.requirements import Requirement

    cm = _script()
    recorded = cm.load()["environments"]
    envs = sorted(p.stem for p in (ROOT / "scripts" / "compat").glob("*.txt"))
    assert envs == sorted(cm.ENVS)
    assert set(recorded) == set(envs), "record every compat environment (make compat)"
    for name in envs:
        rec = recorded[name]
        assert rec["setup_rc"] == 0 and rec["tests"] is not None, f"{name} did not run"
        assert rec["pins"] == cm.pins(name), f"{name}: recorded with other pins; run make compat"
        for dep in cm.pins(name):
            req = Requirement(dep)
            got = rec["versions"].get(req.name)
            assert got is not None, f"{name}: no recorded version of {req.name}"
            assert req.specifier.contains(got, prereleases=True), (
                f"{name}: recorded {req.name} {got} does not satisfy {dep}: "
                "the record is of another matrix; run `make compat`")


def test_the_selection_is_every_test_file_but_the_listed_ones_which_exist():
    cm = _script()
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_*.py")}
    assert set(cm.EXCLUDED) <= files, f"listed but gone: {sorted(set(cm.EXCLUDED) - files)}"
    for node in cm.DESELECTED:
        path, func = node.split("::")
        assert path in files and path not in cm.EXCLUDED, f"{node}: not in a selected file"
        name = func.split("[")[0]
        src = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {re.escape(name)}\(", src, re.M), f"{node} does not exist"
    for why in [*cm.EXCLUDED.values(), *cm.DESELECTED.values()]:
        assert len(why) > 10  # each says why
    args = cm.selection_args()
    assert args == (["tests"] + [a for f in cm.EXCLUDED for a in ("--ignore", f)]
                    + [a for n in cm.DESELECTED for a in ("--deselect", n)])
    # the selection keeps what the matrix is about
    kept = files - set(cm.EXCLUDED)
    for must in ("test_clahe.py", "test_compat.py", "test_arrays.py", "test_units.py",
                 "test_classic.py", "test_widgets.py", "test_properties.py"):
        assert f"tests/{must}" in kept
    assert cm.main(["selection"]) == 0


def _junit(path: Path, cases: dict[str, str]) -> None:
    body = []
    for case, kind in cases.items():
        mod, name = case.split("::")
        cls = mod.removesuffix(".py").replace("/", ".")
        inner = {"pass": "", "fail": "<failure message='x'/>", "error": "<error message='x'/>",
                 "skip": "<skipped message='x'/>"}[kind]
        body.append(f'<testcase classname="{cls}" name="{name}" time="0.1">{inner}</testcase>')
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
        f'errors="0" failures="0" skipped="0" tests="{len(cases)}" time="61.5">'
        + "".join(body) + "</testsuite></testsuites>", encoding="utf-8")


def test_report_record_and_render(tmp_path, monkeypatch):
    cm = _script()
    junit = tmp_path / "junit.xml"
    _junit(junit, {
        "tests/test_a.py::test_ok": "pass", "tests/test_a.py::test_ok2": "pass",
        "tests/test_clahe.py::test_fast[3-2]": "fail", "tests/test_b.py::test_e": "error",
        "tests/test_b.py::test_s": "skip"})
    pins = tmp_path / "compat-oldest.txt"
    pins.write_text("# comment\nnumpy==2.0.*  # trailing\nnapari==0.5.6\n", encoding="utf-8")
    layer = tmp_path / "venv"
    layer.mkdir()
    fake = {"numpy": "2.0.2", "opencv-python-headless": "4.11.0.86", "napari": "0.5.6",
            "torch": "2.13.0+cpu", "bm3d": "4.0.3", "scikit-image": "0.25.2", "six": "1.17.0"}
    monkeypatch.setattr(cm, "_effective_distributions",
                        lambda lay: (fake, ["napari==0.5.6", "numpy==2.0.2"]))
    rep = cm.make_report("compat-oldest", pins, layer, 0, 45, 1, 318, junit, date="2026-12-01")
    assert rep["pins"] == ["numpy==2.0.*", "napari==0.5.6"]
    assert rep["tests"] == {"passed": 2, "failed": 1, "errors": 1, "skipped": 1}
    assert rep["failures"] == ["tests/test_b.py::test_e (error)",
                               "tests/test_clahe.py::test_fast[3-2]"]
    assert rep["versions"]["scikit-image"] == "0.25.2" and "six" not in rep["versions"]
    assert rep["python"] == ".".join(map(str, sys.version_info[:3]))
    assert rep["selection"] == cm.selection_args()
    failed_setup = cm.make_report("compat-newest", pins, layer, 1, 70, -1, 0, junit,
                                  date="2026-12-01")
    assert failed_setup["tests"] is None and failed_setup["versions"] == {}

    reports = []
    for r in (rep, failed_setup):
        reports.append(tmp_path / f"{r['env']}.json")
        reports[-1].write_text(json.dumps(r), encoding="utf-8")
    results_path = tmp_path / "results.json"
    old = {"format": cm.FORMAT, "environments": {"compat-other": {
        "date": "2026-01-01", "python": "3.10.1", "pins": [], "versions": {}, "layer": [],
        "setup_rc": 0, "setup_seconds": 1, "tests_rc": 0, "test_seconds": 60,
        "selection": ["tests/x.py"],
        "tests": {"passed": 3, "failed": 0, "errors": 0, "skipped": 0}, "failures": []}}}
    results_path.write_text(json.dumps(old), encoding="utf-8")
    res = cm.record(reports, results_path)
    assert list(res["environments"]) == ["compat-newest", "compat-oldest", "compat-other"]
    assert res["environments"]["compat-other"]["date"] == "2026-01-01"  # kept
    assert "env" not in res["environments"]["compat-oldest"]
    assert json.loads(results_path.read_text(encoding="utf-8")) == res

    block = cm.render_block(res)
    assert ("| `compat-oldest` | 2 passed, **1 failed**, **1 errors**, 1 skipped "
            "(setup 0.8 min, tests 5.3 min) | ") in block
    assert ("| 2.0.2 | 4.11.0.86 | 0.5.6 | 2.13.0+cpu | bm3d 4.0.3, scikit-image 0.25.2 "
            "| 2026-12-01 |") in block
    assert "**not run**: the environment did not build (exit 1 after 1.2 min)" in block
    assert ("- `compat-oldest`: pins `numpy==2.0.*`, `napari==0.5.6`; installed over `.venv`: "
            "napari==0.5.6, numpy==2.0.2; tests: the compat selection below.") in block
    assert "tests: a selection other than the current one" in block  # compat-other
    assert ("  Failing: `tests/test_b.py::test_e (error)`, "
            "`tests/test_clahe.py::test_fast[3-2]`.") in block
    # a pytest failure without failing cases (e.g. a collection error) is not shown as green
    assert "**pytest exit 2**" in cm._result_text(dict(old["environments"]["compat-other"],
                                                       tests_rc=2))

    doc = (f"intro\n{cm.BEGIN}\nstale table\n{cm.END}\nmid\n{cm.SEL_BEGIN}\nstale\n"
           f"{cm.SEL_END}\nafter\n")
    out = cm.update_doc(doc, res)
    assert out == (f"intro\n{cm.BEGIN}\n{block}\n{cm.END}\nmid\n{cm.SEL_BEGIN}\n"
                   f"{cm.render_selection()}\n{cm.SEL_END}\nafter\n")
    assert "| `tests/test_docs.py` | generated API docs" in out
    assert "| `tests/test_dip.py::test_camera_denoised_by_6db_and_stopped_early` |" in out
    with pytest.raises(ValueError, match="markers"):
        cm.update_doc("no markers", res)


def test_record_needs_a_report(tmp_path):
    cm = _script()
    with pytest.raises(SystemExit, match="no report"):
        cm.record([tmp_path / "missing.json"], tmp_path / "r.json")


def test_verify_finds_a_pin_that_did_not_win(tmp_path):
    # In this interpreter (.venv), numpy is whatever it is: a pin it cannot satisfy is reported.
    import numpy

    cm = _script()
    pins = tmp_path / "p.txt"
    pins.write_text(f"numpy=={numpy.__version__}\n", encoding="utf-8")
    assert cm.verify(pins, tmp_path) == []
    pins.write_text("numpy<1\nno-such-distribution-xyz==1\n", encoding="utf-8")
    problems = cm.verify(pins, tmp_path)
    assert any("does not satisfy numpy<1" in p for p in problems)
    assert any("no-such-distribution-xyz: not installed" in p for p in problems)
