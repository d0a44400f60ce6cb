#!/usr/bin/env python3
"""Side-by-side benchmark: the seed Dockerfile, the expert cache-mount variant and nixfront.

On each engine, the same builder image and the same flake, for each approach:

  quick rows (bench/flake: an app on five dependencies of 1-40 MiB that "compile" for 1-4 s)
    cold      build on an empty builder (docker builder prune -af first)
    no-op     the same build again
    edit      rebuild after an app-only edit (src/version)
    moved     bytes of the layers the edited image has and the old one lacks (diff IDs),
              sized from `docker save` (uncompressed tars on dockerd 20.10, the stored
              compressed blobs on dockerd 26)
    fresh     the same, with `docker builder prune -af` between the two builds
    size      the edited image's size

  frontend time: the frontend's own work (parse, group, lay out, SBOM, summary, marshal, the
  evaluation plan) for synthetic closures of 1000, 3000 and 10 000 paths (benches/frontend.rs)

  long rows (--long), by hand: they take about half an hour
    fresh runner: a cold build exporting BuildKit's cache (dockerd 26: --cache-to
    type=local,mode=max; dockerd 20.10: inline cache), then `docker builder prune -af` (and,
    on 26, the image removed), then the build importing it (--cache-from) with the source
    unchanged and after an app edit; the exported cache's size
    big closure (bench/flake-big: 24 dependencies of 48 MiB): cold, no-op, app edit, moved
    1 GB toolchain (the world's web-big): the warm edit and the fresh runner's edit
    fleet binary cache (nixfront; also alone with --fleet): a first runner's cold build that
    uploads to a binary cache (NIX_CACHE_TO, the world's server), then a second runner's cold
    build (empty builder and store) without and with that cache as a substituter

Prints a table per engine and the ratios nixfront/seed and nixfront/expert.
Usage: bench/run.sh [--long] [--nix=2.8] [--baseline=REV] [d20] [d26]   (run.sh starts the
engines and the frontend image; --nix=2.8 builds every approach with Nix 2.8 instead of 2.26;
--baseline=REV adds a column for the frontend of commit REV, built by
scripts/baseline-image.sh, and the ratio nixfront/baseline)
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
REPO = os.path.dirname(HERE)
DOCKER = os.path.join(REPO, "scripts", "docker.sh")
# The scripts' facts (scripts/lib.sh owns them): the engines' root, the builder image.
FACTS = dict(
    line.split("=", 1)
    for line in subprocess.run(
        ["bash", os.path.join(REPO, "scripts", "facts.sh")], check=True, capture_output=True, text=True
    ).stdout.splitlines()
)
CI_ROOT = FACTS["CI_ROOT"]
TRIXIE = FACTS["TRIXIE"]
INNER = "/tmp/nixfront-bench"  # the work dir as dockerd 26 (in the chroot) sees it
HOST = TRIXIE + INNER
# The builder image every approach uses: the tests' (Debian 13's Nix 2.26), or with --nix=2.8
# the oldest Nix nixfront supports (Debian 12's).
NIX_IMAGE = FACTS["NIX_IMAGE_OLDEST"] if "--nix=2.8" in sys.argv else FACTS["NIX_IMAGE"]
# With --baseline, the frontend of an earlier commit (its image tagged BASELINE_TAG by
# run.sh) builds the same as a fourth approach.
BASELINE_TAG = "org/nixfront:baseline"
BASELINE = any(a.startswith("--baseline=") for a in sys.argv)
APPROACHES = ["seed", "expert", "nixfront"] + (["baseline"] if BASELINE else [])


def docker(engine, *args, check=True, stdout=subprocess.PIPE):
    res = subprocess.run([DOCKER, engine, *args], stdout=stdout, stderr=subprocess.PIPE, text=stdout is not None)
    if check and res.returncode != 0:
        log = "\n".join(f"{res.stdout or ''}\n{res.stderr}".splitlines()[-80:])
        sys.exit(f"docker {' '.join(args)} on {engine} failed:\n{log}")
    return res


def path_for(engine, host_path):
    return host_path if engine == "d20" else host_path[len(TRIXIE):]


def build(engine, approach, tag, flake="flake", extra=(), dockerfile_dir=HOST):
    context = path_for(engine, os.path.join(HOST, flake))
    dockerfile = path_for(engine, os.path.join(dockerfile_dir, f"Dockerfile.{approach}"))
    cmd = ["build"] if engine == "d20" else ["buildx", "build", "--load", "--provenance=false"]
    # Plain progress, kept for a failure's sake: -q would hide the log of the step that failed.
    cmd += ["--progress=plain", "-f", dockerfile, "--build-arg", f"NIX_IMAGE={NIX_IMAGE}", "-t", tag, *extra, context]
    start = time.monotonic()
    docker(engine, *cmd)
    return time.monotonic() - start


def prune(engine):
    docker(engine, "builder", "prune", "-af")


def diff_ids(engine, tag):
    out = docker(engine, "image", "inspect", "-f", "{{json .RootFS.Layers}}", tag).stdout
    return json.loads(out)


def layer_sizes(engine, tag):
    """diff ID -> size of that layer in `docker save`."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, "image.tar")
        with open(archive, "wb") as f:
            docker(engine, "save", tag, stdout=f)
        with tarfile.open(archive) as t:
            manifest = json.load(t.extractfile("manifest.json"))
            sizes = [t.getmember(f).size for f in manifest[0]["Layers"]]
    return dict(zip(diff_ids(engine, tag), sizes))


