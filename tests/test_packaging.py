"""The Python versions the package claims are the ones CI tests, and the README names them."""

from __future__ import annotations

import re

from tests.idl.ctools import REPO

_VERSION = r"3\.\d+"


def _key(version: str) -> tuple[int, ...]:
    return tuple(map(int, version.split(".")))


def _ci_versions() -> set[str]:
    text = (REPO / ".ci" / "run").read_text()
    main = re.search(rf"^main_python=({_VERSION})\b", text, re.M)
    others = re.search(r"^other_pythons=\(([^)]*)\)", text, re.M)
    assert main and others, ".ci/run no longer names its Python versions where this test looks"
    return {main.group(1), *others.group(1).split()}


def test_the_classifiers_and_requires_python_match_the_versions_ci_tests() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    claimed = set(re.findall(rf'"Programming Language :: Python :: ({_VERSION})"', pyproject))
    assert claimed == _ci_versions()
    oldest = min(claimed, key=_key)
    assert f'requires-python = ">={oldest}"' in pyproject


def test_the_readme_names_the_versions_ci_tests() -> None:
    readme = (REPO / "README.md").read_text()
    paragraph = re.search(r"^Requirements:.*?(?:\n\n|\Z)", readme, re.M | re.S)
    assert paragraph, "the README has no 'Requirements:' paragraph"
    assert set(re.findall(rf"\b{_VERSION}\b", paragraph.group(0))) == _ci_versions()
