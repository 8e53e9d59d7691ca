"""imgforge cache ls|du|prune, the cache options of the build commands, where the cache
lives (XDG), and sizes as users type them."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgforge.cache import DEFAULT_LIMIT, BlockCache, Profile, default_root
from imgforge.cli import main
from imgforge.commands.common import options_from
from imgforge.commands.parser import make_parser
from imgforge.errors import UsageError
from imgforge.options import Options
from imgforge.sizes import format_size, parse_size

GZIP = Profile("gzip", 9, 131072, "imgforge-squashfs 1; zlib 1.2.13")
ZSTD = Profile("zstd", 3, 131072, "imgforge-squashfs 1; zstd 1.5.5")


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("IMGFORGE_NETWORK", raising=False)


def filled(root: Path, profile: Profile, count: int, *, size: int = 1000) -> None:
    """``count`` builds, each storing one entry (eviction removes a build's at a time)."""
    for index in range(count):
        with BlockCache.open(root, profile, limit=None) as cache:
            data = hashlib.sha256(f"{profile.compressor}{index}".encode()).digest()
            cache.put(
                hashlib.blake2b(data, digest_size=32).digest(), data * (size // 32), compressed=True
            )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ls_lists_each_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "c"
    filled(root, GZIP, 3)
    filled(root, ZSTD, 2)
    code, out, err = run(capsys, "cache", "ls", "--cache-dir", str(root))
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["IDENT", "COMPRESSOR", "LEVEL", "BLOCK"]
    by_ident = {row.split()[0]: row for row in rows}
    assert set(by_ident) == {GZIP.ident(), ZSTD.ident()}
    assert by_ident[GZIP.ident()].split()[1:5] == ["gzip", "9", "128K", "3"]
    assert by_ident[ZSTD.ident()].endswith("imgforge-squashfs 1; zstd 1.5.5")


def test_ls_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "c"
    filled(root, GZIP, 3, size=992)
    code, out, _ = run(capsys, "cache", "ls", "--cache-dir", str(root), "--json")
    (profile,) = json.loads(out)["profiles"]
    assert code == 0 and profile["ident"] == GZIP.ident()
    assert {k: profile[k] for k in ("compressor", "level", "block_size", "writer")} == vars(GZIP)
    assert profile["entries"] == 3 and profile["bytes"] > 3 * 992
    assert profile["last_used"].endswith("Z")


@pytest.mark.parametrize(
    "field, value",
    [("block_size", 10**400), ("block_size", 1000), ("level", 10**30),
     ("compressor", "gz\ud800"), ("writer", "w\x1b[2J"), ("writer", "w" * 5000)],
)  # fmt: skip
def test_ls_shows_a_profile_json_it_cant_have_written_as_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object
) -> None:
    root = tmp_path / "c"
    filled(root, GZIP, 1)
    path = root / "blocks" / GZIP.ident() / "profile.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    code, out, err = run(capsys, "cache", "ls", "--cache-dir", str(root))
    assert (code, err) == (0, "")
    assert "(no profile.json)" in out and "\x1b" not in out


def test_du_counts_every_profile_and_an_absent_cache_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    filled(root, GZIP, 3)
    filled(root, ZSTD, 2)
    code, out, _ = run(capsys, "cache", "du", "--cache-dir", str(root), "--json")
    said = json.loads(out)
    assert code == 0 and said["root"] == str(root)
    assert (said["entries"], said["profiles"]) == (5, 2) and said["bytes"] > 5000
    code, out, _ = run(capsys, "cache", "du", "--cache-dir", str(root))
    size = said["bytes"]
    assert out == f"{root}: {format_size(size)} ({size} bytes) in 5 entries, 2 profiles\n"
    code, out, _ = run(capsys, "cache", "du", "--cache-dir", str(tmp_path / "none"), "--json")
    assert code == 0 and json.loads(out)["entries"] == 0
    assert not (tmp_path / "none").exists()


def test_the_default_cache_is_under_xdg_cache_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled(tmp_path / "xdg" / "imgforge", GZIP, 2)
    code, out, _ = run(capsys, "cache", "du", "--json")
    assert code == 0 and json.loads(out)["entries"] == 2
    assert json.loads(out)["root"] == str(tmp_path / "xdg" / "imgforge")


def test_prune_to_a_limit_and_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "c"
    filled(root, GZIP, 10)
    code, out, err = run(capsys, "cache", "prune", "--cache-dir", str(root), "--limit", "5K")
    assert (code, err) == (0, "")
    assert out.startswith(f"{root}: removed 6 entries (") and "; 4 entries (" in out
    code, out, _ = run(capsys, "cache", "prune", "--cache-dir", str(root), "--all", "--json")
    said = json.loads(out)
    assert code == 0 and (said["removed_entries"], said["entries"], said["bytes"]) == (4, 0, 0)
    assert not (root / "blocks").exists() and (root / "lock").exists()
    code, out, _ = run(capsys, "cache", "prune", "--cache-dir", str(root))
    assert code == 0 and "removed 0 entries" in out


def test_prune_no_wait_under_a_running_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    filled(root, GZIP, 3)
    with BlockCache.open(root, GZIP):
        code, out, err = run(
            capsys, "cache", "prune", "--cache-dir", str(root), "--all", "--no-wait"
        )
    assert (code, out) == (1, "")
    assert err == f"imgforge: error: {root}: builds are using the cache; nothing removed\n"
    code, out, _ = run(capsys, "cache", "du", "--cache-dir", str(root), "--json")
    assert json.loads(out)["entries"] == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cache", "prune", "--limit", "lots"], "--limit: 'lots' is not a size like 20G"),
        (["cache", "prune", "--limit=-1G"], "--limit: '-1G' is not a size like 20G"),
        (
            ["cache", "ls", "--cache-dir", "FILE"],
            "--cache-dir: 'FILE' exists and is not a directory",
        ),
        (["cache", "du", "--cache-dir", "FILE/x"], "--cache-dir: 'FILE/x' can't be made: "),
        (["cache", "frob"], "argument ACTION: invalid choice: 'frob'"),
        (
            ["cache", "prune", "--all", "--limit", "1G"],
            "argument --limit: not allowed with argument --all",
        ),
        (
            ["render", "x.toml", "--cache-limit", "20 gigs"],
            "--cache-limit: '20 gigs' is not a size like 20G",
        ),
        (
            ["build", "x.toml", "--cache-dir", "FILE"],
            "--cache-dir: 'FILE' exists and is not a directory",
        ),
        (
            ["plan", "x.toml", "--cache-dir", "FILE/x"],
            "--cache-dir: 'FILE/x' can't be made: 'FILE' is not a directory",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("FILE").write_text("a file")
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith(f"imgforge: error: {message}")


def options(*argv: str) -> Options:
    return options_from(make_parser().parse_args(["build", "r.toml", *argv]))


def test_build_options_carry_the_cache(tmp_path: Path) -> None:
    assert (options().cache_dir, options().cache_limit, options().cache) == (
        None,
        DEFAULT_LIMIT,
        True,
    )
    chosen = options("--cache-dir", str(tmp_path / "new"), "--cache-limit", "1.5T", "--no-cache")
    assert chosen.cache_dir == tmp_path / "new" and not (tmp_path / "new").exists()
    assert chosen.cache_limit == 1536 * 1024**3 and chosen.cache is False


def test_every_building_command_takes_the_cache_options() -> None:
    parser = make_parser()
    for command in ("build", "plan", "render", "bake", "shell", "verify", "doctor"):
        target = "x.sif" if command == "verify" else "r.toml"
        argv = [command, *([] if command == "doctor" else [target])]
        args = parser.parse_args([*argv, "--cache-dir", "/c", "--cache-limit", "1G", "--no-cache"])
        assert isinstance(args, argparse.Namespace)
        assert (args.cache_dir, args.cache_limit, args.no_cache) == (Path("/c"), "1G", True)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"}, "/x/cache/imgforge"),
        ({"XDG_CACHE_HOME": "relative/cache", "HOME": "/home/u"}, "/home/u/.cache/imgforge"),
        ({"XDG_CACHE_HOME": "", "HOME": "/home/u"}, "/home/u/.cache/imgforge"),
        ({"HOME": "/home/u"}, "/home/u/.cache/imgforge"),
    ],
)
def test_default_root_follows_xdg(environ: dict[str, str], expected: str) -> None:
    assert default_root(environ) == Path(expected)


def test_default_root_without_home_is_the_users_home() -> None:
    assert default_root({}) == Path(os.path.expanduser("~")) / ".cache" / "imgforge"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("20G", 20 * 1024**3),
        ("500M", 500 * 1024**2),
        ("1.5T", 1536 * 1024**3),
        ("1048576", 1048576),
        ("0", 0),
        ("2k", 2048),
        ("3GiB", 3 * 1024**3),
        ("3 GB", 3 * 1024**3),
        (".5K", 512),
    ],
)
def test_sizes_users_type(text: str, size: int) -> None:
    assert parse_size(text, option="--cache-limit") == size


@pytest.mark.parametrize(
    "text", ["", "G", "-1G", "1.2.3G", "1X", "inf", "nan", "1e3", "1 G B", "١٢G"]
)
def test_sizes_refused(text: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_size(text, option="--cache-limit")
    assert str(raised.value) == f"--cache-limit: {text!r} is not a size like 20G"


@given(st.integers(min_value=0, max_value=1 << 60))
def test_format_size_reads_back_close(size: int) -> None:
    shown = format_size(size)
    assert abs(parse_size(shown, option="x") - size) <= max(size // 19, 0)
