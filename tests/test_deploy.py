"""deploy/: the class image installs the pinned environment and never ships the solutions; the Zero to
JupyterHub values parse and agree with the image and the nbgrader configuration (exchange, image, config
folders); the student/instructor nbgrader extension settings take effect."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from traitlets.config.loader import PyFileConfigLoader

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
VALUES = DEPLOY / "helm" / "values.yaml"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            m = PIN.match(line)
            assert m, f"{path.relative_to(ROOT)}: {raw!r} is not an exact pin (name==version)"
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text, out, current = DOCKERFILE.read_text(), [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        current += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            if current.strip():
                word, _, rest = current.strip().partition(" ")
                out.append((word.upper(), rest.strip()))
            current = ""
    return out


def _copies() -> list[tuple[list[str], str]]:
    result = []
    for word, args in _instructions():
        if word == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            result.append((parts[:-1], parts[-1]))
    return result


def _values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _profile(slug: str) -> dict:
    profiles = {p.get("slug"): p for p in _values()["singleuser"]["profileList"]}
    assert slug in profiles, f"values.yaml has no profile with slug {slug!r} (has {sorted(profiles)})"
    return profiles[slug]


def _nbgrader_config(path: Path, env: dict[str, str] | None = None):
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        return PyFileConfigLoader(path.name, str(path.parent)).load_config()
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_dockerfile_installs_every_package_from_constraints():
    runs = [args for word, args in _instructions() if word == "RUN" and "pip install" in args]
    assert runs, "deploy/Dockerfile installs nothing with pip"
    for args in runs:
        for cmd in re.split(r"&&|;", args):
            if "pip install" in cmd:
                assert re.search(r"(-c|--constraint)[ =]\S*constraints\.txt", cmd), \
                    f"deploy/Dockerfile: `{cmd.strip()}` does not install under -c constraints.txt"
    copied = {src for srcs, _ in _copies() for src in srcs}
    assert "constraints.txt" in copied, "deploy/Dockerfile does not COPY the repository's constraints.txt"
    assert "pyproject.toml" in copied and "src" in copied, "the image must install the cnncourse package itself"


def test_hub_requirements_are_exact_pins_that_agree_with_constraints():
    constraints = _pins(ROOT / "constraints.txt")
    hub = _pins(DEPLOY / "requirements-hub.txt")
    assert "jupyterhub" in hub, "requirements-hub.txt must pin jupyterhub (the image runs jupyterhub-singleuser)"
    assert any(name.startswith("psycopg") for name in hub), "a PostgreSQL driver is needed for the gradebook"
    clashes = {n: (v, constraints[n]) for n, v in hub.items() if n in constraints and constraints[n] != v}
    assert not clashes, f"requirements-hub.txt pins differ from constraints.txt: {clashes}"
    assert "requirements-hub.txt" in DOCKERFILE.read_text()


def test_image_never_ships_solutions_and_copies_only_allowed_paths():
    ignore = [line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "Dockerfile.dockerignore must start with `*` (an allow-list of the build context)"
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    assert not [a for a in allowed if a.split("/")[0] == "solutions"], "the build context must exclude solutions/"
    for sources, _dest in _copies():
        for src in sources:
            assert not src.startswith("solutions"), "the image must never contain solutions/ (hidden tests)"
            assert (ROOT / src).exists(), f"deploy/Dockerfile copies {src}, which does not exist"
            assert any(src == a or src.startswith(a + "/") for a in allowed), \
                f"deploy/Dockerfile copies {src}, which Dockerfile.dockerignore leaves out of the build context"
    cmd = [args for word, args in _instructions() if word == "CMD"]
    assert cmd and "jupyterhub-singleuser" in cmd[-1], "the image must start jupyterhub-singleuser for the hub"


def test_helm_values_reference_the_image_exchange_and_config_consistently():
    values = _values()
    single = values["singleuser"]
    image = single["image"]
    assert image["name"] and str(image["tag"]), "singleuser.image needs a name and a tag"
    # Every profile that overrides the image uses the same repository (only the tag differs, e.g. -cuda).
    for profile in single["profileList"]:
        override = profile.get("kubespawner_override", {}).get("image")
        if override:
            assert override.rsplit(":", 1)[0] == image["name"], \
                f"profile {profile['slug']} uses image {override}, not a tag of {image['name']}"

    # The exchange: a shared volume, mounted where the image's nbgrader config and Dockerfile expect it.
    exchange_root = _nbgrader_config(DEPLOY / "jupyter" / "student" / "nbgrader_config.py").Exchange.root
    mounts = {m["name"]: m["mountPath"] for m in single["storage"]["extraVolumeMounts"]}
    volumes = {v["name"]: v for v in single["storage"]["extraVolumes"]}
    [name] = [n for n, path in mounts.items() if path == exchange_root] or [None]
    assert name, f"no volume is mounted at the nbgrader exchange {exchange_root} (Exchange.root)"
    claim = volumes[name]["persistentVolumeClaim"]["claimName"]
    pvc = yaml.safe_load((DEPLOY / "k8s" / "exchange-pvc.yaml").read_text())
    assert pvc["metadata"]["name"] == claim and "ReadWriteMany" in pvc["spec"]["accessModes"], \
        "the exchange volume must be the ReadWriteMany claim of deploy/k8s/exchange-pvc.yaml"
    assert exchange_root in DOCKERFILE.read_text(), "the Dockerfile should create the exchange mount point"
    course = _nbgrader_config(ROOT / "nbgrader_config.py")
    assert _nbgrader_config(DEPLOY / "jupyter" / "student" / "nbgrader_config.py").CourseDirectory.course_id \
        == course.CourseDirectory.course_id

    # Resource limits per student, a GPU profile, and the instructor's config folders exist in the image.
    assert single["cpu"]["limit"] and single["memory"]["limit"], "set per-student CPU and memory limits"
    assert _profile("gpu")["kubespawner_override"]["extra_resource_limits"]["nvidia.com/gpu"]
    copied = {dest: srcs for srcs, dest in _copies()}
    jupyter_dirs = {dest: srcs[0] for dest, srcs in copied.items() if srcs == ["deploy/jupyter"]}
    assert jupyter_dirs, "the Dockerfile must COPY deploy/jupyter into the image"
    [(image_dir, repo_dir)] = jupyter_dirs.items()
    instructor = _profile("instructor")["kubespawner_override"]
    paths = instructor["environment"]["JUPYTER_CONFIG_PATH"].split(":")
    env_lines = [args for word, args in _instructions() if word == "ENV"]
    assert any(f"JUPYTER_CONFIG_PATH={image_dir}/student" in line for line in env_lines)
    for path in paths:
        assert path.startswith(image_dir + "/"), f"{path} is not inside {image_dir}"
        assert (ROOT / repo_dir / path[len(image_dir) + 1:]).is_dir(), f"{path} does not exist in the image"
    secret = instructor["extra_container_config"]["envFrom"][0]["secretRef"]["name"]
    assert secret in VALUES.read_text().split("hub:")[0], "the header of values.yaml must say how to create the secret"
    assert "CNNCOURSE_DB" in VALUES.read_text()
    assert "extraEnv" not in single, "never give every student's server the gradebook credentials"
    hook = " ".join(single["lifecycleHooks"]["postStart"]["exec"]["command"])
    for src in re.findall(r"/opt/\S+", hook):
        assert src in copied, f"the postStart hook copies {src}, which the Dockerfile does not create"


_EXTENSIONS = """
import json
from jupyter_core.paths import jupyter_path
from jupyter_server.serverapp import ServerApp
from jupyterlab_server.config import get_page_config
app = ServerApp()
app.find_server_extensions()
print(json.dumps({"server": {k: v for k, v in app.jpserver_extensions.items() if "nbgrader" in k},
                  "disabled": sorted(get_page_config(jupyter_path("labextensions")).get("disabledExtensions", []))}))