def moved_bytes(engine, old_tag, new_tag):
    old = set(diff_ids(engine, old_tag))
    return sum(size for d, size in layer_sizes(engine, new_tag).items() if d not in old)


def set_version(flake, v):
    with open(os.path.join(HOST, flake, "src", "version"), "w") as f:
        f.write(f"{v}\n")


def check_runs(engine, approach, tag):
    out = docker(engine, "run", "--rm", tag).stdout.strip()
    if not out.startswith("app 2 "):
        sys.exit(f"{approach} on {engine}: the edited image printed {out!r}")


def prepare():
    shutil.rmtree(HOST, ignore_errors=True)
    for flake in ["flake", "flake-big"]:
        shutil.copytree(os.path.join(HERE, flake), os.path.join(HOST, flake))
        os.makedirs(os.path.join(HOST, flake, "tools"), exist_ok=True)
        shutil.copy("/bin/busybox", os.path.join(HOST, flake, "tools", "busybox"))
    for a in APPROACHES:
        write_dockerfile(a, HOST)


def write_dockerfile(approach, directory):
    """Dockerfile.APPROACH in `directory`: the baseline's is nixfront's with the baseline's syntax."""
    source = "nixfront" if approach == "baseline" else approach
    with open(os.path.join(HERE, f"Dockerfile.{source}")) as f:
        text = f.read()
    if approach == "baseline":
        text = text.replace("# syntax=org/nixfront\n", f"# syntax={BASELINE_TAG}\n")
    with open(os.path.join(directory, f"Dockerfile.{approach}"), "w") as f:
        f.write(text)


def world():
    """scripts/nixworld.sh's world.env, as a dict."""
    with open(os.path.join(CI_ROOT, "nixworld", "world.env")) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line)


def served(engine):
    """Bytes the world's server has sent to `engine`'s builds so far."""
    try:
        with open(os.path.join(CI_ROOT, "nixworld", "log", f"{engine}.jsonl")) as f:
            return sum(json.loads(line).get("bytes", 0) for line in f)
    except FileNotFoundError:
        return 0


def measured(engine, fn):
    """(seconds, bytes downloaded) of fn()."""
    before = served(engine)
    secs = fn()
    return secs, served(engine) - before


