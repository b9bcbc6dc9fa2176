"""What a new user still trips over (issue 20, "What the model knows" and "The first hour, again").

Each test here failed on main before its fix.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_fixtures import TINY_TRAIN_OVERRIDES
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: object):
    from signlang.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _shipped_classes() -> list[str]:
    from signlang.inference.pretrained import resolve_model

    return json.loads((resolve_model(None) / "manifest.json").read_text())["classes"]


# --- what the model knows -----------------------------------------------------------------------
def test_signs_lists_the_shipped_vocabulary_with_the_model_description() -> None:
    from signlang.inference.pretrained import pretrained_index

    res = _cli("signs")
    assert res.exit_code == 0, res.output
    description = pretrained_index()["asl-cafe"]["description"]
    assert description and f"asl-cafe (default): {description}" in res.output
    listed = res.output.split("asl-cafe: 34 signs", 1)[1].splitlines()[1]
    assert [s.split(" (")[0] for s in listed.strip().split(", ")] == _shipped_classes()
    assert "(no sign" in listed  # the no-sign class '-' is said to be one

    data = json.loads(_cli("signs", "--json", "--model", "asl-cafe").output)
    assert data["model"] == "asl-cafe" and data["signs"] == _shipped_classes() and data["no_sign"] == "-"
    assert data["description"] == description and data["pretrained"]["asl-cafe"] == description


def test_signs_of_a_trained_bundle_and_of_an_unknown_model(tiny_bundle: Path) -> None:
    data = json.loads(_cli("signs", "--json", "--model", tiny_bundle).output)
    assert data["model"] == str(tiny_bundle) and data["signs"] == json.loads((tiny_bundle / "manifest.json").read_text())["classes"]
    res = _cli("signs", "--model", "no-such-model")
    assert res.exit_code == 2 and "no-such-model" in res.output and "asl-cafe" in res.output


def test_readme_lists_what_the_shipped_model_knows_and_does_not() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## What the shipped model recognises", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"`([^`]+)`", section.split("It does not recognise", 1)[0])
    assert set(_shipped_classes()) <= set(listed)
    outside = section.split("It does not recognise", 1)[1]
    for sign in ("FOOTBALL", "SOUP", "ABDOMEN"):
        assert sign in outside and sign.lower() not in _shipped_classes()
    assert "signlang signs" in section


# --- the shipped model by name, everywhere; explain needs no --model --------------------------
def test_every_model_option_takes_the_shipped_name(tmp_path: Path) -> None:
    """Each command is stopped by a missing input *after* --model asl-cafe was resolved: the error names
    the input, never the model. calibrate refuses to change the package's model in place."""
    missing = tmp_path / "missing.npz"
    commands = {
        "evaluate": ["evaluate", "--model", "asl-cafe", "--data", missing, "--out", tmp_path / "e"],
        "explain": ["explain", missing, "--model", "asl-cafe", "--out", tmp_path / "x"],
        "explain (default model)": ["explain", missing, "--out", tmp_path / "x"],
        "spot": ["spot", missing, "--model", "asl-cafe"],
        "benchmark explain": ["benchmark", "explain", "--model", "asl-cafe", "--data", missing],
    }
    for name, args in commands.items():
        res = _cli(*args)
        assert res.exit_code == 2, (name, res.output)
        assert "missing.npz" in res.output and "asl-cafe" not in res.output.replace(str(missing), ""), (name, res.output)
    res = _cli("calibrate", "--model", "asl-cafe", "--data", missing)
    assert res.exit_code == 2 and "not changed in place" in res.output
    for args in (["export", "--model", "nope", "--out", tmp_path / "o"], ["evaluate", "--model", "nope", "--data", missing, "--out", tmp_path]):
        res = _cli(*args)
        assert res.exit_code == 2 and "--model nope" in res.output and "pretrained: asl-cafe" in res.output


@pytest.mark.slow
def test_export_runs_on_the_shipped_model_by_name(tmp_path: Path) -> None:
    """A real export of asl-cafe (about a minute on a quiet core, several on a busy machine)."""
    res = _cli("export", "--model", "asl-cafe", "--out", tmp_path / "onnx")
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "onnx" / "manifest.json").read_text())
    assert manifest["classes"] == _shipped_classes() and manifest["parity"]["max_abs_diff_all"] <= 1e-4


def test_explain_runs_on_the_shipped_model_without_model(tmp_path: Path) -> None:
    import numpy as np

    from signlang.inference.pretrained import resolve_model

    package = sorted(p.name for p in resolve_model(None).rglob("*"))
    clip = np.full((20, 75, 3), np.nan, np.float32)
    rng = np.random.default_rng(0)
    clip[:, :] = rng.uniform(0.3, 0.7, (20, 75, 3))
    np.save(tmp_path / "clip.npy", clip)
    res = _cli("explain", tmp_path / "clip.npy", "--out", tmp_path / "exp")  # no --model: the shipped one
    assert res.exit_code == 0, res.output
    exp = json.loads((tmp_path / "exp" / "explanation.json").read_text())
    assert exp["model"] == str(resolve_model(None)) and exp["sign"] in _shipped_classes()
    assert sorted(p.name for p in resolve_model(None).rglob("*")) == package  # the package's model is never written


