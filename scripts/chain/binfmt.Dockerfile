# The chain's binfmt installer image (127.0.0.1:5000/mbx/binfmt:local): what
# `mbx setup --qemu-from image` runs privileged, in place of tonistiigi/binfmt
# (which cannot be pulled here). scripts/chain-up puts Debian's qemu-user-static
# binaries (bookworm, statically linked) in qemu/ and the entry point beside it.
FROM 127.0.0.1:5000/mbx/busybox:latest
COPY qemu/ /usr/bin/
COPY binfmt-install /usr/bin/binfmt-install
ENTRYPOINT ["/bin/sh", "/usr/bin/binfmt-install"]
