"""DNS client of the lab (DnsPathLabIT): asks a name COUNT times over UDP (or TCP, --tcp) and, with --connect-port, connects to
every address of each answer right after it arrived. Prints one JSON report: answers by rcode, DNS errors (refused:
ICMP port unreachable; timeout), connections made and refused, the addresses seen, and each query's time in ms."""
import argparse
import json
import random
import socket
import struct
import time


def query(name, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def skip_name(b, i):
    while True:
        n = b[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1


def parse(b):
    qid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", b[:12])
    i = 12
    for _ in range(qd):
        i = skip_name(b, i) + 4
    addresses = []
    for _ in range(an):
        i = skip_name(b, i)
        rtype, _, _, length = struct.unpack(">HHIH", b[i:i + 10])
        i += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(b[i:i + 4]))
        i += length
    return qid, flags & 0xF, addresses


def read_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("closed")
        data += chunk
    return data


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--connect-port", type=int, default=0)
    p.add_argument("--tcp", action="store_true")
    a = p.parse_args()
    report = {"rcodes": {}, "errors": {}, "connected": 0, "refused": 0, "connect_failed": 0, "addresses": [],
              "ms": []}
    seen = set()
    for _ in range(a.count):
        qid = random.randrange(65536)
        started = time.perf_counter()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if a.tcp else socket.SOCK_DGRAM)
        s.settimeout(a.timeout)
        try:
            s.connect((a.server, 53))
            if a.tcp:
                q = query(a.name, qid)
                s.sendall(struct.pack(">H", len(q)) + q)
                rid, rcode, addresses = parse(read_exactly(s, struct.unpack(">H", read_exactly(s, 2))[0]))
            else:
                s.send(query(a.name, qid))
                while True:
                    rid, rcode, addresses = parse(s.recv(65535))
                    if rid == qid:
                        break
        except (ConnectionRefusedError, ConnectionResetError):
            report["errors"]["refused"] = report["errors"].get("refused", 0) + 1
            report["ms"].append((time.perf_counter() - started) * 1000)
            continue
        except socket.timeout:
            report["errors"]["timeout"] = report["errors"].get("timeout", 0) + 1
            report["ms"].append((time.perf_counter() - started) * 1000)
            continue
        finally:
            s.close()
        report["ms"].append((time.perf_counter() - started) * 1000)
        report["rcodes"][str(rcode)] = report["rcodes"].get(str(rcode), 0) + 1
        seen.update(addresses)
        if a.connect_port and rcode == 0:
            for address in addresses:
                try:
                    socket.create_connection((address, a.connect_port), timeout=1.0).close()
                    report["connected"] += 1
                except ConnectionRefusedError:
                    report["refused"] += 1
                except OSError:
                    report["connect_failed"] += 1
    report["addresses"] = sorted(seen)
    print(json.dumps(report))


main()
