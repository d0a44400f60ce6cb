#!/usr/bin/env python3
"""How one build's cost reaches others on a shared builder: N unrelated projects' cold builds
started together, against one alone, on dockerd 26 (the engine whose BuildKit runs builds
concurrently).

Each project is bench/flake with its own seeds (its dependencies are other derivations and
other bytes), so nothing is shared but the builder. The builder is pruned first, so every
build is cold.

Usage: python3 bench/concurrent.py [N] [SYNTAX]   (default 4, org/nixfront; run.sh starts the
engines; SYNTAX names another frontend image, e.g. an earlier nixfront, to compare)
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench  # noqa: E402  (the engines' paths and the docker helper)


def project(k, syntax):
    """A copy of bench/flake whose derivations are its own (seeds offset by 100 k)."""
    root = os.path.join(bench.HOST, f"concurrent-{k}")
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(os.path.join(HERE, "flake"), root)
    os.makedirs(os.path.join(root, "tools"), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(root, "tools", "busybox"))
    path = os.path.join(root, "flake.nix")
    with open(path) as f:
        text = f.read()
    text = re.sub(r"seed = (\d+);", lambda m: f"seed = {int(m.group(1)) + 100 * k};", text)
    with open(path, "w") as f:
        f.write(text)
    with open(os.path.join(root, "Dockerfile"), "w") as f:
        f.write(f"# syntax={syntax}\nFLAKE .\n")
    return bench.path_for("d26", root)


def build(context, tag, times, k):
    start = time.monotonic()
    bench.docker("d26", "buildx", "build", "--load", "--provenance=false", "-q",
                 "--build-arg", f"NIX_IMAGE={bench.NIX_IMAGE}", "-t", tag, context)
    times[k] = time.monotonic() - start


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    syntax = sys.argv[2] if len(sys.argv) > 2 else "org/nixfront"
    os.makedirs(bench.HOST, exist_ok=True)
    contexts = [project(k, syntax) for k in range(n + 1)]
    bench.prune("d26")
    alone = {}
    build(contexts[n], "nixfront-bench/concurrent-alone", alone, 0)
    bench.prune("d26")
    times = {}
    start = time.monotonic()
    threads = [threading.Thread(target=build, args=(contexts[k], f"nixfront-bench/concurrent-{k}", times, k))
               for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together = time.monotonic() - start
    print(f"{syntax}: one cold build alone {alone[0]:.1f} s; {n} unrelated cold builds started together "
          f"{together:.1f} s ({together / alone[0]:.2f}x one), each {', '.join(f'{times[k]:.1f}' for k in range(n))} s")


if __name__ == "__main__":
    main()
