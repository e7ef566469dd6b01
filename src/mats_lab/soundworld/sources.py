"""Fetch Debian sound packages into a cache and list the recordings inside them.

Each package is fetched with `apt-get download` and unpacked with `dpkg-deb -x` (no system
install). `list_raw(package, root)` walks an unpacked package and returns one `RawSource` per
recording, with a `hint` (the package's own description of it) that the curation step reads.
Package layouts were found by unpacking them (see DESIGN §2).

0ad-data is the exception: its .deb (1.4 GB) unpacks to 3.2 GB, almost all of it one
`public.zip` of game data. Only that member is streamed out of the .deb, only the zip's audio/
members are written out (zipfile, never the whole zip), and the zip is deleted again: the cache
keeps the .deb and ~280 MB of .ogg files. Its audio is (C) Wildfire Games, CC BY-SA 3.0
(audio/LICENSE.txt, kept next to the files). Only the `full` profile lists it.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class SourceError(RuntimeError):
    """A Debian package could not be fetched, unpacked or read."""


# package name -> short prefix used in recording ids ("opensfx/036", "tuxpaint/animals/birds/owl")
PACKAGES: dict[str, str] = {
    "openttd-opensfx": "opensfx",
    "tuxpaint-stamps-default": "tuxpaint",
    "wesnoth-1.16-data": "wesnoth",
    "lmms-common": "lmms",
    "sonic-pi-samples": "sonicpi",
    "hydrogen-drumkits": "hydrogen",
    "lincity-ng-data": "lincity",
    "0ad-data": "0ad",
}
SOUNDFONT_PACKAGE = "fluid-soundfont-gm"
SYSTEM_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
AUDIO_EXT = (".wav", ".ogg", ".flac")


@dataclass(frozen=True)
class RawSource:
    id: str  # stable recording id, "<prefix>/<path without extension>"
    package: str
    path: str  # absolute path of the decodable audio file
    hint: str  # the package's own words about the recording (file name, .txt, xml name)


def default_cache() -> Path:
    env = os.environ.get("MATS_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "mats"
    return base / "soundworld"


def apt_available() -> bool:
    return shutil.which("apt-get") is not None and shutil.which("dpkg-deb") is not None


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SourceError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")


def _dpkg_unpack(deb: Path, root: Path) -> None:
    _run(["dpkg-deb", "-x", str(deb), str(root)])


def fetch_package(package: str, cache: Path) -> Path:
    """Download and unpack `package` into cache/pkgs/<package>; reuse it when already there."""
    root = cache / "pkgs" / package
    done = root / ".unpacked"
    if done.is_file():
        return root
    if not apt_available():
        raise SourceError(f"cannot fetch {package}: apt-get/dpkg-deb not found (a Debian system is needed)")
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        try:
            _run(["apt-get", "download", "-q", package], cwd=debs)
        except SourceError:
            # The package lists may never have been fetched on a new machine.
            _run(["apt-get", "update", "-q"])
            _run(["apt-get", "download", "-q", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise SourceError(f"apt-get download {package} left no .deb in {debs}")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    UNPACKERS.get(package, _dpkg_unpack)(found[-1], root)
    done.write_text(found[-1].name + "\n")
    return root


# --- 0ad-data: the audio/ members of public.zip -------------------------------------------------

ZEROAD_ZIP = "usr/share/games/0ad/mods/public/public.zip"
ZEROAD_AUDIO = "audio/"


def _stream_member(deb: Path, member: str, dest: Path) -> None:
    """Copy one file of the .deb's data tarball to dest, reading the tarball as a stream: nothing
    else in it is written to disk."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    found = False
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for info in tar:
                if info.isfile() and info.name.removeprefix("./") == member:
                    src = tar.extractfile(info)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    found = True
                    break
    except tarfile.TarError as err:
        raise SourceError(f"{deb}: unreadable data tarball ({err})") from None
    finally:
        proc.stdout.close()
        proc.kill()  # stop decompressing the rest of the tarball
        proc.wait()
        why = proc.stderr.read().decode(errors="replace").strip()[-300:]
        proc.stderr.close()
    if not found:
        raise SourceError(f"{deb}: {member} not found in its data tarball {why}".rstrip())


