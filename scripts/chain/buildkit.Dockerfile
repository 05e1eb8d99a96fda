# The chain's BuildKit image (127.0.0.1:5000/moby/buildkit:local) for buildx's
# docker-container driver, linux/amd64 only. scripts/chain-up assembles rootfs/:
# busybox-static, bookworm's runc with the shared objects ldd lists for it, and
# buildkitd/buildctl compiled from Debian's source by scripts/chain/buildkit-compile.
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox","--install","-s","/bin"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
VOLUME /var/lib/buildkit
ENTRYPOINT ["buildkitd"]
