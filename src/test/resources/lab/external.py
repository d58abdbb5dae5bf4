"""The network lab's peer: a TCP server that writes back the address it saw, and (optionally) a counter of the
TCP packets arriving on an interface, by source address and destination port.

Driven over stdin by the Java side: it prints "ready" once listening, then answers "counts" (lines
"<source> <port> <packets>" then "end"), "reset" ("ok") and "first <port> <source> <since>" (the wall-clock time,
in ns since the epoch, of the first connection from <source> to <port> accepted at or after <since>, or nothing,
then "end": when the answer was sent, free of the probing client's own start and exit). It exits when stdin closes, so it cannot outlive
the JVM that started it, or, with --once, after serving one connection.
"""
import argparse
import os
import selectors
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
PACKET_HOST = 0  # addressed to this host: not our own replies, nor frames the bridge flooded


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True, help="address to serve on")
    parser.add_argument("--ports", required=True, help="comma-separated TCP ports")
    parser.add_argument("--count-on", help="interface whose arriving TCP packets are counted")
    parser.add_argument("--once", action="store_true", help="serve one connection (or wait 10 s), then exit")
    args = parser.parse_args()

    sel = selectors.DefaultSelector()
    for port in (int(p) for p in args.ports.split(",")):
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((args.listen, port))
        server.listen(128)
        server.setblocking(False)
        sel.register(server, selectors.EVENT_READ, "accept")

    counts = {}
    accepted = {}  # (source, port) -> accept times (ns since the epoch), oldest first
    capture = None
    if args.count_on:
        capture = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        capture.bind((args.count_on, ETH_P_IP))
        capture.setblocking(False)
        sel.register(capture, selectors.EVENT_READ, "packet")

    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "command")
    print("ready", flush=True)

    pending = b""
    deadline = time.monotonic() + 10 if args.once else None
    while True:
        timeout = None if deadline is None else max(0, deadline - time.monotonic())
        events = sel.select(timeout)
        if not events and deadline is not None:
            return
        for key, _ in events:
            if key.data == "accept":
                conn, peer = key.fileobj.accept()
                times = accepted.setdefault((peer[0], conn.getsockname()[1]), [])
                times.append(time.time_ns())
                del times[:-100000]  # bounded: a long run keeps its latest
                with conn:
                    conn.setblocking(True)
                    conn.settimeout(1)
                    try:
                        conn.sendall((peer[0] + "\n").encode())
                    except OSError:
                        pass  # the client gave up first; nothing to report to it
                if args.once:
                    return
            elif key.data == "packet":
                drain(capture, counts)
            else:
                data = os.read(sys.stdin.fileno(), 4096)
                if not data:
                    return
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    # Packets already queued on the capture socket happened before the command: count them first.
                    if capture is not None:
                        drain(capture, counts)
                    answer(line.decode().strip(), counts, accepted)


def drain(capture, counts):
    while True:
        try:
            frame, address = capture.recvfrom(65535)
        except BlockingIOError:
            return
        if address[2] != PACKET_HOST or len(frame) < 20:
            continue
        header_length = (frame[0] & 0x0F) * 4
        if frame[9] != socket.IPPROTO_TCP or len(frame) < header_length + 4:
            continue
        source = socket.inet_ntoa(frame[12:16])
        port = struct.unpack("!H", frame[header_length + 2:header_length + 4])[0]
        counts[(source, port)] = counts.get((source, port), 0) + 1


def answer(command, counts, accepted):
    if command.startswith("first "):
        _, port, source, since = command.split(" ")
        at = [t for t in accepted.get((source, int(port)), []) if t >= int(since)]
        if at:
            print(at[0])
        print("end", flush=True)
    elif command == "counts":
        for (source, port), n in sorted(counts.items()):
            print(source, port, n)
        print("end", flush=True)
    elif command == "reset":
        counts.clear()
        print("ok", flush=True)
    else:
        print("error unknown command " + command, flush=True)


if __name__ == "__main__":
    main()
