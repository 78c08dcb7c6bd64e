"""The rules' conda environments: the same pins as pyproject.toml, and every package each rule's code imports."""
import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from unerase import code_version

# Import name -> the distribution that provides it, directly or as a dependency of a listed one.
PROVIDED_BY = {
    "torch": ("torch",), "torchvision": ("torchvision",), "diffusers": ("diffusers",), "transformers": ("transformers",),
    "accelerate": ("accelerate",), "safetensors": ("safetensors",), "open_clip": ("open_clip_torch",), "nudenet": ("nudenet",),
    "pytorch_fid": ("pytorch-fid",),
    "numpy": ("numpy",), "scipy": ("scipy",), "sklearn": ("scikit-learn",), "pandas": ("pandas",),
    "matplotlib": ("matplotlib",), "yaml": ("pyyaml",), "jsonschema": ("jsonschema",),
    "markdown_it": ("markdown-it-py",), "PIL": ("torchvision", "matplotlib"), "huggingface_hub": ("diffusers", "transformers"),
}


def split(requirement: str) -> tuple[str, str]:
    name, _, pin = requirement.partition("==")
    return name.strip().lower(), pin.strip()


def pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(split(d) for d in deps)


def env_pins(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(split(r) for r in pip)


def rule_envs() -> dict[str, tuple[str, str]]:
    """rule -> (its conda env file, its script) from rules/*.smk."""
    found = {}
    for smk in (ROOT / "rules").glob("*.smk"):
        for block in re.split(r"(?m)^(?=rule |use rule )", smk.read_text()):
            name = re.match(r"rule (\w+):", block)
            env = re.search(r'conda:\n\s+"\.\./(envs/[\w.]+)"', block)
            script = re.search(r'script:\n\s+"\.\./(scripts/\w+\.py)"', block)
            if name and script:
                found[name.group(1)] = (env.group(1) if env else None, script.group(1))
    return found


def third_party_imports(script: str) -> set[str]:
    modules = code_version.closure((str(ROOT / script),))
    names = set()
    for path in [ROOT / script] + [code_version.module_file(m) for m in modules]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "unerase"}


def test_env_pins_agree_with_pyproject():
    pins = pyproject_pins()
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert len(envs) >= 2
    for env in envs:
        for name, pin in env_pins(env).items():
            assert name in pins, f"{env.name}: {name} is not a dependency in pyproject.toml"
            assert pin == pins[name], f"{env.name}: {name}=={pin}, pyproject.toml pins {pins[name] or 'no version'}"
        python = next(d for d in yaml.safe_load(env.read_text())["dependencies"] if isinstance(d, str) and d.startswith("python="))
        assert python == "python=3.11", env.name


def test_every_rule_env_has_what_its_code_imports():
    rules = rule_envs()
    assert len(rules) >= 18
    for rule, (env, script) in rules.items():
        assert env is not None, f"rule {rule} names no conda env"
        provided = set(env_pins(ROOT / env))
        for name in third_party_imports(script):
            assert name in PROVIDED_BY, f"{script} imports {name}: add it to PROVIDED_BY and to the env files"
            assert provided & set(PROVIDED_BY[name]), f"rule {rule} ({env}) lacks {PROVIDED_BY[name]} for `import {name}`"


def test_the_package_reaches_conda_jobs_through_scripts():
    # Snakemake appends the script's folder to sys.path; in a conda env without the package installed, this link provides it.
    assert (ROOT / "scripts/unerase").resolve() == (ROOT / "src/unerase").resolve()
    probe = "import sys; sys.path.append('scripts'); import unerase.code_version as m; print(m.__file__)"
    out = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "scripts/unerase/code_version.py" in out  # found without site-packages (-S): through the link


@pytest.mark.skipif(shutil.which("conda") is None, reason="conda is not installed here")
def test_containerize_recipe_builds_both_envs():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--containerize"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("FROM ") and "envs/diffusion.yaml" in proc.stdout and "envs/report.yaml" in proc.stdout


def _job_stats(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ") and "count" in line)
    return lines[start:lines.index("", start) if "" in lines[start:] else None]


@pytest.mark.skipif(shutil.which("conda") is None, reason="snakemake --archive packs the conda envs: needs conda")
def test_archive_round_trips(tmp_path):
    archive = tmp_path / "unerase.tar.gz"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--archive", str(archive)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(unpacked)], check=True)
    fresh = tmp_path / "fresh"
    shutil.copytree(ROOT / "config", fresh / "config")
    here = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--directory", str(fresh)], cwd=ROOT, capture_output=True, text=True)
    there = subprocess.run([sys.executable, "-m", "snakemake", "-n"], cwd=unpacked, capture_output=True, text=True)
    assert there.returncode == 0, there.stderr[-2000:]
    assert _job_stats(there.stdout) == _job_stats(here.stdout)  # the unpacked archive plans the same jobs
