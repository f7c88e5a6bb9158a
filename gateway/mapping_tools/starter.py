"""`edigw mapping new`: a starter partner mapping from a sample, extending the right base.

The file extends the base mapping for the sample's set and version, declares the sample as
its golden example (copied beside it, with the base's output as the expected file), and
lists as YAML comments what the sample holds that the base does not read.
"""

from __future__ import annotations

import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from canonical.errors import ConfigError, GatewayError
from gateway.mapping_tools import coverage, examples, inputs
from mappings.x12 import specs

MAX_LISTED = 60  # a huge sample should not bury the file under comments


class StarterError(ConfigError):
    """A starter mapping cannot be written."""


@dataclass
class Starter:
    mapping: Path
    example_input: Path
    expected: Path | None  # None when the base could not map the sample
    unused: int
    note: str = ""


def base_for(sample: Path, root: Path) -> tuple[Path, str, str]:
    """(base mapping, set id, version) for an X12 sample."""
    sets = inputs.x12_sets(sample)
    if not sets:
        raise StarterError(f"{sample}: no transaction set (ST..SE) found")
    first = sets[0]
    version = specs.base_version(first.version, first.isa.get(12))
    base = root / "base" / f"{first.set_id}.{version[2:6]}.yaml"
    if not base.is_file():
        have = ", ".join(sorted(p.name for p in (root / "base").glob("*.yaml"))) or "none"
        raise StarterError(f"{sample}: no base mapping for {first.set_id} {version} "
                           f"(looked for {base}; bases: {have})")
    return base, first.set_id, version


def _unused_lines(base: Path, sample: Path) -> tuple[list[str], int]:
    cov = coverage.coverage(base, sample)
    groups: OrderedDict[str, list[coverage.Dropped]] = OrderedDict()
    for d in cov.dropped:
        label = d.ref if not d.qualifier or d.ref.endswith("01") else \
            f"{d.ref} ({d.segment}01={d.qualifier})"
        groups.setdefault(label, []).append(d)
    width = max((len(k) for k in groups), default=0)
    lines = []
    for label, found in list(groups.items())[:MAX_LISTED]:
        times = f", {len(found)} times" if len(found) > 1 else ""
        lines.append(f"#   {label.ljust(width)}  {found[0].value!r:24} first at "
                     f"{found[0].where}{times}")
    if len(groups) > MAX_LISTED:
        lines.append(f"#   ... and {len(groups) - MAX_LISTED} more (edigw mapping coverage)")
    return lines, len(cov.dropped)


def _check_sample(sample: Path) -> None:
    """StarterError unless the validator accepts the sample: a rejected set cannot be the
    golden example of a mapping (the base would fail on it, or map nonsense)."""
    from mappings.x12 import validator

    result = validator.validate(sample)
    if not result.readable:
        raise StarterError(f"{sample}: cannot be read as X12: {result.read_error}")
    if not result.accepted:
        errors = [f for s in result.sets() for f in s.findings if f.severity == "error"]
        errors += [f for ic in result.interchanges for f in ic.findings if f.severity == "error"]
        first = "; ".join(f"[{f.to_dict()['code']}] line {f.line}: {f.message}"
                          for f in errors[:3])
        raise StarterError(f"{sample}: validation rejects it ({first or 'see edigw validate'});"
                           f" start from a sample that `edigw validate {sample}` accepts")


def write(partner: str, sample: Path, root: Path, output: Path | None = None, *,
          force: bool = False) -> Starter:
    """Write the starter mapping (and its example files); refuses to overwrite unless force.

    Everything that can fail is done before the first file is written, so a refusal
    leaves no half-made partner folder behind."""
    if inputs.sniff(sample) != "x12":
        raise StarterError(f"{sample}: mapping new starts from an X12 sample; a CSV or JSON "
                           "partner's mapping is written from scratch (see docs/onboarding.md)")
    _check_sample(sample)
    base, set_id, version = base_for(sample, root)
    out = output or root / "partners" / partner / f"{set_id}.yaml"
    if out.exists() and not force:
        raise StarterError(f"{out} exists; use --force to replace it")
    try:
        unused, count = _unused_lines(base, sample)
    except GatewayError as exc:
        raise StarterError(f"{sample}: the base mapping {base} cannot read it: {exc}") from exc
    made = [d for d in (out.parent, out.parent / "examples") if not d.exists()]
    try:
        return _write_files(partner, sample, out, base, set_id, version, unused, count)
    except BaseException:
        for d in reversed(made):  # only folders this call made, with what it put in them
            shutil.rmtree(d, ignore_errors=True)
        raise


def _write_files(partner: str, sample: Path, out: Path, base: Path, set_id: str, version: str,
                 unused: list[str], count: int) -> Starter:
    out.parent.mkdir(parents=True, exist_ok=True)
    ex_dir = out.parent / "examples"
    ex_dir.mkdir(exist_ok=True)
    ex_input = ex_dir / sample.name
    if sample.resolve() != ex_input.resolve():
        shutil.copyfile(sample, ex_input)
    ex_expected = ex_dir / f"{sample.stem}.expected.json"
    rel = lambda p: Path(os.path.relpath(p, out.parent)).as_posix()  # noqa: E731
    text = [
        f"# {partner}'s {set_id} ({version}), started by `edigw mapping new` from {sample.name}.",
        "# It extends the base mapping: state only how this partner differs",
        "# (docs/mapping-language.md, extends). Check with `edigw mapping check`.",
        f"extends: {rel(base)}",
        f"name: {partner}-{set_id}",
        "examples:",
        f"  - name: {sample.name}",
        f"    input: {rel(ex_input)}",
        f"    expected: {rel(ex_expected)}",
        "",
    ]
    if unused:
        text += ["# In the sample but not read by the base mapping. Map what matters here, or leave",
                 "# it out knowingly (edigw mapping coverage lists it again after your edits):",
                 *unused]
    else:
        text.append("# The base mapping reads everything the sample holds.")
    out.write_text("\n".join(text) + "\n", encoding="utf-8")
    outcome = examples.run(examples.declared(out)[0])
    note = ""
    if outcome.actual is not None and examples.write_expected(outcome):
        expected: Path | None = ex_expected
    else:
        expected, note = None, outcome.error
    return Starter(out, ex_input, expected, count, note)

