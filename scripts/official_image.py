#!/usr/bin/env python3
"""The Nix store of scripts/official-image.sh: a replica of the official nixos/nix image's
/nix/store made from a Debian 13 root with Debian's nix-bin (SRC, only read).

  official_image.py store SRC DEST     lays out DEST/nix/store: glibc, the other shared
                                       libraries, one path per tool, the CA bundle and the
                                       root-profile-env profile; prints `KEY STORE-PATH` lines
  official_image.py registration DEST  the input of `nix-store --register-validity` for every
                                       path of DEST/nix/store, references scanned as Nix does
  official_image.py check DEST         fails unless every ELF of DEST has its loader and its
                                       libraries in the store (and nothing outside it)

Store paths are /nix/store/<32 chars of Nix base32>-<name>-<version>, the hash made from the
name, the contents taken from SRC and the paths it depends on: two runs give the same paths.
Each ELF gets the store glibc's loader and a RUNPATH of the store library directories it needs.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys

STORE = "/nix/store"
BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"
LIBDIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib", "/usr/lib64"]
LOADER = "ld-linux-x86-64.so.2"
# Store name, Debian package, programs (None: every program of the package), required.
TOOLS = [
    ("bash", "bash", ["bash"], True),
    ("coreutils", "coreutils", None, True),
    ("findutils", "findutils", ["find", "xargs"], True),
    ("gnugrep", "grep", None, True),
    ("gnutar", "tar", ["tar"], True),
    ("gzip", "gzip", None, True),
    ("xz", "xz-utils", None, True),
    ("less", "less", ["less", "lessecho", "lesskey"], False),
    ("wget", "wget", ["wget"], False),
    ("openssh", "openssh-client", ["ssh", "scp", "sftp", "ssh-add", "ssh-agent", "ssh-keygen", "ssh-keyscan"], True),
]
# Compiled-in paths that would leave the store, made PATH look-ups (NUL-padded in place).
STRING_FIXES = {"scp": [(b"/usr/bin/ssh\0", b"ssh\0")], "sftp": [(b"/usr/bin/ssh\0", b"ssh\0")]}
# git looks for its helpers (git-remote-https, ...) and its templates in the paths compiled
# in (/usr/lib/git-core, /usr/share/git-core/templates): this wrapper only names the store's
# ones and execs git.
GIT_WRAPPER = """#!@bash@/bin/bash
export GIT_EXEC_PATH=@out@/libexec/git-core
export GIT_TEMPLATE_DIR=@out@/share/git-core/templates
exec @out@/libexec/git-core/git "$@"
"""


def log(msg):
    print(f"[official_image.py] {msg}", file=sys.stderr)


def nix_base32(digest):
    """Nix's base32 (printHash32) of a digest XOR-folded to 20 bytes: 32 characters."""
    h = bytearray(20)
    for i, b in enumerate(digest):
        h[i % 20] ^= b
    out = []
    for n in range((len(h) * 8 - 1) // 5, -1, -1):
        i, j = divmod(n * 5, 8)
        c = h[i] >> j | (h[i + 1] << (8 - j) if i + 1 < len(h) else 0)
        out.append(BASE32[c & 0x1F])
    return "".join(out)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def patchelf(*args, check=True):
    r = subprocess.run(["patchelf", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"patchelf {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.split() if r.returncode == 0 else None


def resolve(root, path):
    """The host path of PATH inside ROOT, symlinks followed as if ROOT were /."""
    cur, todo, hops = "/", path.split("/"), 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            cur = os.path.dirname(cur)
            continue
        nxt = os.path.join(cur, part)
        if os.path.islink(root + nxt):
            hops += 1
            if hops > 40:
                raise SystemExit(f"symlink loop at {path} in {root}")
            target = os.readlink(root + nxt)
            cur = "/" if target.startswith("/") else cur
            todo = target.split("/") + todo
        else:
            cur = nxt
    return root + cur


class Dpkg:
    """The packages installed in SRC: versions and file lists."""

    def __init__(self, src):
        self.src, self.versions = src, {}
        with open(f"{src}/var/lib/dpkg/status") as f:
            for block in f.read().split("\n\n"):
                fields = dict(re.findall(r"^(\w[\w-]*): (.*)$", block, re.M))
                if fields.get("Status") == "install ok installed":
                    self.versions[fields["Package"]] = fields["Version"]

    def version(self, pkg):
        """The upstream version: no epoch, Debian revision, +dfsg or ~ suffix."""
        v = re.sub(r"^\d+:", "", self.versions[pkg])
        v = v.rsplit("-", 1)[0] if "-" in v else v
        return re.split(r"[+~]", v)[0]

    def files(self, pkg):
        for name in (pkg, f"{pkg}:amd64"):
            path = f"{self.src}/var/lib/dpkg/info/{name}.list"
            if os.path.exists(path):
                with open(path) as f:
                    return [line.rstrip("\n") for line in f]
        raise SystemExit(f"no file list of {pkg} in {self.src}")

    def programs(self, pkg):
        return sorted(os.path.basename(p) for p in self.files(pkg)
                      if re.match(r"^/(usr/)?s?bin/[^/]+$", p) and os.path.lexists(self.src + p))


class StorePath:
    """A store path to write: entries (relative path, kind, data) of kind `file` (a host file,
    patched if ELF, shebang moved to the store's bash if a script), `link` (a symlink target)
    or `text` (contents, @out@ and @bash@ replaced)."""

    def __init__(self, name, entries, deps=()):
        self.name, self.entries, self.deps = name, sorted(entries), list(deps)
        h = hashlib.sha256(name.encode())
        for rel, kind, data in self.entries:
            digest = sha256_file(data) if kind == "file" else data
            h.update(f"\0{rel}\0{kind}\0{digest}".encode())
        for dep in self.deps:
            h.update(f"\0dep\0{dep.path}".encode())
        self.path = f"{STORE}/{nix_base32(h.digest())}-{name}"


class Builder:
    def __init__(self, src, dest):
        self.src, self.dest, self.dpkg = src, dest, Dpkg(src)
        self.glibc_files = {os.path.basename(p): self.src + p for p in self.dpkg.files("libc6")
                            if re.match(r"^/usr/lib/x86_64-linux-gnu/[^/]+\.so[.0-9]*$", p)}
        self.libs = {}  # soname -> host file, the libraries other than glibc's
        self.soname_dir = {}  # soname -> store directory holding it

    def program(self, pkg, name):
        for d in ("/usr/bin", "/usr/sbin"):
            if os.path.lexists(f"{self.src}{d}/{name}"):
                return f"{self.src}{d}/{name}"
        raise SystemExit(f"{name} of {pkg} is not in {self.src}")

    def bin_entries(self, pkg, names):
        """bin/NAME for each program: a link when Debian's is a link to another of NAMES."""
        entries = []
        for name in names:
            host = self.program(pkg, name)
            target = os.readlink(host) if os.path.islink(host) else None
            if target and "/" not in target and target in names:
                entries.append((f"bin/{name}", "link", target))
            else:
                entries.append((f"bin/{name}", "file", resolve(self.src, host[len(self.src):])))
        return entries

    def tree_entries(self, src_dir, prefix):
        """Every file and symlink below SRC_DIR (a host path), as PREFIX/..."""
        entries = []
        for root, dirs, files in os.walk(src_dir):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                host = os.path.join(root, name)
                rel = f"{prefix}/{os.path.relpath(host, src_dir)}"
                if os.path.islink(host) and not os.readlink(host).startswith("/"):
                    entries.append((rel, "link", os.readlink(host)))
                else:
                    entries.append((rel, "file", resolve(self.src, host[len(self.src):])))
        return entries

    def needed_closure(self, elfs):
        """Fills self.libs with every library ELFS need, recursively, glibc's apart."""
        todo = list(elfs)
        while todo:
            elf = todo.pop()
            needed = patchelf("--print-needed", elf, check=False) or []
            rpath = (patchelf("--print-rpath", elf, check=False) or [""])[0]
            dirs = [d.replace("$ORIGIN", os.path.dirname(elf)[len(self.src):])
                    for d in rpath.split(":") if d] + LIBDIRS
            for soname in needed:
                if soname in self.glibc_files or soname in self.libs:
                    continue
                found = [resolve(self.src, f"{d}/{soname}") for d in dirs]
                found = [f for f in found if os.path.isfile(f)]
                if not found:
                    raise SystemExit(f"{elf} needs {soname}, which is not in {self.src}")
                self.libs[soname] = found[0]
                todo.append(found[0])

    def plan(self):
        d = self.dpkg
        self.glibc = StorePath(f"glibc-{d.version('libc6')}",
                               [(f"lib/{n}", "file", f) for n, f in self.glibc_files.items()])
        tools = []
        for name, pkg, names, required in TOOLS:
            if pkg not in d.versions:
                if required:
                    raise SystemExit(f"{pkg} is not installed in {self.src}")
                log(f"{pkg} is not installed in {self.src}: no {name}")
                continue
            entries = self.bin_entries(pkg, names or d.programs(pkg))
            if name == "bash":
                entries.append(("bin/sh", "link", "bash"))
            tools.append((name, d.version(pkg), entries))
        nix_links = ["nix-build", "nix-channel", "nix-collect-garbage", "nix-copy-closure", "nix-daemon",
                     "nix-env", "nix-hash", "nix-instantiate", "nix-prefetch-url", "nix-shell", "nix-store"]
        tools.insert(0, ("nix", d.version("nix-bin"),
                         [("bin/nix", "file", f"{self.src}/usr/bin/nix"),
                          ("libexec/nix/build-remote", "link", "../../bin/nix")]
                         + [(f"bin/{n}", "link", "nix") for n in nix_links]))
        git = self.tree_entries(f"{self.src}/usr/lib/git-core", "libexec/git-core")
        git += self.tree_entries(f"{self.src}/usr/share/git-core/templates", "share/git-core/templates")
        git.append(("bin/git", "text", GIT_WRAPPER))
        git += [(f"bin/{n}", "link", f"../libexec/git-core/{n}")
                for n in ("git-receive-pack", "git-upload-archive", "git-upload-pack")]
        tools.append(("git", d.version("git"), git))

        elfs = [data for _, _, entries in tools for _, kind, data in entries
                if kind == "file" and is_elf(data)]
        self.needed_closure(elfs + list(self.glibc_files.values()))
        self.image_libs = StorePath("nix-image-libs", [(f"lib/{n}", "file", f) for n, f in self.libs.items()],
                                    [self.glibc])
        for soname in self.glibc_files:
            self.soname_dir[soname] = f"{self.glibc.path}/lib"
        for soname in self.libs:
            self.soname_dir[soname] = f"{self.image_libs.path}/lib"

        base = [self.glibc, self.image_libs]
        self.tools = {}
        bash = next(StorePath(f"{n}-{v}", e, base) for n, v, e in tools if n == "bash")
        for name, version, entries in tools:
            self.tools[name] = bash if name == "bash" else StorePath(f"{name}-{version}", entries, base + [bash])
        certs = resolve(self.src, "/etc/ssl/certs/ca-certificates.crt")
        self.cacert = StorePath(f"cacert-{d.version('ca-certificates')}",
                                [("etc/ssl/certs/ca-bundle.crt", "file", certs)])

        # The profile, as buildEnv makes it: real directories, links to each tool's files.
        links = {}
        for tool in list(self.tools.values()) + [self.cacert]:
            for rel, _, _ in tool.entries:
                if rel.startswith(("bin/", "etc/")):
                    if rel in links:
                        log(f"profile: {rel} of {tool.name} hidden by {links[rel]}")
                        continue
                    links[rel] = f"{tool.path}/{rel}"
        self.profile = StorePath("root-profile-env", [(rel, "link", t) for rel, t in links.items()],
                                 list(self.tools.values()) + [self.cacert])
        return [self.glibc, self.image_libs, *self.tools.values(), self.cacert, self.profile]

    def patch_elf(self, path):
        if patchelf("--print-interpreter", path, check=False):
            patchelf("--set-interpreter", f"{self.glibc.path}/lib/{LOADER}", path)
        needed = patchelf("--print-needed", path, check=False)
        if needed is None or os.path.basename(path) == LOADER:
            return  # static, or the loader itself
        dirs = []
        for soname in needed:
            if self.soname_dir[soname] not in dirs:
                dirs.append(self.soname_dir[soname])
        if dirs:
            patchelf("--set-rpath", ":".join(dirs), path)
        else:
            patchelf("--remove-rpath", path)

    def write(self, sp):
        out = self.dest + sp.path
        bash = self.tools["bash"].path
        for rel, kind, data in sp.entries:
            target = f"{out}/{rel}"
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if kind == "link":
                os.symlink(data, target)
                continue
            if kind == "text":
                with open(target, "w") as f:
                    f.write(data.replace("@out@", sp.path).replace("@bash@", bash))
                os.chmod(target, 0o755)
                continue
            shutil.copyfile(data, target)
            os.chmod(target, os.stat(data).st_mode & 0o755)
            with open(target, "rb") as f:
                head = f.read(128)
            if head.startswith(b"\x7fELF"):
                for old, new in STRING_FIXES.get(os.path.basename(rel), []):
                    with open(target, "r+b") as f:
                        body = f.read()
                        if body.count(old) != 1:
                            raise SystemExit(f"{rel}: {old!r} is not there exactly once")
                        f.seek(body.index(old))
                        f.write(new.ljust(len(old), b"\0"))
                self.patch_elf(target)
            elif head.startswith(b"#!"):
                with open(target, "rb") as f:
                    body = f.read()
                body2 = re.sub(rb"^#! ?(/usr)?/bin/(sh|bash)\b", b"#!" + bash.encode() + rb"/bin/\2", body)
                if body2 == body:
                    log(f"{sp.name}/{rel}: shebang {head.splitlines()[0]!r} left as it is")
                with open(target, "wb") as f:
                    f.write(body2)

    def build(self):
        paths = self.plan()
        os.makedirs(f"{self.dest}{STORE}", exist_ok=True)
        for sp in paths:
            log(f"{sp.path} ({len(sp.entries)} entries)")
            self.write(sp)
        keys = {"glibc": self.glibc, "cacert": self.cacert, "profile": self.profile, **self.tools}
        for key, sp in keys.items():
            print(key, sp.path)


def store_paths(dest):
    return sorted(f"{STORE}/{n}" for n in os.listdir(dest + STORE) if not n.startswith("."))


def registration(dest):
    """Each path, an empty deriver and its references (the hash parts found in its files and
    symlink targets, itself included), dependencies first."""
    paths = store_paths(dest)
    by_hash = {os.path.basename(p)[:32]: p for p in paths}
    pattern = re.compile(b"|".join(h.encode() for h in by_hash))
    refs = {}
    for path in paths:
        found = set()
        for root, dirs, files in os.walk(dest + path):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                host = os.path.join(root, name)
                if os.path.islink(host):
                    data = os.readlink(host).encode()
                else:
                    with open(host, "rb") as f:
                        data = f.read()
                found.update(m.decode() for m in pattern.findall(data))
        refs[path] = sorted(by_hash[h] for h in found)
    done = []

    def visit(p):
        if p not in done:
            for r in refs[p]:
                if r != p:
                    visit(r)
            done.append(p)

    for p in paths:
        visit(p)
    for p in done:
        sys.stdout.write(f"{p}\n\n{len(refs[p])}\n" + "".join(f"{r}\n" for r in refs[p]))


def check(dest):
    """Every ELF's interpreter and DT_NEEDED libraries resolve inside DEST's store."""
    problems, count = [], 0
    for top in ("lib", "lib64", "usr/lib", "usr/lib64"):
        if os.path.lexists(f"{dest}/{top}"):
            problems.append(f"/{top} exists")
    for root, dirs, files in os.walk(dest):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in (f"{dest}/proc", f"{dest}/dev", f"{dest}/sys")]
        for name in files:
            host = os.path.join(root, name)
            if os.path.islink(host) or not os.path.isfile(host) or not is_elf(host):
                continue
            count += 1
            rel = host[len(dest):]
            interp = patchelf("--print-interpreter", host, check=False)
            if interp and not (interp[0].startswith(STORE + "/") and os.path.isfile(dest + interp[0])):
                problems.append(f"{rel}: interpreter {interp[0]}")
            rpath = (patchelf("--print-rpath", host, check=False) or [""])[0]
            for soname in patchelf("--print-needed", host, check=False) or []:
                if not any(d.startswith(STORE + "/") and os.path.exists(f"{dest}{d}/{soname}")
                           for d in rpath.split(":")):
                    problems.append(f"{rel}: {soname} not in its RUNPATH {rpath!r}")
    for p in problems:
        log(p)
    log(f"{count} ELF files checked, {len(problems)} problems")
    return 1 if problems else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "store":
        Builder(os.path.abspath(argv[2]), os.path.abspath(argv[3])).build()
    elif len(argv) == 3 and argv[1] == "registration":
        registration(os.path.abspath(argv[2]))
    elif len(argv) == 3 and argv[1] == "check":
        return check(os.path.abspath(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
