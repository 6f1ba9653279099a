/**
 * The fields the admin API names in an upstream's `literalSecrets` (`transport.url`,
 * `transport.headers.X-Api-Key`, `transport.args.2`) that `edited` still holds as they were shown:
 * withheld (`[redacted]`, or a URL without its credentials). A registration recorded before the
 * registry refused literal secrets is shown without them, and a save of the shown form cannot keep
 * them: it would send the URL without its user info and silently cut the upstream's credentials,
 * or `[redacted]` as an argument.
 */
export function stillWithheld(shown: Record<string, unknown>, edited: unknown, fields: readonly string[]): string[] {
  return fields.filter((field) => {
    const [, key, ...rest] = field.split(".");
    const at = (transport: unknown): unknown => {
      const value = (transport as Record<string, unknown> | null)?.[key!];
      return rest.length === 0 ? value : (value as Record<string, unknown> | undefined)?.[rest.join(".")];
    };
    return at(edited) !== undefined && at(edited) === at(shown);
  });
}
