# One image for every Manifold service; the command picks the service.
# Node 24 (LTS until April 2028): Node 20 left support in April 2026. The whole suite passes on
# 24.22.3 as on the 20.x the development machines run (README, "Deployment").
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN npm install -g pnpm@12.21.0
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json tsconfig.json ./
COPY libs libs
COPY services services
COPY tools tools
COPY console console
COPY test/package.json test/package.json
RUN pnpm install --frozen-lockfile && pnpm run build && pnpm prune --prod

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
USER node
# e.g. `node services/gateway/dist/main.js`. Gateway and connector run without V8's allocation-site
# pretenuring (CALL_PATH_NODE_FLAGS in tools/manifold/src/processes.ts; docs/performance.md).
CMD ["node", "--enable-source-maps", "--no-allocation-site-pretenuring", "services/gateway/dist/main.js"]
