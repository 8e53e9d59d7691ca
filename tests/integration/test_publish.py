"""--push to a real registry on loopback, the SIF published beside the image (pulled back
by the ORAS SDK, by the real `apptainer pull oras://` where Apptainer is installed, and
the image still by `docker pull`), --save, and credentials that never leak."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import oras.provider
import pytest
import requests
from support import installed_runtime

from imgforge.build import record
from imgforge.cli import main
from imgforge.errors import BuildError
from imgforge.log import Lines
from imgforge.registry import oci
from imgforge.registry.artifact import SifFile, publish_sif
from imgforge.registry.client import CA_BUNDLE_VARIABLES, connect
from imgforge.registry.oci import Platform

pytestmark = pytest.mark.integration

STANDIN = "imgforge-standin/ngc-pytorch:24.01-py3"
SECRET = "planted-s3cret-9f1c"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(
    root: Path,
    *,
    htpasswd: Path | None = None,
    host: str = "127.0.0.1",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[str]:
    """Debian's docker-registry serving on ``host`` (no image pull needed): plain HTTP,
    or HTTPS with ``tls`` (certificate, key); asking for the users of ``htpasswd`` if
    given. Yields its HOST:PORT."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (scripts/ensure-engine.sh installs it)")
    port = free_port()
    auth = f"auth:\n  htpasswd:\n    realm: imgforge-test\n    path: {htpasswd}\n"
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
        f"http:\n  addr: {host}:{port}\n"
        + (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else "")
        + (auth if htpasswd else "")
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                break
        time.sleep(0.1)
    try:
        yield f"{'localhost' if host == '127.0.0.1' else host}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="module")
def pushed(
    registry: str, standin_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("publish")
    recipe = root / "itest-push.toml"
    recipe.write_text(f'base = "{STANDIN}"\n[env]\nPUSHED = "yes"\n')
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("IMGFORGE_REGISTRY_USER", "someone")
    monkeypatch.setenv("IMGFORGE_REGISTRY_PASSWORD", SECRET)
    argv = ["build", str(recipe), "--out", str(root / "out"), "--push", registry, "--save"]
    try:
        assert main([*argv, "--singularity", "native", "--verbose"]) == 0
    finally:
        monkeypatch.undo()
    manifest = json.loads((root / "out" / "itest-push" / "manifest.json").read_text())
    yield root, manifest
    client = docker.from_env()
    for ref in ("itest-push:latest", manifest["push"]["reference"]):
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref, force=True)


def test_pushed_image_pulls_back_by_digest_and_equals_the_built_one(
    pushed: tuple[Path, dict],
) -> None:
    _, manifest = pushed
    client = docker.from_env()
    client.images.remove(manifest["push"]["reference"], force=True)
    pulled = client.images.pull(manifest["push"]["by_digest"])
    assert pulled.id == manifest["docker_image_id"]
    assert manifest["push"]["digest"].startswith("sha256:")


def test_saved_archive_loads_as_the_same_image(pushed: tuple[Path, dict]) -> None:
    root, manifest = pushed
    archive = root / "out" / "itest-push" / "itest-push.docker.tar"
    assert archive.stat().st_size == manifest["saved"]["size"]
    with archive.open("rb") as handle:
        loaded = docker.from_env().images.load(handle.read())
    assert [image.id for image in loaded] == [manifest["docker_image_id"]]


def test_a_planted_secret_appears_in_no_artifact_and_no_log(
    pushed: tuple[Path, dict], capfd: pytest.CaptureFixture[str]
) -> None:
    root, _ = pushed
    files = [p for p in (root / "out").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "build.log", "Dockerfile", "itest-push.sif"}
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    image = docker.from_env().api.inspect_image("itest-push:latest")
    assert SECRET not in json.dumps(image)


