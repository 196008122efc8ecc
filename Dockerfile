# syntax=docker/dockerfile:1
# profile-sync: the daemon image (Node 24 LTS). Also runs one-off commands:
#   docker run --env-file prod.env profile-sync backfill --json
# No Docker engine on the build machines: test/unit/deploy/dockerfile.test.ts checks the rules that
# matter (pinned Node 24 base, numeric non-root USER, HEALTHCHECK, no secrets, exec-form entrypoint).

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `prepare` build needs the sources, which are copied next.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
COPY jobs ./jobs
COPY config ./config
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    OPS_HOST=0.0.0.0 \
    OPS_PORT=9464
WORKDIR /app
# tini reaps zombies and forwards SIGTERM to node, whose handlers drain the workers
# (in-flight jobs finish or are handed back) before exiting.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --from=build --chown=node:node /app/config ./config
# The image's `node` user, by number: Kubernetes' runAsNonRoot can only verify a numeric user
# (deploy/deployment.yaml sets the same uid).
USER 1000:1000
# /healthz, /readyz, /metrics, /dashboard (docs/operations.md). Bound to all interfaces in the container so
# the kubelet and Prometheus reach it on the pod IP; set OPS_DASHBOARD_TOKEN to protect the dashboard.
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.OPS_PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SHUTDOWN_TIMEOUT_MS (20 s) drains in-flight jobs; give `docker stop -t 30` or a 30 s grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli.js"]
CMD ["daemon"]
