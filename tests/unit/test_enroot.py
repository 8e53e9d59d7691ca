"""What imgforge writes for enroot: the four /etc files as enroot's import writes them, the
words of /etc/rc read back by a real bash, the tree changes of the import, and what enroot
can't carry refused by name."""

from __future__ import annotations

import io
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import IO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgforge.enroot.files import files, rc
from imgforge.enroot.lint import env_problem, problems, profile_problems, refusals
from imgforge.enroot.quote import bash_quote
from imgforge.enroot.rootfs import EnrootRoot
from imgforge.errors import ImageDataError
from imgforge.recipes.image import ImageConfig

# An image config with every kind of value enroot's import treats specially, and the four
# files enroot 4.1.2's `enroot import dockerd://` wrote for it (read back with
# `unsquashfs -cat` from the image it made).
PROBE = ImageConfig.from_inspect(
    {
        "Config": {
            "Env": [
                "PATH=/opt/probe/bin:/bin", "SPACES=a  b c", "LEADSP=  lead",
                "DOLLAR_HOME=$HOME", "BRACE_HOME=${HOME}", "MIXED=x:${HOME}:$HOME:${NOPE_UNSET}:y",
                'DQ="q"', "SQ='s'", 'HALFQ="half', "EQ=a=b", "EMPTY=", "A.B=1", "ENROOT_X=1",
            ],
            "Entrypoint": ["/bin/echo", "it's"],
            "Cmd": ["a b"],
            "Volumes": {"/cache": {}, "/data": {}},
            "WorkingDir": "/work dir",
            "Labels": {
                "org.example.cli": "first\nsecond",
                "org.example.multi": "line1\\nline2",
                "org.example.plain": "p v",
            },
        }
    }
)  # fmt: skip
PROBE_RC = """\
# org.example.cli first second
# org.example.multi line1\\nline2
# org.example.plain p v

mkdir -p "/work dir" 2> /dev/null
cd "/work dir" && unset OLDPWD || exit 1

if [ -s /etc/rc.local ]; then
    . /etc/rc.local
fi

if [ $# -gt 0 ]; then
    exec '/bin/echo' 'it'\\''s' "$@"
else
    exec '/bin/echo' 'it'\\''s' 'a b'
fi
"""
PROBE_FSTAB = """\
${ENROOT_ROOTFS}/cache /cache none x-create=dir,bind,rw,nosuid,nodev
${ENROOT_ROOTFS}/data /data none x-create=dir,bind,rw,nosuid,nodev
"""
PROBE_RC_LOCAL = """\
# This file is sourced by /etc/rc when the container starts.
# It can be used to manipulate the entrypoint or the command of the container.
"""


def test_the_four_files_are_enroots_own_for_the_same_image() -> None:
    written = files(PROBE)
    assert written["etc/rc"] == PROBE_RC
    assert written["etc/fstab"] == PROBE_FSTAB
    assert written["etc/rc.local"] == PROBE_RC_LOCAL
    assert written["etc/environment"] == "".join(f"{e}\n" for e in PROBE.env)


def test_an_image_without_entrypoint_or_cmd_runs_a_shell() -> None:
    text = rc(ImageConfig())
    assert text.startswith('mkdir -p "/" 2> /dev/null\ncd "/" && ')
    assert '    exec  "$@"\n' in text and "    exec  '/bin/sh'\n" in text


def test_what_enroot_changes_is_refused_by_name() -> None:
    found = {(p.key, p.warning) for p in problems(PROBE)}
    refused = {key for key, warning in found if not warning}
    assert refused == {
        "env.BRACE_HOME", "env.MIXED", "env.DQ", "env.SQ", "env.A.B", "env.ENROOT_X"
    }  # fmt: skip
    assert ("Labels.org.example.cli", True) in found
    assert ("Entrypoint", True) in found  # pyxis skips it


@pytest.mark.parametrize(
    ("name", "value", "kept"),
    [
        ("A", "plain", True),
        ("A", "$HOME and $(id) `id` \\ '\" half", True),
        ("A", "${HOME", True),
        ("A", "${1}", True),
        ("A", "${HOME}", False),
        ("A", "x${_y9}z", False),
        ("A", "line\nbreak", False),
        ("A", "carriage\rreturn", True),
        ("A", "'quoted'", False),
        ("A", "\"mixed'", False),
        ("A", '"q"  \t', False),
        ("A", '"q" x', True),
        ("A", '"', True),
        ("A", "", True),
        ("_9", "x", True),
        ("9A", "x", False),
        ("A-B", "x", False),
        ("ENROOT_Y", "x", False),
        ("XENROOT_Y", "x", True),
    ],
)
def test_env_values_enroot_keeps(name: str, value: str, kept: bool) -> None:
    assert (env_problem(name, value) is None) is kept


