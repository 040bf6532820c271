# syntax=docker/dockerfile:1
# The container images of eventproc (the sink, the default target) and proc
# (the echo processor), for those who build with Docker:
#
#   docker build -t eventproc/eventproc .
#   docker build --target proc -t eventproc/proc .
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(date -u -d @$(git log -1 --format=%ct) +%Y-%m-%dT%H:%M:%SZ) -t eventproc/eventproc .
#
# It builds as `make image` (internal/imagebuild) does, which needs no Docker:
# the same go build flags, empty base, user, files, ports and labels;
# TestDockerfileMatches keeps the two in step. (Not run in CI: no Docker.)

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags='-s -w' \
	-o /out/ ./eventproc ./proc
# The user database and CA certificates of the images.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/home/nonroot \
	&& cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
	&& printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd \
	&& printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group \
	&& chown 65532:65532 /rootfs/home/nonroot && chmod 700 /rootfs/home/nonroot

FROM scratch AS base
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /
USER 65532
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/eventproc/eventproc
LABEL org.opencontainers.image.source=$SOURCE \
	org.opencontainers.image.revision=$REVISION \
	org.opencontainers.image.version=$VERSION \
	org.opencontainers.image.created=$CREATED

FROM base AS proc
COPY --from=build /out/proc /usr/local/bin/proc
EXPOSE 9090/tcp
LABEL org.opencontainers.image.title=proc \
	org.opencontainers.image.description="eventproc echo processor: event.v1.ProcessorService on 9090"
ENTRYPOINT ["/usr/local/bin/proc"]

FROM base AS eventproc
COPY --from=build /out/eventproc /usr/local/bin/eventproc
EXPOSE 8080/tcp 8081/tcp
LABEL org.opencontainers.image.title=eventproc \
	org.opencontainers.image.description="eventproc event sink: HTTP/JSON API on 8080, gRPC API on 8081"
ENTRYPOINT ["/usr/local/bin/eventproc"]
