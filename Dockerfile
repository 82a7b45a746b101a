# syntax=docker/dockerfile:1
# One image for the whole suite: the `sextant` binary runs every service and the admin console
# (`sextant serve <connector|feature-store|trainer|gateway|admin>`) and the feature store's
# migrations (`sextant migrate feature-store`). The CUDA trainer image is Dockerfile.cuda.
#
#   docker build -t sextant:$(cargo pkgid -p sextant | cut -d'#' -f2) \
#     --build-arg VERSION=... --build-arg REVISION=$(git rev-parse HEAD) .
#
# scripts/build-image.sh builds the same layout offline (no base images, no Docker engine).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The revision goes into the binary too (sextant_build_info on /metrics).
ARG REVISION=unknown
ENV SEXTANT_GIT_REVISION=${REVISION}
# Cache mounts keep the registry and target between builds; the binary is copied out of the
# cached target so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sextant --bin sextant \
    && cp target/release/sextant /usr/local/bin/sextant

# glibc, libgcc and nothing else (TLS is rustls with bundled roots); Debian 12 like the
# build stage, so the glibc the binary was linked against is the one it runs with.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.0.0-unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sextant" \
      org.opencontainers.image.description="Sextant: custom machine learning for Salesforce (connector, feature store, trainer, gateway, admin console)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /usr/local/bin/sextant /usr/local/bin/sextant
# distroless's `nonroot` user; the Helm chart runs with the same ids.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sextant"]
CMD ["--help"]
