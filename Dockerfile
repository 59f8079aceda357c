# Signet's images: static binaries on a distroless, non-root base.
#
#   make image                          the webhook (the last stage, the default)
#   make image IMAGE_CMD=signet         the CLI (docker build --target signet)
#   docker buildx build --platform linux/amd64,linux/arm64 .   both architectures
#
# Without Docker, `make image-push` (hack/image) builds the same images; a test
# in hack/image holds the two builds to the same go build flags, files, user
# and entrypoint.

# The build stage runs on the builder's own platform and cross-compiles.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY config/ config/
COPY internal/ internal/
COPY pkg/ pkg/
# Set by BuildKit from --platform; empty GOARCH means the builder's own.
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./cmd/webhook ./cmd/signet

# The CLI: docker build --target signet.
FROM gcr.io/distroless/static-debian12:nonroot AS signet
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.source="https://github.com/signet-dev/signet" \
      org.opencontainers.image.title="signet" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/signet /signet
USER 65532:65532
ENTRYPOINT ["/signet"]

# The webhook, the default target.
FROM gcr.io/distroless/static-debian12:nonroot AS webhook
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.source="https://github.com/signet-dev/signet" \
      org.opencontainers.image.title="signet-webhook" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/webhook /webhook
USER 65532:65532
ENTRYPOINT ["/webhook"]