def real(engine, approach, app="web"):
    """The real-flake rows: cold, warm edit, fresh runner unchanged and edited."""
    w = world()
    config = f"NIX_CONFIG=extra-substituters = {w['NIXWORLD_URL']}/cache\nextra-trusted-public-keys = {w['NIXWORLD_KEY']}"
    extra = ("--build-arg", config)
    root = os.path.join(HOST, f"real-{app}")
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(os.path.join(CI_ROOT, "nixworld", "apps", app), root)
    if approach in ("nixfront", "baseline"):
        syntax = BASELINE_TAG if approach == "baseline" else "org/nixfront"
        with open(os.path.join(root, f"Dockerfile.{approach}"), "w") as f:
            f.write(f"# syntax={syntax}\nFLAKE .\n")
    else:
        shutil.copy(os.path.join(HERE, f"Dockerfile.{approach}"), root)
        with open(os.path.join(root, f"Dockerfile.{approach}"), "a") as f:
            f.write('CMD ["/app/bin/web"]\n' if approach == "expert" else "")
        if approach == "seed":
            with open(os.path.join(root, f"Dockerfile.{approach}")) as f:
                text = f.read().replace('CMD ["/app/bin/app"]', 'CMD ["/app/bin/web"]')
            with open(os.path.join(root, f"Dockerfile.{approach}"), "w") as f:
                f.write(text)
    flake = os.path.relpath(root, HOST)
    tag = f"nixfront-bench/real-{approach}-{app}"

    def message(text):
        with open(os.path.join(root, "src", "message"), "w") as f:
            f.write(text + "\n")

    def b(t, more=()):
        return lambda: build(engine, approach, t, flake, extra=(*extra, *more), dockerfile_dir=root)

    r = {}
    message("real v1")
    prune(engine)
    r["real_cold"], r["real_cold_bytes"] = measured(engine, b(f"{tag}:v1"))
    message("real v2")
    r["real_edit"], r["real_edit_bytes"] = measured(engine, b(f"{tag}:v2"))
    check_real(engine, approach, f"{tag}:v2", "real v2")
    # A fresh runner: the cache of a cold build, the builder pruned.
    message("real v1")
    prune(engine)
    docker(engine, "image", "rm", "-f", f"{tag}:c1", f"{tag}:c2", f"{tag}:c3", check=False)
    if engine == "d26":
        cache = os.path.join(HOST, f"cache-real-{approach}")
        shutil.rmtree(cache, ignore_errors=True)
        export = ("--cache-to", f"type=local,dest={path_for(engine, cache)},mode=max")
        imports = ("--cache-from", f"type=local,src={path_for(engine, cache)}")
    else:
        export = ("--build-arg", "BUILDKIT_INLINE_CACHE=1")
        imports = ("--cache-from", f"{tag}:c1")
    b(f"{tag}:c1", export)()
    prune(engine)
    if engine == "d26":
        docker(engine, "image", "rm", "-f", f"{tag}:c1")
    r["real_unchanged"], r["real_unchanged_bytes"] = measured(engine, b(f"{tag}:c2", imports))
    prune(engine)
    message("real v3")
    r["real_fresh"], r["real_fresh_bytes"] = measured(engine, b(f"{tag}:c3", imports))
    check_real(engine, approach, f"{tag}:c3", "real v3")
    if engine == "d26":
        # The same fresh runner with the cache exported zstd-compressed (BuildKit's
        # compression=zstd), which a runner unpacks several times faster than gzip.
        message("real v1")
        prune(engine)
        docker(engine, "image", "rm", "-f", f"{tag}:z1", f"{tag}:z3", check=False)
        shutil.rmtree(cache, ignore_errors=True)
        b(f"{tag}:z1", (export[0], export[1] + ",compression=zstd"))()
        prune(engine)
        docker(engine, "image", "rm", "-f", f"{tag}:z1")
        message("real v3")
        r["real_fresh_zstd"], _ = measured(engine, b(f"{tag}:z3", imports))
        check_real(engine, approach, f"{tag}:z3", "real v3")
    return r


def check_real(engine, approach, tag, want):
    out = docker(engine, "run", "--rm", tag).stdout.strip().splitlines()
    if not out or out[0] != want:
        sys.exit(f"{approach} on {engine}: {tag} printed {out!r}, not {want!r}")


def quick(engine, approach, flake="flake"):
    tag = f"nixfront-bench/{approach}-{flake}"
    set_version(flake, 1)
    prune(engine)
    r = {"cold": build(engine, approach, f"{tag}:v1", flake)}
    r["noop"] = build(engine, approach, f"{tag}:v1", flake)
    set_version(flake, 2)
    r["edit"] = build(engine, approach, f"{tag}:v2", flake)
    r["moved"] = moved_bytes(engine, f"{tag}:v1", f"{tag}:v2")
    check_runs(engine, approach, f"{tag}:v2")
    if flake == "flake":
        prune(engine)
        build(engine, approach, f"{tag}:v2fresh", flake)
        r["fresh"] = moved_bytes(engine, f"{tag}:v1", f"{tag}:v2fresh")
        r["size"] = sum(layer_sizes(engine, f"{tag}:v2").values())
        r["layers"] = len(diff_ids(engine, f"{tag}:v2"))
    return r


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def fresh_runner(engine, approach):
    """A CI runner that starts empty and carries only BuildKit's exported cache."""
    tag = f"nixfront-bench/{approach}-ci"
    set_version("flake", 1)
    prune(engine)
    docker(engine, "image", "rm", "-f", f"{tag}:v1", f"{tag}:v2", check=False)
    r = {}
    if engine == "d26":
        cache = os.path.join(HOST, f"cache-{approach}")
        shutil.rmtree(cache, ignore_errors=True)
        export = ["--cache-to", f"type=local,dest={path_for(engine, cache)},mode=max"]
        imports = ["--cache-from", f"type=local,src={path_for(engine, cache)}"]
        r["export"] = build(engine, approach, f"{tag}:v1", extra=export)
        r["exported"] = du(cache)
    else:
        export = ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        imports = ["--cache-from", f"{tag}:v1"]
        r["export"] = build(engine, approach, f"{tag}:v1", extra=export)
        r["exported"] = 0
    prune(engine)
    if engine == "d26":
        docker(engine, "image", "rm", "-f", f"{tag}:v1")
    r["unchanged"] = build(engine, approach, f"{tag}:v1b", extra=imports)
    prune(engine)
    docker(engine, "image", "rm", "-f", f"{tag}:v1b", check=False)
    set_version("flake", 2)
    r["cedit"] = build(engine, approach, f"{tag}:v2", extra=imports)
    check_runs(engine, approach, f"{tag}:v2")
    return r


