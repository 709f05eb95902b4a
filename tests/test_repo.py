"""Repository hygiene: notebooks stored without outputs, valid nbgrader metadata, assignments/ in sync with
solutions/, and the three dependency lists (pyproject, constraints, environment.yml) agreeing."""
import ast
import copy
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


# ---------------------------------------------------------------- no graded answer ships (issue 15 item 5)
def _normalised(node: ast.AST) -> str:
    """A definition's AST without its name, docstrings, annotations or argument names: a copy of a reference
    answer matches however it is renamed or documented."""
    import ast
    import copy

    node = copy.deepcopy(node)
    for sub in ast.walk(node):
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            sub.name = "_"
            body = sub.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                sub.body = body[1:] or [ast.Pass()]
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
            sub.returns = None
            names = {a.arg: f"a{i}" for i, a in enumerate(sub.args.posonlyargs + sub.args.args + sub.args.kwonlyargs)}
            for a in sub.args.posonlyargs + sub.args.args + sub.args.kwonlyargs:
                a.arg, a.annotation = names[a.arg], None
            for name in ast.walk(sub):
                if isinstance(name, ast.Name) and name.id in names:
                    name.id = names[name.id]
    return ast.dump(node, annotate_fields=False)


def _definitions(source: str, top_level: bool = False) -> dict[str, str]:
    """Normalised AST of every function, method and class in ``source`` (keyed by the normalised dump); with
    ``top_level`` only the module's own definitions and their methods (the graded answers, not their helpers)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics in a notebook cell
        return {}
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    if top_level:
        nodes = [n for n in tree.body if isinstance(n, kinds)]
        nodes += [m for n in nodes if isinstance(n, ast.ClassDef) for m in n.body if isinstance(m, kinds)]
    else:
        nodes = [n for n in ast.walk(tree) if isinstance(n, kinds)]
    return {_normalised(n): n.name for n in nodes}


def _solution_definitions() -> dict[str, str]:
    found = {}
    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
                for dump, name in _definitions(cell.source, top_level=True).items():
                    found[dump] = f"{path.relative_to(ROOT)}: {name}"
    return found


def _image_files() -> list[Path]:
    """The files the class image copies from the repository (deploy/Dockerfile's COPY sources)."""
    copies = re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    sources = [ROOT / s for line in copies for s in line.split() if not s.startswith("--")]
    return sorted(f for s in sources for f in ([s] if s.is_file() else s.rglob("*"))
                  if f.is_file() and "__pycache__" not in f.parts)


def test_no_reference_answer_is_importable_or_in_the_class_image():
    import cnncourse

    answers = _solution_definitions()
    assert answers, "no function found in the solution cells of solutions/*/*.ipynb"
    package = Path(cnncourse.__file__).resolve().parent
    shipped = {}
    for path in sorted(package.rglob("*.py")) + [f for f in _image_files() if f.suffix in (".py", ".ipynb")]:
        if path.suffix == ".ipynb":
            sources = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        else:
            sources = [path.read_text(encoding="utf-8")]
        for source in sources:
            for dump, name in _definitions(source).items():
                shipped.setdefault(dump, f"{path}: {name}")
    leaks = [f"{answers[d]} is shipped as {shipped[d]}" for d in answers if d in shipped]
    assert not leaks, "reference answers in the installed package or the class image:\n" + "\n".join(leaks)
    assert not [f for f in _image_files() if f.relative_to(ROOT).parts[0] == "solutions" or f.name.startswith("oracle")]


def test_oracles_and_the_course_secret_stay_with_the_instructor():
    config = (ROOT / course.CONFIG_FILE).read_text()
    ignored = re.search(r"c\.CourseDirectory\.ignore\s*=\s*\[([^\]]*)\]", config)
    assert ignored and '"oracle.py"' in ignored.group(1) and '"oracle_*.py"' in ignored.group(1), \
        "nbgrader_config.py must keep oracle.py and oracle_*.py out of releases (c.CourseDirectory.ignore)"
    assert not list((ROOT / course.RELEASE_DIR).rglob("oracle*.py")), "an oracle was released to assignments/"
    assert ".cnncourse/" in (ROOT / ".gitignore").read_text().splitlines(), ".gitignore must list .cnncourse/"


def test_the_answer_comparison_sees_through_renaming_and_docstrings():
    answers = _solution_definitions()
    reference = '''def receptive_field(layers):
    """Docstring."""
    rf, jump = 1, 1
    for kernel, stride, dilation in layers:
        rf += dilation * (kernel - 1) * jump
        jump *= stride
    return rf'''
    copied = reference.replace("def receptive_field(layers)", "def rf_of(stack: list) -> int").replace(
        "layers:", "stack:").replace('"""Docstring."""', '"""Another text."""')
    assert set(_definitions(reference)) <= set(answers), "the conv_arithmetic reference changed: update this test"
    assert set(_definitions(copied)) == set(_definitions(reference))


@pytest.mark.parametrize("assignment", course.assignment_names(ROOT))
def test_setup_cells_are_a_few_import_lines(assignment):
    """Issue 15: a setup cell is at most 15 lines of imports and settings, and builds no oracle."""
    for path in sorted((ROOT / course.SOURCE_DIR / assignment).glob("*.ipynb")):
        setup = [c for c in nbformat.read(path, as_version=4).cells
                 if c.metadata.get("nbgrader", {}).get("grade_id") == "setup"]
        assert setup, f"{path.name} has no cell with grade_id 'setup'"
        lines = setup[0].source.strip().splitlines()
        assert len(lines) <= 15, f"{path.name}: the setup cell has {len(lines)} lines (at most 15)"
        assert "### BEGIN HIDDEN TESTS" not in setup[0].source
