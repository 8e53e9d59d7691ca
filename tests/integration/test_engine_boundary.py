"""The input boundary against a real engine: names can't reach other Engine API endpoints,
and what the engine reports about a base image is checked where it becomes a value."""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgforge.cli import main
from imgforge.engine.docker import DockerEngine
from imgforge.errors import ImgforgeError
from imgforge.recipes.image import DEFAULT_PATH

pytestmark = pytest.mark.integration

STANDIN = "imgforge-standin/ngc-pytorch:24.01-py3"
NGC = "nvcr.io/nvidia/pytorch:24.01-py3"
SECRET = "SECRET_TOKEN=s3cr3t-value-of-another-container"


@pytest.fixture(scope="module")
def client(standin_image: str) -> Iterator[docker.DockerClient]:
    handle = docker.from_env(timeout=120)
    yield handle
    handle.close()


@pytest.fixture(scope="module")
def victim(client: docker.DockerClient) -> Iterator[str]:
    """A container (never started) whose Env holds a secret: what an escaping name reads."""
    created = client.api.create_container(
        STANDIN, command=["true"], entrypoint=[], environment=[SECRET], name="imgforge-victim"
    )
    yield str(created["Id"])
    client.api.remove_container(created["Id"], force=True)


def escapes(victim: str) -> list[str]:
    return [
        f"../containers/{victim}",
        f"x/../../containers/{victim}",
        "imgforge-victim/../../containers/imgforge-victim",
        f"sha256:{victim}/../../../containers/{victim}",
        f"localhost:5000/..%2f../containers/{victim}",
    ]


def test_the_unguarded_sdk_reaches_another_container(
    client: docker.DockerClient, victim: str
) -> None:
    """Why the guard exists: the SDK alone sends ``..`` and the engine routes it."""
    found = client.api.inspect_image(f"../containers/{victim}")
    assert SECRET in found["Config"]["Env"]


def test_engine_refuses_escaping_names(victim: str) -> None:
    engine = DockerEngine.connect()
    for name in escapes(victim):
        with pytest.raises(ImgforgeError) as caught:
            engine.inspect(name)
        assert caught.value.exit_code == 2
        with pytest.raises(ImgforgeError):
            engine.ensure_image(name, why="test")