def fleet(engine):
    """A binary cache the fleet shares (NIX_CACHE_TO): a second runner's cold build without and
    with it, after a first runner's cold build uploaded to it (nixfront only)."""
    subprocess.run(["bash", os.path.join(REPO, "scripts", "buildhost.sh")], check=True, capture_output=True)
    with open(os.path.join(CI_ROOT, "buildhost", "host.env")) as f:
        host = dict(line.strip().split("=", 1) for line in f if "=" in line)
    w = world()
    cache = f"{w['NIXWORLD_URL']}/upload/bench-{engine}-{int(time.time())}"
    netrc = os.path.join(HOST, "netrc")
    with open(netrc, "w") as f:
        f.write(f"machine 172.17.0.1 login {w['NIXWORLD_NETRC_LOGIN']} password {w['NIXWORLD_NETRC_PASSWORD']}\n")
    key = host["BUILDHOST_SIGNING_KEY"] if engine == "d20" else host["BUILDHOST_SIGNING_KEY_INNER"]
    upload = ("--build-arg", f"NIX_CACHE_TO={cache}", "--secret", f"id=nix-signing-key,src={key}",
              "--secret", f"id=netrc,src={path_for(engine, netrc)}")
    reader = ("--build-arg", f"NIX_CONFIG=extra-substituters = {cache}\nextra-trusted-public-keys = {host['BUILDHOST_PUBLIC_KEY']}")
    tag = "nixfront-bench/fleet"
    set_version("flake", 1)
    prune(engine)
    r = {"fleet_upload": build(engine, "nixfront", f"{tag}:first", extra=upload)}
    prune(engine)
    r["fleet_without"] = build(engine, "nixfront", f"{tag}:without")
    prune(engine)
    r["fleet_with"] = build(engine, "nixfront", f"{tag}:with", extra=reader)
    check_runs_version(engine, f"{tag}:with", 1)
    return r


def check_runs_version(engine, tag, version):
    out = docker(engine, "run", "--rm", tag).stdout.strip()
    if not out.startswith(f"app {version} "):
        sys.exit(f"{tag} on {engine} printed {out!r}")


def report_fleet(engine, r):
    name = {"d20": "dockerd 20.10", "d26": "dockerd 26.1"}[engine]
    print(f"\nfleet binary cache, {name} (bench flake, nixfront, one run each)")
    print(f"| first runner: cold build + upload (NIX_CACHE_TO)       | {secs(r['fleet_upload']):>10} |")
    print(f"| second runner: cold build, no shared cache             | {secs(r['fleet_without']):>10} |")
    print(f"| second runner: cold build, the fleet's cache           | {secs(r['fleet_with']):>10} | "
          f"{r['fleet_with'] / r['fleet_without']:.3f} |")


def run_engine(engine, long):
    results = {}
    for approach in APPROACHES:
        r = quick(engine, approach)
        r.update(real(engine, approach))
        if long:
            r.update(fresh_runner(engine, approach))
            big = quick(engine, approach, "flake-big")
            r.update({f"big_{k}": v for k, v in big.items()})
            gb = real(engine, approach, "web-big")
            r.update({f"gb_{k}": v for k, v in gb.items() if k in ("real_edit", "real_fresh", "real_fresh_bytes")})
            if approach == "nixfront":
                r.update(fleet(engine))
        results[approach] = r
        print(f"  {engine} {approach}: done", file=sys.stderr)
    return results


def mb(n):
    if n == 0:
        return "0"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def secs(v):
    return f"{v:.2f} s"


