"""What the loopback hub knows about one repository folder: files, git-style ids, the commit id.

A repository is a folder ``<root>/models/<repo id>`` or ``<root>/datasets/<repo id>`` (repo id ``name``
or ``org/name``). Its one revision is ``main``; the commit id is a hash of the file list and contents,
so it changes exactly when a file does. Ids follow the hub's conventions: a regular file's ``oid`` is
its git blob sha1, a file the hub keeps in LFS (weights, parquet, archives) also has a sha256 that the
hub sends as ``X-Linked-Etag`` and in the tree listing's ``lfs`` field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

REPO_TYPES = ("models", "datasets")
DEFAULT_BRANCH = "main"
LAST_MODIFIED = "2026-01-01T00:00:00.000Z"
# Suffixes the hub's default .gitattributes stores in LFS (the ones the stand-ins use, and their kin)
LFS_SUFFIXES = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".parquet", ".arrow"}
    | {".npy", ".npz", ".pkl", ".zip", ".gz", ".tar", ".zst", ".tgz"}
)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RepoFile:
    """One file of a repository: its path in the repo, where it lies on disk, and its ids."""

    path: str
    disk: Path
    size: int
    blob_id: str
    sha256: str | None  # set for LFS files

    def etag(self) -> str:
        """The id the hub sends as the file's etag (sha256 for LFS files, blob sha1 otherwise)."""
        return self.sha256 or self.blob_id

    def tree_entry(self) -> dict[str, Any]:
        """The file as the tree listing and paths-info describe it."""
        entry: dict[str, Any] = {"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path}
        if self.sha256 is not None:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": _pointer_size(self)}
        return entry


@dataclass(frozen=True)
class Repo:
    """A repository snapshot: its id, type (``models``/``datasets``), files by path and commit id."""

    repo_id: str
    repo_type: str
    files: dict[str, RepoFile]
    sha: str

    def folders(self) -> set[str]:
        """Every folder path that holds a file (``""`` is the root)."""
        out = {""}
        for path in self.files:
            out.update(str(p) for p in PurePosixPath(path).parents if str(p) != ".")
        return out

    def folder_entry(self, path: str) -> dict[str, Any]:
        """A folder as the tree listing describes it (its oid hashes the paths and ids below it)."""
        below = sorted(f"{p}:{f.blob_id}" for p, f in self.files.items() if p.startswith(path + "/"))
        return {"type": "directory", "oid": _sha1("\n".join(below).encode()), "path": path}

    def entry(self, path: str) -> dict[str, Any] | None:
        """The tree entry for a file or folder path, or None if the repository has no such path."""
        if path in self.files:
            return self.files[path].tree_entry()
        if path and path in self.folders():
            return self.folder_entry(path)
        return None

    def listing(self, folder: str, recursive: bool) -> list[dict[str, Any]] | None:
        """Tree entries under ``folder`` (direct children, or all descendants), None if no such folder."""
        folder = folder.strip("/")
        if folder not in self.folders():
            return None
        prefix = folder + "/" if folder else ""
        paths = sorted((set(self.files) | self.folders()) - {""})
        below = [p for p in paths if p.startswith(prefix) and p != folder]
        if not recursive:
            below = [p for p in below if "/" not in p[len(prefix) :]]
        return [self.entry(p) for p in below]  # type: ignore[misc]

    def info(self) -> dict[str, Any]:
        """The ``/api/{models,datasets}/<repo>[/revision/<rev>]`` answer."""
        siblings = [{"rfilename": p, "size": f.size} for p, f in sorted(self.files.items())]
        return {
            "_id": self.sha[:24],
            "id": self.repo_id,
            "sha": self.sha,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "lastModified": LAST_MODIFIED,
            "createdAt": LAST_MODIFIED,
            "siblings": siblings,
            "usedStorage": sum(f.size for f in self.files.values()),
        }


def valid_repo_id(repo_id: str) -> bool:
    """True for ``name`` or ``org/name`` made of safe path parts."""
    parts = repo_id.split("/")
    return 1 <= len(parts) <= 2 and all(p and p not in (".", "..") and not p.startswith(".") for p in parts)


def load_repo(root: Path, repo_type: str, repo_id: str) -> Repo | None:
    """Scan ``<root>/<repo_type>/<repo_id>`` into a :class:`Repo`, or None if there is no such folder."""
    if repo_type not in REPO_TYPES or not valid_repo_id(repo_id):
        return None
    folder = root / repo_type / repo_id
    if not folder.is_dir():
        return None
    files = {}
    for disk in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = disk.relative_to(folder).as_posix()
        if any(part.startswith(".") and part != ".gitattributes" for part in rel.split("/")):
            continue  # hidden working files (e.g. .cache) are not part of a hub repo
        files[rel] = _describe(rel, disk)
    digest = hashlib.sha1(f"{repo_type}/{repo_id}".encode())
    for rel, f in files.items():
        digest.update(f"\n{rel}:{f.blob_id}".encode())
    return Repo(repo_id=repo_id, repo_type=repo_type, files=files, sha=digest.hexdigest())


def _describe(rel: str, disk: Path) -> RepoFile:
    size = disk.stat().st_size
    blob = hashlib.sha1(f"blob {size}\0".encode())
    sha256 = hashlib.sha256() if PurePosixPath(rel).suffix in LFS_SUFFIXES else None
    with disk.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            blob.update(chunk)
            if sha256 is not None:
                sha256.update(chunk)
    if sha256 is None:
        return RepoFile(rel, disk, size, blob.hexdigest(), None)
    digest = sha256.hexdigest()
    # An LFS file's blob in git is its pointer file, so the git oid is the pointer's blob id
    pointer = _pointer(digest, size)
    return RepoFile(rel, disk, size, _sha1(f"blob {len(pointer)}\0".encode() + pointer), digest)


def _pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _pointer_size(f: RepoFile) -> int:
    return len(_pointer(f.sha256 or "", f.size))


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()