def test_workdir_entrypoint_and_volumes_enroot_cant_write_are_refused() -> None:
    bad = ImageConfig(workdir='/a"b', entrypoint=("",), volumes=("/my vol",), cmd=("a\tb",))
    assert {p.key for p in refusals(bad)} == {"WorkingDir", "Entrypoint", "Cmd", "Volumes"}


def test_login_scripts_that_set_an_image_variable_are_said() -> None:
    config = ImageConfig(env=("PATH=/opt/x/bin:/bin", "CUDA_HOME=/usr/local/cuda"))
    profiles: dict[str, bytes | None] = {
        "etc/profile": b'if x; then\n  PATH="/usr/bin"\nfi\nexport PATH\n',
        "etc/profile.d/site.sh": b"export CUDA_HOME=/opt/cuda\nexport OTHER=1\n",
        "etc/profile.d/linked.sh": None,
    }
    said = {(p.key, p.warning) for p in profile_problems(profiles, config)}
    assert said == {("env.PATH", True), ("env.CUDA_HOME", True), ("/etc/profile.d/linked.sh", True)}
    assert profile_problems({"etc/profile": b"# PATH=/x\necho $PATH\n"}, config) == []


def test_more_of_what_enroot_changes_is_refused() -> None:
    bad = ImageConfig(
        workdir="/ws ", volumes=("data", "/x${HOME}", "/ok"), env=('Q="x"\u2003', "R=x\u2003")
    )
    assert {(p.key, p.reason.split(":")[0]) for p in refusals(bad)} == {
        ("WorkingDir", "'/ws '"),
        ("Volumes", "'data' is not absolute"),
        ("Volumes", "'/x${HOME}'"),
        ("env.Q", "enroot strips the quotes around the value"),
    }


WORDS = st.lists(st.text(st.characters(codec="utf-8").filter(str.isprintable), max_size=8))


def bash(script: str, *args: str) -> bytes:
    done = subprocess.run(["bash", "-c", script, "bash", *args], capture_output=True, check=True)
    return done.stdout


@settings(max_examples=60, deadline=None)
@given(WORDS)
def test_quoting_is_bashs_own(words: list[str]) -> None:
    expected = bash('a=("$@"); printf %s "${a[*]@Q}"', *words)
    assert " ".join(bash_quote(w) for w in words).encode() == expected


@settings(max_examples=60, deadline=None)
@given(WORDS, WORDS, WORDS)
def test_rc_runs_the_entrypoint_then_the_arguments_or_the_cmd(
    entrypoint: list[str], cmd: list[str], args: list[str]
) -> None:
    """/etc/rc sourced by bash, with exec, mkdir and cd made to print or do nothing."""
    config = ImageConfig(entrypoint=tuple(entrypoint), cmd=tuple(cmd), workdir="/x")
    fake = "exec() { printf '%s\\0' \"$@\"; exit 0; }; mkdir() { :; }; cd() { :; }\n"
    ran = bash(fake + rc(config), *args).split(b"\0")[:-1]
    words = entrypoint + (args if args else cmd or ([] if entrypoint else ["/bin/sh"]))
    assert [w.decode() for w in ran] == words


class Sink:
    def __init__(self) -> None:
        self.entries: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}

    def addfile(self, info: tarfile.TarInfo, fileobj: IO[bytes] | None = None) -> None:
        self.entries[info.name.strip("/")] = (info, fileobj.read() if fileobj else None)


def member(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **fields: object) -> (
    tarfile.TarInfo
):  # fmt: skip
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = kind, mode, 1000, 1000
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def export(*entries: tuple[tarfile.TarInfo, bytes]) -> Sink:
    sink = Sink()
    root = EnrootRoot(sink, PROBE, mtime=7)
    for info, data in entries:
        info.size = len(data) if info.isreg() else 0
        root.addfile(info, io.BytesIO(data) if info.isreg() else None)
    root.finish()
    return sink


