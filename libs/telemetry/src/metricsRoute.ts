/** The sliver of fastify `serveMetrics` needs, so this library does not depend on fastify. */
export interface FastifyLikeApp {
  get(
    path: string,
    handler: (request: unknown, reply: { header(name: string, value: string): { send(body: string): unknown } }) => Promise<unknown>,
  ): unknown;
}
