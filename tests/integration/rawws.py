"""A deliberately low-level WebSocket client for protocol-violation tests:
it can send what no well-behaved library will (unmasked frames, bad UTF-8,
reserved bits, oversized frames) and reads the server's frames raw."""
import base64
import os
import socket
import struct


class RawWS:
    def __init__(self, host, port, path, timeout=5, headers=()):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        for h in headers:
            req += h + "\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake: %r" % self.buf)
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ")[1])
        if self.status != 101:
            raise ConnectionError(head.decode(errors="replace"))

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0, length=None):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        if n < 126:
            hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if len(payload) < 4096 \
                else _mask_fast(payload, key)
            hdr += key
        self.sock.sendall(hdr + payload)

    def recv_frame(self):
        """(opcode, payload) of the next server frame; None on EOF."""
        while True:
            f = self._parse()
            if f is not None:
                return f
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def _parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        op, n = b[0] & 0x0F, b[1] & 0x7F
        off = 2
        if n == 126:
            if len(b) < 4:
                return None
            n, off = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, off = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < off + n:
            return None
        self.buf = b[off + n:]
        return op, b[off:off + n]

    def expect_close(self):
        """Read until a close frame; return (code, reason). Data frames before it are skipped."""
        while True:
            f = self.recv_frame()
            if f is None:
                return None, None
            op, payload = f
            if op == 8:
                if len(payload) >= 2:
                    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()
                return 1005, ""

    def eof_after_close(self):
        """After the close frame, the server closes TCP."""
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return True
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.sock.close()


def _mask_fast(payload, key):
    k = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(len(payload), "big")


def http_raw(host, port, data, timeout=5):
    """Send raw bytes, return (status, headers_text, body) of the response."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        resp = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            resp += chunk
            if b"\r\n\r\n" in resp:
                head, body = resp.split(b"\r\n\r\n", 1)
                m = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if m and len(body) >= int(m[0].split(b":")[1]):
                    break
    head, _, body = resp.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head else None
    return status, head.decode(errors="replace"), body
