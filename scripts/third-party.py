#!/usr/bin/env python3
"""Writes THIRD-PARTY.md: the C libraries stream-relay uses, every crate in Cargo.lock with
its licence, and the licence texts of the crates compiled into the binary.

    python3 scripts/third-party.py > THIRD-PARTY.md     # regenerate after Cargo.lock changes
    python3 scripts/third-party.py --check              # exit 1 if THIRD-PARTY.md is stale

Reads `cargo metadata` (so the crates must be downloaded: any cargo build or `cargo fetch`
does it) and the licence files shipped inside each crate. Only the standard library is used.
"""

import hashlib
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY_CRATE = "stream-relay"
LICENSE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|UNLICEN[CS]E|NOTICE|COPYRIGHT)([-_.].*)?$", re.I)

HEADER = """\
# Third-party software

stream-relay itself is licensed under the Mozilla Public License 2.0 (`LICENSE`). This file
lists what it is built from and what it runs with. **Generated** by `scripts/third-party.py`
from `Cargo.lock` and the crates' own licence files: regenerate it, don't edit it.

## C libraries (shared libraries, not included in the binary: librist linked, libsrt opened at run time)

| library | version tested | licence | source | Debian package |
|---|---|---|---|---|
| libsrt (Secure Reliable Transport) | 1.5.1 | MPL-2.0 | https://github.com/Haivision/srt | `libsrt1.5-openssl` |
| librist (Reliable Internet Stream Transport) | 0.2.7 | BSD-2-Clause | https://code.videolan.org/rist/librist | `librist4` |

Both are used unmodified, through their public C API, as shared libraries installed by the
system's package manager; stream-relay's source code contains no code from either (the
`-sys` crates generate bindings from the installed headers at build time). The MPL-2.0 text is
the one in `LICENSE`. librist's licence:

```
Copyright (c) 2019-2021, VideoLAN and librist authors
All rights reserved.

Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials
   provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR
IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND
FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR
CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR
CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR
OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE
POSSIBILITY OF SUCH DAMAGE.
```

What they pull in at run time, all from Debian bookworm and installed in the container image
with them: OpenSSL 3 (`libssl3`, Apache-2.0), Mbed TLS (`libmbedcrypto7`, Apache-2.0 OR
GPL-2.0-or-later), cJSON (`libcjson1`, MIT), the GNU C++ and GCC runtime libraries
(`libstdc++6`, `libgcc-s1`, GPL-3.0 with the GCC Runtime Library Exception) and the GNU C
library (`libc6`, LGPL-2.1). The container image keeps every installed Debian package's
copyright file in `/usr/share/doc/PACKAGE/copyright`; on a host, the same files are installed
with the packages.
"""


def cargo_metadata(*extra):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", *extra],
        cwd=ROOT, check=True, stdout=subprocess.PIPE,
    ).stdout
    return json.loads(out)


def host_triple():
    out = subprocess.run(["rustc", "-vV"], check=True, stdout=subprocess.PIPE, text=True).stdout
    return next(l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("host: "))


def in_binary(meta_linux):
    """Crates compiled into the stream-relay binary on Linux: normal dependencies, not
    crossing a proc-macro or build-dependency edge."""
    pkgs = {p["id"]: p for p in meta_linux["packages"]}
    nodes = {n["id"]: n for n in meta_linux["resolve"]["nodes"]}
    start = next(p["id"] for p in pkgs.values() if p["name"] == BINARY_CRATE and p["source"] is None)
    seen, todo = {start}, [start]
    while todo:
        for dep in nodes[todo.pop()]["deps"]:
            if not any(k["kind"] is None for k in dep["dep_kinds"]):
                continue
            p = pkgs[dep["pkg"]]
            if any("proc-macro" in t["kind"] for t in p["targets"]):
                continue
            if dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                todo.append(dep["pkg"])
    return seen


def licence_files(pkg):
    d = os.path.dirname(pkg["manifest_path"])
    names = sorted(n for n in os.listdir(d) if LICENSE_FILE.match(n) and os.path.isfile(os.path.join(d, n)))
    if pkg.get("license_file"):
        lf = os.path.normpath(os.path.join(d, pkg["license_file"]))
        if os.path.isfile(lf) and os.path.basename(lf) not in names:
            names.append(os.path.relpath(lf, d))
    sub = os.path.join(d, "LICENSES")
    if os.path.isdir(sub):
        names += sorted(os.path.join("LICENSES", n) for n in os.listdir(sub))
    files = []
    for n in names:
        with open(os.path.join(d, n), encoding="utf-8", errors="replace") as f:
            files.append((n, f.read().strip("\n")))
    return files


def licence_of(pkg):
    lic = pkg["license"] or ("see " + pkg["license_file"] if pkg.get("license_file") else "UNKNOWN")
    return lic.replace("/", " OR ")


def render():
    meta = cargo_metadata()
    meta_linux = cargo_metadata("--filter-platform", host_triple())
    shipped = in_binary(meta_linux)
    linux_ids = {n["id"] for n in meta_linux["resolve"]["nodes"]}
    third = sorted((p for p in meta["packages"] if p["source"] is not None),
                   key=lambda p: (p["name"], p["version"]))

    out = [HEADER]
    out.append("## Rust crates\n")
    out.append(
        f"Every crate in `Cargo.lock` ({len(third)}). *binary*: compiled into the `stream-relay`\n"
        "binary on Linux (its licence text is reproduced below). *build*: used only while building\n"
        "(build scripts, procedural macros) or testing, or only on other platforms; nothing of it\n"
        "ends up in the binary. `cargo deny check licenses` (`deny.toml`) checks these licences in CI.\n")
    out.append("| crate | version | licence | in | repository |")
    out.append("|---|---|---|---|---|")
    for p in third:
        where = "binary" if p["id"] in shipped else ("build" if p["id"] in linux_ids else "build (other platforms)")
        out.append(f"| {p['name']} | {p['version']} | {licence_of(p)} | {where} | {p.get('repository') or ''} |")

    # Licence texts of the crates in the binary, each distinct text once.
    texts = {}
    missing = []
    for p in third:
        if p["id"] not in shipped:
            continue
        files = licence_files(p)
        if not files:
            missing.append(p)
        for name, text in files:
            key = hashlib.sha256(" ".join(text.split()).encode()).hexdigest()
            entry = texts.setdefault(key, {"text": text, "users": []})
            entry["users"].append(f"{p['name']} {p['version']} ({name})")
    out.append("\n## Licence texts of the crates in the binary\n")
    out.append("Each distinct text once, with the crates (and files) it comes from.\n")
    if missing:
        out.append("Published without a licence file (their `Cargo.toml` licence applies; the\n"
                   "standard texts of those licences are among the ones below): "
                   + ", ".join(f"{p['name']} {p['version']} ({licence_of(p)})" for p in missing) + ".\n")
    for entry in sorted(texts.values(), key=lambda e: e["users"][0]):
        out.append("### " + ", ".join(entry["users"]) + "\n")
        fence = "````" if "```" in entry["text"] else "```"
        out.append(f"{fence}\n{entry['text']}\n{fence}\n")
    return "\n".join(out).rstrip("\n") + "\n"


def main():
    text = render()
    if sys.argv[1:] == ["--check"]:
        path = os.path.join(ROOT, "THIRD-PARTY.md")
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                print("THIRD-PARTY.md is up to date")
                return 0
        print("THIRD-PARTY.md is out of date with Cargo.lock: run "
              "`python3 scripts/third-party.py > THIRD-PARTY.md` and commit it", file=sys.stderr)
        return 1
    if sys.argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
