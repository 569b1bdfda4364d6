"""Smoke test of the emulated harness's parts that need neither qemu nor the network (tests/run runs it):
the CPU description written into the prefix, the pins it is made from, the per-run arithmetic, the
plugins' cross-check, symbolisation and op grouping.

    python3 benches/emulate/test_emulate.py
"""
from __future__ import annotations

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulate import counts, prefix, symbols  # noqa: E402


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """As Linux programs read it: blank-line separated blocks of `key : value`."""
    blocks = []
    for block in text.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        blocks.append(fields)
    return blocks


class CpuDescription(unittest.TestCase):
    def test_a72_has_no_dot_product_and_a76_has(self):
        a72 = parse_cpuinfo(prefix.cpuinfo_text(prefix.CPUS["cortex-a72"]))
        a76 = parse_cpuinfo(prefix.cpuinfo_text(prefix.CPUS["cortex-a76"]))
        self.assertEqual(len(a72), prefix.N_CPUS)
        self.assertEqual([b["processor"] for b in a76], [str(i) for i in range(prefix.N_CPUS)])
        self.assertEqual({b["CPU part"] for b in a72}, {"0xd08"})
        self.assertEqual({b["CPU part"] for b in a76}, {"0xd0b"})
        self.assertNotIn("asimddp", a72[0]["Features"].split())
        self.assertIn("asimddp", a76[0]["Features"].split())
        self.assertEqual(a76[0]["CPU implementer"], "0x41")

    def test_midr_matches_qemus_models(self):
        # qemu's cortex-a72 and cortex-a76 report these MIDR_EL1 values (target/arm/cpu64.c).
        self.assertEqual(prefix.CPUS["cortex-a72"].midr, 0x410FD083)
        self.assertEqual(prefix.CPUS["cortex-a76"].midr, 0x414FD0B1)

    def test_sysfs_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            prefix.write_cpu_files(root, prefix.CPUS["cortex-a76"], n_cpus=4)
            cpu = root / "sys/devices/system/cpu"
            for name in ("possible", "present", "online"):
                self.assertEqual((cpu / name).read_text(), "0-3\n")
            self.assertEqual((cpu / "cpu3/regs/identification/midr_el1").read_text(), "0x00000000414fd0b1\n")
            self.assertFalse((cpu / "cpu4").exists())
            self.assertIn("CPU part\t: 0xd0b", (root / "proc/cpuinfo").read_text())


class Pins(unittest.TestCase):
    def test_reads_the_wheels_pins_and_refuses_a_missing_one(self):
        with tempfile.TemporaryDirectory() as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text("# comment\ntorch==2.0\nonnxruntime==1.2.3\nnumpy==4.5.6  # note\nsafetensors==7.8\n")
            pins = prefix.pinned_versions(req)
            self.assertEqual(pins, {"onnxruntime": "1.2.3", "numpy": "4.5.6", "safetensors": "7.8"})
            other = dict(pins, numpy="4.5.7")
            self.assertNotEqual(prefix.stamp_of(pins), prefix.stamp_of(other))
            req.write_text("onnxruntime==1.2.3\nnumpy==4.5.6\n")
            with self.assertRaises(SystemExit):
                prefix.pinned_versions(req)

    def test_the_repositorys_pins_are_complete(self):
        self.assertEqual(set(prefix.pinned_versions()), set(prefix.WHEELS))


def write_counts(tmp: Path, name: str, classes: str, blocks: str) -> counts.Counts:
    (tmp / f"{name}.c").write_text(classes)
    (tmp / f"{name}.b").write_text(blocks)
    return counts.read(tmp / f"{name}.c", tmp / f"{name}.b")


class PerRun(unittest.TestCase):
    def test_difference_of_three_and_one_runs_halved(self):
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            # block 0x100: 4 instructions (1 dot, 2 simd, 1 mem); block 0x200: 2 "other"
            one = write_counts(t, "one", "total=60 dot=10 simd=20 mem=10 other=20\n",
                               "tb 100 10 4 1 2 1 0\ntb 200 10 2 0 0 0 2\nmnem sdot 10\nmnem add 50\n")
            three = write_counts(t, "three", "total=140 dot=30 simd=60 mem=30 other=20\n",
                                 "tb 100 20 4 1 2 1 0\ntb 100 10 4 1 2 1 0\ntb 200 10 2 0 0 0 2\n"
                                 "mnem sdot 30\nmnem add 110\n")
            run = counts.per_run(one, three)
            self.assertEqual(run.classes, {"total": 40, "dot": 10, "simd": 20, "mem": 10, "other": 0})
            self.assertEqual(run.blocks, {0x100: 40})
            self.assertEqual(run.block_classes, {0x100: (10, 20, 10, 0)})
            self.assertEqual(run.mnemonics, {"sdot": 10, "add": 30})
            self.assertEqual(run.once, 20)

    def test_plugins_that_disagree_are_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaises(ValueError):
                write_counts(Path(tmp), "x", "total=41 dot=10 simd=20 mem=10 other=1\n", "tb 100 10 4 1 2 1 0\n")
            with self.assertRaises(ValueError):  # same total, other classes
                write_counts(Path(tmp), "y", "total=40 dot=0 simd=30 mem=10 other=0\n", "tb 100 10 4 1 2 1 0\n")


class Symbols(unittest.TestCase):
    def test_lookup_and_groups(self):
        table = symbols.SymbolTable([0x1000, 0x2000, 0x3000], [0x1100, 0x2100, 0x3100],
                                    ["arm64simd_mmm_i32_8x8_asm", "tract_core::ops::cnn::conv::im2col::Im2Col::eval",
                                     "tract_accel::optimize::layer_norm::FastLayerNorm::eval"])
        base = 0x55_0000_0000
        blocks = {base + 0x1010: 100.0, base + 0x2000: 10.0, base + 0x3050: 5.0, base + 0x1100: 1.0, 0x7F00: 2.0}
        classes = {base + 0x1010: (50.0, 30.0, 20.0, 0.0)}
        functions = symbols.by_function(blocks, classes, table, base)
        self.assertEqual(functions["arm64simd_mmm_i32_8x8_asm"], [100.0, 50.0, 30.0, 20.0, 0.0])
        self.assertEqual(functions[symbols.OUTSIDE][0], 3.0)  # past a symbol's end, and below the binary
        groups = symbols.by_group(functions)
        self.assertEqual(groups["int8 matmul kernel (tract-linalg, asm)"][0], 100.0)
        self.assertEqual(groups["im2col"][0], 10.0)
        self.assertEqual(groups["tract-accel layer_norm"][0], 5.0)
        self.assertEqual(sum(g[0] for g in groups.values()), sum(blocks.values()))
        self.assertEqual(symbols.group_of("some_unknown_function"), "other")
        self.assertEqual(symbols.group_of("<tract_accel::optimize::fast_im2col::FastIm2col as X>::run"),
                         "tract-accel fast_im2col")

    def test_load_base_from_qemus_log(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "qemu.log"
            log.write_text("guest_base  0x0\nstart_brk   0x0\nstart_code  0x0000005500001000\n")
            # any ELF works: the base is start_code minus the lowest executable segment's address
            binary = Path(sys.executable).resolve()
            base = symbols.load_base(log, binary)
            self.assertEqual((0x5500001000 - base) % 0x1000, 0)
            self.assertLessEqual(base, 0x5500001000)
            log.write_text("nothing\n")
            with self.assertRaises(ValueError):
                symbols.load_base(log, binary)


if __name__ == "__main__":
    unittest.main()
