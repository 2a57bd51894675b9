"""Download astronomical images, as the seed's data/image_downloader.py did for the ESA/Hubble archive.

    python tools/download_images.py DEST [--urls LIST.txt] [--category stars --category galaxies]
        [--pages 2] [--archive-base https://esahubble.org] [--replace /thumb300y/=/screen/]
        [--timeout 20] [--retries 3] [--limit N]

Sources:
  --urls FILE     one URL per line ('#' comments): image files, or HTML pages (e.g. archive category
                  pages) whose image links (src/href/quoted URLs ending .jpg/.jpeg/.png/.tif/.tiff)
                  are followed
  --category C    ESA/Hubble archive category (stars, galaxies, nebulae, starclusters, solarsystem,
                  cosmology, ...): pages ARCHIVE_BASE/images/archive/category/C/page/N/, N = 1..--pages
  --replace A=B   rewrite every image URL found on a page (e.g. thumbnails -> screen-size images)

Every file is downloaded to DEST/.NAME.part and renamed to DEST/NAME only after it is complete
(Content-Length) and decodes as an image, so DEST never holds half-written files. An existing
DEST/NAME is skipped; an existing .part is resumed with an HTTP Range request. Network errors and
timeouts (--timeout seconds per connect/read) are retried --retries times with exponential backoff.
Exit status 0 when every image is present, 1 when some failed, 2 for bad arguments.
"""
import argparse
import html
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
USER_AGENT = "srcnn_np-downloader/0.1"
CHUNK = 64 * 1024
_LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|["']((?:https?:)?//[^"'\s]+|/[^"'\s]+)["']""",
                   re.IGNORECASE)


class DownloadError(Exception):
    """A download that failed for good (after retries, or content that is not an image)."""


def category_pages(base: str, category: str, pages: int) -> list:
    """URLs of the first `pages` archive pages of an ESA/Hubble image category."""
    base = base.rstrip("/")
    return [f"{base}/images/archive/category/{urllib.parse.quote(category)}/page/{n}/"
            for n in range(1, pages + 1)]


def is_image_url(url: str) -> bool:
    return urllib.parse.urlsplit(url).path.lower().endswith(IMAGE_SUFFIXES)


def image_links(page_html: str, page_url: str, replace=()) -> list:
    """Absolute image URLs linked from an HTML page, in order of appearance, without duplicates."""
    seen, out = set(), []
    for m in _LINK.finditer(page_html):
        raw = html.unescape(m.group(1) or m.group(2))
        url = urllib.parse.urljoin(page_url, raw)
        for old, new in replace:
            url = url.replace(old, new)
        if url.startswith(("http://", "https://")) and is_image_url(url) and url not in seen:
            seen.add(url)
            out.append(url)
    return out


def file_name(url: str) -> str:
    """A safe local file name from the last path component of a URL."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    if not name:
        raise DownloadError(f"{url}: no file name in the URL")
    return name


def _open(url, timeout, start=0):
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def fetch_text(url: str, timeout: float, retries: int, backoff: float) -> str:
    """GET a page as text, with retries."""
    def attempt():
        with _open(url, timeout) as r:
            return r.read().decode(r.headers.get_content_charset() or "utf-8", "replace")
    return _with_retries(attempt, url, retries, backoff)


def _with_retries(attempt, url, retries, backoff):
    for i in range(retries + 1):
        try:
            return attempt()
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code not in (408, 429):  # client errors do not heal on retry
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
            error = f"HTTP {e.code} {e.reason}"
        except (urllib.error.URLError, OSError, _Incomplete) as e:
            error = str(getattr(e, "reason", None) or e) or type(e).__name__
        if i < retries:
            time.sleep(backoff * 2 ** i)
    raise DownloadError(f"{url}: failed after {retries + 1} attempts ({error})")


class _Incomplete(Exception):
    """The connection ended before Content-Length bytes arrived (retry resumes)."""


def _download_once(url, part: Path, timeout):
    """One attempt: append to `part` (resuming with Range when it has bytes); raises _Incomplete."""
    start = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, timeout, start)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # nothing left past what we hold: the .part is complete
            return
        raise
    with response as r:
        resumed = start > 0 and r.status == 206
        if start and not resumed:
            start = 0  # the server ignored Range: start over
        length = r.headers.get("Content-Length")
        expected = start + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as f:
            while True:
                chunk = r.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    size = part.stat().st_size
    if expected is not None and size < expected:
        raise _Incomplete(f"got {size} of {expected} bytes")


def verify_image(path: Path) -> None:
    """Raise DownloadError unless Pillow fully decodes the file."""
    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise DownloadError(f"{path.name}: not a decodable image ({e})") from None


def download(url: str, dest: Path, timeout=20.0, retries=3, backoff=0.5) -> str:
    """Download one image into dest; returns 'skipped' or 'downloaded', raises DownloadError."""
    name = file_name(url)
    final = dest / name
    if final.exists():
        return "skipped"
    part = dest / f".{name}.part"
    _with_retries(lambda: _download_once(url, part, timeout), url, retries, backoff)
    try:
        verify_image(part)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, final)
    return "downloaded"


def collect_urls(lines, categories, pages, archive_base, replace, timeout, retries, backoff, log):
    """Image URLs from URL lines (images or pages) and categories, without duplicates."""
    sources = list(lines) + [p for c in categories for p in category_pages(archive_base, c, pages)]
    urls, seen = [], set()
    for src in sources:
        if is_image_url(src):
            found = [src]
        else:
            try:
                found = image_links(fetch_text(src, timeout, retries, backoff), src, replace)
            except DownloadError as e:
                log(f"page failed: {e}")
                continue
            log(f"{src}: {len(found)} image links")
        for u in found:
            if u not in seen:
                seen.add(u)
                urls.append(u)
    return urls


def read_url_list(path) -> list:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dest", help="directory to download into")
    p.add_argument("--urls", metavar="FILE", help="list of image or page URLs")
    p.add_argument("--category", action="append", default=[], help="ESA/Hubble archive category")
    p.add_argument("--pages", type=int, default=1, help="archive pages per category")
    p.add_argument("--archive-base", default="https://esahubble.org")
    p.add_argument("--replace", action="append", default=[], metavar="OLD=NEW",
                   help="rewrite image URLs found on pages")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per connect/read")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--backoff", type=float, default=0.5, help="first retry delay, doubled each time")
    p.add_argument("--limit", type=int, help="download at most this many images")
    args = p.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr)
    try:
        replace = [tuple(r.split("=", 1)) for r in args.replace]
        if any(len(r) != 2 for r in replace):
            raise ValueError("--replace takes OLD=NEW")
        lines = read_url_list(args.urls) if args.urls else []
        if not lines and not args.category:
            raise ValueError("nothing to download: give --urls FILE and/or --category NAME")
        dest = Path(args.dest)
        dest.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as e:
        print(f"download_images: error: {e}", file=sys.stderr)
        return 2
    urls = collect_urls(lines, args.category, args.pages, args.archive_base, replace,
                        args.timeout, args.retries, args.backoff, log)
    if args.limit is not None:
        urls = urls[:args.limit]
    counts = {"downloaded": 0, "skipped": 0, "failed": 0}
    for i, url in enumerate(urls, 1):
        try:
            status = download(url, dest, args.timeout, args.retries, args.backoff)
        except DownloadError as e:
            status = "failed"
            log(f"[{i}/{len(urls)}] failed: {e}")
        else:
            log(f"[{i}/{len(urls)}] {status} {url}")
        counts[status] += 1
    print(f"{dest}: {counts['downloaded']} downloaded, {counts['skipped']} skipped, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
