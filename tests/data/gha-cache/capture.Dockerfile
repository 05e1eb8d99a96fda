# A small CPU-bound image: the RUN steps do real work, so the emulated
# platform's build visibly runs under QEMU. BASE is a two-platform busybox
# image that scripts/chain-up builds from Debian's packages and pushes to the
# loopback registry; pass --build-arg BASE=… to use another.
ARG BASE=127.0.0.1:5000/mbx/busybox:latest
FROM ${BASE}
ARG TARGETPLATFORM
ARG CHANGE=0
RUN echo change=${CHANGE} > /change.txt
ARG BUILDPLATFORM
RUN echo "built for ${TARGETPLATFORM} on ${BUILDPLATFORM}: $(uname -m)" | tee /arch.txt
RUN mkdir -p /work && seq 1 2000000 > /work/data && gzip -6 -c /work/data > /data.gz && sha256sum /data.gz | tee /data.sha256 && rm -r /work
RUN i=0; s=0; while [ $i -lt 200000 ]; do s=$((s+i*i%7)); i=$((i+1)); done; echo $s | tee /loop.txt
CMD ["cat", "/arch.txt"]