def test_one_helper_resolves_model_for_every_command() -> None:
    """No command reads --model as a bare Path: all go through cli._common.model_dir."""
    files = sorted((ROOT / "src" / "signlang" / "cli").glob("*.py"))
    bare = [p.name for p in files if re.search(r'model: Path\b.*"--model"', p.read_text())]
    own = [p.name for p in files if p.name != "_common.py" and "resolve_model(" in p.read_text()]
    assert bare == [] and own == []
    users = [p.name for p in files if "model_dir(" in p.read_text()]
    assert {"predict.py", "serve.py", "spot.py", "live.py", "explain.py", "export.py", "evaluate.py", "calibrate.py", "signs.py"} <= set(users)


# --- errors on their own line; one exit status per kind of error --------------------------------
def test_a_missing_data_file_is_one_error_line_with_status_2_everywhere(tmp_path: Path) -> None:
    """The same mistake (a file that is not there) gives exit status 2 and a first stderr line
    'error: ... missing.npz ...' in every command, with no progress bar glued to it."""
    missing = tmp_path / "missing.npz"
    commands = [
        ["train", "--data", missing, "--out", tmp_path / "run", "--no-track"],
        ["evaluate", "--model", "asl-cafe", "--data", missing, "--out", tmp_path / "e"],
        ["predict", missing],
        ["explain", missing, "--out", tmp_path / "x"],
        ["spot", missing],
        ["extract", tmp_path / "missing.mp4", tmp_path / "store"],
    ]
    for args in commands:
        proc = subprocess.run([sys.executable, "-m", "signlang", *map(str, args)], capture_output=True, text=True, timeout=300,
                              env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        lines = [ln for ln in re.split(r"[\r\n]", proc.stderr) if ln.strip()]
        assert proc.returncode == 2, (args[0], proc.returncode, proc.stderr)
        assert lines and lines[0].startswith("error: ") and "missing." in lines[0], (args[0], proc.stderr)
        assert "%|" not in proc.stderr and "Traceback" not in proc.stderr, (args[0], proc.stderr)


def test_fail_clears_a_progress_bar_first(capsys: pytest.CaptureFixture[str]) -> None:
    import typer
    from tqdm.auto import tqdm

    from signlang.cli._common import fail

    bar = tqdm(total=5, desc="train", file=sys.stderr, disable=False, leave=False)
    bar.update(1)
    with pytest.raises(typer.Exit) as exc:
        fail("data.npz: no such file")
    assert exc.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.split("\n")[-2] == "error: data.npz: no such file"  # a line of its own
    assert not any("train" in ln and "error:" in ln for ln in err.split("\n"))


def test_predict_partial_failure_is_1_and_nothing_readable_is_2(tiny_bundle: Path, tmp_path: Path) -> None:
    import numpy as np

    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).uniform(0.3, 0.7, (20, 75, 3)).astype(np.float32))
    missing = tmp_path / "missing.npy"
    assert _cli("predict", "--model", tiny_bundle, missing).exit_code == 2
    res = _cli("predict", "--model", tiny_bundle, good, missing)
    assert res.exit_code == 1 and "missing.npy" in res.output and "[0] good" in res.output


def test_readme_states_the_exit_status_convention() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"exit status.*\b2\b.*bad input", readme, re.I | re.S) and "1" in readme


# --- demo twice, and nothing left in the checkout -----------------------------------------------
@pytest.fixture()
def tiny_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo at test size: a few seconds instead of a minute."""
    from signlang import demo

    monkeypatch.setitem(demo.run_demo.__kwdefaults__, "size", demo.DemoSize(n_classes=3, n_signers=5, clips_per_signer=2, frames=(12, 16)))
    monkeypatch.setattr(demo, "DEMO_OVERRIDES", {**demo.DEMO_OVERRIDES, **TINY_TRAIN_OVERRIDES})


def _untracked() -> set[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True)
    if out.returncode:
        pytest.skip(f"not a git checkout: {out.stderr.strip()}")
    return {ln[3:] for ln in out.stdout.splitlines() if ln.startswith("??")}


def test_demo_twice_from_the_checkout_leaves_nothing_in_it(tiny_demo: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)
    before = _untracked()
    for run in (1, 2):
        res = _cli("demo", "--quiet")
        assert res.exit_code == 0, (run, res.output)
        assert str(tmp_path / "cache" / "signlang" / "demo") in res.output
    assert _untracked() == before
    assert json.loads((tmp_path / "cache" / "signlang" / "demo" / "demo.json").read_text())["prediction"]["top_k"]


def test_demo_twice_into_one_folder_and_a_foreign_folder_is_refused(tiny_demo: None, tmp_path: Path) -> None:
    out = tmp_path / "signlang-demo"
    for run in (1, 2):
        res = _cli("demo", "--quiet", "--out", out)
        assert res.exit_code == 0, (run, res.output)
    assert sorted(p.name for p in out.iterdir()) == ["demo.json", "evaluation", "model", "synthetic.npz"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    res = _cli("demo", "--quiet", "--out", tmp_path / "mine")
    assert res.exit_code == 2 and "thesis.tex" in res.output
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_signlang_demo_folder_is_git_ignored() -> None:
    out = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "signlang-demo/demo.json"])
    assert out.returncode == 0


# --- subprocesses start this interpreter, never `python` / `signlang` from PATH ------------------
def test_no_test_or_benchmark_starts_python_or_signlang_from_path() -> None:
    """`venv/bin/python -m pytest` without activating the venv must test that venv's signlang."""
    pattern = re.compile(r"""(Popen|run|check_output|check_call|call)\(\s*\[\s*["'](python3?|signlang|torchrun)["']""")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "src" / "signlang").rglob("*.py")])
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


