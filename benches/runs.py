"""What the scripts that run `iotids` on a training and a test file share: their command
line (IOTIDS TRAIN TEST OUT_DIR [options] [-- flags passed on to iotids]) and running a
command that must succeed."""

import argparse
import subprocess
import sys


def parser(description):
    """An argument parser with the four positional arguments."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("iotids")
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("out")
    return ap


def parse(ap, argv=None):
    """(arguments, flags after `--`, passed on to iotids)."""
    argv = sys.argv[1:] if argv is None else argv
    flags = []
    if "--" in argv:
        i = argv.index("--")
        argv, flags = argv[:i], argv[i + 1 :]
    return ap.parse_args(argv), flags


def run(cmd):
    """Runs `cmd`, its output discarded; exits with its errors when it fails."""
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stderr}")
