# Environment for building and running edgescribe for aarch64 without a container, the way `cross` does
# inside its image: gcc-aarch64-linux-gnu links, qemu-aarch64 runs, Debian's arm64 multiarch packages
# provide the C libraries. Source it: `. cross/env.sh`.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/qemu-runner"
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
# Tests that start the edgescribe binary themselves go through the same runner.
export EDGESCRIBE_TEST_RUNNER="$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