# --- MediaPipe's C++ log lines stay out of the service's log -------------------------------------
FILTER_SCRIPT = r'''
import os, sys, threading
from signlang.landmarks.extract import filter_native_logs
filter_native_logs()
def native():  # what MediaPipe's C++ threads write, straight to file descriptor 2
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"W0000 00:00:1796141377.190536   24596 inference_feedback_manager.cc:114] Feedback manager requires a model\n")
t = threading.Thread(target=native); t.start(); t.join()
print('INFO:     127.0.0.1:1 - "POST /predict HTTP/1.1" 200 OK', file=sys.stderr, flush=True)
raise SystemExit("the last words of a crash")
'''


def test_the_service_log_keeps_its_lines_and_drops_mediapipes() -> None:
    res = subprocess.run([sys.executable, "-c", FILTER_SCRIPT], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "InitializeLog" not in res.stderr and "inference_feedback_manager" not in res.stderr
    assert '"POST /predict HTTP/1.1" 200 OK' in res.stderr and "the last words of a crash" in res.stderr


@pytest.mark.video
def test_signlang_serve_log_has_no_mediapipe_lines_for_real_videos(tiny_bundle: Path, real_videos_dir: Path) -> None:
    import httpx
    from test_serve_faults import serve

    with serve(tiny_bundle, "--backend", "torch", timeout_s=300) as (proc, url):
        for name in ("slp_pose_SOUP.mp4", "wlasl_00335.mp4"):
            with (real_videos_dir / name).open("rb") as fh:
                r = httpx.post(f"{url}/predict", files={"video": (name, fh, "video/mp4")}, timeout=300)
            assert r.status_code in (200, 422), r.text
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert out.count('"POST /predict HTTP/1.1"') == 2, out
    assert "inference_feedback_manager" not in out and "InitializeLog" not in out and not re.search(r"^[IWEF]\d{4} ", out, re.M), out


# --- the README says what the code does ----------------------------------------------------------
def _commands() -> dict[str, object]:
    """``{"predict": click command, "benchmark spot": ..., ...}`` of the real app."""
    import typer.main

    from signlang.cli import app

    root = typer.main.get_command(app)
    out: dict[str, object] = {}
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        out[name] = cmd
        for sub, subcmd in getattr(cmd, "commands", {}).items():
            out[f"{name} {sub}"] = subcmd
    return out


def test_readme_lists_every_benchmark_and_shows_optional_models_as_optional() -> None:
    readme = (ROOT / "README.md").read_text()
    benchmarks = sorted(n.split(" ", 1)[1] for n in _commands() if n.startswith("benchmark "))
    row = re.search(r"`signlang benchmark ([\w/]+)`", readme)
    assert row and sorted(row.group(1).split("/")) == benchmarks
    for name, cmd in _commands().items():
        model = [p for p in cmd.params if "--model" in getattr(p, "opts", ())]  # type: ignore[attr-defined]
        usage = re.findall(rf"^\| `signlang {name} ([^`]*)`", readme, re.M)
        if not model or not usage or name in ("train", "tune"):  # train/tune: --model names an architecture
            continue
        for text in usage:
            if model[0].required:
                assert "--model" in text and "[--model" not in text, (name, text)
            else:
                assert "[--model" in text, (name, text)


def test_readme_pipeline_names_the_shipped_combiner() -> None:
    from signlang._io import load_yaml

    readme = (ROOT / "README.md").read_text()
    diagram = readme.split("```", 2)[1]
    combiners = {load_yaml((ROOT / "src" / "signlang" / "configs" / f).read_text())["ensemble"]["combiner"] for f in ("cpu.yaml", "train.yaml")}
    assert combiners == {"mean"} and "mean of their probabilities" in diagram
    assert "meta-learner" not in diagram


def test_every_readme_slow_pytest_command_selects_a_test() -> None:
    readme = (ROOT / "README.md").read_text()
    files = re.findall(r"pytest -m slow (tests/\w+\.py)", readme)
    assert files
    for f in files:
        assert re.search(r"pytest\.mark\.slow|pytestmark = \[?pytest\.mark\.slow|mark\.slow", (ROOT / f).read_text()), f
