"""Fetching dataset files over HTTP(S) with urllib, written atomically."""
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request


class DownloadError(OSError):
    """No mirror of a file answered (no network, or every URL failed)."""


def md5_of(path, chunk=1 << 20):
    """The MD5 digest (hex) of the file at path, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(urls, dest, timeout=60, check=None, md5=None):
    """Download the first of ``urls`` that answers into the file ``dest``.

    urls: list of mirror URLs for the same file, tried in order. The file is
    written to a temporary name beside ``dest`` and renamed when complete, so an
    interrupted download (an error, Ctrl-C) never leaves a partial file under the real
    name, nor the temporary one. Complete means: as long as the server's Content-Length
    says (urllib returns a connection closed early as a short body), and, when given,
    ``check(path)`` returning without an exception (a gzip or tar archive that opens,
    not an HTML page) and, when ``md5`` (hex) is given, the file's MD5 digest being it
    (the published file, not another version or a damaged copy); otherwise the next
    mirror is tried. Returns dest. Raises
    DownloadError (an OSError) naming every URL tried when none works.
    """
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)),
                                   prefix=".download-")
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
            with os.fdopen(fd, "wb") as f, \
                    urllib.request.urlopen(request, timeout=timeout) as response:
                shutil.copyfileobj(response, f)
                expected = response.headers.get("Content-Length")
            size = os.path.getsize(tmp)
            if expected is not None and expected.isdigit() and size != int(expected):
                raise OSError(f"the transfer stopped after {size} of {expected} bytes")
            if check is not None:
                try:
                    check(tmp)
                except Exception as exc:   # (what the file's reader says of it)
                    raise OSError(f"not the expected file ({exc})") from None
            if md5 is not None and md5_of(tmp) != md5.lower():
                raise OSError(f"not the published file (its MD5 is {md5_of(tmp)}, "
                              f"expected {md5.lower()})")
            from ..io import file_mode
            os.chmod(tmp, file_mode(dest))
            os.replace(tmp, dest)
            return dest
        # (http.client's IncompleteRead, a chunked body cut short, or BadStatusLine are
        # HTTPExceptions, not OSErrors: the next mirror is tried for them too)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DownloadError("could not download " + os.path.basename(dest) + ":\n  "
                        + "\n  ".join(errors))
