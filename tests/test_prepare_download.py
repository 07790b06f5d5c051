"""`--download` against a local HTTP server (127.0.0.1, in a thread): resume, checksums, safety."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prepare_util import GOOD, fake_librispeech
from typer.testing import CliRunner

from asrkit.cli.main import app
from asrkit.io import UserError
from data_prep.download import download_file, download_librispeech, safe_extract
from data_prep.librispeech import prepare_librispeech


class _Server:
    """Serves `files` by name with Range support; `cut` truncates the next full responses."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut = 0  # how many upcoming responses stop halfway through
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = server.files.get(self.path.lstrip("/"))
                server.ranges.append(self.headers.get("Range"))
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    if start >= len(body):
                        self.send_error(416)
                        return
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.cut:
                    server.cut -= 1
                    payload = payload[: len(payload) // 2]  # then the connection closes
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    thread.join(timeout=10)


def _tarball(tmp_path: Path, part: str) -> bytes:
    root = fake_librispeech(tmp_path / "src", part=part)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root / "LibriSpeech", arcname="LibriSpeech")
    return buffer.getvalue()


def test_resume_after_cut_then_prepare(server: _Server, tmp_path: Path) -> None:
    body = _tarball(tmp_path, "dev-clean")
    server.files["dev-clean.tar.gz"] = body
    md5 = {"dev-clean": hashlib.md5(body).hexdigest()}
    server.cut = 1
    target = tmp_path / "corpus"
    kwargs = {"base_url": server.url, "checksums": md5, "retries": 0, "show_progress": False}
    with pytest.raises(UserError, match="run the same command again to resume"):
        download_librispeech(["dev-clean"], target, **kwargs)
    partial = target / "dev-clean.tar.gz.part"
    assert 0 < partial.stat().st_size < len(body)
    assert not (target / "LibriSpeech").exists()  # nothing that looks complete
    download_librispeech(["dev-clean"], target, **kwargs)
    assert server.ranges[-1] == f"bytes={len(body) // 2}-"  # resumed, not restarted
    assert not partial.exists() and not (target / "dev-clean.tar.gz").exists()
    assert (target / "LibriSpeech" / "SPEAKERS.TXT").is_file()
    report = prepare_librispeech(target, tmp_path / "data", show_progress=False)["dev-clean"]
    assert report.utterances == len(GOOD)


def test_retries_resume_within_one_call(server: _Server, tmp_path: Path) -> None:
    server.files["a.bin"] = bytes(range(256)) * 100
    server.cut = 2
    md5 = hashlib.md5(server.files["a.bin"]).hexdigest()
    dest = download_file(f"{server.url}/a.bin", tmp_path / "a.bin", md5, show_progress=False)
    assert dest.read_bytes() == server.files["a.bin"]
    assert server.ranges[0] is None and all(r and r.startswith("bytes=") for r in server.ranges[1:])


def test_checksum_mismatch_keeps_nothing(server: _Server, tmp_path: Path) -> None:
    server.files["dev-clean.tar.gz"] = _tarball(tmp_path, "dev-clean")
    target = tmp_path / "corpus"
    with pytest.raises(UserError, match="checksum mismatch"):
        download_librispeech(
            ["dev-clean"],
            target,
            base_url=server.url,
            checksums={"dev-clean": "0" * 32},
            show_progress=False,
        )
    assert sorted(p.name for p in target.iterdir()) == []


def test_cli_download_checksum_mismatch_is_one_line(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI checks the official MD5, which a tarball made here cannot match.
    server.files["dev-clean.tar.gz"] = _tarball(tmp_path, "dev-clean")
    monkeypatch.setenv("ATTNASR_LIBRISPEECH_URL", server.url)
    corpus, out = tmp_path / "corpus", tmp_path / "data"
    args = ["prepare", "librispeech", str(corpus), "--out", str(out), "--download"]
    result = CliRunner().invoke(app, [*args, "--parts", "dev-clean"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "checksum mismatch" in lines[0]
    assert not any(corpus.iterdir()) and not out.exists()


def test_unknown_part_and_http_error(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not a LibriSpeech part \(valid: dev-clean"):
        download_librispeech(["dev-dirty"], tmp_path, base_url=server.url, show_progress=False)
    with pytest.raises(UserError, match="HTTP error 404"):
        download_file(f"{server.url}/nope.tar.gz", tmp_path / "x", "0" * 32, show_progress=False)


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "link"])
def test_unsafe_archive_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("LibriSpeech/ok.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
        bad = tarfile.TarInfo(name)
        if name == "link":
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
        else:
            bad.size = 4
        tar.addfile(bad, None if name == "link" else io.BytesIO(b"evil"))
    with pytest.raises(UserError, match="unsafe member"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_lm_text_download_excludes_dev_sentences(server: _Server, tmp_path: Path) -> None:
    import gzip
    import json

    from data_prep.lm_text import LM_TEXT_NAME, prepare_lm_text

    lines = ["HELLO WORLD", "a dev sentence", "", "GOOD MORNING", "it’s lower"]
    body = gzip.compress(("\n".join(lines) + "\n").encode())
    server.files[LM_TEXT_NAME] = body
    server.cut = 1  # the first transfer breaks: the download resumes
    dev = tmp_path / "dev.jsonl"
    row = {"id": "d-1", "audio": "x.wav", "duration": 1.0, "sample_rate": 16000, "speaker": "d"}
    dev.write_text(json.dumps({**row, "text": "A DEV SENTENCE"}) + "\n")
    out = tmp_path / "lm" / "text.txt"
    md5 = hashlib.md5(body).hexdigest()
    report = prepare_lm_text(
        tmp_path / "corpus",
        out,
        [dev],
        download=True,
        base_url=server.url,
        md5=md5,
        show_progress=False,
    )
    assert out.read_text().splitlines() == ["HELLO WORLD", "GOOD MORNING", "IT'S LOWER"]
    assert (report.sentences, report.excluded, report.empty) == (3, 1, 1)
    assert any(r and r.startswith("bytes=") for r in server.ranges)
    with pytest.raises(UserError, match="already exists"):
        prepare_lm_text(tmp_path / "corpus", out, show_progress=False)


def test_lm_text_cli_checksum_mismatch_is_one_line(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from data_prep.lm_text import LM_TEXT_NAME

    server.files[LM_TEXT_NAME] = b"not the real corpus"
    monkeypatch.setenv("ATTNASR_LM_TEXT_URL", server.url)
    out = tmp_path / "text.txt"
    args = ["prepare", "lm-text", str(tmp_path / "corpus"), "--out", str(out), "--download"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "checksum mismatch" in result.stderr
    assert not out.exists() and not (tmp_path / "corpus" / LM_TEXT_NAME).exists()
