"""A real SMTP server (aiosmtpd) for integration tests: stores every received message on disk.

Run with Debian's /usr/bin/python3 (package python3-aiosmtpd); see smtp-sink.sh.

    /usr/bin/python3 smtp_sink.py --dir DIR --port PORT [--owner-pid PID]

Each accepted message becomes DIR/mail/<seq>.eml (the DATA exactly as received) and then
DIR/mail/<seq>.json ({"seq", "mail_from", "rcpt_to", "received_unix_ns", "eml", "data"}), both
written to a temporary name and renamed, the .json last: a .json file means a complete message.
It never relays mail anywhere and listens on 127.0.0.1 only.
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

from aiosmtpd.controller import Controller


class MailDirHandler:
    def __init__(self, mail_dir):
        self.mail_dir = mail_dir
        self.lock = threading.Lock()
        self.seq = 0

    def _write(self, name, data):
        tmp = os.path.join(self.mail_dir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.mail_dir, name))

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.seq += 1
            seq = self.seq
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        base = "%06d" % seq
        self._write(base + ".eml", raw)
        meta = {
            "seq": seq,
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_tos),
            "received_unix_ns": time.time_ns(),
            "eml": base + ".eml",
            "data": raw.decode("utf-8", "replace"),
        }
        self._write(base + ".json", json.dumps(meta).encode())
        return "250 Message accepted for delivery"


def watch_owner(owner, stop):
    while not stop.is_set():
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            stop.set()
            return
        except PermissionError:
            pass
        stop.wait(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--owner-pid", type=int)
    args = ap.parse_args()
    mail_dir = os.path.join(args.dir, "mail")
    os.makedirs(mail_dir, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # aiosmtpd reports a failed bind only after its whole ready_timeout: check first
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", args.port))
    except OSError as e:
        print("smtp-sink: cannot listen on 127.0.0.1:%d: %s" % (args.port, e), flush=True)
        return 1
    finally:
        probe.close()
    controller = Controller(MailDirHandler(mail_dir), hostname="127.0.0.1", port=args.port,
                            enable_SMTPUTF8=True, ready_timeout=10)
    try:
        controller.start()
    except Exception as e:  # noqa: BLE001 - any start failure must end the process
        print("smtp-sink: cannot listen on 127.0.0.1:%d: %s" % (args.port, e), flush=True)
        # the controller's server thread is not a daemon: leave without waiting for it
        os._exit(1)
    print("smtp-sink listening on 127.0.0.1:%d, storing into %s" % (args.port, mail_dir), flush=True)
    if args.owner_pid:
        threading.Thread(target=watch_owner, args=(args.owner_pid, stop), daemon=True).start()
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
