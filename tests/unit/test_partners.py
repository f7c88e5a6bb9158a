"""Partner configuration: schema errors with file:line:key, sender lookup, mapping refs."""

from __future__ import annotations

import pytest

from gateway import partners
from gateway.partners import PartnerConfigError
from tests.conftest import REPO

pytestmark = pytest.mark.unit

GOOD = """id: acme
name: Acme Retail
x12:
  isa:
    - {qualifier: ZZ, id: ACMERETAIL}
  gs: [ACMERETAIL]
secrets:
  sftp_password: {env: ACME_SFTP_PASSWORD}
mappings:
  850: partners/acme/850.yaml
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "mappings" / "partners" / "acme").mkdir(parents=True)
    (tmp_path / "mappings" / "partners" / "acme" / "850.yaml").write_text("format: x12\n")
    (tmp_path / "conf").mkdir()
    return tmp_path


def write(root, name, text):
    p = root / "conf" / f"{name}.yaml"
    p.write_text(text)
    return p


def test_a_good_partner_loads(root):
    p = partners.load(write(root, "acme", GOOD), mappings_root=root / "mappings")
    assert p.id == "acme" and p.name == "Acme Retail"
    assert p.isa_ids == (("ZZ", "ACMERETAIL"),) and p.gs_ids == ("ACMERETAIL",)
    assert p.secrets == {"sftp_password": "ACME_SFTP_PASSWORD"}
    assert p.mapping_for("850", "004010") == root / "mappings" / "partners" / "acme" / "850.yaml"
    assert p.mapping_for("856") is None


def test_find_by_sender_ignores_padding(root):
    write(root, "acme", GOOD)
    reg = partners.load_all(root / "conf", mappings_root=root / "mappings")
    assert reg.find_by_sender("ZZ", "ACMERETAIL     ").id == "acme"
    assert reg.find_by_sender("01", "ACMERETAIL") is None
    with pytest.raises(PartnerConfigError, match="no partner 'nope' \\(known: acme\\)"):
        reg.get("nope")


@pytest.mark.parametrize(("change", "line", "key", "says"), [
    (("    - {qualifier: ZZ, id: ACMERETAIL}", "    - {qualifier: ZZ, idx: ACMERETAIL}"),
     5, "x12.isa[0].idx", "unknown key"),
    (("  sftp_password: {env: ACME_SFTP_PASSWORD}", "  sftp_password: {env: hunter2}"),
     8, "secrets.sftp_password.env", "does not match"),
    (("  sftp_password: {env: ACME_SFTP_PASSWORD}", "  sftp_password: hunter2"),
     8, "secrets.sftp_password", "not of type 'object'"),
    (("name: Acme Retail\n", "name: Acme Retail\ncolour: red\n"), 3, "colour", "unknown key"),
    (("  850: partners/acme/850.yaml", "  850: partners/acme/8500.yaml"), 10, "mappings.850",
     "not found"),
    (("id: acme", "id: acme-retail"), 1, "id", "must match the file name"),
])
def test_errors_name_file_line_and_key(root, change, line, key, says):
    path = write(root, "acme", GOOD.replace(*change))
    with pytest.raises(PartnerConfigError) as info:
        partners.load(path, mappings_root=root / "mappings")
    assert str(info.value).startswith(f"{path}:{line}: {key}: "), str(info.value)
    assert says in str(info.value)
    assert info.value.line == line and info.value.key == key


def test_one_sender_names_one_partner(root):
    write(root, "acme", GOOD)
    write(root, "acme2", GOOD.replace("id: acme", "id: acme2"))
    with pytest.raises(PartnerConfigError, match="ZZ:ACMERETAIL is also acme's sender"):
        partners.load_all(root / "conf", mappings_root=root / "mappings")


def test_bad_yaml_names_the_line(root):
    path = write(root, "acme", "id: acme\nname: [unclosed\n")
    with pytest.raises(PartnerConfigError, match=f"{path}:3: not valid YAML"):
        partners.load(path)


def test_a_missing_folder_is_no_partners(tmp_path):
    assert len(partners.load_all(tmp_path / "nothing")) == 0


def test_the_shipped_partners_load():
    reg = partners.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings")
    assert "brightline" in reg.by_id


def test_validation_leniency_loads_in_the_validators_spelling(root):
    p = write(root, "acme", GOOD + "validation:\n  accept_with_errors: [AK403-6, IK304-2]\n")
    partner = partners.load(p, mappings_root=root / "mappings")
    assert partner.accept_with_errors == {"AK403-6", "AK304-2"}
    assert partners.load(write(root, "acme", GOOD), mappings_root=root / "mappings"
                         ).accept_with_errors == frozenset()


@pytest.mark.parametrize("code", ["AK905-5", "TA105-022", "AK403", "AK4036"])
def test_a_leniency_code_outside_the_set_is_refused_with_its_line(root, code):
    p = write(root, "acme", GOOD + f"validation:\n  accept_with_errors: [AK403-6, {code}]\n")
    with pytest.raises(PartnerConfigError) as err:
        partners.load(p, mappings_root=root / "mappings")
    assert err.value.line == 12 and "validation.accept_with_errors[1]" in str(err.value)


SFTP = """channels:
  sftp:
    host: sftp.acme.example
    username: distributor
    password: {env: ACME_SFTP_PASSWORD}
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIB+i+f+g512hHOTFePxcEAxWPHHEgU7usKyDlExOBaN"
    inbox: /outbound
    archive: /outbound/archive
    outbox: /inbound
