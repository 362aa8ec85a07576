"""Writes examples/multiprotocol.toml: the real captures of ../shared/data/pcaps as one
labelled training set, each capture cut by time into its first 64 %, next 16 % and last
20 % of packets, listed per class as all first parts, then all middle parts, then all last
parts. `iotids train`'s default time split (per class, in file order: 64 % train, 16 %
validate, 20 % test) then trains on the early traffic of every capture of a class,
validates on the middle and tests on the later traffic of each capture, not on whichever
captures happen to come last. Cut times are packet times read with tshark (nanoseconds,
RFC 3339 in the manifest); a capture too small to give a part a packet gives it none.

Usage: python3 benches/multiprotocol_manifest.py [PCAPS_DIR] > examples/multiprotocol.toml
(PCAPS_DIR defaults to ../shared/data/pcaps; the manifest's paths are relative to
examples/.)
"""

import datetime
import subprocess
import sys

PCAPS = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/pcaps"
REL = "../../shared/data/pcaps"  # from examples/

CS = "chrissanders-packets"
ZK = "zeek-traces"
MQ = "mqttset-reduced"

# (class, capture, BPF filter for iotids, the same as a tshark display filter, note)
CAPTURES = [
    ("normal", f"{ZK}/communityid/arp.pcap", None, None, "ARP"),
    ("normal", f"{ZK}/modbus/modbus-and-non-modbus-p502.pcap", None, None, "Modbus and other traffic on port 502"),
    ("normal", f"{CS}/arp_gratuitous.pcapng", None, None, "gratuitous ARP"),
    ("normal", f"{CS}/arp_resolution.pcapng", None, None, "ARP request and reply"),
    ("normal", f"{CS}/icmp_echo.pcapng", None, None, "ping"),
    ("normal", f"{CS}/icmp_traceroute.pcapng", None, None, "traceroute"),
    ("normal", f"{CS}/tcp_handshake.pcapng", None, None, "one TCP handshake"),
    ("normal", f"{CS}/tcp_ports.pcapng", None, None, "TCP sessions to several ports"),
    ("normal", f"{CS}/http_post.pcapng", None, None, "HTTP POST"),
    ("normal", f"{CS}/passiveosfingerprinting.pcapng", None, None,
     "passive OS fingerprinting only watches: two ordinary SYNs"),
    ("normal", f"{CS}/arppoison.pcapng", "not arp", "!arp",
     "the ARP-poisoning capture's IP traffic: the victim's own web and DNS traffic, relayed"),
    ("normal", f"{ZK}/communityid/icmp.pcap", None, None, "ICMP"),
    ("normal", f"{ZK}/http/get.pcap", None, None, "HTTP GET"),
    ("normal", f"{ZK}/modbus/modbusBig.pcap", None, None, "Modbus/TCP polling (long)"),
    ("normal", f"{ZK}/modbus/modbusSmall.pcap", None, None, "Modbus/TCP polling"),
    ("normal", f"{CS}/dns.pcap", None, None, "DNS"),
    ("normal", f"{ZK}/mqtt.pcap", None, None, "MQTT connect, subscribe, publish"),
    ("normal", f"{ZK}/arp-who-has.pcap", None, None, "ARP who-has"),
    ("normal", f"{CS}/http_dvwa_clearlogin.pcapng", None, None,
     "a DVWA login: the attacked web application, used normally"),
    ("normal", f"{MQ}/benign/benign-train.pcap", None, None, "MQTTset benign sensors"),
    ("normal", f"{ZK}/dns/mdns.pcap", None, None, "mDNS"),
    ("scan", f"{CS}/synscan.pcapng", None, None, "nmap SYN port scan"),
    ("scan", f"{CS}/activeosfingerprinting.pcapng", None, None, "nmap -O"),
    ("scan", f"{ZK}/nmap-vsn.pcap", None, None, "nmap -sV with its ARP sweep"),
    ("webattack", f"{CS}/http_dvwa_directorytraversal.pcapng", None, None, "DVWA directory traversal"),
    ("webattack", f"{CS}/http_dvwa_sqlinjection.pcapng", None, None, "DVWA SQL injection"),
    ("webattack", f"{CS}/http_dvwa_sqlinjection_passwords.pcapng", None, None, "DVWA SQL injection, password hashes"),
    ("webattack", f"{ZK}/http/cooper-grill-dvwa.pcapng", None, None, "DVWA attack session"),
    ("mitm", f"{CS}/arppoison.pcapng", "arp", "arp", "the ARP packets of the ARP-poisoning capture"),
    ("bruteforce", f"{ZK}/ftp/bruteforce.pcap", None, None, "FTP password guessing"),
    ("bruteforce", f"{MQ}/bruteforce/bruteforce-train.pcapng", None, None, "MQTT password guessing"),
    ("flood", f"{MQ}/flood/flood-train.pcap", None, None, "MQTT publish flood"),
    ("malariados", f"{MQ}/malariados/malariados-train.pcap", None, None, "MQTT MalariaDoS"),
    ("malformed", f"{MQ}/malformed/malformed-train.pcap", None, None, "malformed MQTT"),
    ("slowite", f"{MQ}/slowite/slowite-train.pcap", None, None, "MQTT SlowITe"),
]

