"""Repository hygiene: notebooks stored without outputs, valid nbgrader metadata, assignments/ in sync with
solutions/, and the three dependency lists (pyproject, constraints, environment.yml) agreeing."""
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from cnncourse import course

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for folder in ("lectures", "solutions", "assignments")
                   for p in (ROOT / folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
GRADED = [p for p in NOTEBOOKS if p.relative_to(ROOT).parts[0] in ("solutions", "assignments")]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them with `nbstripout {path}`"


@pytest.mark.parametrize("path", GRADED, ids=lambda p: str(p.relative_to(ROOT)))
def test_nbgrader_metadata_valid(path):
    from nbgrader.nbgraderformat import MetadataValidator

    nb = nbformat.read(path, as_version=4)
    MetadataValidator().validate_nb(nb)  # raises ValidationError naming the cell
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate grade_id"
    assert any(c.metadata.get("nbgrader", {}).get("grade") for c in nb.cells), f"{path.name} has no graded cell"


def test_every_assignment_released():
    for name in course.assignment_names(ROOT):
        assert (ROOT / course.RELEASE_DIR / name).is_dir(), f"run `cnncourse release {name}`"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", course.assignment_names(ROOT))
def test_release_in_sync(assignment):
    stale = course.release_check(ROOT, assignment)
    assert not stale, "assignments/ is stale, run `cnncourse release --all`:\n" + "\n".join(map(str, stale))


def test_dependency_lists_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[_name(name)] = version.strip()
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for dep in env["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            if entry.startswith("-e"):
                continue
            name, _, version = re.split(r"(==|=)", entry, maxsplit=1) if "=" in entry else (entry, "", "")
            listed[_name(name)] = version
    listed.pop("python"), listed.pop("pip")
    assert set(listed) == declared, (f"environment.yml lists {sorted(set(listed) - declared)} not in pyproject, "
                                     f"misses {sorted(declared - set(listed))}")
    missing = declared - set(pins)
    assert not missing, f"constraints.txt does not pin {sorted(missing)}"
    wrong = {n: (v, pins[n]) for n, v in listed.items() if v != pins[n]}
    assert not wrong, f"environment.yml versions differ from constraints.txt (env, constraints): {wrong}"
    assert pins["torch"] == "2.13.0"
    assert "torchvision" not in declared, "torchvision must stay optional (extra 'vision')"
