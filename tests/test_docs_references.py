"""Every behaviour reference in the code, the tests and the README points at a heading that
exists in ``docs/`` (docs/README.md#anchors gives the anchor rule), every rule id a test
names is a rule of docs/conformance.md, and nothing cites a specification file the
repository does not have."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SOURCES = ("src", "tests", "bench", "fuzz", "examples")

_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_EXPLICIT = re.compile(r'<a id="([^"]+)"></a>')
_REFERENCE = re.compile(r"docs/([A-Za-z0-9_-]+\.md)(?:#([A-Za-z0-9_-]+))?")
_DOCS_LINK = re.compile(r"\]\(([^)\s#]*\.md)?(?:#([^)\s]+))?\)")
_RULE = re.compile(r"(?<![A-Za-z0-9])[Rr]([0-9]{1,3})(?![0-9])")


def slug(heading: str) -> str:
    """GitHub's heading anchor: formatting dropped, lower case, only letters, digits,
    ``-``, ``_`` and spaces kept, spaces turned into ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.replace("`", ""))
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors() -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    for page in sorted(DOCS.glob("*.md")):
        names: list[str] = []
        in_code = False
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                in_code = not in_code
                continue
            if in_code:
                continue
            match = _HEADING.match(line)
            if match:
                names.append(slug(match.group(1)))
            names.extend(_EXPLICIT.findall(line))
        duplicates = sorted({name for name in names if names.count(name) > 1})
        assert not duplicates, f"{page.name} repeats anchors {duplicates}"
        found[page.name] = frozenset(names)
    return found


def _files() -> list[Path]:
    files = [ROOT / "README.md"]
    for top in SOURCES:
        files += sorted(
            p for p in (ROOT / top).rglob("*") if p.suffix in {".py", ".toml", ".md", ".service"}
        )
    return [f for f in files if f.is_file()]


def test_slug_follows_the_documented_rule() -> None:
    assert slug("POST /exec") == "post-exec"
    assert slug("`token explain`") == "token-explain"
    assert slug("Key and signature types") == "key-and-signature-types"


def test_every_docs_reference_names_an_existing_page_and_anchor() -> None:
    pages = anchors()
    missing = []
    for path in _files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for page, anchor in _REFERENCE.findall(line):
                if page not in pages or (anchor and anchor not in pages[page]):
                    missing.append(f"{path.relative_to(ROOT)}:{number}: docs/{page}#{anchor}")
    assert not missing, "\n".join(missing)


def test_links_inside_docs_resolve() -> None:
    pages = anchors()
    missing = []
    for page in sorted(DOCS.glob("*.md")):
        for target, anchor in _DOCS_LINK.findall(page.read_text()):
            name = target or page.name
            if name not in pages or (anchor and anchor not in pages[name]):
                missing.append(f"{page.name}: {target}#{anchor}")
    assert not missing, "\n".join(missing)


def test_rule_ids_named_by_tests_are_conformance_rules() -> None:
    rules = anchors()["conformance.md"]
    unknown = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for name in re.findall(r"def (test_\w+)", path.read_text()):
            for number in re.findall(r"_r([0-9]{1,3})(?=_)", name):
                if f"r{int(number)}" not in rules:
                    unknown.append(f"{path.name}: {name}")
    assert not unknown, "\n".join(unknown)


@pytest.mark.parametrize("pattern", [r"SPEC ?§", r"SPEC\.md", r"SPEC (Appendix|A\.[0-9])"])
def test_no_reference_to_a_specification_outside_the_repository(pattern: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _files()
        if path.resolve() != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not offenders, offenders
