/**
 * The published documentation: every entry point has module docs and every
 * exported symbol an `@example` (which `deno test --doc` then runs).
 */

import { assert, assertEquals } from "@std/assert";

const ENTRY_POINTS = ["mod.ts", "src/cli/server.ts", "src/cli/client.ts", "src/cli/bench.ts"];

interface DocNode {
  name: string;
  declarations?: { jsDoc?: { tags?: { kind: string }[] } }[];
}

Deno.test("every entry point has module docs and every export an @example", async () => {
  const root = new URL("../", import.meta.url);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", ...ENTRY_POINTS],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  const { nodes } = JSON.parse(new TextDecoder().decode(stdout)) as {
    nodes: Record<string, { module_doc?: { doc?: string }; symbols: DocNode[] }>;
  };
  assertEquals(Object.keys(nodes).length, ENTRY_POINTS.length);
  const missing: string[] = [];
  let symbols = 0;
  for (const [url, { module_doc, symbols: exported }] of Object.entries(nodes)) {
    const file = url.slice(root.href.length);
    if (!module_doc?.doc?.trim()) missing.push(`${file}: module docs`);
    for (const symbol of exported) {
      symbols++;
      const tags = symbol.declarations?.flatMap((d) => d.jsDoc?.tags ?? []) ?? [];
      if (!tags.some((tag) => tag.kind === "example")) missing.push(`${file}: ${symbol.name}`);
    }
  }
  assert(symbols > 100, `only ${symbols} exported symbols found: has deno doc's JSON changed?`);
  assertEquals(missing, [], `without an @example:\n${missing.join("\n")}`);
});

Deno.test("the README links every example", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  let examples = 0;
  for await (const entry of Deno.readDir(new URL("../examples/", import.meta.url))) {
    examples++;
    assert(readme.includes(`](examples/${entry.name})`), `README.md does not link ${entry.name}`);
  }
  assert(examples >= 10, `${examples} examples`);
});