def test_push_and_save_of_an_up_to_date_image_publish_without_rebuilding(
    pushed: tuple[Path, dict], registry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, manifest = pushed
    recipe = root / "itest-push.toml"
    out = root / "out"
    archive = out / "itest-push" / "itest-push.docker.tar"
    archive.unlink()
    capsys.readouterr()
    argv = ["build", str(recipe), "--out", str(out), "--push", registry, "--save"]
    assert main([*argv, "--singularity", "native"]) == 0
    said = capsys.readouterr().out
    assert "up to date" in said and "saved without rebuilding" in said
    assert ": building" not in said
    assert archive.is_file()
    after = json.loads((out / "itest-push" / "manifest.json").read_text())
    assert after["built_at"] == manifest["built_at"]
    assert after["saved"]["size"] == archive.stat().st_size
    assert after["push"] == manifest["push"]


# The SIF beside the image: the same tag resolves to the image for Docker and to the SIF
# for Apptainer.

RUNTIME = installed_runtime()
NO_APPTAINER = "apptainer is not installed (neither on PATH nor in /opt/apptainer/bin)"
USER = "itest-user"


def built_sif(root: Path, name: str = "itest-push") -> Path:
    return root / "out" / name / f"{name}.sif"


def oras_client(registry: str, credentials: tuple[str, str] | None = None) -> Any:
    """The ORAS SDK's client for a plain-HTTP registry (basic authentication with
    ``credentials``)."""
    client = oras.provider.Registry(
        hostname=registry, insecure=True, auth_backend="basic" if credentials else "token"
    )
    if credentials:
        client.auth.set_basic_auth(*credentials)
    return client


def index_at(reference: str) -> Any:
    """The OCI index a tag on a plain-HTTP registry names."""
    repository, _, tag = reference.rpartition(":")
    host, _, path = repository.partition("/")
    answer = requests.get(
        f"http://{host}/v2/{path}/manifests/{tag}",
        headers={"Accept": oci.OCI_INDEX},
        timeout=30,
    )
    assert answer.headers["Content-Type"] == oci.OCI_INDEX
    return answer.json()


def test_the_sif_is_published_beside_the_image_and_recorded(
    pushed: tuple[Path, dict], registry: str
) -> None:
    root, manifest = pushed
    push = manifest["push"]
    log = (root / "out" / "itest-push" / "build.log").read_text()
    assert f"pushed SIF as {registry}/itest-push@{push['sif_digest']}" in log
    index = index_at(push["reference"])
    assert index["mediaType"] == oci.OCI_INDEX
    image = Platform.from_inspect(docker.from_env().api.inspect_image("itest-push:latest"))
    sif_child = oci.Descriptor.of(oci.OCI_MANIFEST, b"", oci.sif_platform(image)).to_json()
    first, *rest = index["manifests"]
    assert first["digest"] == push["sif_digest"]
    assert first.get("platform") == sif_child.get("platform")
    assert [(c["digest"], c["platform"]) for c in rest] == [(push["digest"], image.to_json())]


def test_the_sif_comes_back_byte_identical_through_oras(
    pushed: tuple[Path, dict], tmp_path: Path
) -> None:
    root, manifest = pushed
    push = manifest["push"]
    registry = push["registry"]
    files = oras_client(registry).pull(
        target=f"{push['by_digest'].split('@')[0]}@{push['sif_digest']}", outdir=str(tmp_path)
    )
    assert [Path(f).name for f in files] == ["itest-push.sif"]
    assert filecmp.cmp(files[0], built_sif(root), shallow=False)


@pytest.mark.skipif(RUNTIME is None, reason=NO_APPTAINER)
def test_the_sif_comes_back_byte_identical_through_apptainer_pull(
    pushed: tuple[Path, dict], tmp_path: Path
) -> None:
    root, manifest = pushed
    assert RUNTIME is not None
    pulled = tmp_path / "pulled.sif"
    subprocess.run(
        [
            RUNTIME.path,
            "pull",
            "--no-https",
            str(pulled),
            f"oras://{manifest['push']['reference']}",
        ],
        env={**os.environ, "APPTAINER_CACHEDIR": str(tmp_path / "cache")},
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert filecmp.cmp(pulled, built_sif(root), shallow=False)


@pytest.mark.skipif(RUNTIME is None, reason=NO_APPTAINER)
def test_the_sif_manifest_is_the_one_apptainer_push_writes(
    pushed: tuple[Path, dict], registry: str, tmp_path: Path
) -> None:
    root, manifest = pushed
    assert RUNTIME is not None
    subprocess.run(
        [
            RUNTIME.path,
            "push",
            "--no-https",
            str(built_sif(root)),
            f"oras://{registry}/itest-push-by-apptainer:1",
        ],
        env={**os.environ, "APPTAINER_CACHEDIR": str(tmp_path / "cache")},
        check=True,
        capture_output=True,
        timeout=600,
    )
    answer = requests.head(
        f"http://{registry}/v2/itest-push-by-apptainer/manifests/1",
        headers={"Accept": oci.OCI_MANIFEST},
        timeout=30,
    )
    assert answer.headers["Docker-Content-Digest"] == manifest["push"]["sif_digest"]


def test_docker_pull_of_the_tag_still_gives_the_image(pushed: tuple[Path, dict]) -> None:
    _, manifest = pushed
    client = docker.from_env()
    reference = manifest["push"]["reference"]
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(reference, force=True)
    assert client.images.pull(reference).id == manifest["docker_image_id"]


def forget_the_sif_push(out: Path, name: str, *, registry: str | None = None) -> None:
    """Rewrite the recorded push as one made before SIFs were published (to ``registry``
    instead, if given)."""
    path = out / name / "manifest.json"
    recorded = record.read(path)
    assert recorded is not None and recorded.push is not None
    push = replace(recorded.push, sif_digest=None, index_digest=None)
    if registry is not None:
        old = push.registry
        push = replace(
            push,
            registry=registry,
            reference=push.reference.replace(old, registry, 1),
            by_digest=push.by_digest.replace(old, registry, 1),
        )
    record.write(path, replace(recorded, push=push))


def pushed_record(out: Path, name: str) -> object:
    """The push as the manifest records it (the only part a failed push might change:
    the record of the run's inputs is refreshed before anything is published)."""
    return json.loads((out / name / "manifest.json").read_text())["push"]


def test_an_up_to_date_build_publishes_the_sif_its_record_lacks(
    pushed: tuple[Path, dict], registry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, manifest = pushed
    out = root / "out"
    client = docker.from_env()
    repository = manifest["push"]["by_digest"].split("@")[0]
    client.api.tag(manifest["docker_image_id"], repository, "latest")
    client.images.push(repository, "latest")  # the tag is the image alone again
    forget_the_sif_push(out, "itest-push")
    capsys.readouterr()
    argv = ["build", str(root / "itest-push.toml"), "--out", str(out), "--push", registry]
    assert main([*argv, "--singularity", "native"]) == 0
    assert "pushed without rebuilding" in capsys.readouterr().out
    after = json.loads((out / "itest-push" / "manifest.json").read_text())
    assert after["push"] == manifest["push"]
    assert after["built_at"] == manifest["built_at"]
    index = index_at(manifest["push"]["reference"])
    assert index["manifests"][0]["digest"] == manifest["push"]["sif_digest"]


def address_off_loopback() -> str | None:
    """This machine's address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("where", ["closed port", "plain HTTP off loopback"])
def test_a_sif_push_that_fails_is_one_line_and_nothing_is_recorded(
    pushed: tuple[Path, dict],
    where: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = pushed
    out = root / "out"
    recorded = (out / "itest-push" / "manifest.json").read_bytes()
    with contextlib.ExitStack() as stack:
        stack.callback((out / "itest-push" / "manifest.json").write_bytes, recorded)
        if where == "closed port":
            target, reason = f"localhost:{free_port()}", "cannot reach localhost:"
        else:
            host = address_off_loopback()
            if host is None:
                pytest.skip("this machine has no address off loopback")
            target = stack.enter_context(serving(tmp_path, host=host))
            reason = f"{target} does not speak HTTPS"
        forget_the_sif_push(out, "itest-push", registry=target)
        before = pushed_record(out, "itest-push")
        argv = ["build", str(root / "itest-push.toml"), "--out", str(out), "--push", target]
        assert main([*argv, "--singularity", "native"]) == 1
        assert pushed_record(out, "itest-push") == before
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("imgforge: error:")]
    assert line.startswith(
        f"imgforge: error: {root}/itest-push.toml: push: publishing the SIF as "
        f"{target}/itest-push:latest failed: {reason}"
    )


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry that asks for USER with password SECRET (htpasswd, bcrypt)."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        pytest.fail("htpasswd is not installed (scripts/ensure-engine.sh installs apache2-utils)")
    root = tmp_path_factory.mktemp("auth-registry")
    users = root / "htpasswd"
    subprocess.run(
        [htpasswd, "-B", "-i", "-c", str(users), USER], input=SECRET, text=True, check=True
    )
    with serving(root, htpasswd=users) as address:
        yield address


def test_with_credentials_the_sif_is_published_with_them_and_never_shown(
    auth_registry: str,
    standin_image: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "itest-push-auth"
    recipe = tmp_path / f"{name}.toml"
    recipe.write_text(f'base = "{STANDIN}"\n[env]\nAUTH = "yes"\n')
    monkeypatch.setenv("IMGFORGE_REGISTRY_USER", USER)
    monkeypatch.setenv("IMGFORGE_REGISTRY_PASSWORD", SECRET)
    out = tmp_path / "out"
    argv = ["build", str(recipe), "--out", str(out), "--push", auth_registry]
    try:
        assert main([*argv, "--singularity", "native", "--verbose"]) == 0
        push = json.loads((out / name / "manifest.json").read_text())["push"]
        anonymous = requests.get(f"http://{auth_registry}/v2/{name}/manifests/latest", timeout=30)
        assert anonymous.status_code == 401
        files = oras_client(auth_registry, (USER, SECRET)).pull(
            target=f"{auth_registry}/{name}@{push['sif_digest']}", outdir=str(tmp_path / "pulled")
        )
        assert filecmp.cmp(files[0], built_sif(tmp_path, name), shallow=False)
        captured = capfd.readouterr()
        assert SECRET not in captured.out + captured.err
        for path in (p for p in out.rglob("*") if p.is_file()):
            assert SECRET.encode() not in path.read_bytes(), path

        # Refused credentials: one line, nothing recorded.
        forget_the_sif_push(out, name)
        before = pushed_record(out, name)
        monkeypatch.setenv("IMGFORGE_REGISTRY_PASSWORD", "not-" + SECRET)
        assert main([*argv, "--singularity", "native"]) == 1
        err = capfd.readouterr().err
        [line] = [line for line in err.splitlines() if line.startswith("imgforge: error:")]
        assert f"{name}.toml: push: publishing the SIF as {auth_registry}/{name}:latest" in line
        assert f"{auth_registry} refused" in line and "HTTP 401" in line
        assert "Traceback" not in err and SECRET not in err
        assert pushed_record(out, name) == before
    finally:
        client = docker.from_env()
        for ref in (f"{name}:latest", f"{auth_registry}/{name}:latest"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(ref, force=True)


def test_a_registry_off_loopback_is_trusted_through_the_ca_bundle_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = address_off_loopback()
    if host is None:
        pytest.skip("this machine has no address off loopback")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}"]
        + ["-addext", f"subjectAltName=IP:{host}"],
        check=True,
        capture_output=True,
    )
    for variable in CA_BUNDLE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with serving(tmp_path, host=host, tls=(cert, key)) as address:
        with (
            pytest.raises(BuildError, match=f"TLS with {address} failed"),
            connect(address, None, insecure=False, log=Lines()),
        ):
            pass
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        with connect(address, None, insecure=False, log=Lines()) as remote:
            assert remote.put_blob("tls-check", b"{}") == oci.digest_of(b"{}")


def test_beside_an_image_of_another_architecture_each_client_takes_its_own(
    pushed: tuple[Path, dict], registry: str, tmp_path: Path
) -> None:
    """The index for an arm64 image (here the built image, declared arm64 in the index):
    `docker pull --platform linux/arm64` gives the image, `apptainer pull --arch arm64`
    the SIF, and Docker on amd64 finds nothing of its platform (the SIF is not taken)."""
    root, manifest = pushed
    client = docker.from_env()
    repository = f"{registry}/itest-push-arm64"
    client.api.tag(manifest["docker_image_id"], repository, "1")
    image_digest = oci.digest_of(
        requests.get(
            f"http://{registry}/v2/itest-push/manifests/{manifest['push']['digest']}",
            headers={"Accept": oci.DOCKER_MANIFEST},
            timeout=30,
        ).content
    )
    client.images.push(repository, "1")
    sif = built_sif(root)
    artifact = SifFile(sif, sif.name, manifest["sif"]["sha256"], sif.stat().st_size)
    with connect(registry, None, insecure=True, log=Lines()) as remote:
        publish_sif(
            remote,
            repository="itest-push-arm64",
            tag="1",
            sif=artifact,
            image_digest=image_digest,
            platform=Platform("linux", "arm64", "v8"),
            log=Lines(),
        )
    try:
        client.images.remove(f"{repository}:1", force=True)
        said = client.api.pull(repository, tag="1", stream=True, decode=True)
        assert "no matching manifest" in " ".join(str(c.get("error", "")) for c in said)
        assert (
            client.images.pull(repository, tag="1", platform="linux/arm64").id
            == (manifest["docker_image_id"])
        )
        if RUNTIME is None:
            pytest.skip(NO_APPTAINER)
        pulled = tmp_path / "pulled.sif"
        subprocess.run(
            [RUNTIME.path, "pull", "--arch", "arm64", "--no-https", str(pulled)]
            + [f"oras://{repository}:1"],
            env={**os.environ, "APPTAINER_CACHEDIR": str(tmp_path / "cache")},
            check=True,
            capture_output=True,
            timeout=600,
        )
        assert filecmp.cmp(pulled, sif, shallow=False)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(f"{repository}:1", force=True)
