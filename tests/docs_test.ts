/**
 * The published documentation: every entry point has module docs and every
 * exported symbol an `@example` (which `deno test --doc` then runs).
 */

import { assert, assertEquals } from "@std/assert";

/** The entry points deno.json publishes: the root, each concern's subpath, the programs. */
const ENTRY_POINTS: string[] = Object.values(
  JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url))).exports as Record<
    string,
    string
  >,
).map((path) => path.replace(/^\.\//, ""));

/** Names that are the module's workings, not its API: no entry point may export them. */
const INTERNALS = [
  "EchoSession",
  "EchoSessionHooks",
  "EchoSink",
  "FlowControl",
  "ResolvedEchoOptions",
  "resolveEchoOptions",
  "resolveUdpEchoPrefix",
  "SocketTransport",
  "Poller",
];

interface DocNode {
  name: string;
  declarations?: { jsDoc?: { tags?: { kind: string }[] } }[];
}

Deno.test("every entry point has module docs and every export an @example", async () => {
  const root = new URL("../", import.meta.url);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", ...ENTRY_POINTS],
    signal: AbortSignal.timeout(120_000),
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
  // A symbol two entry points export is documented in full under one of them only.
  const withExample = new Set<string>();
  const exportedBy = new Map<string, string>();
  for (const [url, { module_doc, symbols: exported }] of Object.entries(nodes)) {
    const file = url.slice(root.href.length);
    if (!module_doc?.doc?.trim()) missing.push(`${file}: module docs`);
    for (const symbol of exported) {
      symbols++;
      exportedBy.set(symbol.name, file);
      const tags = symbol.declarations?.flatMap((d) => d.jsDoc?.tags ?? []) ?? [];
      if (tags.some((tag) => tag.kind === "example")) withExample.add(symbol.name);
    }
  }
  for (const [name, file] of exportedBy) {
    if (!withExample.has(name)) missing.push(`${file}: ${name}`);
  }
  assert(symbols > 100, `only ${symbols} exported symbols found: has deno doc's JSON changed?`);
  assertEquals(missing, [], `without an @example:\n${missing.join("\n")}`);
});

Deno.test("the root exports about 40 names, each concern its own subpath, and no internals", async () => {
  const root = new URL("../", import.meta.url);
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", ...ENTRY_POINTS],
    signal: AbortSignal.timeout(120_000),
    cwd: root,
    stdout: "piped",
  }).output();
  const { nodes } = JSON.parse(new TextDecoder().decode(stdout)) as {
    nodes: Record<string, { symbols: DocNode[] }>;
  };
  const names = (file: string) => nodes[new URL(file, root).href].symbols.map((s) => s.name);
  const rootNames = names("mod.ts");
  assert(rootNames.length >= 35 && rootNames.length <= 45, `${rootNames.length} names at the root`);
  assertEquals(ENTRY_POINTS.length, 10, "the entry points the README's API section describes");
  for (const [file, { symbols }] of Object.entries(nodes)) {
    const leaked = symbols.map((s) => s.name).filter((name) => INTERNALS.includes(name));
    assertEquals(leaked, [], `${file.slice(root.href.length)} exports internals`);
  }
  // Every name at the root is also in the subpath of its concern, so a program can take all of a
  // concern from one place.
  const subpaths = ["src/tcp/mod.ts", "src/streams/mod.ts", "src/udp/mod.ts", "src/echo/mod.ts"];
  const inSubpaths = new Set(subpaths.flatMap(names));
  assertEquals(rootNames.filter((name) => !inSubpaths.has(name)), []);
});

Deno.test("a src file is private (starts with _) exactly when no entry point exports from it", async () => {
  const root = new URL("../", import.meta.url);
  const reexported = new Set<string>();
  for (const entry of ENTRY_POINTS) {
    const url = new URL(entry, root);
    const text = await Deno.readTextFile(url);
    for (const [, spec] of text.matchAll(/^export\s[^;]*?from\s+"(\.[^"]+)";/gms)) {
      reexported.add(new URL(spec, url).pathname);
    }
  }
  const entries = new Set(ENTRY_POINTS.map((entry) => new URL(entry, root).pathname));
  const wrong: string[] = [];
  const walk = async (dir: URL): Promise<void> => {
    for await (const item of Deno.readDir(dir)) {
      const url = new URL(item.name + (item.isDirectory ? "/" : ""), dir);
      if (item.isDirectory) await walk(url);
      else if (item.name.endsWith(".ts") && !entries.has(url.pathname)) {
        const isPrivate = item.name.startsWith("_");
        const isPublic = reexported.has(url.pathname);
        const file = url.pathname.slice(root.pathname.length);
        if (isPrivate && isPublic) wrong.push(`${file}: exported by an entry point`);
        if (!isPrivate && !isPublic) {
          wrong.push(`${file}: exported by no entry point, so name it _`);
        }
      }
    }
  };
  await walk(new URL("src/", root));
  assertEquals(wrong, []);
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