def report(engine, res, long):
    rows = [
        ("cold build", "cold", secs),
        ("no-op rebuild", "noop", secs),
        ("rebuild after app edit", "edit", secs),
        ("redeploy bytes, same builder", "moved", mb),
        ("redeploy bytes, fresh builder", "fresh", mb),
        ("image size (saved layers)", "size", mb),
        ("layers", "layers", str),
        ("real flake: cold (binary cache)", "real_cold", secs),
        ("real flake: cold, downloaded", "real_cold_bytes", mb),
        ("real flake: app edit", "real_edit", secs),
        ("real flake: app edit, downloaded", "real_edit_bytes", mb),
        ("real flake: fresh runner, unchanged", "real_unchanged", secs),
        ("real flake: fresh runner, unchanged, downloaded", "real_unchanged_bytes", mb),
        ("real flake: fresh runner, app edit", "real_fresh", secs),
        ("real flake: fresh runner, app edit, downloaded", "real_fresh_bytes", mb),
        ("real flake: fresh runner, app edit (zstd cache)", "real_fresh_zstd", secs),
    ]
    if long:
        cache = "local cache" if engine == "d26" else "inline cache"
        rows += [
            (f"fresh runner: cold + export ({cache})", "export", secs),
            ("fresh runner: unchanged source", "unchanged", secs),
            ("fresh runner: app edit", "cedit", secs),
            ("exported cache (mode=max)", "exported", mb),
            ("~1.1 GB closure: cold build", "big_cold", secs),
            ("~1.1 GB closure: no-op", "big_noop", secs),
            ("~1.1 GB closure: app edit", "big_edit", secs),
            ("~1.1 GB closure: redeploy bytes", "big_moved", mb),
            ("1 GB toolchain: app edit", "gb_real_edit", secs),
            ("1 GB toolchain: fresh runner, app edit", "gb_real_fresh", secs),
            ("1 GB toolchain: fresh runner, downloaded", "gb_real_fresh_bytes", mb),
        ]
    name = {"d20": "dockerd 20.10 / BuildKit 0.8", "d26": "dockerd 26.1 + buildx / BuildKit 0.13"}[engine]
    print(f"\n{name}")
    base = f" {'baseline':>12} | {'nf/base':>8} |" if BASELINE else ""
    header = f"| {'':48} | {'seed':>12} | {'expert':>12} | {'nixfront':>12} | {'nf/seed':>8} | {'nf/expert':>9} |{base}"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for label, key, fmt in rows:
        if all(key not in res[a] for a in APPROACHES) or (key == "exported" and engine == "d20"):
            continue
        s, e, n = (res[a].get(key, 0) for a in ("seed", "expert", "nixfront"))
        ratio = lambda a, b: f"{a / b:.3f}" if b and key != "layers" else "-"
        line = f"| {label:48} | {fmt(s):>12} | {fmt(e):>12} | {fmt(n):>12} | {ratio(n, s):>8} | {ratio(n, e):>9} |"
        if BASELINE:
            b = res["baseline"].get(key, 0)
            line += f" {fmt(b):>12} | {ratio(n, b):>8} |"
        print(line)
    n = res["nixfront"]
    if "fleet_with" in n:
        report_fleet(engine, n)
    print(f"  redeploy share of the image: nixfront {100 * n['moved'] / n['size']:.3f}% "
          f"(fresh builder {100 * n['fresh'] / n['size']:.3f}%), "
          f"seed {100 * res['seed']['moved'] / res['seed']['size']:.1f}%")


def frontend_time():
    """The frontend's own work for closures of 1000 to 10 000 paths (benches/frontend.rs)."""
    print("== the frontend's own time per build, by closure size (ms; no BuildKit, no Nix)", flush=True)
    run = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "frontend"], cwd=REPO, capture_output=True, text=True
    )
    print(run.stdout if run.returncode == 0 else f"benches/frontend.rs FAILED:\n{run.stderr}", flush=True)


def main():
    args = sys.argv[1:]
    long = "--long" in args
    engines = [a for a in args if not a.startswith("--")] or ["d20", "d26"]
    if "--fleet" in args:
        prepare()
        for engine in engines:
            report_fleet(engine, fleet(engine))
        return
    version = docker("d20", "run", "--rm", NIX_IMAGE, "nix", "--version").stdout.strip()
    print(f"== builder image of every approach: {NIX_IMAGE} ({version})", flush=True)
    if BASELINE:
        rev = next(a for a in args if a.startswith("--baseline="))[len("--baseline="):]
        subprocess.run(["bash", os.path.join(REPO, "scripts", "baseline-image.sh"), rev, BASELINE_TAG], check=True)
        print(f"== baseline: the frontend of {rev} as {BASELINE_TAG}", flush=True)
    frontend_time()
    prepare()
    all_results = {}
    for engine in engines:
        all_results[engine] = run_engine(engine, long)
    for engine in engines:
        report(engine, all_results[engine], long)
    with open(os.path.join(HOST, "results.json"), "w") as f:
        json.dump(all_results, f, indent=2)


if __name__ == "__main__":
    main()
