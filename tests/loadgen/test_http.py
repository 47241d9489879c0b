"""The HTTP/1.1 response parser of the generator's transport."""

from __future__ import annotations

import pytest

from servelab.loadgen.http import ProtocolError, ResponseParser


def test_content_length_split_across_packets() -> None:
    p = ResponseParser(keep_body=True)
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\nhello world"
    for k in range(len(raw) - 1):
        assert p.feed(raw[k : k + 1]) is None
    assert p.feed(raw[-1:]) == (200, b"hello world", True)
    # the parser is ready for the next response on the same connection
    assert p.feed(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n") == (503, b"", True)


def test_chunked_and_connection_close() -> None:
    p = ResponseParser(keep_body=True)
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
    assert p.feed(raw[:40]) is None
    assert p.feed(raw[40:]) == (200, b"hello world", False)


def test_read_until_close_and_http10() -> None:
    p = ResponseParser(keep_body=True)
    assert p.feed(b"HTTP/1.0 504 Gateway Timeout\r\n\r\npartial") is None
    assert p.eof() == (504, b"partial", False)


def test_body_not_kept_by_default() -> None:
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc") == (200, b"", True)


@pytest.mark.parametrize("raw", [b"SMTP ready\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab"])
def test_garbage_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        ResponseParser().feed(raw)
