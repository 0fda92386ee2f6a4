# Images of the hub (target hub: `fleetpulse`, whose `hub` verb deploy/hub
# runs) and of the agent (target agent), static binaries on distroless:
#
#   docker build --target hub   -t ghcr.io/fleetpulse/fleetpulse:$(git describe --tags --always) .
#   docker build --target agent -t ghcr.io/fleetpulse/fleetpulse-agent:$(git describe --tags --always) .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN for cmd in fleetpulse fleetpulse-agent; do \
      CGO_ENABLED=0 go build -tags slicelabels -trimpath \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION}" \
        -o /out/$cmd ./cmd/$cmd || exit 1; \
    done

FROM gcr.io/distroless/static-debian12:nonroot AS hub
COPY --from=build /out/fleetpulse /fleetpulse
USER 65532:65532
ENTRYPOINT ["/fleetpulse"]

FROM gcr.io/distroless/static-debian12:nonroot AS agent
COPY --from=build /out/fleetpulse-agent /fleetpulse-agent
USER 65532:65532
ENTRYPOINT ["/fleetpulse-agent"]
