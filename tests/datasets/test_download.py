"""download_dataset against a local http.server: verified unpack, checksum mismatch, refusals."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile

import pytest

from reclm_dagster.datasets import download, load_dataset
from reclm_dagster.datasets.download import Archive, DownloadError, download_dataset

MOVIES = "movieId,title,genres\n1,Toy Story (1995),Animation|Children\n"
RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture()
def server(tmp_path):
    """Serves tmp_path/srv on 127.0.0.1:<free port>; shuts down after the test, or after 60 s at the latest."""
    root = tmp_path / "srv"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    watchdog = threading.Timer(60, httpd.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        watchdog.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def make_zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def publish(root, monkeypatch, name: str, data: bytes, sha256: str | None, filename: str = "mini.zip") -> None:
    """Put the archive on the test server and register it under `name` with the given hash."""
    path = f"/datasets/test/{filename}"
    (root / "datasets" / "test").mkdir(parents=True, exist_ok=True)
    (root / path.lstrip("/")).write_bytes(data)
    monkeypatch.setitem(download.REGISTRY, name, Archive(f"https://files.example.org{path}", sha256))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_unpacks_single_top_folder(server, tmp_path, monkeypatch):
    root, url = server
    data = make_zip({"ml-mini-2018/movies.csv": MOVIES, "ml-mini-2018/ratings.csv": RATINGS,
                     "__MACOSX/ml-mini-2018/._movies.csv": "junk"})
    publish(root, monkeypatch, "ml-mini", data, sha(data))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    out = download_dataset("ml-mini", data_dir, base_url=url, progress=False)
    assert out == data_dir / "ml-mini"
    assert sorted(p.name for p in out.iterdir()) == ["movies.csv", "ratings.csv"]
    assert sorted(p.name for p in data_dir.iterdir()) == ["ml-mini"]  # no temp files left
    assert load_dataset("ml-mini", data_dir).domain_summary()["n_interactions"] == 1


def test_download_without_top_folder_and_tar(server, tmp_path, monkeypatch):
    root, url = server
    flat = make_zip({"movies.csv": MOVIES, "ratings.csv": RATINGS})
    publish(root, monkeypatch, "flat", flat, sha(flat))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in {"sample/movies.csv": MOVIES, "sample/._movies.csv": "junk"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
    publish(root, monkeypatch, "tarred", buf.getvalue(), sha(buf.getvalue()), filename="sample.tar.gz")
    data_dir = tmp_path / "data"
    assert sorted(p.name for p in download_dataset("flat", data_dir, base_url=url, progress=False).iterdir()) == [
        "movies.csv", "ratings.csv"]
    assert [p.name for p in download_dataset("tarred", data_dir, base_url=url, progress=False).iterdir()] == ["movies.csv"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path, monkeypatch):
    root, url = server
    data = make_zip({"x/movies.csv": MOVIES})
    wrong = sha(b"something else")
    publish(root, monkeypatch, "ml-mini", data, wrong)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "other").mkdir()
    with pytest.raises(DownloadError) as err:
        download_dataset("ml-mini", data_dir, base_url=url, progress=False)
    assert wrong in str(err.value) and sha(data) in str(err.value)
    assert sorted(p.name for p in data_dir.iterdir()) == ["other"]


def test_mismatch_on_overwrite_keeps_the_old_copy(server, tmp_path, monkeypatch):
    root, url = server
    publish(root, monkeypatch, "ml-mini", make_zip({"x/movies.csv": MOVIES}), sha(b"nope"))
    old = tmp_path / "ml-mini"
    old.mkdir()
    (old / "keep.txt").write_text("mine")
    with pytest.raises(DownloadError):
        download_dataset("ml-mini", tmp_path, base_url=url, progress=False, overwrite=True)
    assert (old / "keep.txt").read_text() == "mine"


def test_existing_target_needs_overwrite(server, tmp_path, monkeypatch):
    root, url = server
    data = make_zip({"x/movies.csv": MOVIES})
    publish(root, monkeypatch, "ml-mini", data, sha(data))
    (tmp_path / "ml-mini").mkdir()
    (tmp_path / "ml-mini" / "stale.txt").write_text("old")
    with pytest.raises(DownloadError, match="overwrite=True"):
        download_dataset("ml-mini", tmp_path, base_url=url, progress=False)
    out = download_dataset("ml-mini", tmp_path, base_url=url, progress=False, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["movies.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unverified_archives_are_refused_unless_allowed(server, tmp_path, monkeypatch):
    root, url = server
    data = make_zip({"x/movies.csv": MOVIES})
    publish(root, monkeypatch, "ml-mini", data, None)
    with pytest.raises(DownloadError, match="allow_unverified"):
        download_dataset("ml-mini", tmp_path / "data", base_url=url, progress=False)
    assert not (tmp_path / "data").exists()
    assert download_dataset("ml-mini", tmp_path / "data", base_url=url, progress=False, allow_unverified=True).is_dir()


def test_unknown_name_lists_known_ones(tmp_path):
    with pytest.raises(DownloadError) as err:
        download_dataset("ml-3m", tmp_path)
    for name in ("ml-latest-small", "ml-100k", "ml-32m", "hetrec2011-lastfm-2k", "hetrec2011-movielens-2k-v2"):
        assert name in str(err.value)


def test_http_error_is_a_download_error(server, tmp_path, monkeypatch):
    _, url = server
    monkeypatch.setitem(download.REGISTRY, "gone", Archive("https://files.example.org/datasets/none.zip", "0" * 64))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with pytest.raises(DownloadError, match="could not download"):
        download_dataset("gone", data_dir, base_url=url, progress=False)
    assert list(data_dir.iterdir()) == []


def test_registry_urls_and_hashes_are_well_formed():
    for name, archive in download.REGISTRY.items():
        assert archive.url.startswith("https://") and archive.url.endswith((".zip", ".tar.gz"))
        assert archive.sha256 is None or (len(archive.sha256) == 64 and int(archive.sha256, 16) >= 0)
        if name.startswith(("ml-", "hetrec")):
            assert archive.url.startswith(download.GROUPLENS + "/")


@pytest.mark.parametrize("member", ["../escaped.txt", "data/../../escaped.txt", "/tmp/reclm-abs-escaped.txt",
                                    "..\\escaped.txt"])
def test_zip_slip_is_refused_and_writes_nothing_outside(tmp_path, member):
    archive, into = tmp_path / "a.zip", tmp_path / "deep" / "into"
    into.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/ratings.csv", RATINGS)
        zf.writestr(member, "pwned")
    with pytest.raises(DownloadError, match="outside the target folder"):
        download._unpack(archive, into)
    assert not any(p.name.endswith("escaped.txt") for p in tmp_path.rglob("*"))
    assert list(into.iterdir()) == []  # checked before anything is extracted


def test_tar_members_outside_or_linking_out_are_refused(tmp_path):
    archive, into = tmp_path / "a.tar", tmp_path / "deep" / "into"
    into.mkdir(parents=True)
    with tarfile.open(archive, "w") as tf:
        data = b"pwned"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DownloadError, match="outside the target folder"):  # tarfile's 'data' filter, one line
        download._unpack(archive, into)
    assert not (tmp_path / "deep" / "escaped.txt").exists()
    link = tmp_path / "b.tar"
    with tarfile.open(link, "w") as tf:
        info = tarfile.TarInfo("data/evil")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DownloadError, match="outside the target folder"):
        download._unpack(link, tmp_path / "deep")
    assert not (tmp_path / "deep" / "data" / "evil").exists()
