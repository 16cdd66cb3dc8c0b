# syntax=docker/dockerfile:1
# Multi-stage: a static binary on a minimal, non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY pkg ./pkg
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/healthrouter ./cmd/healthrouter \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/healthrouter /usr/local/bin/healthrouter
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
# The binary checks itself: distroless has no shell or curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/healthrouter", "probe", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/healthrouter"]
# Ingest tokens come from the environment (HEALTHROUTER_INGEST_TOKENS); with
# none, healthrouter stays on loopback and the port is unreachable.
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/data"]
