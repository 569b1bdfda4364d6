"""The arm64 root that qemu-user's `-L PREFIX` overlays on the host's: Debian's arm64 Python with the
aarch64 wheels of onnxruntime, numpy and safetensors beside it, and a fake /proc/cpuinfo and sysfs CPU
description per emulated core.

Why a fake cpuinfo: qemu-user 7.2 passes the guest's reads of /proc/cpuinfo through to the host, so an
aarch64 program reads an x86 description. onnxruntime's cpuinfo library then crashes, and tract picks its
kernels from the "CPU part" line it cannot find. qemu looks for every path under `-L` first, so the files
written here are what both engines read. The prefix is shared by both CPUs (python, libraries, wheels);
only the small CPU description differs, so each CPU gets its own prefix made of symlinks to the shared
one plus its own proc/ and sys/.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# Debian arm64 packages: the interpreter, its standard library, and the shared libraries that it, the
# wheels' extension modules (onnxruntime is C++: libstdc++, libgcc_s) and edgescribe (ALSA) load.
# Optional stdlib modules whose libraries are absent (sqlite3, readline, dbm...) are never imported.
DEBS = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libgcc-s1",
        "libstdc++6", "zlib1g", "libexpat1", "libffi8", "libbz2-1.0", "liblzma5", "libuuid1",
        "libssl3", "libcrypt1", "libasound2")
# The wheels, at the versions of models/requirements.txt (the x86 harness's versions).
WHEELS = ("onnxruntime", "numpy", "safetensors")
# pip does not widen --platform to older manylinux tags: safetensors ships manylinux2014 (glibc 2.17)
# wheels only. Debian 12's glibc (2.36) runs both.
PIP_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux2014_aarch64")
PYTHON_VERSION = "3.11"
N_CPUS = 4  # Pi 4 and Pi 5 both have four cores


@dataclass(frozen=True)
class Cpu:
    """What the kernel of a board with this core reports (MIDR_EL1 fields and the Features line)."""
    qemu_name: str
    board: str
    variant: int
    part: int
    revision: int
    features: str

    @property
    def midr(self) -> int:
        return (0x41 << 24) | (self.variant << 20) | (0xF << 16) | (self.part << 4) | self.revision


CPUS = {
    # BCM2711 (Pi 4): no dot product and no crypto extensions.
    "cortex-a72": Cpu("cortex-a72", "Raspberry Pi 4", 0x0, 0xD08, 3, "fp asimd evtstrm crc32 cpuid"),
    # BCM2712 (Pi 5): ARMv8.2 with the dot product (asimddp).
    "cortex-a76": Cpu("cortex-a76", "Raspberry Pi 5", 0x4, 0xD0B, 1,
                      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                      "dcpop asimddp"),
}


def cpuinfo_text(cpu: Cpu, n_cpus: int = N_CPUS) -> str:
    """/proc/cpuinfo as an arm64 Linux kernel prints it: one block per core."""
    blocks = []
    for i in range(n_cpus):
        blocks.append(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {cpu.features}\n"
                      f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {cpu.variant:#x}\n"
                      f"CPU part\t: {cpu.part:#05x}\nCPU revision\t: {cpu.revision}\n")
    return "\n".join(blocks) + "\n"


def write_cpu_files(root: Path, cpu: Cpu, n_cpus: int = N_CPUS) -> None:
    """proc/cpuinfo and sys/devices/system/cpu/{possible,present,online,cpuN/regs/identification/midr_el1}."""
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/cpuinfo").write_text(cpuinfo_text(cpu, n_cpus))
    sysdir = root / "sys/devices/system/cpu"
    sysdir.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present", "online"):
        (sysdir / name).write_text(f"0-{n_cpus - 1}\n")
    for i in range(n_cpus):
        ident = sysdir / f"cpu{i}/regs/identification"
        ident.mkdir(parents=True, exist_ok=True)
        (ident / "midr_el1").write_text(f"0x{cpu.midr:016x}\n")
        (ident / "revidr_el1").write_text("0x0000000000000000\n")


def pinned_versions(requirements: Path = ROOT / "models/requirements.txt") -> dict[str, str]:
    """The `name==version` pins of the wheels this prefix needs; a missing pin is an error, not a guess."""
    pins = {}
    for line in requirements.read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep and name in WHEELS:
            pins[name] = version
    missing = [w for w in WHEELS if w not in pins]
    if missing:
        raise SystemExit(f"emulate: {requirements} pins no version of {', '.join(missing)}")
    return pins


def stamp_of(pins: dict[str, str]) -> str:
    """What the shared prefix was made from: when it changes, the prefix is made again."""
    return json.dumps({"debs": DEBS, "wheels": pins, "platforms": PIP_PLATFORMS, "python": PYTHON_VERSION},
                      sort_keys=True)


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    print(f"emulate: {' '.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _make_base(base: Path, pins: dict[str, str]) -> None:
    """Downloads and unpacks everything into a fresh directory, then moves it into place, so that an
    interrupted preparation never leaves a half-made prefix that looks finished."""
    base.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base.parent) as tmp:
        work = Path(tmp)
        debs, wheels, root = work / "debs", work / "wheels", work / "root"
        for d in (debs, wheels, root / "site"):
            d.mkdir(parents=True)
        _run(["apt-get", "download", "-q"] + [f"{p}:arm64" for p in DEBS], cwd=debs)
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(root)])
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
              "--python-version", PYTHON_VERSION, "-d", str(wheels)]
             + [arg for platform in PIP_PLATFORMS for arg in ("--platform", platform)]
             + [f"{name}=={version}" for name, version in sorted(pins.items())])
        for wheel in sorted(wheels.glob("*.whl")):
            with zipfile.ZipFile(wheel) as z:
                z.extractall(root / "site")
        if not (root / "usr/bin/python3.11").exists():
            raise SystemExit("emulate: the arm64 python3.11 is missing from the unpacked packages")
        (root / "stamp.json").write_text(stamp_of(pins))
        if base.exists():
            shutil.rmtree(base)
        root.rename(base)


def prepare(cache: Path, cpu: Cpu) -> Path:
    """Returns the `-L` prefix for `cpu`, making or refreshing the shared part when its stamp is stale."""
    pins = pinned_versions()
    base = cache / "arm64-root"
    stamp = base / "stamp.json"
    if not stamp.exists() or stamp.read_text() != stamp_of(pins):
        _make_base(base, pins)
    prefix = cache / f"prefix-{cpu.qemu_name}"
    marker = prefix / ".base"
    fingerprint = hashlib.sha256(stamp.read_bytes()).hexdigest()
    if not marker.exists() or marker.read_text() != fingerprint:
        if prefix.exists():
            shutil.rmtree(prefix)
        prefix.mkdir(parents=True)
        for entry in base.iterdir():
            if entry.name not in ("proc", "sys"):
                (prefix / entry.name).symlink_to(entry.resolve())
        marker.write_text(fingerprint)
    write_cpu_files(prefix, cpu)
    return prefix


def site_dir(prefix: Path) -> Path:
    return prefix / "site"


def python(prefix: Path) -> Path:
    return prefix / "usr/bin/python3.11"
