"""tools/download_images.py against a local HTTP server on 127.0.0.1 (never the internet)."""
import io
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import download_images as dl

SLOW_DELAY = 1.5  # seconds the slow image waits before answering; clients use timeout 0.2


def png_bytes(seed, fmt="PNG"):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


FILES = {
    "/img/good1.png": png_bytes(1),
    "/img/good2.jpg": png_bytes(2, "JPEG"),
    "/img/flaky.png": png_bytes(3),
    "/img/broken.png": b"\x89PNG\r\n\x1a\n" + b"this is not really a png" * 10,
    "/img/slow.png": png_bytes(4),
}
PAGE = """<html><body>
<a href="/img/good1.png">one</a> <img src='img/good2.jpg'>
<a href="http://HOST/img/flaky.png">again</a> <a href="/img/good1.png">duplicate</a>
<a href="/img/broken.png">broken</a> <a href="/img/slow.png">slow</a>
<a href="/about/">not an image</a>
</body></html>"""
CATEGORY = """<script>var images = [{id: 'a', src: '/thumbs/good1.png'}, {id: 'b', src: '/thumbs/good2.jpg'}];
</script>"""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append((self.path, self.headers.get("Range")))
            nth = sum(p == self.path for p, _ in server.requests)
        if self.path == "/page.html":
            return self._send(200, PAGE.replace("HOST", f"127.0.0.1:{server.server_port}").encode(), "text/html")
        if self.path == "/images/archive/category/stars/page/1/":
            return self._send(200, CATEGORY.encode(), "text/html")
        body = FILES.get(self.path)
        if body is None:
            return self._send(404, b"not found", "text/plain")
        if self.path == "/img/slow.png":
            time.sleep(SLOW_DELAY)
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
        if self.path == "/img/flaky.png" and nth == 1:  # promise everything, send half, hang up
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if start >= len(body):
            return self._send(416, b"", "text/plain")
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])
            return
        self._send(200, body, "image/png")

    def _send(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.requests, httpd.lock = [], threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base(server):
    return f"http://127.0.0.1:{server.server_port}"


def run_cli(server, tmp_path, *extra):
    return dl.main([str(tmp_path / "out"), "--timeout", "0.2", "--retries", "1", "--backoff", "0", *extra])


def test_page_download_gets_good_images_and_leaves_no_partial_files(server, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# a page of links\n{base(server)}/page.html\n\n")
    rc = run_cli(server, tmp_path, "--urls", str(urls))
    out = tmp_path / "out"
    assert rc == 1, "broken and slow images must be reported as failures"
    assert sorted(p.name for p in out.iterdir()) == ["flaky.png", "good1.png", "good2.jpg"]
    for name in ("good1.png", "good2.jpg", "flaky.png"):
        assert (out / name).read_bytes() == FILES[f"/img/{name}"], name


def test_interrupted_download_resumes_with_range(server, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    status = dl.download(f"{base(server)}/img/flaky.png", dest, timeout=2, retries=2, backoff=0)
    body = FILES["/img/flaky.png"]
    flaky = [r for p, r in server.requests if p == "/img/flaky.png"]
    assert status == "downloaded"
    assert flaky == [None, f"bytes={len(body) // 2}-"], flaky
    assert (dest / "flaky.png").read_bytes() == body


def test_existing_part_file_is_resumed(server, tmp_path):
    body = FILES["/img/good1.png"]
    (tmp_path / ".good1.png.part").write_bytes(body[:100])
    dl.download(f"{base(server)}/img/good1.png", tmp_path, timeout=2, retries=0)
    assert server.requests == [("/img/good1.png", "bytes=100-")]
    assert (tmp_path / "good1.png").read_bytes() == body
    assert not (tmp_path / ".good1.png.part").exists()


def test_complete_part_file_is_finished_after_416(server, tmp_path):
    body = FILES["/img/good2.jpg"]
    (tmp_path / ".good2.jpg.part").write_bytes(body)
    assert dl.download(f"{base(server)}/img/good2.jpg", tmp_path, timeout=2, retries=0) == "downloaded"
    assert server.requests == [("/img/good2.jpg", f"bytes={len(body)}-")]
    assert (tmp_path / "good2.jpg").read_bytes() == body


def test_existing_files_are_skipped_without_a_request(server, tmp_path):
    (tmp_path / "good1.png").write_bytes(b"already here")
    assert dl.download(f"{base(server)}/img/good1.png", tmp_path) == "skipped"
    assert server.requests == []
    assert (tmp_path / "good1.png").read_bytes() == b"already here"


def test_slow_server_times_out_after_bounded_retries(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="failed after 2 attempts"):
        dl.download(f"{base(server)}/img/slow.png", tmp_path, timeout=0.2, retries=1, backoff=0)
    assert [p for p, _ in server.requests] == ["/img/slow.png"] * 2
    assert list(tmp_path.iterdir()) in ([], [tmp_path / ".slow.png.part"])
    assert not (tmp_path / "slow.png").exists()


def test_broken_image_is_rejected_and_removed(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="not a decodable image"):
        dl.download(f"{base(server)}/img/broken.png", tmp_path, timeout=2, retries=0)
    assert list(tmp_path.iterdir()) == []


def test_missing_image_is_not_retried(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="HTTP 404"):
        dl.download(f"{base(server)}/img/none.png", tmp_path, timeout=2, retries=3, backoff=0)
    assert len(server.requests) == 1


def test_category_pages_with_url_rewrite(server, tmp_path):
    rc = run_cli(server, tmp_path, "--category", "stars", "--archive-base", base(server),
                 "--replace", "/thumbs/=/img/")
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good1.png", "good2.jpg"]


def test_image_links_resolves_dedups_and_filters():
    page = '<a href="a.png">x</a><img src="/b/c.JPG"><a href="a.png"></a><a href="/d/">d</a>' \
           '<a href="https://x.org/e.tif?x=1&amp;y=2">e</a>'
    assert dl.image_links(page, "http://h/dir/page.html") == [
        "http://h/dir/a.png", "http://h/b/c.JPG", "https://x.org/e.tif?x=1&y=2"]


def test_no_sources_is_a_usage_error(tmp_path, capsys):
    assert dl.main([str(tmp_path / "out")]) == 2
    assert "nothing to download" in capsys.readouterr().err
