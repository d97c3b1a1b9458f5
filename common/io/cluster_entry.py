"""Cluster-side bootstrap of the generated entry scripts (dist/entrypoints/<job>.py).

Runs on EMR (Serverless or on EC2) and Glue, where the project's code arrives as a zip on
sys.path (`--py-files` / `--extra-py-files`) instead of a checkout. Before any project module
is imported it

1. turns Glue's job arguments into the job's own argv: Glue passes every job parameter
   (`--JOB_ID`, `--TempDir`, `--job-bookmark-option`, ...) to the script, so the job's CLI
   travels in one argument, `--job-args "<shell words>"`, and environment variables for the
   config loader in `--evfa-env "VAR=value,VAR2=value"` (Glue has no per-run environment);
2. extracts `conf/` from the code zip into a temporary folder and points `EVFA_CONF_DIR` at
   it (common.core.config reads it at import), unless a conf folder is already reachable;
3. imports `jobs.<name>` and calls its `main(argv)`.

It reads no table and writes none. Only the standard library is imported at module level,
because common.core.config must not be imported before EVFA_CONF_DIR is set.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

GLUE_JOB_ARGS = "--job-args"
GLUE_ENV_ARGS = "--evfa-env"
CONF_ENV_VAR = "EVFA_CONF_DIR"


def is_glue_argv(argv: Sequence[str]) -> bool:
    """Whether `argv` comes from Glue.

    Glue always passes --JOB_ID/--JOB_RUN_ID; our Glue submissions also pass --job-args.

    Parameters
    ----------
    argv : sequence of str
        The script's arguments (without the program name).

    Returns
    -------
    bool
    """
    return any(a in (GLUE_JOB_ARGS, GLUE_ENV_ARGS, "--JOB_ID", "--JOB_RUN_ID", "--JOB_NAME") for a in argv)


def _glue_values(argv: Sequence[str], name: str) -> list[str]:
    """All values of `name` in Glue's argv (`--name value` or `--name=value`)."""
    values = []
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith(name + "="):
            values.append(arg[len(name) + 1 :])
    return values


def parse_env_assignments(text: str) -> dict[str, str]:
    """'A=1,B=x' -> {'A': '1', 'B': 'x'}; values may not contain commas (bucket names and URIs do not).

    Parameters
    ----------
    text : str
        The value of `--evfa-env`.

    Returns
    -------
    dict of str to str

    Raises
    ------
    ValueError
        An item is not ``VAR=value`` with a valid variable name.
    """
    env = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.replace("_", "").isalnum() or key[0].isdigit():
            raise ValueError(f"{GLUE_ENV_ARGS}: expected VAR=value, got {item!r}")
        env[key] = value
    return env


def job_argv(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The job's own argv and the environment to set, from a plain or a Glue argv.

    Parameters
    ----------
    argv : sequence of str
        The script's arguments (without the program name).

    Returns
    -------
    argv : list of str
        A plain argv as it is; for Glue, the shell words of every `--job-args`.
    env : dict of str to str
        The assignments of every `--evfa-env` (empty for a plain argv).
    """
    if not is_glue_argv(argv):
        return list(argv), {}
    job_args: list[str] = []
    for value in _glue_values(argv, GLUE_JOB_ARGS):
        job_args.extend(shlex.split(value))
    env: dict[str, str] = {}
    for value in _glue_values(argv, GLUE_ENV_ARGS):
        env.update(parse_env_assignments(value))
    return job_args, env


def _code_zip() -> Path | None:
    """The zip on sys.path that holds the `common` package, if the code runs from one."""
    for entry in sys.path:
        if entry and os.path.isfile(entry) and zipfile.is_zipfile(entry):
            with zipfile.ZipFile(entry) as zf:
                names = set(zf.namelist())
            if "common/__init__.py" in names and "conf/base.yaml" in names:
                return Path(entry)
    return None


def ensure_conf_dir() -> Path | None:
    """Make conf/ readable as files and return its folder.

    Returns
    -------
    pathlib.Path or None
        EVFA_CONF_DIR when it already holds base.yaml, else conf/ extracted from the code zip
        (and EVFA_CONF_DIR set to it); None when the checkout's conf/ is used.
    """
    if os.environ.get(CONF_ENV_VAR) and Path(os.environ[CONF_ENV_VAR], "base.yaml").is_file():
        return Path(os.environ[CONF_ENV_VAR])
    code_zip = _code_zip()
    if code_zip is None:
        return None  # running from a checkout or an installed wheel next to conf/
    target = Path(tempfile.mkdtemp(prefix="evfa-conf-"))
    with zipfile.ZipFile(code_zip) as zf:
        members = [n for n in zf.namelist() if n.startswith("conf/") and not n.endswith("/")]
        zf.extractall(target, members=members)
    conf_dir = target / "conf"
    os.environ[CONF_ENV_VAR] = str(conf_dir)
    return conf_dir


def run(job: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of dist/entrypoints/<job>.py.

    Parameters
    ----------
    job : str
        Module name under `jobs` (e.g. ``clean``).
    argv : sequence of str, optional
        Plain or Glue arguments; None reads sys.argv[1:].

    Returns
    -------
    int
        The process exit code: what the job's `main` returns when an int, else 0.
    """
    args, env = job_argv(sys.argv[1:] if argv is None else argv)
    os.environ.update(env)
    ensure_conf_dir()
    module = importlib.import_module(f"jobs.{job}")
    result = module.main(args)
    return result if isinstance(result, int) else 0