"""


@pytest.mark.parametrize("role", ["student", "instructor"])
def test_nbgrader_extensions_per_role(role, tmp_path):
    folders = {"student": ["student"], "instructor": ["instructor", "student"]}[role]
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path),
               JUPYTER_CONFIG_PATH=os.pathsep.join(str(DEPLOY / "jupyter" / f) for f in folders))
    out = subprocess.run([sys.executable, "-c", _EXTENSIONS], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    state = json.loads(out.strip().splitlines()[-1])
    server, disabled = state["server"], state["disabled"]
    assert server["nbgrader.server_extensions.assignment_list"] is True
    assert server["nbgrader.server_extensions.validate_assignment"] is True
    if role == "student":
        assert server["nbgrader.server_extensions.formgrader"] is False
        assert "@jupyter/nbgrader:formgrader" in disabled and "@jupyter/nbgrader:create-assignment" in disabled
    else:
        assert server["nbgrader.server_extensions.formgrader"] is True
        assert not [d for d in disabled if d.startswith("@jupyter/nbgrader")], disabled


def test_instructor_config_uses_the_course_clone(tmp_path):
    config = _nbgrader_config(DEPLOY / "jupyter" / "instructor" / "nbgrader_config.py",
                              {"CNNCOURSE_ROOT": str(ROOT)})
    assert config.CourseDirectory.root == str(ROOT)
    assert config.CourseDirectory.source_directory == "solutions"
    missing = _nbgrader_config(DEPLOY / "jupyter" / "instructor" / "nbgrader_config.py",
                               {"CNNCOURSE_ROOT": str(tmp_path)})
    assert "root" not in missing.CourseDirectory  # no clone yet: nbgrader's defaults, no crash