FRACTIONS = (0.64, 0.16, 0.20)
PARTS = ("first 64 %", "next 16 %", "last 20 %")


def times(path, display):
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.time_epoch"]
    if display:
        cmd += ["-Y", display]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    ts = []
    for line in out.split():
        s, _, frac = line.partition(".")
        ts.append((int(s), int((frac + "000000000")[:9])))
    return ts


def rfc3339(t):
    s, ns = t
    d = datetime.datetime.fromtimestamp(s, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def parts(ts):
    """(start, end, packets) of the three parts: cuts at packet indices, as times."""
    n = len(ts)
    cuts = [0, round(FRACTIONS[0] * n), round((FRACTIONS[0] + FRACTIONS[1]) * n), n]
    out = []
    for i in range(3):
        a, b = cuts[i], cuts[i + 1]
        start = None if i == 0 else ts[a] if a < n else None
        end = None if i == 2 else ts[b] if b < n else None
        out.append((start, end, b - a))
    return out


print("""\
# The real captures of ../shared/data/pcaps (never committed; its README says what each
# holds) as one labelled multi-protocol training set:
#
#   iotids train examples/multiprotocol.toml --out multiprotocol
#
# Paths are relative to this file (from examples/ into ../shared/data/pcaps). Each capture
# is cut by time into its first 64 %, next 16 % and last 20 % of packets, and each class
# lists all its captures' first parts, then their middle parts, then their last parts, so
# the default time split (per class, in file order: 64 % train, 16 % validate, 20 % test)
# trains on the early traffic of every capture of the class and tests on the later
# traffic of each. A capture too small to give a part a packet gives it none.
# Generated by benches/multiprotocol_manifest.py; the packets of each part are counted
# above its entry. README: "A multi-protocol model from real captures".""")

classes = []
for c in CAPTURES:
    if c[0] not in classes:
        classes.append(c[0])
for cls in classes:
    print(f"\n# ======== {cls} ========")
    entries = [c for c in CAPTURES if c[0] == cls]
    cut = {c[1] + str(c[2]): parts(times(f"{PCAPS}/{c[1]}", c[3])) for c in entries}
    for p in range(3):
        for _, path, bpf, _, note in entries:
            start, end, n = cut[path + str(bpf)][p]
            if n == 0:
                continue
            print(f"\n# {note}: {PARTS[p]}, {n} packets")
            print("[[capture]]")
            print(f'path = "{REL}/{path}"')
            print(f'class = "{cls}"')
            if bpf:
                print(f'filter = "{bpf}"')
            if start:
                print(f'start = "{rfc3339(start)}"')
            if end:
                print(f'end = "{rfc3339(end)}"')