"""


def test_a_partner_sftp_channel_is_checked_by_its_config_model(root):
    from channels.sftp import SftpInputConfig

    p = partners.load(write(root, "acme", GOOD + SFTP), mappings_root=root / "mappings")
    [(kind, sftp)] = p.channels.items()
    assert kind == "sftp" and isinstance(sftp, SftpInputConfig)
    assert (sftp.host, sftp.outbox, sftp.password.env) == ("sftp.acme.example", "/inbound",
                                                          "ACME_SFTP_PASSWORD")


@pytest.mark.parametrize(("change", "line", "key", "says"), [
    (("    outbox: /inbound", "    outbx: /inbound"), 19, "channels.sftp.outbx",
     "Extra inputs are not permitted"),
    (("    host: sftp.acme.example\n", ""), 12, "channels.sftp.host", "Field required"),
    (("    archive: /outbound/archive\n", ""), 12, "channels.sftp",
     "give exactly one of archive and delete_after_receive"),
    (("    host_key: \"ssh-ed25519 AAAA", "    host_key: \"ssh-ed25519 !AAA"), 16,
     "channels.sftp.host_key", "not a usable ssh-ed25519 public key"),
    (("  sftp:", "  ftp:"), 12, "channels.ftp", "unknown channel kind 'ftp' (known: sftp, webhook)"),
    (("  sftp:", "  folder:"), 12, "channels.folder",
     "'folder' is configured for every partner in conf/gateway.yaml (inbound.folder),"
     " not in a partner's file (known here: sftp, webhook)"),
])
def test_bad_channels_name_file_line_and_key(root, change, line, key, says):
    path = write(root, "acme", (GOOD + SFTP).replace(*change))
    with pytest.raises(PartnerConfigError) as got:
        partners.load(path, mappings_root=root / "mappings")
    assert (got.value.file, got.value.line, got.value.key) == (str(path), line, key)
    assert str(got.value).startswith(f"{path}:{line}: {key}: ")
    assert says in str(got.value)


def test_partners_list_shows_channels_with_secrets_by_name(root, monkeypatch):
    import json

    from typer.testing import CliRunner

    from gateway.cli import app

    write(root, "acme", GOOD + SFTP)
    (root / "gateway.yaml").write_text(
        f"partners: {{folder: {root / 'conf'}, mappings: {root / 'mappings'}}}\n")
    monkeypatch.setenv("ACME_SFTP_PASSWORD", "canary-password-0d5e")
    r = CliRunner().invoke(app, ["partners", "list", "--format", "json",
                                 "-c", str(root / "gateway.yaml")])
    assert r.exit_code == 0, r.output
    [acme] = json.loads(r.stdout)
    sftp = acme["channels"]["sftp"]
    assert sftp["password"] == {"env": "ACME_SFTP_PASSWORD"} and sftp["port"] == 22
    assert sftp["inbox"] == "/outbound" and "canary-password" not in r.output
    text = CliRunner().invoke(app, ["partners", "list", "-c", str(root / "gateway.yaml")])
    assert text.exit_code == 0 and "sftp" in text.output


@pytest.mark.parametrize("text", ["acme\n", "Acme", "../x", "a" * 41, ""])
def test_check_id_takes_the_whole_text_not_a_prefix_before_a_newline(text: str) -> None:
    # The schema's pattern ends in `$`, which alone would let "acme\n" by.
    assert not partners.is_id(text)
    with pytest.raises(PartnerConfigError):
        partners.check_id(text)
    assert partners.is_id("acme") and partners.is_id("a" * 40)
