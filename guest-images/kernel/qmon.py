#!/usr/bin/env python3
"""qmon.py SOCKET CMD...: send human-monitor commands to a QEMU started by
probe.sh with QMON=SOCKET and print the answers (e.g. "info registers",
"x/8i $pc")."""
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(2)
def drain():
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            out += d
            if out.endswith(b"(qemu) "): break
    except socket.timeout:
        pass
    return out.decode(errors="replace")
drain()
for c in sys.argv[2:]:
    s.sendall(c.encode() + b"\n"); time.sleep(0.3)
    print(drain().replace("(qemu) ", ""))
