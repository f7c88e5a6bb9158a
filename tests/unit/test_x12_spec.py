"""Compiling pyx12-format maps into specs: tables, transitions, cache, map selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mappings.x12 import specs

pytestmark = pytest.mark.unit

PYX12_MAPS = next((Path(p) / "pyx12" / "map" for p in __import__("sys").path
                   if (Path(p) / "pyx12" / "map" / "maps.xml").is_file()), None)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    specs.load_spec.cache_clear()
    specs.load_folder.cache_clear()
    yield tmp_path / "cache" / "edigw"
    specs.load_spec.cache_clear()
    specs.load_folder.cache_clear()


def test_our_folder_is_the_default_when_it_exists():
    assert specs.default_map_path() == Path(specs.__file__).resolve().parent / "maps"


def test_an_850_compiles_into_rules_and_transitions(cache):
    spec, warning = specs.select_map("850", "004010")
    assert warning is None and spec.set_id == "850" and spec.map_name == "850.4010"
    beg = next(r for r in spec.rules if r and r.id == "BEG")
    b03 = next(e for e in beg.elements if e.seq == 3)
    assert (b03.data_element, b03.type, b03.min_len, b03.max_len, b03.usage) == (
        "324", "AN", 1, 22, "R")
    per = next(r for r in spec.rules if r and r.id == "PER")
    assert ("P", (3, 4)) in per.syntax
    # From ST, BEG is the one place to go; a PO1 starts its loop and skips a mandatory BEG.
    (to_beg,) = spec.transitions[spec.start]["BEG"]
    assert spec.ids[to_beg.target] == "BEG" and to_beg.enter_loop == -1 and not to_beg.missing
    (to_po1,) = spec.transitions[spec.start]["PO1"]
    assert spec.ids[to_po1.enter_loop] == "PO1"
    assert [spec.ids[m] for m in to_po1.missing] == ["BEG"]
    po1 = to_po1.target
    assert spec.loop_paths[po1] == "PO1"
    assert "PO1" in spec.transitions[po1] and "BEG" not in spec.transitions[po1]
    assert "BEG" in spec.earlier_ids[po1]


def test_qualified_segments_get_a_key_check():
    spec, _ = specs.select_map("997", "004010")
    (ak9,) = spec.transitions[spec.start]["AK9"]
    assert ak9.key_element == 1 and "A" in ak9.key_codes


def test_specs_are_cached_on_disk_and_a_damaged_cache_is_rebuilt(cache):
    first, _ = specs.select_map("855", "004010")
    (pickled,) = cache.glob("x12spec-855.4010-*.pickle")
    specs.load_spec.cache_clear()
    again, _ = specs.select_map("855", "004010")
    assert again is not first and again.transitions == first.transitions
    pickled.write_bytes(b"not a pickle")
    specs.load_spec.cache_clear()
    rebuilt, _ = specs.select_map("855", "004010")
    assert rebuilt.ids == first.ids


def test_a_changed_map_changes_the_cache_key(cache, tmp_path):
    folder = tmp_path / "maps"
    shutil.copytree(specs.default_map_path(), folder)
    a = specs.load_spec(str(folder), "810.4010.xml")
    text = (folder / "810.4010.xml").read_text()
    (folder / "810.4010.xml").write_text(text.replace("<name>", "<name>Changed ", 1))
    specs.load_spec.cache_clear()
    b = specs.load_spec(str(folder), "810.4010.xml")
    assert a.source_hash != b.source_hash


@pytest.mark.parametrize(("gs08", "isa12", "expect", "warns"), [
    ("004010", "00401", "850.4010", False),
    ("004010VICS", "00401", "850.4010", False),
    ("004010X348", "00401", "850.4010", False),
    ("003010", "00300", "850.4010", True),
    ("004030", "00403", "850.4030", False),
    ("004030VICS", "00403", "850.4030", False),
    ("004060", "00406", "850.4030", True),
    ("003050", "00305", "850.4010", True),
    ("005010", "00501", "850.5010", False),
    ("005030", "00503", "850.5010", True),
    ("006020", "00602", "850.5010", True),
    ("", "00401", "850.4010", True),
])
def test_select_map_takes_the_nearest_version_and_says_so(gs08, isa12, expect, warns):
    spec, warning = specs.select_map("850", gs08, isa12)
    assert spec.map_name == expect
    assert (warning is not None) == warns
    if warns:
        assert "nearest" in warning and spec.version in warning


def test_a_set_without_a_map_is_not_supported():
    spec, reason = specs.select_map("940", "004010")
    assert spec is None and "940" in reason and "not supported" in reason


def test_an_implementation_with_its_own_map_is_taken_exactly():
    spec, warning = specs.select_map("997", "005010X230")
    assert spec.map_name == "997.5010" and warning is None


@pytest.mark.skipif(PYX12_MAPS is None, reason="pyx12's shipped maps are not installed")
def test_pyx12s_own_maps_compile_too(cache):
    spec, warning = specs.select_map("837", "004010X098A1", maps=PYX12_MAPS)
    assert spec is not None and warning is None
    assert len(spec.ids) > 300 and any(t for t in spec.transitions)


def test_a_folder_without_maps_xml_is_a_specification_error(tmp_path):
    from canonical.errors import SpecificationError
    with pytest.raises(SpecificationError):
        specs.load_folder(tmp_path)


def test_a_cache_folder_others_can_write_is_never_used(tmp_path, monkeypatch):
    """Loading a pickle runs code: a world-writable cache folder must not be trusted."""
    import os

    from mappings.x12 import specs as sp

    base = tmp_path / "cache"
    (base / "edigw").mkdir(parents=True)
    os.chmod(base / "edigw", 0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(base))
    monkeypatch.setattr(sp.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    chosen = sp.cache_dir()
    assert chosen != base / "edigw"
    assert chosen is None or sp._private(chosen)
