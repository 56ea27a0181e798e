#!/usr/bin/env python3
"""Hostile clients for test/t-45-hostile: raw milter packets, huge announced
packets, an idle connection flood, a socketmap client that pipelines and
never reads, and SMTP sessions from a chosen loopback address. Each prints
what it saw, one "key=value" line or a line per case, and exits non-zero
when the server did not behave (kept a bad connection open, went away)."""

import os
import resource
import smtplib
import socket
import struct
import sys
import time


def packet(code, data=b""):
    """One milter packet: uint32 length (code + data), code, data."""
    return struct.pack(">I", len(data) + 1) + code + data


# What Postfix opens a milter connection with: protocol version 6, every
# action and every protocol option offered.
OPTNEG = packet(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF))
CONNECT = packet(b"C", b"client.test\x004" + struct.pack(">H", 2525) + b"127.0.0.1\x00")


def unix(path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def read_packet(s):
    """Reads one packet; None when the server closed the connection."""
    hdr = b""
    while len(hdr) < 4:
        b = s.recv(4 - len(hdr))
        if not b:
            return None
        hdr += b
    (n,) = struct.unpack(">I", hdr)
    data = b""
    while len(data) < n:
        b = s.recv(n - len(data))
        if not b:
            return None
        data += b
    return data


def negotiate(s):
    s.sendall(OPTNEG)
    p = read_packet(s)
    if p is None or p[:1] != b"O":
        raise RuntimeError("no OPTNEG reply")


def closed_by_server(s, wait=3.0):
    """True when the server closes s within wait seconds (anything it
    sends first is read and ignored)."""
    s.settimeout(wait)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True  # reset: closed as well


def malformed(path):
    """Each malformed packet closes its own connection; an address without
    its NUL is read as the address, and the session goes on."""
    ok = True
    cases = [
        ("zero-length packet before negotiation", False, b"\x00\x00\x00\x00"),
        ("zero-length packet after negotiation", True, b"\x00\x00\x00\x00"),
        ("CONNECT without NUL", True, packet(b"C", b"client.test")),
        ("CONNECT without family", True, packet(b"C", b"client.test\x00")),
        ("CONNECT with a short port", True, packet(b"C", b"client.test\x004\x09")),
        ("OPTNEG too short", False, packet(b"O", b"\x00\x00\x00\x06")),
        ("unknown command", True, packet(b"\xff", b"junk")),
    ]
    for name, neg, data in cases:
        s = unix(path)
        if neg:
            negotiate(s)
        try:
            s.sendall(data)
        except OSError:
            pass
        if closed_by_server(s):
            print("closed: " + name)
        else:
            print("KEPT OPEN: " + name)
            ok = False
        s.close()
    # MAIL and RCPT without their NUL: taken as the address, no arguments.
    s = unix(path)
    negotiate(s)
    s.sendall(CONNECT + packet(b"M", b"<>") + packet(b"R", b"<alice@example.com>"))
    s.settimeout(5)
    p = read_packet(s)
    if p is None:
        print("CLOSED: MAIL/RCPT without NUL got no reply")
        ok = False
    else:
        print("answered: MAIL/RCPT without NUL (reply %r)" % p[:1])
    s.sendall(packet(b"Q"))
    s.close()
    return 0 if ok else 1


def huge(path, count, megabytes):
    """Announces count packets of megabytes each (before and after
    negotiation) and sends a little of each: every connection must be
    closed without the server waiting for (or allocating) the rest."""
    ok = True
    for i in range(count):
        s = unix(path)
        neg = i % 2 == 1
        if neg:
            negotiate(s)
        n = megabytes * 1024 * 1024
        try:
            s.sendall(struct.pack(">I", n + 1) + b"B" + b"x" * 65536)
        except OSError:
            pass
        if closed_by_server(s):
            print("closed: %d MB packet%s" % (megabytes, " after negotiation" if neg else ""))
        else:
            print("KEPT OPEN: %d MB packet" % megabytes)
            ok = False
        s.close()
    return 0 if ok else 1


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def flood(path, count, release_file, max_wait):
    """Opens count connections that negotiate and then idle; prints how
    many the server keeps and how many it closed, then holds them until
    release_file exists (or max_wait seconds)."""
    raise_nofile(count + 100)
    socks = []
    refused = 0
    for _ in range(count):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect(path)
            s.send(OPTNEG)
            socks.append(s)
        except OSError:
            refused += 1
            s.close()
    # Give the server time to answer or close each one (negotiation has a
    # 1 s deadline of its own).
    time.sleep(2.5)
    held = closed = 0
    for s in socks:
        got, eof = b"", False
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    eof = True
                    break
                got += b
        except BlockingIOError:
            pass
        except OSError:
            eof = True
        if eof:
            closed += 1
        elif got[4:5] == b"O":
            held += 1
        else:
            closed += 1  # no answer yet: counted as not held
    print("held=%d closed=%d refused=%d" % (held, closed, refused), flush=True)
    deadline = time.time() + max_wait
    while not os.path.exists(release_file) and time.time() < deadline:
        time.sleep(0.1)
    for s in socks:
        s.close()
    return 0


def netstring(s):
    b = s.encode()
    return b"%d:%s," % (len(b), b)


def pipeline(proto, host, port, limit):
    """Pipelines socketmap lookups or policy requests and never reads an
    answer. Postfix never does; the server must close the connection
    (past 64 requests ahead of their answers, or when a write blocks past
    its deadline) rather than keep deciding for it.
    Prints how long that took, or fails after limit seconds."""
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    if proto == "socketmap":
        req = netstring("unbatv prvs=1234abcdef=someone@example.com") * 256
    else:
        req = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=\n"
               b"recipient=someone@example.com\nclient_address=192.0.2.9\n\n") * 64
    start = time.time()
    sent = 0
    while time.time() - start < float(limit):
        try:
            off = sent % len(req)  # a partial send goes on where it stopped
            sent += s.send(req[off:])
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:  # reset or broken pipe: the server closed
            print("closed_after=%.1f sent=%d" % (time.time() - start, sent), flush=True)
            s.close()
            return 0
    print("STILL OPEN after %s s, sent=%d" % (limit, sent), flush=True)
    s.close()
    return 1


def sm_lookup(host, port, key):
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(netstring("unbatv " + key))
    reply = b""
    while not reply.endswith(b","):
        b = s.recv(4096)
        if not b:
            break
        reply += b
    s.close()
    print(reply.decode(errors="replace"))
    return 0 if reply.endswith(b",") else 1


def smtp_rcpts(host, port, src, sender, *rcpts):
    """One SMTP session from source address src: MAIL FROM:<sender>, then
    each RCPT; prints each RCPT's reply code and text; RSET, QUIT."""
    c = smtplib.SMTP(host, int(port), source_address=(src, 0), timeout=30)
    c.ehlo("client.example.org")
    code, msg = c.mail(sender)
    if code != 250:
        print("MAIL %d %s" % (code, msg.decode(errors="replace")))
        return 1
    for r in rcpts:
        code, msg = c.rcpt(r)
        print("%d %s %s" % (code, r, msg.decode(errors="replace")))
    c.rset()
    c.quit()
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "malformed":
        return malformed(*args)
    if cmd == "huge":
        return huge(args[0], int(args[1]), int(args[2]))
    if cmd == "flood":
        return flood(args[0], int(args[1]), args[2], float(args[3]))
    if cmd == "pipeline":
        return pipeline(*args)
    if cmd == "sm-lookup":
        return sm_lookup(*args)
    if cmd == "smtp-rcpts":
        return smtp_rcpts(*args)
    print("unknown command " + cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
