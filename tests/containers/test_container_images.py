"""The two images without a Docker engine: hadolint, the Dockerfile contract, the one build
context (containers/, a Dockerfile per image, the shared mlops_runtime package), pinned and
sufficient requirements, and docs that match the code."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions, version
from pathlib import Path

import pytest
from iris_inference.settings import OPTIONS
from iris_training.hyperparameters import Hyperparameters

from tests.containers.conftest import INFERENCE_CODE, ROOT, SHARED_CODE, TRAINING_CODE

CONTEXT = ROOT / "containers"  # the one Docker build context of both job images
SHARED = "mlops_runtime"

IMAGES = {
    "training": (TRAINING_CODE, "iris_training"),
    "inference": (INFERENCE_CODE, "iris_inference"),
}
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


def hadolint(dockerfile: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [
            HADOLINT,
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            str(dockerfile),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    return list(json.loads(result.stdout))


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_has_no_hadolint_findings(image: str) -> None:
    assert hadolint(IMAGES[image][0] / "Dockerfile") == []


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """Guards the test above: an empty finding list must mean 'checked and clean'."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install mlflow\nENTRYPOINT python -m x\n")
    codes = {finding["code"] for finding in hadolint(bad)}
    assert {"DL3007", "DL3013", "DL3042", "DL3025"} <= codes


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_follows_the_container_contract(image: str) -> None:
    context, package = IMAGES[image]
    text = (context / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE)
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE)
    copies = re.findall(r"^COPY (\S+) ", text, re.MULTILINE)
    name = context.name

    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base.group(1)), "pinned 3.11 slim tag"
    assert entrypoint is not None
    assert json.loads(entrypoint.group(1)) == ["python", "-m", package]  # exec form
    assert "PYTHONUNBUFFERED=1" in text
    assert copies == [f"{name}/requirements.txt", f"shared/{SHARED}", f"{name}/{package}"]
    assert all((CONTEXT / source).exists() for source in copies)
    assert (context / package / "__main__.py").exists()


@pytest.mark.parametrize("image", IMAGES)
def test_requirements_are_pinned_to_what_the_tests_run(image: str) -> None:
    pins = _pins(IMAGES[image][0] / "requirements.txt")
    assert pins, "no requirements"
    assert {name: version(name) for name in pins} == pins


def test_dev_requirements_include_both_images() -> None:
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r containers/training/requirements.txt" in dev
    assert "-r containers/inference/requirements.txt" in dev


@pytest.mark.parametrize("image", IMAGES)
def test_every_import_is_provided_by_the_image_requirements(image: str) -> None:
    """Each image stands alone: its package and mlops_runtime import nothing but the standard
    library, each other and its pinned requirements (never the other image's package)."""
    context, package = IMAGES[image]
    provided = _closure(set(_pins(context / "requirements.txt")))
    owners = packages_distributions()
    missing = set()
    code = _imported_top_level_modules(context / package) | _imported_top_level_modules(
        SHARED_CODE / SHARED
    )
    for module in code:
        if module in (package, SHARED) or module in sys.stdlib_module_names:
            continue
        dists = {_canonical(d) for d in owners.get(module, [module])}
        if not dists & provided:
            missing.add(module)
    assert missing == set()


# --- the README follows the code -------------------------------------------------------------------


def _readme_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("## The ML containers") :]


def test_readme_section_lists_every_hyperparameter_with_its_default() -> None:
    text = _readme_section()
    for field_name, field in Hyperparameters.model_fields.items():
        name = field.alias or field_name  # the name a job passes
        default = "none" if field.default is None else str(field.default)
        assert re.search(rf"^\| `{name}` \| `{re.escape(default)}` \|", text, re.MULTILINE), name


def test_readme_section_lists_every_inference_option() -> None:
    text = _readme_section()
    for option in OPTIONS.values():
        assert f"`{option.flag}`" in text, option.flag
        assert option.env is None or f"`{option.env}`" in text, option.flag


# --- helpers --------------------------------------------------------------------------------


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements: Path) -> dict[str, str]:
    pins = {}
    for raw in requirements.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            name, separator, pinned = line.partition("==")
            assert separator, f"{requirements}: {line!r} is not pinned with =="
            pins[_canonical(name)] = pinned
    return pins


def _closure(names: set[str]) -> set[str]:
    """The pinned distributions and everything they require (what pip installs)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            todo.append(_canonical(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]))
    return seen


def _imported_top_level_modules(package: Path) -> set[str]:
    modules = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


# --- the build context CDK stages for each image ----------------------------------------------


def _staged_contexts() -> dict[str, Path]:
    """Each image's Docker build context as the dev app's synth staged it (cdk.out/asset.*)."""
    from tests.conftest import synthesized  # noqa: PLC0415 -- only these tests synthesize

    app = synthesized("dev")
    stack = app.platform.pipelines
    assert stack is not None
    outdir = Path(app.assembly.directory)
    return {
        name: outdir / f"asset.{getattr(stack, f'{name}_image').asset_hash}"
        for name in ("training", "inference")
    }


@pytest.mark.parametrize("image", IMAGES)
def test_each_staged_context_holds_what_its_dockerfile_copies_and_nothing_else(image: str) -> None:
    """containers/.dockerignore and the asset's exclude: the image's Dockerfile, requirements,
    package and mlops_runtime; not the other image, the MLflow server image or bytecode."""
    staged = _staged_contexts()[image]
    text = (staged / image / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+) ", text, re.MULTILINE):
        assert (staged / source).exists(), f"{source} is not in the staged context {staged}"
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    other = "inference" if image == "training" else "training"
    assert not {f for f in files if f.startswith((f"{other}/", "tracking/"))}
    assert not {f for f in files if "__pycache__" in f or f.endswith(".pyc")}
    assert {f.split("/")[0] for f in files} == {".dockerignore", "shared", image}
