#!/usr/bin/env python3
"""SMTP sink for twofactor's integration tests (needs aiosmtpd; see scripts/services.sh).

A real SMTP server (aiosmtpd, plain text, no TLS, no AUTH, SMTPUTF8 on) that stores
every accepted message and can be told to misbehave, per recipient, so tests running
in parallel do not disturb each other.

STORAGE
  Each accepted message becomes ONE file  <maildir>/NNNNNN.eml  (6-digit zero-padded
  counter starting at 000001, so names sort in arrival order). It is written to
  <maildir>/../tmp/ first and then rename()d into <maildir>, so a reader never sees a
  partial file. The file is the raw message as received (after SMTP dot-unstuffing,
  CRLF line endings) with envelope headers PREPENDED:
      X-Envelope-From: <sender>          (one line; "<>" for the null sender)
      X-Envelope-To: <rcpt>              (one line per ACCEPTED recipient, in order)
  Only accepted recipients are listed; a message whose recipients were all rejected
  is never stored. Nothing else (no sidecar files) is written into the maildir.

FAULT INJECTION  (decided by the LOCAL PART of each RCPT TO address, case-insensitive;
a keyword must start the local part or follow one of  - _ . +)
  tempfail-N      the first N "RCPT TO" attempts for this exact address (counted over
                  the sink's lifetime, across connections) get
                      451 4.3.0 try again later
                  attempt N+1 and later are accepted.      e.g. tempfail-2-t17@example.com
  permfail        every RCPT for it gets   550 5.1.1 rejected
                                                           e.g. permfail-t18@example.com
  slow-S          the reply to RCPT TO is delayed S seconds (S may be fractional,
                  e.g. slow-0.5); afterwards the recipient is handled normally.
                                                           e.g. slow-5-t19@example.com
  slowdata-S      the final reply to DATA (after the "." line) is delayed S seconds.
                  The message is stored only if the client is still connected when the
                  delay ends (a client that timed out and hung up leaves no file).
                                                           e.g. slowdata-5-t20@example.com
  Keywords combine (e.g. slow-2-tempfail-1-x@...: delay, then the tempfail rule).
  Any other address is accepted at once. The counters live in memory only, so give
  each test its own address (put the test name in it).

Usage: smtp_sink.py --maildir DIR [--host 127.0.0.1] [--port 0] [--port-file FILE]
  With --port 0 the OS picks a free port; the port actually bound is written
  (atomically) to --port-file once the server is accepting connections.
"""

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import time

from aiosmtpd.smtp import SMTP

log = logging.getLogger("smtp_sink")

_KW = r"(?:^|[-_.+])"
RE_TEMPFAIL = re.compile(_KW + r"tempfail-(\d+)(?=$|[-_.+])")
RE_PERMFAIL = re.compile(_KW + r"permfail(?=$|[-_.+])")
RE_SLOW = re.compile(_KW + r"slow-(\d+(?:\.\d+)?)(?=$|[-_.+])")
RE_SLOWDATA = re.compile(_KW + r"slowdata-(\d+(?:\.\d+)?)(?=$|[-_.+])")


def local_part(address: str) -> str:
    address = address.strip().strip("<>")
    return address.rsplit("@", 1)[0].lower()


class SinkHandler:
    def __init__(self, maildir: str, tmpdir: str):
        self.maildir = maildir
        self.tmpdir = tmpdir
        self.attempts = {}  # exact (lower-cased) address -> RCPT attempts seen
        existing = [n for n in os.listdir(maildir) if n.endswith(".eml")]
        self.counter = max((int(n[:-4]) for n in existing if n[:-4].isdigit()), default=0)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        lp = local_part(address)
        m = RE_SLOW.search(lp)
        if m:
            delay = float(m.group(1))
            log.info("RCPT %s: slow, sleeping %.2fs", address, delay)
            await asyncio.sleep(delay)
        key = address.strip().lower()
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if RE_PERMFAIL.search(lp):
            log.info("RCPT %s: permfail -> 550", address)
            return "550 5.1.1 rejected"
        m = RE_TEMPFAIL.search(lp)
        if m and self.attempts[key] <= int(m.group(1)):
            log.info("RCPT %s: tempfail attempt %d/%s -> 451", address, self.attempts[key], m.group(1))
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        delay = 0.0
        for rcpt in envelope.rcpt_tos:
            m = RE_SLOWDATA.search(local_part(rcpt))
            if m:
                delay = max(delay, float(m.group(1)))
        if delay:
            log.info("DATA: slowdata, sleeping %.2fs", delay)
            await asyncio.sleep(delay)
            transport = getattr(server, "transport", None)
            if transport is None or transport.is_closing():
                log.info("DATA: client went away during delay; message dropped")
                return "451 4.4.2 client timed out"  # nobody is listening any more
        name = self.store(envelope)
        return f"250 2.0.0 OK queued as {name}"

    def store(self, envelope) -> str:
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        sender = (envelope.mail_from or "").strip().strip("<>")
        head = f"X-Envelope-From: <{sender}>\r\n"
        head += "".join(f"X-Envelope-To: <{r}>\r\n" for r in envelope.rcpt_tos)
        self.counter += 1
        name = f"{self.counter:06d}.eml"
        tmp = os.path.join(self.tmpdir, f"{name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(head.encode("utf-8"))
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.maildir, name))
        log.info("stored %s from=%s to=%s (%d bytes)", name, envelope.mail_from, envelope.rcpt_tos, len(raw))
        return name


async def serve(args) -> None:
    maildir = os.path.abspath(args.maildir)
    tmpdir = os.path.join(os.path.dirname(maildir), "tmp")
    os.makedirs(maildir, exist_ok=True)
    os.makedirs(tmpdir, exist_ok=True)
    handler = SinkHandler(maildir, tmpdir)
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(handler, hostname="twofactor-smtp-sink", enable_SMTPUTF8=True,
                    data_size_limit=64 * 1024 * 1024, timeout=120)

    server = await loop.create_server(factory, host=args.host, port=args.port)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    log.info("listening on %s:%d, maildir %s", args.host, port, maildir)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    log.info("stopping")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--maildir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.Formatter.converter = time.gmtime
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
