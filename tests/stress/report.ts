/**
 * `deno task test:stress:report`: runs the reliability suite once, as
 * committed, and writes the figures it reports into RELIABILITY.md (between
 * its `figures` markers), with the commit, the date and the machine. The
 * figures there come from that run only; nobody edits them by hand.
 */

const root = new URL("../../", import.meta.url);
const readme = new URL("RELIABILITY.md", root);
const figuresFile = await Deno.makeTempFile({ suffix: ".jsonl" });
const BEGIN = "<!-- figures:begin (deno task test:stress:report writes this part) -->";
const END = "<!-- figures:end -->";

function git(...args: string[]): string {
  const { stdout } = new Deno.Command("git", { args, cwd: root }).outputSync();
  return new TextDecoder().decode(stdout).trim();
}

const commit = git("rev-parse", "--short", "HEAD");
const dirty = git("status", "--porcelain", "--", "src", "tests") !== "";
const tests = [...Deno.readDirSync(new URL("tests/stress/", root))]
  .map((entry) => entry.name)
  .filter((name) => name.endsWith("_stress.ts"))
  .sort()
  .map((name) => `tests/stress/${name}`);
const run = await new Deno.Command(Deno.execPath(), {
  args: ["test", "-A", ...tests],
  cwd: root,
  env: { FIGURES_FILE: figuresFile },
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!run.success) {
  console.error("The reliability suite failed: RELIABILITY.md is left as it was.");
  Deno.exit(1);
}

interface Figure {
  case: string;
  values: Record<string, string | number>;
}
const figures: Figure[] = Deno.readTextFileSync(figuresFile).trim().split("\n").map((line) =>
  JSON.parse(line)
);
await Deno.remove(figuresFile);

/** Figures of one case in one table: the case name up to its API and backend is the group. */
const groups = new Map<string, Figure[]>();
for (const figure of figures) {
  const group = figure.case.replace(/-(protocol|stream|epoll|deno)/g, "");
  groups.set(group, [...(groups.get(group) ?? []), figure]);
}
const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
const lines = [
  BEGIN,
  "",
  `Run of commit \`${commit}\`${dirty ? " (with uncommitted changes)" : ""} on ` +
  `${new Date().toISOString().slice(0, 10)}: Deno ${Deno.version.deno}, ` +
  `${navigator.hardwareConcurrency} cores (${cpu}), Linux. Rows are named by case, API and backend.`,
];
for (const [group, rows] of groups) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row.values)))];
  lines.push(
    "",
    `### ${group}`,
    "",
    `| run | ${columns.join(" | ")} |`,
    `|---|${columns.map(() => "---").join("|")}|`,
  );
  for (const row of rows) {
    const name = row.case.slice(group.length).replace(/^-/, "") || row.case;
    lines.push(`| ${name} | ${columns.map((column) => row.values[column] ?? "").join(" | ")} |`);
  }
}
lines.push("", END);

const text = Deno.readTextFileSync(readme);
const start = text.indexOf(BEGIN);
const end = text.indexOf(END);
if (start < 0 || end < 0) throw new Error(`RELIABILITY.md lacks the markers ${BEGIN} ... ${END}`);
Deno.writeTextFileSync(
  readme,
  text.slice(0, start) + lines.join("\n") + text.slice(end + END.length),
);
const fmt = new Deno.Command(Deno.execPath(), { args: ["fmt", "RELIABILITY.md"], cwd: root });
await fmt.output();
console.log(`RELIABILITY.md: ${figures.length} figures from commit ${commit}`);
