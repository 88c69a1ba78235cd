"""What cdk-assets needs from ``docker`` to publish an image asset, without a Docker engine.

cdk-assets (bundled in the aws-cdk CLI, lib/private/docker.ts) runs, per image asset:
``docker inspect cdkasset-<hash>`` (exit 1 = not built yet), ``docker build --tag
cdkasset-<hash> [--file <dockerfile>] ... .`` in the asset directory, ``docker login --username AWS
--password-stdin <registry>`` (password on stdin), ``docker tag cdkasset-<hash>
<repo-uri>:<hash>`` and ``docker push <repo-uri>:<hash>``. This builds nothing: ``build``
checks the context has its Dockerfile and every local ``COPY``/``ADD`` source the Dockerfile
names (what a real build fails on first when .dockerignore leaves a file out) and records the
tag, and ``push`` registers a
manifest in the emulator's ECR (``PutImage`` at AWS_ENDPOINT_URL), so the pushed tag can be
read back like a real one. Every call is appended to $EMULATOR_DOCKER_STATE/calls.jsonl.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def _state() -> Path:
    state = Path(os.environ["EMULATOR_DOCKER_STATE"])
    state.mkdir(parents=True, exist_ok=True)
    return state


def _built() -> set[str]:
    path = _state() / "built.txt"
    return set(path.read_text().split()) if path.exists() else set()


def _add_built(tag: str) -> None:
    with (_state() / "built.txt").open("a") as out:
        out.write(tag + "\n")


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def _copied(dockerfile: Path) -> list[str]:
    """The build-context sources of the Dockerfile's COPY/ADD lines (not --from=, not URLs)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if len(words) < 3 or words[0].upper() not in ("COPY", "ADD"):
            continue
        if any(w.startswith("--from") for w in words[1:]):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        sources += [s for s in args[:-1] if "://" not in s]
    return sources


def _build(rest: list[str]) -> int:
    dockerfile = Path(_option(rest, "--file") or "Dockerfile")
    if not dockerfile.is_file():
        print(f"stand-in docker: no {dockerfile} in {Path.cwd()}", file=sys.stderr)
        return 1
    context = Path(rest[-1]) if rest else Path()
    missing = [s for s in _copied(dockerfile) if not (context / s).exists()]
    if missing:
        print(
            f"stand-in docker: {dockerfile} copies {missing}, not in {context.resolve()}",
            file=sys.stderr,
        )
        return 1
    tag = _option(rest, "--tag")
    if tag is None:
        return 1
    _add_built(tag)
    return 0


def _push(target: str) -> int:
    import boto3  # noqa: PLC0415 - only push needs it (and it is slow to import)

    registry_repo, tag = target.rsplit(":", 1)
    registry, repository = registry_repo.split("/", 1)
    region = registry.split(".")[3]
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
        },
        "layers": [],
    }
    ecr = boto3.client("ecr", region_name=region)
    ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
    return 0


def main(args: list[str]) -> int:
    while args and args[0] == "--config":  # cdk-assets passes its credential-helper config
        args = args[2:]
    if not args:
        print("stand-in docker: no command", file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    with (_state() / "calls.jsonl").open("a") as out:
        out.write(json.dumps({"command": command, "args": rest, "cwd": str(Path.cwd())}) + "\n")
    if command == "inspect":
        return 0 if rest and rest[-1] in _built() else 1
    if command == "build":
        return _build(rest)
    if command == "login":
        sys.stdin.read()
        print("Login Succeeded")
        return 0
    if command == "tag":
        if rest[0] not in _built():
            print(f"stand-in docker: no image {rest[0]}", file=sys.stderr)
            return 1
        _add_built(rest[1])
        return 0
    if command == "push":
        if rest[-1] not in _built():
            print(f"stand-in docker: no image {rest[-1]}", file=sys.stderr)
            return 1
        return _push(rest[-1])
    if command == "images":
        return 0
    print(f"stand-in docker: {command} is not something cdk-assets asks for", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
