/** `count` tools of upstream `u`, each about 1.6 KB of definition: a long description and a documented schema. */
export const longTools = (u: number, count: number) =>
  Array.from({ length: count }, (_, t) => ({
    name: `tool_${t}`,
    description: `Tool ${t} of upstream ${u}. ${"Searches the records of one kind by their fields, returning at most the limit asked for, newest first, with a cursor. ".repeat(9)}`,
    inputSchema: {
      type: "object" as const,
      properties: {
        query: { type: "string", description: "What to search for: words, a quoted phrase, or field:value pairs." },
        limit: { type: "integer", minimum: 1, maximum: 100, description: "How many records at most." },
        cursor: { type: "string", description: "Where the previous page ended." },
      },
      required: ["query"],
    },
  }));
