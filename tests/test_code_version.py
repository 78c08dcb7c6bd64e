"""The rerun trigger that follows the package code: which modules a job can import, what counts as a change."""
import shutil
import sys

import pytest

from conftest import ROOT
from unerase import code_version


@pytest.fixture()
def package(tmp_path, monkeypatch):
    """A copy of the package the fingerprints are computed over (edited by the tests)."""
    copy = tmp_path / "unerase"
    shutil.copytree(ROOT / "src/unerase", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code_version, "PACKAGE_DIR", copy)
    for cached in (code_version._parsed, code_version.closure, code_version.module_digest):
        cached.cache_clear()
    yield copy
    for cached in (code_version._parsed, code_version.closure, code_version.module_digest):
        cached.cache_clear()


def test_closure_follows_absolute_relative_and_from_package_imports(package):
    modules = code_version.closure(("unerase.erasure.esd",))
    # esd.py: `from . import training` (a submodule named in a from-import), `from ..text import encode`
    assert {"unerase", "unerase.erasure", "unerase.erasure.esd", "unerase.erasure.training", "unerase.text"} <= set(modules)
    assert "unerase.erasure.uce" not in modules  # loaded by name through the registry, never imported
    script = code_version.closure((str(ROOT / "scripts/erase.py"),))
    assert {"unerase.steps.erase", "unerase.steps.snakemake_adapter", "unerase.steps"} <= set(script)
    assert not any(m.startswith("unerase.erasure.esd") for m in script)


def test_closure_matches_what_python_really_imports(package):
    # Everything the step imports when it runs is in its closure (the closure may hold more: imports inside functions).
    import subprocess

    probe = ("import sys, unerase.steps.erase, unerase.erasure.esd; "
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'unerase')))")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    closure = code_version.closure((str(ROOT / "scripts/erase.py"), "unerase.erasure.esd"))
    assert set(imported) <= set(closure), set(imported) - set(closure)


def test_comments_docstrings_and_layout_keep_the_fingerprint(package):
    before = code_version.fingerprint("unerase.erasure.esd")
    esd = package / "erasure/esd.py"
    text = esd.read_text()
    edited = '"""Another module docstring."""\n# a new comment\n\n\n' + text.split('"""', 2)[2].lstrip("\n")
    edited = edited.replace("\ndef ", "\n# what this does\n\ndef ", 1) + "\n\n# end\n"
    esd.write_text(edited)
    code_version.closure.cache_clear(), code_version.module_digest.cache_clear(), code_version._parsed.cache_clear()
    assert code_version.fingerprint("unerase.erasure.esd") == before


def test_a_code_change_moves_the_fingerprint_of_its_importers_only(package):
    esd_before = code_version.fingerprint("unerase.erasure.esd")
    uce_before = code_version.fingerprint("unerase.erasure.uce")
    training = package / "erasure/training.py"
    training.write_text(training.read_text().replace("def ", "def _new_helper():\n    return 1\n\n\ndef ", 1))
    code_version.closure.cache_clear(), code_version.module_digest.cache_clear(), code_version._parsed.cache_clear()
    assert code_version.fingerprint("unerase.erasure.esd") != esd_before  # esd imports training
    uce_imports_training = "unerase.erasure.training" in code_version.closure(("unerase.erasure.uce",))
    assert (code_version.fingerprint("unerase.erasure.uce") != uce_before) == uce_imports_training


def test_a_changed_constant_moves_the_fingerprint(package):
    before = code_version.module_digest("unerase.erasure.esd")
    esd = package / "erasure/esd.py"
    esd.write_text(esd.read_text() + "\nTOLERANCE = 1e-6\n")
    code_version.module_digest.cache_clear(), code_version._parsed.cache_clear()
    assert code_version.module_digest("unerase.erasure.esd") != before


def test_unknown_module_and_syntax_error_are_one_line(package):
    with pytest.raises(ValueError, match="'unerase.erasure.nope' is not a module of the unerase package"):
        code_version.fingerprint("unerase.erasure.nope")
    (package / "erasure/esd.py").write_text("def broken(:\n")
    with pytest.raises(ValueError, match=r"esd\.py:1: .*fix it before running the workflow"):
        code_version.fingerprint("unerase.erasure.esd")
