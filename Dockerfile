# syntax=docker/dockerfile:1
# sluice container image: build the native addon (with the verbs half, against rdma-core headers)
# and type-check the TypeScript in a full build stage; run on a slim image that carries only the
# runtime libraries. How this file is checked without a container engine: docs/deploy.md.

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm AS build
# g++/make/python3 for node-gyp; libibverbs-dev + rdma-core for <infiniband/verbs.h> and libibverbs.so.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 libibverbs-dev rdma-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first so this layer is cached across source edits. `npm ci` runs the package's own
# install script, which builds the addon (scripts/build-native.mjs finds Node's headers under
# /usr/local; binding.gyp enables the verbs half because <infiniband/verbs.h> is now present).
COPY package.json package-lock.json binding.gyp tsconfig.json ./
COPY scripts/ scripts/
COPY native/ native/
# The packages above are all the build needs: the install script's own apt step (for bare Debian
# machines) is not wanted here.
ENV SLUICE_NO_APT=1
RUN npm ci --no-audit --no-fund
COPY src/ src/
COPY proto/ proto/
COPY bin/ bin/
# tsx runs the sources directly, so there is nothing to emit; fail the build on a type error.
RUN npx tsc --noEmit -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf build/Release/obj.target build/Release/.deps

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
# Runtime libraries only: libibverbs and the user-space providers (rxe, mlx5, efa, ...).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libibverbs1 ibverbs-providers \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid sluice --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin sluice \
 && mkdir -p /etc/sluice /var/lib/sluice \
 && chown sluice:sluice /var/lib/sluice
WORKDIR /app
ENV NODE_ENV=production \
    SLUICE_CONFIG=/etc/sluice/sluice.yaml
COPY --from=build --chown=root:root /app/package.json /app/package-lock.json ./
COPY --from=build --chown=root:root /app/node_modules/ node_modules/
COPY --from=build --chown=root:root /app/build/Release/sluice_native.node build/Release/sluice_native.node
COPY --from=build --chown=root:root /app/src/ src/
COPY --from=build --chown=root:root /app/proto/ proto/
COPY --from=build --chown=root:root /app/bin/ bin/
COPY --from=build --chown=root:root /app/scripts/healthcheck.mjs scripts/healthcheck.mjs
COPY --from=build --chown=root:root /app/tsconfig.json tsconfig.json
# Non-root by number, so `runAsNonRoot` can verify it.
USER 10001:10001
# 8000 HTTP/WebSocket, 8001 gRPC, 8002 metrics and probes, 8003 training service (TensorTransfer),
# 7470/7471 inference/training segments.
EXPOSE 8000 8001 8002 8003 7470 7471
# Liveness from inside the container (plain HTTP on the ops listener; no client certificate needed).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["node", "/app/scripts/healthcheck.mjs"]
# sluice handles SIGTERM (graceful drain) and SIGHUP (reload) itself, also as PID 1.
STOPSIGNAL SIGTERM
# V8 flags on the command line (NODE_OPTIONS refuses them); why: src/node/v8-flags.ts.
ENTRYPOINT ["node", "--single-threaded-gc", "/app/bin/sluice.mjs"]
CMD ["serve"]
