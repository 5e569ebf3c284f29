"""treadle.core.fileio: the function API on every built-in storage.

Each behavioural test runs three times: on plain local paths (LocalBackend), on ``memory://``
(FsspecBackend over fsspec's in-memory filesystem) and on ``file://`` URIs (FsspecBackend over
the local filesystem).
"""

from __future__ import annotations

import io
import os
import pickle
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from treadle.core import fileio
from treadle.core.fileio.backends.fsspec_backend import FsspecBackend
from treadle.core.fileio.backends.local import LocalBackend


class Store:
    """A scratch root on one storage kind, with helpers that bypass the API under test."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        if kind == "local":
            self.root = str(tmp_path / "root")
        elif kind == "file":
            self.root = "file://" + (tmp_path / "root").as_posix()
        else:
            self.root = f"memory://treadle-tests/{uuid.uuid4().hex}"

    def path(self, *parts: str) -> str:
        if self.kind == "local":
            return os.path.join(self.root, *parts)
        return "/".join([self.root, *parts])

    @property
    def backend_name(self) -> str:
        return "LocalBackend" if self.kind == "local" else f"FsspecBackend({self.kind})"

    def all_names(self) -> list[str]:
        """Every file below the root, hidden ones included (to spot leftover temp files)."""
        if self.kind == "memory":
            import fsspec

            fs = fsspec.filesystem("memory")
            base = fs._strip_protocol(self.root)
            return sorted(p[len(base) + 1 :] for p in fs.find(base))
        base = self.tmp_path / "root"
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    def cleanup(self) -> None:
        if self.kind == "memory":
            import fsspec

            fs = fsspec.filesystem("memory")
            base = fs._strip_protocol(self.root)
            if fs.exists(base):
                fs.rm(base, recursive=True)


@pytest.fixture(params=["local", "memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    s = Store(request.param, tmp_path)
    yield s
    s.cleanup()


def make_tree(store: Store) -> None:
    for rel in ["a.txt", "b.py", ".hidden", "sub/c.txt", "sub/d.py", "sub/deeper/e.txt"]:
        fileio.put(rel.encode(), store.path(*rel.split("/")))


def rel_set(paths) -> set[str]:
    return {p.replace(os.sep, "/") for p in paths}


# ---------------------------------------------------------------------- reading and writing


def test_put_get_roundtrip_creates_parents_and_overwrites(store: Store) -> None:
    target = store.path("deep", "er", "blob.bin")
    fileio.put(b"\x00\x01first", target)
    assert fileio.get(target) == b"\x00\x01first"
    fileio.put(b"second", target)
    assert fileio.get(target) == b"second"
    assert store.all_names() == ["deep/er/blob.bin"]


def test_put_text_get_text_with_encoding(store: Store) -> None:
    target = store.path("t.txt")
    fileio.put_text("héllo wörld", target)
    assert fileio.get_text(target) == "héllo wörld"
    assert fileio.get(target) == "héllo wörld".encode()
    fileio.put_text("héllo", target, encoding="latin-1")
    assert fileio.get(target) == "héllo".encode("latin-1")
    assert fileio.get_text(target, encoding="latin-1") == "héllo"


def test_exists_isdir_isfile(store: Store) -> None:
    fileio.put(b"x", store.path("d", "f.txt"))
    assert fileio.exists(store.path("d"))
    assert fileio.exists(store.path("d", "f.txt"))
    assert fileio.isdir(store.path("d"))
    assert not fileio.isfile(store.path("d"))
    assert fileio.isfile(store.path("d", "f.txt"))
    assert not fileio.isdir(store.path("d", "f.txt"))
    missing = store.path("nope")
    assert not fileio.exists(missing)
    assert not fileio.isdir(missing)
    assert not fileio.isfile(missing)


def test_join_path(store: Store) -> None:
    joined = fileio.join_path(store.root, "a", "b.txt")
    assert joined == store.path("a", "b.txt")
    assert fileio.join_path("memory://x/", "y") == "memory://x/y"
    assert fileio.join_path("memory://", "y") == "memory://y"


def test_pathlike_arguments_are_local(tmp_path: Path) -> None:
    target = tmp_path / "p" / "x.json"
    fileio.dump({"a": 1}, target)
    assert fileio.exists(target)
    assert fileio.isfile(target)
    assert fileio.load(target) == {"a": 1}
    assert fileio.get_file_backend(target) is fileio.get_file_backend(str(target))


# ---------------------------------------------------------------------- listing


def test_list_dir_or_file_variants(store: Store) -> None:
    make_tree(store)
    root = store.root
    assert rel_set(fileio.list_dir_or_file(root)) == {"a.txt", "b.py", "sub"}
    assert rel_set(fileio.list_dir_or_file(root, list_dir=False)) == {"a.txt", "b.py"}
    assert rel_set(fileio.list_dir_or_file(root, list_file=False)) == {"sub"}
    assert rel_set(fileio.list_dir_or_file(root, list_file=False, recursive=True)) == {
        "sub",
        "sub/deeper",
    }
    assert rel_set(fileio.list_dir_or_file(root, recursive=True)) == {
        "a.txt",
        "b.py",
        "sub",
        "sub/c.txt",
        "sub/d.py",
        "sub/deeper",
        "sub/deeper/e.txt",
    }
    assert rel_set(fileio.list_dir_or_file(root, list_dir=False, suffix=".txt")) == {"a.txt"}
    assert rel_set(
        fileio.list_dir_or_file(root, list_dir=False, suffix=".txt", recursive=True)
    ) == {"a.txt", "sub/c.txt", "sub/deeper/e.txt"}
    assert rel_set(
        fileio.list_dir_or_file(root, list_dir=False, suffix=(".py", ".nothing"), recursive=True)
    ) == {"b.py", "sub/d.py"}
    assert list(fileio.list_dir_or_file(root, list_dir=False, list_file=False)) == []


def test_list_dir_or_file_yields_a_directory_before_its_content(store: Store) -> None:
    make_tree(store)
    listed = [p.replace(os.sep, "/") for p in fileio.list_dir_or_file(store.root, recursive=True)]
    assert listed.index("sub") < listed.index("sub/c.txt")
    assert listed.index("sub/deeper") < listed.index("sub/deeper/e.txt")


def test_list_dir_or_file_bad_arguments_raise_at_call(store: Store) -> None:
    make_tree(store)
    with pytest.raises(TypeError, match="`suffix` must be None when `list_dir` is True"):
        fileio.list_dir_or_file(store.root, suffix=".txt")
    with pytest.raises(TypeError, match="str or a tuple"):
        fileio.list_dir_or_file(store.root, list_dir=False, suffix=[".txt"])  # type: ignore[arg-type]
    missing = store.path("missing-dir")
    with pytest.raises(FileNotFoundError) as excinfo:
        fileio.list_dir_or_file(missing)  # no iteration needed
    assert missing in str(excinfo.value)
    assert store.backend_name in str(excinfo.value)
    with pytest.raises(NotADirectoryError):
        fileio.list_dir_or_file(store.path("a.txt"))


# ---------------------------------------------------------------------- local paths, copies


def test_get_local_path(store: Store) -> None:
    target = store.path("data", "w.pkl")
    fileio.put(b"weights", target)
    with fileio.get_local_path(target) as local:
        assert os.path.isfile(local)
        assert Path(local).read_bytes() == b"weights"
        assert local.endswith(".pkl")
    if store.kind == "memory":
        assert not os.path.exists(local), "the temporary download must be removed"
    else:
        assert os.path.exists(local), "a local file is yielded as is and kept"
    with pytest.raises(FileNotFoundError), fileio.get_local_path(store.path("nope.pkl")):
        pass


def test_copyfile_to_file_and_into_directory(store: Store) -> None:
    src = store.path("src", "a.txt")
    fileio.put(b"A", src)
    out = fileio.copyfile(src, store.path("dst", "b.txt"))
    assert out == store.path("dst", "b.txt")
    assert fileio.get(out) == b"A"
    fileio.put(b"old", store.path("dir", "keep.txt"))
    into = fileio.copyfile(src, store.path("dir"))
    assert into == fileio.join_path(store.path("dir"), "a.txt")
    assert fileio.get(into) == b"A"
    with pytest.raises(FileNotFoundError, match="nope"):
        fileio.copyfile(store.path("nope"), store.path("x"))


def test_copytree(store: Store) -> None:
    make_tree(store)
    dst = store.root + "-copy"
    out = fileio.copytree(store.path("sub"), dst)
    try:
        assert out == dst
        assert fileio.get(fileio.join_path(dst, "deeper", "e.txt")) == b"sub/deeper/e.txt"
        assert rel_set(fileio.list_dir_or_file(dst, list_dir=False, recursive=True)) == {
            "c.txt",
            "d.py",
            "deeper/e.txt",
        }
        with pytest.raises(FileExistsError):
            fileio.copytree(store.path("sub"), dst)
        with pytest.raises(FileNotFoundError):
            fileio.copytree(store.path("nope"), dst + "2")
    finally:
        fileio.rmtree(dst)


def test_copy_from_and_to_local(store: Store, tmp_path: Path) -> None:
    local_src = tmp_path / "local_src.bin"
    local_src.write_bytes(b"payload")
    remote = fileio.copyfile_from_local(local_src, store.path("up", "x.bin"))
    assert fileio.get(remote) == b"payload"
    fileio.put(b"", store.path("updir", "placeholder"))
    into = fileio.copyfile_from_local(local_src, store.path("updir"))
    assert fileio.get(into) == b"payload"

    down = fileio.copyfile_to_local(remote, tmp_path / "down" / "y.bin")
    assert Path(down).read_bytes() == b"payload"
    into_local = fileio.copyfile_to_local(remote, tmp_path / "down")
    assert Path(into_local) == tmp_path / "down" / "x.bin"

    local_tree = tmp_path / "tree"
    (local_tree / "n").mkdir(parents=True)
    (local_tree / "n" / "f.txt").write_text("F")
    (local_tree / "g.txt").write_text("G")
    up = fileio.copytree_from_local(local_tree, store.path("uptree"))
    assert fileio.get_text(fileio.join_path(up, "n", "f.txt")) == "F"
    back = fileio.copytree_to_local(up, tmp_path / "back")
    assert (Path(back) / "n" / "f.txt").read_text() == "F"
    assert (Path(back) / "g.txt").read_text() == "G"


def test_remove_and_rmtree(store: Store) -> None:
    make_tree(store)
    fileio.remove(store.path("a.txt"))
    assert not fileio.exists(store.path("a.txt"))
    with pytest.raises(FileNotFoundError) as excinfo:
        fileio.remove(store.path("a.txt"))
    assert store.path("a.txt") in str(excinfo.value)
    assert store.backend_name in str(excinfo.value)
    with pytest.raises(IsADirectoryError):
        fileio.remove(store.path("sub"))
    fileio.rmtree(store.path("sub"))
    assert not fileio.exists(store.path("sub"))
    assert fileio.exists(store.path("b.py"))
    with pytest.raises(FileNotFoundError, match="sub"):
        fileio.rmtree(store.path("sub"))


def test_missing_file_error_names_path_and_backend(store: Store) -> None:
    missing = store.path("no", "such.json")
    for call in (fileio.get, fileio.get_text, fileio.load):
        with pytest.raises(FileNotFoundError) as excinfo:
            call(missing)
        assert excinfo.value.filename == missing
        assert repr(missing) in str(excinfo.value)
        assert store.backend_name in str(excinfo.value)


def test_copy_if_symlink_fails_local(tmp_path: Path) -> None:
    src = tmp_path / "real.txt"
    src.write_text("x")
    assert fileio.copy_if_symlink_fails(str(src), str(tmp_path / "link.txt")) is True
    assert os.path.islink(tmp_path / "link.txt")
    assert fileio.get_text(str(tmp_path / "link.txt")) == "x"


def test_copy_if_symlink_fails_copies_on_memory() -> None:
    root = f"memory://treadle-tests/{uuid.uuid4().hex}"
    try:
        fileio.put(b"x", root + "/a")
        assert fileio.copy_if_symlink_fails(root + "/a", root + "/b") is False
        assert fileio.get(root + "/b") == b"x"
    finally:
        fileio.rmtree(root)


# ---------------------------------------------------------------------- load / dump


OBJ = {"name": "run", "lr": 0.1, "steps": [1, 2, 3], "nested": {"ok": True, "none": None}}


@pytest.mark.parametrize("suffix", ["json", "yaml", "yml", "pkl", "pickle"])
def test_load_dump_roundtrip_on_paths(store: Store, suffix: str) -> None:
    target = store.path("cfg", f"obj.{suffix}")
    assert fileio.dump(OBJ, target) is None
    assert fileio.load(target) == OBJ


@pytest.mark.parametrize(
    ("fmt", "kind"), [("json", str), ("yaml", str), ("yml", str), ("pkl", bytes), ("pickle", bytes)]
)
def test_dump_to_string_and_file_objects(fmt: str, kind: type) -> None:
    text = fileio.dump(OBJ, file_format=fmt)
    assert isinstance(text, kind)
    buffer = io.StringIO(text) if kind is str else io.BytesIO(text)
    assert fileio.load(buffer, file_format=fmt) == OBJ

    out = io.StringIO() if kind is str else io.BytesIO()
    assert fileio.dump(OBJ, out, file_format=fmt) is None
    out.seek(0)
    assert fileio.load(out, file_format=fmt) == OBJ


def test_format_specific_behaviour(tmp_path: Path) -> None:
    assert fileio.dump({"a": 1}, file_format="json", indent=2) == '{\n  "a": 1\n}'
    # sets and ranges become lists in json, as in MMEngine
    assert fileio.load(
        io.StringIO(fileio.dump({"s": {3}, "r": range(2)}, file_format="json")), file_format="json"
    ) == {
        "s": [3],
        "r": [0, 1],
    }
    with pytest.raises(TypeError, match="not JSON serializable"):
        fileio.dump({"x": object()}, file_format="json")
    # tuples survive yaml (dumped as !!python/tuple, read by the safe loader)
    target = tmp_path / "t.yaml"
    fileio.dump({"t": (1, 2)}, target)
    assert "!!python/tuple" in target.read_text()
    assert fileio.load(target) == {"t": (1, 2)}
    # the default yaml loader is safe: arbitrary Python objects are refused
    import yaml

    evil = "x: !!python/object/apply:os.getcwd []\n"
    with pytest.raises(yaml.constructor.ConstructorError):
        fileio.load(io.StringIO(evil), file_format="yaml")
    assert fileio.load(io.StringIO(evil), file_format="yaml", Loader=yaml.UnsafeLoader) == {
        "x": os.getcwd()
    }
    # suffix matching is case-insensitive; file_format overrides the suffix
    upper = tmp_path / "UP.JSON"
    fileio.dump([1], upper)
    assert fileio.load(upper) == [1]
    odd = tmp_path / "data.bin"
    fileio.dump([2], odd, file_format="pkl")
    assert pickle.loads(odd.read_bytes()) == [2]
    assert fileio.load(odd, file_format="pickle") == [2]


def test_json_numpy_values_without_numpy_import() -> None:
    np = pytest.importorskip("numpy")
    text = fileio.dump({"a": np.arange(3), "b": np.float32(1.5)}, file_format="json")
    assert fileio.load(io.StringIO(text), file_format="json") == {"a": [0, 1, 2], "b": 1.5}


def test_unknown_format_errors_list_supported(tmp_path: Path) -> None:
    with pytest.raises(fileio.UnsupportedFormatError) as excinfo:
        fileio.dump({"a": 1}, str(tmp_path / "x.txt"))
    message = str(excinfo.value)
    assert "'txt'" in message
    assert "x.txt" in message
    assert "json, pickle, pkl, yaml, yml" in message
    assert isinstance(excinfo.value, TypeError)  # MMEngine raises TypeError here
    assert not (tmp_path / "x.txt").exists()

    with pytest.raises(fileio.UnsupportedFormatError, match="json, pickle"):
        fileio.load(tmp_path / "x.toml")
    with pytest.raises(fileio.UnsupportedFormatError, match="no suffix"):
        fileio.load(str(tmp_path / "README"))
    with pytest.raises(fileio.UnsupportedFormatError, match="file_format must be given"):
        fileio.load(io.StringIO("{}"))
    with pytest.raises(ValueError, match="file_format must be given when file is None"):
        fileio.dump({"a": 1})
    with pytest.raises(TypeError, match="path or a file object"):
        fileio.load(42, file_format="json")  # type: ignore[arg-type]


def test_register_handler_adds_a_format(tmp_path: Path) -> None:
    @fileio.register_handler(["treadletxt", ".TreadleLines"], sep="|")
    class LinesHandler(fileio.BaseFileHandler):
        def __init__(self, sep: str) -> None:
            self.sep = sep

        def load_from_fileobj(self, file, **kwargs):
            return file.read().split(self.sep)

        def dump_to_fileobj(self, obj, file, **kwargs):
            file.write(self.dump_to_str(obj))

        def dump_to_str(self, obj, **kwargs):
            return self.sep.join(obj)

    try:
        target = tmp_path / "x.treadlelines"
        fileio.dump(["a", "b"], target)
        assert target.read_text() == "a|b"
        assert fileio.load(target) == ["a", "b"]
        assert fileio.dump(["c"], file_format="treadletxt") == "c"
        with pytest.raises(TypeError, match="BaseFileHandler instance"):
            fileio.register_handler("bad")(dict)  # type: ignore[arg-type,type-var]
    finally:
        fileio.file_handlers.pop("treadletxt", None)
        fileio.file_handlers.pop("treadlelines", None)


# ---------------------------------------------------------------------- atomic writes


def test_failed_dump_leaves_previous_file_and_no_temp(store: Store) -> None:
    target = store.path("state.pkl")
    fileio.dump({"v": 1}, target)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        fileio.dump({"v": lambda: 2}, target)  # unpicklable: fails while serializing
    assert fileio.load(target) == {"v": 1}
    json_target = store.path("state.json")
    fileio.dump({"v": 1}, json_target)
    with pytest.raises(TypeError):
        fileio.dump({"v": object()}, json_target)
    assert fileio.load(json_target) == {"v": 1}
    assert store.all_names() == ["state.json", "state.pkl"]


def test_failure_mid_write_leaves_previous_file_and_no_temp(store: Store) -> None:
    target = store.path("ckpt", "model.bin")
    fileio.put(b"old", target)
    with pytest.raises(TypeError):
        fileio.put("not bytes", target)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fileio.put_text(b"not text", target)  # type: ignore[arg-type]
    assert fileio.get(target) == b"old"
    assert store.all_names() == ["ckpt/model.bin"]


def test_failure_at_rename_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out" / "f.json"
    fileio.dump({"old": True}, target)

    def boom(src: str, dst: str) -> None:
        assert Path(src).read_text() == '{"new": true}'  # the new content was complete
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        fileio.dump({"new": True}, target)
    monkeypatch.undo()
    assert fileio.load(target) == {"old": True}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f.json"]


def test_failure_at_move_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    root = f"memory://treadle-tests/{uuid.uuid4().hex}"
    target = root + "/f.txt"
    fileio.put_text("old", target)
    backend = fileio.get_file_backend(target)
    assert isinstance(backend, FsspecBackend)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("move failed")

    monkeypatch.setattr(backend.fs, "mv", boom)
    try:
        with pytest.raises(OSError, match="move failed"):
            fileio.put_text("new", target)
        monkeypatch.undo()
        assert fileio.get_text(target) == "old"
        assert list(backend.fs.find(backend._path(root))) == [backend._path(target)]
    finally:
        fileio.rmtree(root)


def test_object_stores_write_with_a_single_put(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FsspecBackend("memory", rename_writes=False)
    root = f"memory://treadle-tests/{uuid.uuid4().hex}"
    calls: list[str] = []
    real = backend.fs.pipe_file
    monkeypatch.setattr(backend.fs, "pipe_file", lambda p, d, **kw: (calls.append(p), real(p, d)))
    try:
        backend.put(b"x", root + "/k")
        assert calls == [backend._path(root + "/k")]
        assert FsspecBackend("memory")._rename_writes is True
    finally:
        backend.rmtree(root)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_keeps_open_semantics_for_modes_and_links(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as f:
        f.write("x")
    written = tmp_path / "written.txt"
    fileio.put_text("x", str(written))
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)

    os.chmod(written, 0o600)
    fileio.put_text("y", str(written))
    assert stat.S_IMODE(written.stat().st_mode) == 0o600

    link = tmp_path / "link.txt"
    link.symlink_to(written)
    fileio.put_text("through", str(link))
    assert link.is_symlink()
    assert written.read_text() == "through"


def test_fsync_option(tmp_path: Path) -> None:
    backend = fileio.get_file_backend(str(tmp_path), backend_args={"fsync": True})
    assert isinstance(backend, LocalBackend)
    assert backend.fsync is True
    fileio.put(b"durable", str(tmp_path / "d" / "f"), backend_args={"fsync": True})
    fileio.dump({"a": 1}, str(tmp_path / "d" / "f.json"), backend_args={"fsync": True})
    assert (tmp_path / "d" / "f").read_bytes() == b"durable"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f", "f.json"]


# ---------------------------------------------------------------------- dispatch


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("s3://bucket/key", "s3"),
        ("S3://bucket/key", "s3"),
        ("memory://x", "memory"),
        ("file:///tmp/x", "file"),
        ("cluster1:s3://bucket/key", "s3"),
        ("/abs/path.json", "local"),
        ("relative/path.json", "local"),
        ("C:\\data\\x.json", "local"),
        ("C:/data/x.json", "local"),
        ("C://data/x.json", "local"),
        (Path("s3://looks/remote"), "local"),
    ],
)
def test_parse_uri_scheme(uri: str | Path, scheme: str) -> None:
    assert fileio.parse_uri_scheme(uri) == scheme


def test_backend_instances_are_cached(tmp_path: Path) -> None:
    local = fileio.get_file_backend(str(tmp_path / "a"))
    assert isinstance(local, LocalBackend)
    assert fileio.get_file_backend("relative/b") is local
    assert fileio.get_file_backend(backend_args={"backend": "local"}) is local
    mem = fileio.get_file_backend("memory://a")
    assert isinstance(mem, FsspecBackend)
    assert mem.protocol == "memory"
    assert fileio.get_file_backend("memory://other/b") is mem
    assert fileio.get_file_backend("file:///x") is not mem
    synced = fileio.get_file_backend("/x", backend_args={"fsync": True})
    assert synced is not local
    assert synced is fileio.get_file_backend("/y", backend_args={"fsync": True})
    fresh = fileio.get_file_backend("/x", enable_singleton=False)
    assert fresh is not local
    assert isinstance(fresh, LocalBackend)
    nested = {"opts": {"b": [1, 2], "a": 1}, "flag": True}
    reordered = {"flag": True, "opts": {"a": 1, "b": [1, 2]}}
    mem_opts = fileio.get_file_backend("memory://x", backend_args={"backend": "memory", **nested})
    assert mem_opts is fileio.get_file_backend(
        "memory://y", backend_args={**reordered, "backend": "memory"}
    )
    assert mem_opts is not mem


def test_registered_backend_wins_over_fsspec() -> None:
    from treadle.core.registry import FILE_BACKENDS

    scheme = f"treadletest{uuid.uuid4().hex[:8]}"

    class DictBackend(LocalBackend):
        pass

    FILE_BACKENDS.register_module(name=scheme, module=DictBackend)
    try:
        backend = fileio.get_file_backend(f"{scheme}://bucket/x")
        assert type(backend) is DictBackend
        assert fileio.get_file_backend(backend_args={"backend": scheme}) is backend
    finally:
        FILE_BACKENDS.unregister(scheme)


def test_unknown_scheme_error_names_uri_and_scheme() -> None:
    with pytest.raises(fileio.UnsupportedSchemeError) as excinfo:
        fileio.get("nosuchproto://bucket/k.json")
    message = str(excinfo.value)
    assert "'nosuchproto'" in message
    assert "nosuchproto://bucket/k.json" in message
    assert "fsspec does not know" in message
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(fileio.UnsupportedSchemeError, match=r"'petrel'.*backend_args"):
        fileio.get_file_backend(backend_args={"backend": "petrel"})
    with pytest.raises(ValueError, match="needs a uri"):
        fileio.get_file_backend()


def test_plugin_scheme_error_has_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from treadle.core.fileio import dispatch

    monkeypatch.setitem(dispatch.PLUGIN_SCHEMES, "treadleplug", "treadle-fileio-treadleplug")
    with pytest.raises(
        fileio.UnsupportedSchemeError, match="pip install treadle-fileio-treadleplug"
    ):
        fileio.exists("treadleplug://bucket/key")


def test_s3_without_plugin_points_to_treadle_fileio_s3() -> None:
    import importlib.util

    from treadle.core.registry import FILE_BACKENDS

    if FILE_BACKENDS.get("s3") is not None or importlib.util.find_spec("s3fs") is not None:
        pytest.skip("an s3 backend is installed here")
    with pytest.raises(fileio.UnsupportedSchemeError) as excinfo:
        fileio.load("s3://bucket/cfg.json")
    message = str(excinfo.value)
    assert "s3://bucket/cfg.json" in message
    assert "'s3'" in message
    assert "pip install treadle-fileio-s3" in message
    assert "Install s3fs" in message  # fsspec's own hint, as the alternative


def test_fsspec_protocol_with_missing_implementation(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.registry import known_implementations

    monkeypatch.setitem(
        known_implementations,
        "treadlefake",
        {"class": "treadle_no_such_pkg.FS", "err": "Install treadle-no-such-pkg for treadlefake"},
    )
    with pytest.raises(fileio.UnsupportedSchemeError, match="Install treadle-no-such-pkg"):
        fileio.get_file_backend("treadlefake://x")


def test_import_is_cheap() -> None:
    code = (
        "import sys, treadle.core.fileio, treadle.core.logging\n"
        "heavy = [m for m in ('fsspec', 'yaml', 'torch', 'pickle') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_local_copy_if_symlink_fails_copies_when_links_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError("no symlinks here")

    monkeypatch.setattr(os, "symlink", no_links)
    backend = LocalBackend()
    (tmp_path / "f.txt").write_text("x")
    assert backend.copy_if_symlink_fails(str(tmp_path / "f.txt"), str(tmp_path / "g.txt")) is False
    assert (tmp_path / "g.txt").read_text() == "x"
    assert not os.path.islink(tmp_path / "g.txt")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("y")
    assert backend.copy_if_symlink_fails(str(tmp_path / "d"), str(tmp_path / "e")) is False
    assert (tmp_path / "e" / "a.txt").read_text() == "y"
    # copyfile into a directory keeps the file's name
    assert backend.copyfile(str(tmp_path / "f.txt"), str(tmp_path / "d")) == str(
        tmp_path / "d" / "f.txt"
    )


def test_temp_path_for_takes_a_path_module() -> None:
    import posixpath

    from treadle.core.fileio._atomic import temp_path_for

    tmp = temp_path_for("bucket/dir/model.pth", posixpath)
    assert tmp.startswith("bucket/dir/.model.pth.")
    assert tmp.endswith(".tmp")
    assert temp_path_for("model.pth", posixpath).startswith(".model.pth.")
    assert os.path.dirname(temp_path_for(os.path.join("a", "b.txt"))) == "a"


def test_json_dump_converts_tensors() -> None:
    torch = pytest.importorskip("torch")
    text = fileio.dump({"a": torch.tensor(2.5), "b": torch.arange(3)}, file_format="json")
    assert fileio.load(io.StringIO(text), file_format="json") == {"a": 2.5, "b": [0, 1, 2]}