def test_the_import_drops_dev_and_dockerenv_and_owns_everything_by_root() -> None:
    xattr = {"SCHILY.xattr.user.k": "v", "SCHILY.xattr.security.capability": "c"}
    sink = export(
        (member("dev/", tarfile.DIRTYPE, 0o755), b""),
        (member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), b""),
        (member("dev/shm/", tarfile.DIRTYPE, 0o1777), b""),
        (member(".dockerenv"), b""),
        (member("etc/", tarfile.DIRTYPE, 0o755), b""),
        (member("etc/environment", mode=0o600), b"OLD=1\n"),
        (member("etc/env-link", tarfile.LNKTYPE, linkname="etc/environment"), b""),
        (member("usr/bin/tool", mode=0o4711, pax_headers=xattr), b"bin"),
        (member("secret", mode=0o000), b"x"),
        (member("shared", mode=0o055), b"x"),
        (member("locked/", tarfile.DIRTYPE, 0o500), b""),
        (member("link", tarfile.SYMTYPE, 0o777, linkname="usr"), b""),
    )
    names = set(sink.entries)
    assert "dev" in names and not any(n.startswith("dev/") for n in names)
    assert ".dockerenv" not in names
    assert {info.uid for info, _ in sink.entries.values()} == {0}
    assert {info.gid for info, _ in sink.entries.values()} == {0}
    tool, _ = sink.entries["usr/bin/tool"]
    assert stat.S_IMODE(tool.mode) == 0o4711 and not tool.pax_headers
    assert sink.entries["secret"][0].mode == 0o400  # u+r
    assert sink.entries["shared"][0].mode == 0o555  # u+rX: x for u where g/o have it
    assert sink.entries["locked"][0].mode == 0o700  # directories: u+rwx
    env, data = sink.entries["etc/environment"]
    assert env.mode == 0o600 and data == files(PROBE)["etc/environment"].encode()
    assert sink.entries["etc/env-link"][0].linkname == "etc/environment"
    assert list(sink.entries).index("etc/env-link") > list(sink.entries).index("etc/environment")
    for name in ("etc/rc", "etc/rc.local", "etc/fstab"):
        assert sink.entries[name][0].mode == 0o644
    assert sink.entries["work dir"][0].isdir()  # mkdir -p of WorkingDir


def test_deep_directories_get_no_write_bit_past_depth_fifteen() -> None:
    deep = "/".join(f"d{i}" for i in range(16))
    sink = export(
        (member(deep[: deep.rindex("/")], tarfile.DIRTYPE, 0o555), b""),
        (member(deep, tarfile.DIRTYPE, 0o555), b""),
    )
    assert sink.entries[deep[: deep.rindex("/")]][0].mode == 0o755
    assert sink.entries[deep][0].mode == 0o555


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        (tarfile.SYMTYPE, "is a symlink to rc.d/rc: enroot's import writes through it"),
        (tarfile.LNKTYPE, "is a hard link to /rc.d/rc: enroot's import rewrites both"),
        (tarfile.DIRTYPE, "is not a regular file"),
    ],
)
def test_an_etc_file_enroot_would_write_through_is_refused(kind: bytes, said: str) -> None:
    with pytest.raises(ImageDataError, match="/etc/rc") as raised:
        export((member("rc.d/rc"), b""), (member("etc/rc", kind, linkname="rc.d/rc"), b""))
    assert raised.value.key == "/etc/rc" and raised.value.reason.startswith(said)


def test_the_working_directory_is_made_as_mkdir_p_makes_it() -> None:
    sink = Sink()
    root = EnrootRoot(sink, ImageConfig(workdir="/wa/../wb/./c/"), mtime=7)
    root.addfile(member("etc/", tarfile.DIRTYPE, 0o755), None)
    root.finish()
    assert {"wa", "wb", "wb/c"} <= set(sink.entries)
    assert not any(".." in name.split("/") for name in sink.entries)


def test_an_etc_that_is_not_a_directory_is_refused() -> None:
    with pytest.raises(ImageDataError, match="/etc: is not a directory"):
        export((member("etc", tarfile.SYMTYPE, linkname="/private/etc"), b""))


def test_missing_etc_and_workdir_are_made(tmp_path: Path) -> None:
    sink = export((member("bin/sh", mode=0o755), b"sh"))
    assert sink.entries["etc"][0].isdir() and sink.entries["etc"][0].mode == 0o755
    assert sink.entries["work dir"][0].mtime == 7
