# The chain's base image (127.0.0.1:5000/mbx/busybox:latest), written by
# scripts/chain-up into its build context next to rootfs-amd64/ and rootfs-arm64/
# (Debian's busybox-static, dpkg -x). No "syntax" line: the Dockerfile frontend
# image cannot be pulled here, BuildKit's builtin frontend is used.
FROM scratch
ARG TARGETARCH
COPY rootfs-${TARGETARCH}/ /
RUN ["/bin/busybox","--install","-s","/bin"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["/bin/sh"]
