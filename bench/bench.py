#!/usr/bin/env python3
"""Side-by-side benchmark: the seed Dockerfile, the expert cache-mount variant and nixfront.

On each engine and the same builder image and flake (bench/flake: an app on five
dependencies of 1-40 MiB that "compile" for 1-4 s), for each approach:

  cold      build on an empty builder (docker builder prune -af first)
  no-op     the same build again
  edit      rebuild after an app-only edit (bench/flake/src/version)
  moved     bytes of the layers the edited image has and the old one lacks (diff IDs),
            sized from `docker save` (uncompressed tars on dockerd 20.10, the stored
            compressed blobs on dockerd 26)
  fresh     the same, with `docker builder prune -af` between the two builds (a new CI runner)
  size      the edited image's size

Prints a table per engine and the ratios nixfront/seed and nixfront/expert.
Usage: bench/run.sh [d20] [d26]   (engines and the frontend image must be up: run.sh does it)
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CI_ROOT = os.environ.get("NIXFRONT_CI_ROOT", "/var/lib/nixfront-ci")
TRIXIE = os.path.join(CI_ROOT, "trixie")
INNER = "/tmp/nixfront-bench"  # the work dir as dockerd 26 (in the chroot) sees it
HOST = TRIXIE + INNER
NIX_IMAGE = "localnix/nix:2.8"
APPROACHES = ["seed", "expert", "nixfront"]


def docker(engine, *args, check=True, capture=True):
    if engine == "d20":
        cmd = ["/usr/bin/docker", *args]
        env = dict(os.environ, DOCKER_BUILDKIT="1")
    else:
        cmd = ["chroot", TRIXIE, "docker", "-H", "unix:///run/d26/docker.sock", *args]
        env = None
    res = subprocess.run(cmd, env=env, capture_output=capture, text=True)
    if check and res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return res


def path_for(engine, host_path):
    return host_path if engine == "d20" else host_path[len(TRIXIE):]


def build(engine, approach, tag):
    context = path_for(engine, os.path.join(HOST, "ctx"))
    dockerfile = path_for(engine, os.path.join(HOST, f"Dockerfile.{approach}"))
    cmd = ["build"] if engine == "d20" else ["buildx", "build", "--load"]
    cmd += ["-q", "-f", dockerfile, "--build-arg", f"NIX_IMAGE={NIX_IMAGE}", "-t", tag, context]
    start = time.monotonic()
    docker(engine, *cmd)
    return time.monotonic() - start


def diff_ids(engine, tag):
    out = docker(engine, "image", "inspect", "-f", "{{json .RootFS.Layers}}", tag).stdout
    return json.loads(out)


def layer_sizes(engine, tag):
    """diff ID -> size of that layer in `docker save`."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, "image.tar")
        if engine == "d20":
            docker(engine, "save", "-o", archive, tag)
        else:
            with open(archive, "wb") as f:
                subprocess.run(["chroot", TRIXIE, "docker", "-H", "unix:///run/d26/docker.sock",
                                "save", tag], stdout=f, check=True)
        with tarfile.open(archive) as t:
            manifest = json.load(t.extractfile("manifest.json"))
            files = manifest[0]["Layers"]
            sizes = [t.getmember(f).size for f in files]
    return dict(zip(diff_ids(engine, tag), sizes))


def moved_bytes(engine, old_tag, new_tag):
    old = set(diff_ids(engine, old_tag))
    return sum(size for d, size in layer_sizes(engine, new_tag).items() if d not in old)


def set_version(v):
    with open(os.path.join(HOST, "ctx", "src", "version"), "w") as f:
        f.write(f"{v}\n")


def prepare():
    shutil.rmtree(HOST, ignore_errors=True)
    shutil.copytree(os.path.join(HERE, "flake"), os.path.join(HOST, "ctx"))
    os.makedirs(os.path.join(HOST, "ctx", "tools"), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(HOST, "ctx", "tools", "busybox"))
    for a in APPROACHES:
        shutil.copy(os.path.join(HERE, f"Dockerfile.{a}"), HOST)


def run_engine(engine):
    results = {}
    for approach in APPROACHES:
        tag = f"nixfront-bench/{approach}"
        set_version(1)
        docker(engine, "builder", "prune", "-af")
        r = {"cold": build(engine, approach, f"{tag}:v1")}
        r["noop"] = build(engine, approach, f"{tag}:v1")
        set_version(2)
        r["edit"] = build(engine, approach, f"{tag}:v2")
        r["moved"] = moved_bytes(engine, f"{tag}:v1", f"{tag}:v2")
        docker(engine, "builder", "prune", "-af")
        build(engine, approach, f"{tag}:v2fresh")
        r["fresh"] = moved_bytes(engine, f"{tag}:v1", f"{tag}:v2fresh")
        r["size"] = sum(layer_sizes(engine, f"{tag}:v2").values())
        r["layers"] = len(diff_ids(engine, f"{tag}:v2"))
        out = docker(engine, "run", "--rm", f"{tag}:v2").stdout.strip()
        if not out.startswith("app 2 "):
            sys.exit(f"{approach} on {engine}: the edited image printed {out!r}")
        results[approach] = r
        print(f"  {engine} {approach}: done", file=sys.stderr)
    return results


def mb(n):
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def report(engine, res):
    rows = [
        ("cold build", "cold", lambda v: f"{v:.2f} s"),
        ("no-op rebuild", "noop", lambda v: f"{v:.2f} s"),
        ("rebuild after app edit", "edit", lambda v: f"{v:.2f} s"),
        ("redeploy bytes, same builder", "moved", mb),
        ("redeploy bytes, fresh builder", "fresh", mb),
        ("image size (saved layers)", "size", mb),
        ("layers", "layers", str),
    ]
    name = {"d20": "dockerd 20.10 / BuildKit 0.8", "d26": "dockerd 26.1 + buildx / BuildKit 0.13"}[engine]
    print(f"\n{name}")
    header = f"| {'':31} | {'seed':>12} | {'expert':>12} | {'nixfront':>12} | {'nf/seed':>8} | {'nf/expert':>9} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for label, key, fmt in rows:
        s, e, n = (res[a][key] for a in APPROACHES)
        ratio = lambda a, b: f"{a / b:.3f}" if b else "-"
        print(f"| {label:31} | {fmt(s):>12} | {fmt(e):>12} | {fmt(n):>12} | {ratio(n, s):>8} | {ratio(n, e):>9} |")
    n = res["nixfront"]
    print(f"  redeploy share of the image: nixfront {100 * n['moved'] / n['size']:.3f}% "
          f"(fresh builder {100 * n['fresh'] / n['size']:.3f}%), "
          f"seed {100 * res['seed']['moved'] / res['seed']['size']:.1f}%")


def main():
    engines = sys.argv[1:] or ["d20", "d26"]
    prepare()
    all_results = {}
    for engine in engines:
        all_results[engine] = run_engine(engine)
    for engine in engines:
        report(engine, all_results[engine])
    with open(os.path.join(HOST, "results.json"), "w") as f:
        json.dump(all_results, f, indent=2)


if __name__ == "__main__":
    main()
