"""Short TCP connections with known byte counts, for the connection-log tests and the connection-rate benchmark.

Client (default): makes connections from a lab pod to the server. Each sends the header "<send> <reply>\n" and
<send> bytes, closes its sending side, reads the <reply> bytes the server answers until the server closes, then
closes: the client closes first, so TIME_WAIT holds the pod's port (as with most clients) and the kernel picks
another port for the next connection to the same server. Prints one JSON
object: {"ok": n, "failed": n, "seconds": s, "ports": [local ports of the successful ones], "errors": {"ECONNREFUSED":
n, ...}} (ports only with --ports; errors, by errno name or exception, only when some failed). --rate spreads --count connections evenly over time (per second); 0: as fast as --threads allow.
--seconds instead of --count: as many as fit in that time.

Server (--serve): on --listen:--port, reads each connection to its end, answers as its header asked, and closes.
Prints "ready"; exits when stdin closes.
"""
import argparse
import errno
import json
import os
import selectors
import socket
import sys
import threading
import time


def serve(args):
    sel = selectors.DefaultSelector()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.listen, args.port))
    server.listen(4096)
    server.setblocking(False)
    sel.register(server, selectors.EVENT_READ, None)
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):
                    return
            elif key.data is None:
                try:
                    conn, _ = server.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, [b""])
            else:
                conn, buf = key.fileobj, key.data
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if data:
                    if len(buf[0]) < 64:
                        buf[0] += data[:64]  # the header is all we keep
                    continue
                sel.unregister(conn)
                header = buf[0].partition(b"\n")[0].split()
                try:
                    if len(header) == 2:
                        conn.setblocking(True)
                        conn.settimeout(2)
                        conn.sendall(b"y" * int(header[1]))
                except OSError:
                    pass
                conn.close()


def connect(args):
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "failed": 0, "ports": [], "errors": {}}
    message = f"{args.send} {args.reply}\n".encode() + b"x" * args.send
    start = time.monotonic()
    deadline = start + args.seconds if args.seconds else None

    def take():
        with lock:
            i = state["next"]
            if args.count and i >= args.count:
                return None
            state["next"] = i + 1
        if deadline is not None and time.monotonic() >= deadline:
            return None
        if args.rate:
            wait = start + i / args.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        return i

    def worker():
        while take() is not None:
            port, received, error = None, 0, "short-answer"
            try:
                with socket.create_connection((args.to, args.port), timeout=3) as s:
                    port = s.getsockname()[1]
                    s.sendall(message)
                    s.shutdown(socket.SHUT_WR)
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        received += len(chunk)
                ok = received == args.reply
            except OSError as e:
                ok = False
                error = errno.errorcode.get(e.errno, type(e).__name__)
            with lock:
                if ok:
                    state["ok"] += 1
                    if args.ports:
                        state["ports"].append(port)
                else:
                    state["failed"] += 1
                    state["errors"][error] = state["errors"].get(error, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = {"ok": state["ok"], "failed": state["failed"], "seconds": round(time.monotonic() - start, 3)}
    if args.ports:
        result["ports"] = state["ports"]
    if state["errors"]:
        result["errors"] = state["errors"]
    print(json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--listen")
    parser.add_argument("--to")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--send", type=int, default=0)
    parser.add_argument("--reply", type=int, default=1)
    parser.add_argument("--ports", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(args)
    else:
        connect(args)


if __name__ == "__main__":
    main()
