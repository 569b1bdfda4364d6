# Environment for building and running edgescribe for aarch64 without a container, the way `cross` does
# inside its image: gcc-aarch64-linux-gnu links, qemu-aarch64 runs, Debian's arm64 multiarch packages
# provide the C libraries. Source it: `. cross/env.sh`.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/qemu-runner"
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
# gcc drives the link but hands it to the LLD that ships with the Rust toolchain (the linker rustc
# uses for x86_64 too): faster than GNU ld on ~250 MB test binaries, and there are over a dozen of them.
# gcc-ld/ holds the `ld.lld` wrapper that -fuse-ld=lld finds through -B.
_es_gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
if [ -x "$_es_gcc_ld/ld.lld" ]; then
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-B$_es_gcc_ld -C link-arg=-fuse-ld=lld"
fi
unset _es_gcc_ld
# Tests that start the edgescribe binary themselves go through the same runner.
export EDGESCRIBE_TEST_RUNNER="$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
