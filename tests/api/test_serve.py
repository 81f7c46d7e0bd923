"""`stream-backend serve` as a user meets it: a real server process on loopback, read with
curl and urllib: info as JSON, the file view with Range, resume with `curl -C -`."""

from __future__ import annotations

import json
import random
import subprocess
import urllib.error
import urllib.request

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stream_backend.api import ranges
from support import CLI, free_ports, wait_until

TOKEN = "t0k3n-for-the-tests-0123456789"


@pytest.fixture
def served(local_store, store_root, tmp_path):
    """A server over a store holding demo/logs (one segment) and demo/multi (three)."""
    rng = random.Random(7)
    local_store.create_stream("demo", "logs")
    local_store.create_stream("demo", "multi", segments=3)
    with local_store.writer("demo", "logs") as w:
        for _ in range(300):
            w.append(rng.randbytes(rng.choice([0, 1, 700, 5000, 70000])))
    with local_store.writer("demo", "multi") as w:
        for i in range(30):
            w.append(b"segment %d event %d\n" % (i % 3, i), segment=i % 3)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# who may read\n{TOKEN} read\n")
    (port,) = free_ports(1)
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([CLI, "serve", "--listen", f"127.0.0.1:{port}", "--root", str(store_root),
                             "--token-file", str(tokens)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up():
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return urllib.request.urlopen(base + "/v1/openapi.json", timeout=2).status == 200
        except OSError:
            return False

    wait_until("the server to answer", up, timeout=60)
    yield base, local_store
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def _get(url, token=TOKEN, **headers):
    req = urllib.request.Request(url, headers={**({"Authorization": f"Bearer {token}"} if token else {}), **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _file_view(store, stream="logs", segment=0) -> bytes:
    info = store.stream_info("demo", stream)
    return store.read_range("demo", stream, segment, 0, info.segment(segment).length)


def test_a_token_is_needed_and_info_is_what_info_json_says(served, store_root):
    base, _store = served
    status, headers, _ = _get(base + "/v1/streams/demo/logs", token=None)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert _get(base + "/v1/streams/demo/logs", token="not-a-token-we-know")[0] == 401
    status, _, body = _get(base + "/v1/streams/demo/logs")
    cli = subprocess.run([CLI, "info", "--json", "stream://demo/logs", "--root", str(store_root)],
                         capture_output=True, text=True, check=True)
    assert status == 200 and json.loads(body) == json.loads(cli.stdout)
    status, _, body = _get(base + "/v1/streams")
    assert json.loads(body) == [{"scope": "demo", "streams": ["logs", "multi"]}]
    status, _, body = _get(base + "/v1/streams/demo/nosuch")
    assert status == 404 and "nosuch" in json.loads(body)["detail"]
    paths = json.loads(_get(base + "/v1/openapi.json", token=None)[2])["paths"]
    assert {"/v1/streams", "/v1/streams/{scope}/{stream}", "/v1/streams/{scope}/{stream}/data"} <= set(paths)


def test_curl_downloads_and_resumes_the_file_view(served, tmp_path):
    base, store = served
    want = _file_view(store)
    url = base + "/v1/streams/demo/logs/data"
    auth = ["-H", f"Authorization: Bearer {TOKEN}"]
    out = tmp_path / "logs.bin"
    subprocess.run(["curl", "-sSf", *auth, "-o", str(out), url], check=True, timeout=60)
    assert out.read_bytes() == want
    out.write_bytes(want[: len(want) // 3])  # an interrupted download
    subprocess.run(["curl", "-sSf", *auth, "-C", "-", "-o", str(out), url], check=True, timeout=60)
    assert out.read_bytes() == want


def test_ranges_if_range_and_head(served):
    base, store = served
    want = _file_view(store)
    size = len(want)
    url = base + "/v1/streams/demo/logs/data"
    status, headers, body = _get(url, Range="bytes=100-199")
    assert status == 206 and body == want[100:200] and headers["Content-Range"] == f"bytes 100-199/{size}"
    etag = headers["ETag"]
    assert _get(url, Range="bytes=-50")[2] == want[-50:]
    status, headers, body = _get(url, Range="bytes=0-9, 5000-5009, -3")
    assert status == 206 and headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert int(headers["Content-Length"]) == len(body)
    boundary = headers["Content-Type"].split("boundary=")[1].encode()
    parts = [p for p in body.split(b"--" + boundary) if p.strip(b"\r\n-")]
    got = [p.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for p in parts]
    assert got == [want[0:10], want[5000:5010], want[-3:]]
    assert _get(url, Range=f"bytes={size}-")[0] == 416
    assert _get(url, Range="bytes=0-9", **{"If-Range": etag})[0] == 206
    with store.writer("demo", "logs") as w:  # the stream grew: the old ETag no longer matches
        w.append(b"more")
    status, headers, body = _get(url, Range="bytes=0-9", **{"If-Range": etag})
    assert status == 200 and body == want + b"more" and headers["ETag"] != etag
    req = urllib.request.Request(url, method="HEAD", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) == size + 4 and r.read() == b""
        assert r.headers["Accept-Ranges"] == "bytes"


def test_a_segment_is_named_when_a_stream_has_several(served):
    base, store = served
    status, _, body = _get(base + "/v1/streams/demo/multi/data")
    assert status == 400 and "?segment=N" in json.loads(body)["detail"]
    status, _, body = _get(base + "/v1/streams/demo/multi/data?segment=1")
    assert status == 200 and body == _file_view(store, "multi", 1)
    assert _get(base + "/v1/streams/demo/multi/data?segment=9")[0] == 404


def test_beyond_loopback_a_token_file_is_required(store_root):
    p = subprocess.run([CLI, "serve", "--listen", "0.0.0.0:1", "--root", str(store_root)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 64 and "--token-file" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def _model(spec: list[tuple[int | None, int | None]], size: int) -> set[int]:
    """The bytes a list of (first, last) specs asks for, the slow way."""
    out = set()
    for first, last in spec:
        if first is None:
            out |= set(range(max(size - last, 0), size))
        else:
            out |= set(range(first, size if last is None else min(last + 1, size)))
    return out


@given(st.integers(0, 300), st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 400)),
                                              st.one_of(st.none(), st.integers(0, 400))), min_size=1, max_size=6))
@example(size=0, spec=[(None, 1)])  # the last byte of nothing: 416, not an empty 206
def test_range_parsing_matches_a_model(size, spec):
    spec = [(a, b) for a, b in spec if not (a is None and b is None) and not (a is not None and b is not None and b < a)]
    if not spec:
        return
    header = "bytes=" + ", ".join(f"{'' if a is None else a}-{'' if b is None else b}" for a, b in spec)
    want = _model(spec, size)
    if not want:
        with pytest.raises(ranges.Unsatisfiable):
            ranges.parse(header, size)
        return
    got = ranges.parse(header, size)
    covered = [i for a, b in got for i in range(a, b)]
    assert covered == sorted(want)  # every byte once, in order: the ranges are merged
    assert all(a < b for a, b in got) and all(got[i][1] < got[i + 1][0] for i in range(len(got) - 1))


def test_https_with_a_certificate(local_store, store_root, tmp_path):
    """--tls-cert/--tls-key: the API answers HTTPS (verified against the certificate, by curl
    and by Python's ssl), a plain HTTP request to it gets no answer, and half a pair is refused."""
    import ssl

    local_store.create_stream("demo", "logs")
    with local_store.writer("demo", "logs") as w:
        w.append(b"over tls\n")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    half = subprocess.run([CLI, "serve", "--tls-cert", str(cert), "--root", str(store_root)], capture_output=True,
                          text=True, timeout=60)
    assert half.returncode == 64 and "--tls-key" in half.stderr
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} read\n")
    (port,) = free_ports(1)
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([CLI, "serve", "--listen", f"127.0.0.1:{port}", "--root", str(store_root),
                             "--token-file", str(tokens), "--tls-cert", str(cert), "--tls-key", str(key)],
                            stdout=log, stderr=subprocess.STDOUT)
    trusted = ssl.create_default_context(cafile=str(cert))
    base = f"https://127.0.0.1:{port}"

    def up():
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return urllib.request.urlopen(base + "/healthz", timeout=2, context=trusted).status == 200
        except OSError:
            return False

    try:
        wait_until("the server to answer over TLS", up, timeout=60)
        got = subprocess.run(["curl", "-sS", "--cacert", str(cert), "-H", f"Authorization: Bearer {TOKEN}",
                              base + "/v1/streams/demo/logs/data"], capture_output=True, timeout=30)
        assert got.returncode == 0 and got.stdout == b"over tls\n", got.stderr
        untrusted = subprocess.run(["curl", "-sS", base + "/healthz"], capture_output=True, text=True, timeout=30)
        assert untrusted.returncode == 60, untrusted  # curl: the peer's certificate is not trusted
        plain = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/healthz"],
                               capture_output=True, text=True, timeout=30)
        assert plain.stdout != "200"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    assert "https://127.0.0.1" in (tmp_path / "serve.log").read_text()


def test_the_page_is_served_without_data_and_with_headers_that_keep_it_in_its_own_frame(served):
    """/ leads to the page; the page needs no token (it holds nothing: it asks the API with
    the caller's), and it and the API's answers forbid framing, sniffing and Referers."""
    base, _store = served
    req = urllib.request.Request(base + "/", method="GET")
    opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                              {"redirect_request": lambda *a, **k: None}))
    try:
        opener.open(req, timeout=10)
        raise AssertionError("/ did not redirect")
    except urllib.error.HTTPError as exc:
        assert exc.code == 307 and exc.headers["Location"] == "/ui/"
    status, headers, body = _get(base + "/ui/", token=None)
    assert status == 200 and b"<title>stream-backend</title>" in body and b"demo" not in body
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
    status, headers, _ = _get(base + "/v1/streams", token=None)
    assert status == 401 and headers["X-Content-Type-Options"] == "nosniff"
    assert _get(base + "/ui/app.js", token=None)[0] == 200
