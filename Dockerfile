# Aperture container image: aperture-dataplane, aperture-control (and aperturectl).
#
# Build it with `bash scripts/docker-build.sh` (rootful podman; see DESIGN.md "Containers on
# these machines"). The build context must NOT be the bare repository: it must contain
#   vendor/                 the crates, made by `cargo vendor vendor`
#   .cargo/config.toml      the [source] replacement that `cargo vendor` prints, pointing at vendor/
#   Cargo.lock              the lock file the vendor was made from
# because the build runs `cargo build --offline` and fetches nothing but Debian packages.
# scripts/docker-build.sh prepares such a context in a temporary directory (the repository
# itself never gets a vendor/), and builds the local `debian:bookworm` base image with
# debootstrap when it is missing (no registry is pulled from: build with --pull=never).
#
# Run: podman run --rm aperture:dev            (replays the bundled sample capture)
#      podman run --rm aperture:dev replay --pcap /data/x.pcap   (with -v to mount it)

FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
# bookworm's rustc is 1.63 (too old): rustc-web/cargo-web come from bookworm-security.
RUN if ! grep -rqs 'bookworm-security' /etc/apt/sources.list /etc/apt/sources.list.d/; then \
        echo 'deb http://security.debian.org/debian-security bookworm-security main' \
            > /etc/apt/sources.list.d/bookworm-security.list; \
    fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
        rustc-web cargo-web \
        dpdk libdpdk-dev pkg-config clang libclang-dev libpcap-dev build-essential \
 && rm -rf /var/lib/apt/lists/* \
 && rustc --version && cargo --version && pkg-config --modversion libdpdk

WORKDIR /src
COPY . .
RUN test -d vendor && test -f .cargo/config.toml \
 || { echo "build context lacks vendor/ or .cargo/config.toml: use scripts/docker-build.sh" >&2; exit 1; }
RUN cargo build --release --offline -p aperture-dataplane -p aperture-control \
 && mkdir -p /out/bin /src/conf \
 && for b in aperture-dataplane aperture-control aperturectl; do \
        if [ -f "target/release/$b" ]; then cp "target/release/$b" /out/bin/; fi; \
    done \
 && test -x /out/bin/aperture-dataplane

FROM debian:bookworm
ENV DEBIAN_FRONTEND=noninteractive
# `dpdk` brings the DPDK 22.11 runtime libraries and (as recommends) the PMDs net_pcap,
# net_af_packet, net_tap and mempool_ring; net_ring (the replay's ports, linked) and
# net_null are not among them. Bookworm has no libdpdk23.
RUN apt-get update \
 && apt-get install -y dpdk librte-net-ring23 librte-net-null23 libpcap0.8 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /src/conf/ /etc/aperture/
WORKDIR /var/lib/aperture
ENTRYPOINT ["aperture-dataplane"]
CMD ["replay"]