def _recipe(directory: Path, project: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.toml").write_text(f'name = "app"\nbase = "{NGC}"\n')
    if project:
        (directory / "imgforge.toml").write_text(project)
    return directory / "app.toml"


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def test_base_mappings_to_another_container_are_refused(
    tmp_path: Path, victim: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for index, name in enumerate(escapes(victim)):
        out = tmp_path / f"out{index}"
        recipe = _recipe(tmp_path / f"cli{index}")
        code, err = _run(
            ["render", str(recipe), "--out", str(out), "--base-map", f"{NGC}={name}"], capsys
        )
        assert code == 2 and err.count("\n") == 1 and "--base-map" in err
        recipe = _recipe(tmp_path / f"file{index}", f'[base_map]\n"{NGC}" = "{name}"\n')
        code, err = _run(["render", str(recipe), "--out", str(out)], capsys)
        assert code == 2 and err.count("\n") == 1 and "imgforge.toml: base_map" in err
        assert not out.exists() or "s3cr3t" not in "".join(
            p.read_text() for p in out.rglob("*") if p.is_file()
        )


SEGMENTS = st.sampled_from(
    ["..", ".", "", "containers", "images", "imgforge-victim", "x", "json", "%2e%2e", "?a=b", "#"]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(SEGMENTS, min_size=1, max_size=6), st.sampled_from(["", ":t", "@sha256:" + "a" * 64])
)
def test_no_name_reaches_a_container(victim: str, parts: list[str], suffix: str) -> None:
    """Whatever path a name spells, the engine wrapper either refuses it (exit 2) or
    answers about an image: never with another container's config."""
    engine = DockerEngine.connect()
    name = "/".join(p.replace("imgforge-victim", victim) for p in parts) + suffix
    try:
        found = engine.inspect(name)
    except ImgforgeError as exc:
        assert exc.exit_code == 2
        return
    assert found is None or ("State" not in found and SECRET not in str(found))


# ---------------------------------------------------------------- base-image data


def _image(client: docker.DockerClient, tag: str, changes: list[str]) -> str:
    """An image from an empty rootfs with ``changes`` applied by ``docker import`` (the
    engine's own Dockerfile parser reads them), so Env/Labels hold what a base may."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("etc")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    client.api.import_image_from_data(buffer.getvalue(), repository=tag, changes=changes)
    return f"{tag}:latest"


def _commit(client: docker.DockerClient, tag: str, config: dict[str, object]) -> str:
    """An image whose config is set through the API (``docker commit`` with a config, of
    a container of an empty image, so nothing else is merged in), which takes Env
    entries and labels the Dockerfile syntax can't spell."""
    empty = _image(client, "imgforge-hostile/empty", [])
    created = client.api.create_container(empty, command=["true"], entrypoint=[])
    try:
        client.api.commit(created["Id"], repository=tag, tag="latest", conf=config)
    finally:
        client.api.remove_container(created["Id"], force=True)
    return f"{tag}:latest"


HOSTILE_ENV = [
    ("imgforge-hostile/env-newline", {"Env": ["A\nB=1", "PATH=/usr/bin:/bin"]}, "Config.Env[0]"),
    ("imgforge-hostile/env-esc", {"Env": ["X\x1b[2J=1"]}, "Config.Env[0]"),
    ("imgforge-hostile/env-noeq", {"Env": ["JUSTANAME"]}, "Config.Env[0]"),
    ("imgforge-hostile/workdir", {"WorkingDir": "/w\nrm -rf /"}, "Config.WorkingDir"),
    ("imgforge-hostile/label", {"Labels": {"a\nb": "c"}}, "Config.Labels"),
]


@pytest.mark.parametrize(("tag", "config", "key"), HOSTILE_ENV, ids=[c[0] for c in HOSTILE_ENV])
def test_hostile_base_configs_are_refused(
    client: docker.DockerClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tag: str,
    config: dict[str, object],
    key: str,
) -> None:
    image = _commit(client, tag, config)
    try:
        recipe = _recipe(tmp_path / "r")
        out = tmp_path / "out"
        code, err = _run(
            ["render", str(recipe), "--out", str(out), "--base-map", f"{NGC}={image}"], capsys
        )
        assert code == 2, err
        assert err.count("\n") == 1 and "\x1b" not in err
        assert f"base {image}: {key}" in err
        assert not (out / "app").exists()
    finally:
        client.api.remove_image(image, force=True)


CARRIED = [
    'Q=it\'s "quoted" $HOME `id` \\ back',
    "NL=line1\nline2\n%post\nexport X=1",
    "CR=a\rb",
    "UNI=µ→😀",
    "EMPTY=",
    "EQ=a=b=c",
    "TABS=\t\t",
    "ESC=\x1b[2J",
]
SKIPPED = ["my-var=1", "9LIVES=x", "HOME=/root", "UID=0", "a.b=c", "BASH_ENV_X=ok"]


@pytest.fixture(scope="module")
def odd_base(client: docker.DockerClient) -> Iterator[str]:
    image = _commit(
        client, "imgforge-hostile/odd-env", {"Env": CARRIED + SKIPPED, "WorkingDir": "/"}
    )
    yield image
    client.api.remove_image(image, force=True)


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_odd_but_valid_base_env_is_carried_exactly(
    odd_base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], shell: str
) -> None:
    """The rendered env file, sourced by sh and by bash with an empty environment,
    yields exactly the image's Env (the names a shell can carry, and Docker's default PATH
    that a build on a base without one gets), byte for byte."""
    recipe = _recipe(tmp_path / "r")
    out = tmp_path / "out"
    code, err = _run(
        ["render", str(recipe), "--out", str(out), "--base-map", f"{NGC}={odd_base}"], capsys
    )
    assert code == 0, err
    env_file = next((out / "app").glob("*env*.sh"))
    dumped = subprocess.run(
        ["env", "-i", shell, "-c", '. "$1" && exec /usr/bin/env -0', shell, str(env_file)],
        capture_output=True,
        check=True,
    ).stdout
    got = dict(e.split(b"=", 1) for e in dumped.split(b"\0") if e)
    got = {k.decode(): v for k, v in got.items() if k not in {b"PWD", b"SHLVL", b"_", b"OLDPWD"}}
    expected = {n: v.encode() for n, _, v in (e.partition("=") for e in CARRIED)}
    # HOME and UID are defaults: an empty environment has no HOME, so the image's applies;
    # bash has a UID of its own (kept, and not exported), sh none. PATH is Docker's default.
    defaults = {"HOME": b"/root", "PATH": DEFAULT_PATH.encode()}
    if shell == "sh":
        defaults["UID"] = b"0"
    assert got == {**expected, **defaults, "BASH_ENV_X": b"ok"}
    text = env_file.read_text()
    for line in text.splitlines():
        if line.startswith("# skipped"):
            assert line.isprintable()


def test_a_base_without_path_builds_with_dockers_default_path(
    odd_base: str, tmp_path: Path, client: docker.DockerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """A base whose config has no PATH (a `docker import`ed root filesystem): Docker's
    builder adds its default PATH, and so does imgforge's prediction of the image."""
    recipe = _recipe(tmp_path / "r")
    recipe.write_text(recipe.read_text() + '[env]\nADDED = "1"\n')
    out = tmp_path / "out"
    code, err = _run(
        ["build", str(recipe), "--out", str(out), "--base-map", f"{NGC}={odd_base}",
         "--singularity", "native"],
        capsys,
    )  # fmt: skip
    try:
        assert code == 0, err
        env = client.api.inspect_image("app:latest")["Config"]["Env"]
        assert f"PATH={DEFAULT_PATH}" in env and env[-1] == "ADDED=1"
        assert (out / "app" / "app.sif").is_file()
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.api.remove_image("app:latest", force=True)