def extract_audio_members(zip_path: Path, dest: Path, prefix: str = ZEROAD_AUDIO) -> list[str]:
    """Write the zip's members under `prefix` that are audio files (and LICENSE.txt) below dest,
    keeping their paths; returns the member names written. Other members are never read."""
    written = []
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            name = info.filename
            keep = name.lower().endswith(AUDIO_EXT) or name == prefix + "LICENSE.txt"
            if info.is_dir() or not name.startswith(prefix) or not keep:
                continue
            target = (dest / name).resolve()
            if dest.resolve() not in target.parents:
                raise SourceError(f"{zip_path}: member {name!r} would be written outside {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            written.append(name)
    if not written:
        raise SourceError(f"{zip_path}: no audio members under {prefix}")
    return written


def _unpack_0ad(deb: Path, root: Path) -> None:
    zip_path = root / "public.zip"
    try:
        _stream_member(deb, ZEROAD_ZIP, zip_path)
        extract_audio_members(zip_path, root)
    finally:
        zip_path.unlink(missing_ok=True)  # 3.2 GB; the .deb stays in the cache to redo this


UNPACKERS: dict[str, Callable[[Path, Path], None]] = {"0ad-data": _unpack_0ad}


def soundfont_path(cache: Path) -> Path:
    """FluidR3_GM.sf2: the installed one if present, else unpacked from the .deb into the cache."""
    if SYSTEM_SOUNDFONT.is_file():
        return SYSTEM_SOUNDFONT
    root = fetch_package(SOUNDFONT_PACKAGE, cache)
    found = sorted(root.rglob("FluidR3_GM.sf2"))
    if not found:
        raise SourceError(f"{SOUNDFONT_PACKAGE}: FluidR3_GM.sf2 not found under {root}")
    return found[0]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _walk_audio(base: Path) -> list[Path]:
    return sorted(p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXT)


# --- openttd-opensfx: opensfx.cat -------------------------------------------------------------


def read_opensfx_cat(path: Path) -> list[tuple[str, bytes]]:
    """Parse opensfx.cat: a table of (offset, size) uint32 pairs (offsets carry a 0x80000000
    flag), each record a length byte, a description string, then RIFF WAV bytes."""
    data = path.read_bytes()
    first = struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF
    if first % 8 or first > len(data):
        raise SourceError(f"{path}: not an opensfx.cat table (first offset {first})")
    out = []
    for i in range(first // 8):
        off, size = struct.unpack_from("<II", data, i * 8)
        off &= 0x7FFFFFFF
        n = data[off]
        name = data[off + 1 : off + 1 + n].decode("latin-1").rstrip("\x00").strip()
        wav = data[off + 1 + n : off + size]
        out.append((name, wav))
    return out


def _opensfx(root: Path) -> list[RawSource]:
    cats = sorted(root.rglob("opensfx.cat"))
    if not cats:
        raise SourceError(f"openttd-opensfx: opensfx.cat not found under {root}")
    clips = root / "_clips"
    clips.mkdir(exist_ok=True)
    out = []
    for i, (name, wav) in enumerate(read_opensfx_cat(cats[0])):
        if not wav.startswith(b"RIFF"):
            continue  # the two "Unused/Nothing" 44-byte placeholders
        dest = clips / f"{i:03d}.wav"
        if not dest.is_file():
            dest.write_bytes(wav)
        out.append(RawSource(f"opensfx/{i:03d}", "openttd-opensfx", str(dest), name))
    return out


# --- tuxpaint-stamps-default: sounds next to .txt descriptions ---------------------------------


def _tuxpaint(root: Path) -> list[RawSource]:
    base = next(iter(sorted(root.rglob("stamps"))), None)
    if base is None:
        raise SourceError(f"tuxpaint-stamps-default: stamps folder not found under {root}")
    out = []
    for p in _walk_audio(base):
        rel = p.relative_to(base).with_suffix("")
        if "_desc" in p.stem or rel.parts[0] == "symbols":
            continue  # spoken descriptions, letters and numbers: speech in many languages
        txt = p.with_suffix(".txt")
        first = txt.read_text(errors="replace").splitlines()[0].strip() if txt.is_file() else ""
        out.append(
            RawSource(f"tuxpaint/{rel.as_posix()}", "tuxpaint-stamps-default", str(p), f"{rel.as_posix()} | {first}")
        )
    return out


def _by_files(package: str, prefix: str, sub: str):
    def lister(root: Path) -> list[RawSource]:
        bases = [p for p in sorted(root.rglob(sub)) if p.is_dir()] if sub else [root]
        out, seen = [], set()
        for base in bases:
            for p in _walk_audio(base):
                rel = p.relative_to(base).with_suffix("").as_posix()
                rid = f"{prefix}/{rel}"
                if rid in seen:  # e.g. wesnoth's mace.wav and mace.ogg: keep the first
                    continue
                seen.add(rid)
                out.append(RawSource(rid, package, str(p), rel))
        return out

    return lister


# --- hydrogen-drumkits: instrument names in drumkit.xml ---------------------------------------


def _hydrogen(root: Path) -> list[RawSource]:
    out, seen = [], set()
    for xml in sorted(root.rglob("drumkit.xml")):
        kit = xml.parent
        tree = ET.parse(xml)
        strip = lambda t: t.split("}")[-1]  # noqa: E731 (drumkit.xml may carry a namespace)
        for inst in tree.getroot().iter():
            if strip(inst.tag) != "instrument":
                continue
            name = next((c.text or "" for c in inst if strip(c.tag) == "name"), "").strip()
            # First layer file (the default velocity layer); older kits put <filename> directly.
            fname = next((e.text for e in inst.iter() if strip(e.tag) == "filename" and e.text), None)
            if not name or not fname or not (kit / fname).is_file():
                continue
            rid = f"hydrogen/{_slug(kit.name)}/{_slug(name)}"
            if rid in seen:  # two slots whose names slug alike: keep the first
                continue
            seen.add(rid)
            out.append(RawSource(rid, "hydrogen-drumkits", str(kit / fname), f"{kit.name} | {name}"))
    return out


LISTERS = {
    "openttd-opensfx": _opensfx,
    "tuxpaint-stamps-default": _tuxpaint,
    "wesnoth-1.16-data": _by_files("wesnoth-1.16-data", "wesnoth", "sounds"),
    "lmms-common": _by_files("lmms-common", "lmms", "samples"),
    "sonic-pi-samples": _by_files("sonic-pi-samples", "sonicpi", "samples"),
    "hydrogen-drumkits": _hydrogen,
    "lincity-ng-data": _by_files("lincity-ng-data", "lincity", "sounds"),
    "0ad-data": _by_files("0ad-data", "0ad", "audio"),
}


def list_raw(package: str, root: Path) -> list[RawSource]:
    if package not in LISTERS:
        raise SourceError(f"unknown package {package!r}; known: {sorted(LISTERS)}")
    return LISTERS[package](root)
