# syntax=docker/dockerfile:1
# Multi-stage: a static binary on a minimal, non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY pkg ./pkg
# The image has no .git to stamp a revision from: `make image` passes one.
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.buildVersion=${VERSION}" -o /out/healthrouter ./cmd/healthrouter \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/healthrouter /usr/local/bin/healthrouter
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
# The binary checks itself: distroless has no shell or curl. `healthrouter
# probe` reads its target from the environment, so a deployment changes it
# without rebuilding the image:
#   HEALTHROUTER_PROBE_URL              the health check URL; with another
#                                       --listen port or with TLS on (tls.cert_file),
#                                       e.g. https://127.0.0.1:8443/healthz
#   HEALTHROUTER_PROBE_CA_FILE          PEM of the CA that signed the server's
#                                       certificate (https), besides the system roots
#   HEALTHROUTER_PROBE_INSECURE_LOOPBACK=true
#                                       skip certificate checks; refused unless
#                                       the URL's host is loopback
ENV HEALTHROUTER_PROBE_URL=http://127.0.0.1:8080/healthz
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/healthrouter", "probe"]
ENTRYPOINT ["/usr/local/bin/healthrouter"]
# Ingest tokens come from the environment (HEALTHROUTER_INGEST_TOKENS); with
# none, healthrouter stays on loopback and the port is unreachable.
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/data"]
