/**
 * Flag checks shared by the command-line programs: each bad value becomes a
 * {@linkcode UsageError}, which the program prints as one line and exits 2.
 *
 * @module
 */

import { VERSION } from "./_version.ts";

/** Bad command-line input: printed as one line on stderr, exit code 2. */
export class UsageError extends Error {
  /** Makes the error; `message` names the flag, the value and the fix. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * An `unknown` callback for `parseArgs` that collects what it did not know
 * (flags by name, stray words as they are), for {@linkcode rejectUnknown}.
 * `parseArgs` also reports the value of `--flag ""`, which is no stray word.
 */
export function collectUnknown(into: string[]): (arg: string) => false {
  return (arg) => {
    if (arg !== "") into.push(arg.startsWith("-") ? arg.split("=")[0] : arg);
    return false;
  };
}

/**
 * How to start the program whose module is `moduleUrl` (`server`, `client`
 * or `bench`) the way it was started: `deno run -A jsr:@x/echo/server` once
 * published, `deno run -A src/cli/server.ts` from a clone (the path as seen
 * from the working directory), so a hint can be copied and run.
 */
export function runCommand(moduleUrl: string): string {
  const name = moduleUrl.replace(/^.*\/|\.ts$/g, "");
  if (!moduleUrl.startsWith("file:")) return `deno run -A jsr:@x/echo/${name}`;
  const path = decodeURIComponent(new URL(moduleUrl).pathname);
  const cwd = Deno.cwd();
  const shown = path.startsWith(cwd + "/") ? path.slice(cwd.length + 1) : path;
  return `deno run -A ${shown}`;
}

/**
 * Prints `usage` for `--help` or the version for `--version`, before any
 * other flag is checked; the usage names the program as `runCommand` does
 * for `moduleUrl`. Returns the exit code, or `null` to go on.
 */
export function helpOrVersion(
  flags: { help?: boolean; version?: boolean },
  usage: string,
  moduleUrl: string,
): number | null {
  if (flags.help) {
    console.log(usage.replace(/deno run -A jsr:@x\/echo\/\w+/, runCommand(moduleUrl)));
  } else if (flags.version) console.log(`@x/echo ${VERSION}`);
  else return null;
  return 0;
}

/**
 * Throws on flags that `parseArgs` did not know. A value that starts with
 * `-` (such as `--port -1`) reads as a flag: say how to pass it instead.
 */
export function rejectUnknown(unknown: string[], args: readonly string[] = []): void {
  if (unknown.length === 0) return;
  const [first] = unknown;
  const at = args.indexOf(first);
  const flag = at > 0 ? args[at - 1] : "";
  if (/^-\d/.test(first) && flag.startsWith("--")) {
    throw new UsageError(
      `Cannot use ${flag} ${first}: negative numbers are not allowed ` +
        `(a value starting with "-" is written ${flag}=${first})`,
    );
  }
  throw new UsageError(`Cannot use ${first}: it is an unknown option; see --help for the options`);
}

/**
 * Throws on a switch given a value other than `true` or `false`: `parseArgs`
 * turns `--udp=no` or `--json=0` on, the opposite of what was meant.
 * `switches` are the program's boolean flags, as given to `parseArgs`;
 * arguments after `--` are left alone.
 */
export function rejectSwitchValues(args: readonly string[], switches: readonly string[]): void {
  for (const arg of args) {
    if (arg === "--") return;
    const match = /^--([^=]+)=(.*)$/s.exec(arg);
    if (match === null || !switches.includes(match[1])) continue;
    const [, name, value] = match;
    if (value === "true" || value === "false") continue;
    throw new UsageError(
      `Cannot use --${name}=${value}: --${name} is a switch, whose value can only be true or ` +
        `false; write --${name} to turn it on, or leave it out`,
    );
  }
}

/** Parses a whole number flag in `[min, max]`. */
export function integerFlag(name: string, value: unknown, min: number, max: number): number {
  const text = String(value);
  const number = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new UsageError(
      `Cannot use --${name} ${JSON.stringify(text)}: ` +
        `it must be a whole number from ${min} to ${max}`,
    );
  }
  return number;
}

/** Checks a flag against its allowed values. */
export function choiceFlag<T extends string>(
  name: string,
  value: unknown,
  choices: readonly T[],
): T {
  const text = String(value);
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(
      `Cannot use --${name} ${JSON.stringify(text)}: it must be one of ${choices.join(", ")}`,
    );
  }
  return text as T;
}

/** What each text flag's value is, as `--help` names it; `TEXT` for the others. */
const TEXT_FLAG_VALUES: Record<string, string> = {
  hostname: "ADDR",
  "admin-hostname": "ADDR",
  unix: "PATH",
  hgrm: "FILE",
  ca: "FILE",
  "tls-cert": "FILE",
  "tls-key": "FILE",
  "server-name": "NAME",
  "proxy-from": "CIDR",
};

/**
 * Checks a text flag is a non-empty string (not a bare `--flag`); the error
 * shows the flag with its value as `--help` names it (`--unix PATH`).
 */
export function textFlag(name: string, value: unknown): string {
  if (typeof value !== "string" || value === "") {
    throw new UsageError(
      `Cannot use --${name} without a value: it needs one, such as --${name} ` +
        (TEXT_FLAG_VALUES[name] ?? "TEXT"),
    );
  }
  return value;
}

/** Turns `\n`, `\r`, `\t` and `\\` in a flag value into the characters. */
export function unescape(text: string): string {
  return text.replace(
    /\\([nrt\\])/g,
    (_, c: string) => ({ n: "\n", r: "\r", t: "\t", "\\": "\\" })[c]!,
  );
}

/** `--transport tcp|udp`, or its alias `--udp`, which must not contradict it. Default `tcp`. */
export function transportFlag(transport: unknown, udp: boolean | undefined): "tcp" | "udp" {
  if (udp) {
    if (transport !== undefined && transport !== "udp") {
      throw new UsageError(
        `Cannot use --udp with --transport ${transport}: they conflict; drop one of them`,
      );
    }
    return "udp";
  }
  return choiceFlag("transport", transport ?? "tcp", ["tcp", "udp"] as const);
}

/**
 * `--transport` as a list (`tcp`, `udp` or `tcp,udp`), or its alias `--udp`,
 * which must not contradict it. Default `["tcp"]`.
 */
export function transportsFlag(transport: unknown, udp: boolean | undefined): ("tcp" | "udp")[] {
  if (typeof transport !== "string" || !transport.includes(",")) {
    return [transportFlag(transport, udp)];
  }
  if (udp) {
    throw new UsageError(
      `Cannot use --udp with --transport ${transport}: they conflict; drop one of them`,
    );
  }
  const names = transport.split(",").map((name) =>
    choiceFlag("transport", name, ["tcp", "udp"] as const)
  );
  if (names.length !== new Set(names).size) {
    throw new UsageError(
      `Cannot use --transport ${JSON.stringify(transport)}: a transport is named twice; ` +
        `use tcp, udp or tcp,udp`,
    );
  }
  return names.sort();
}

/** `--port N[,N...]`: each from 0 to 65535, none twice (but 0, which picks a new one each time). */
export function portsFlag(value: unknown): number[] {
  const text = String(value);
  const ports = text.split(",").map((part) => integerFlag("port", part, 0, 65535));
  const twice = ports.find((port, i) => port !== 0 && ports.indexOf(port) !== i);
  if (twice !== undefined) {
    throw new UsageError(
      `Cannot use --port ${JSON.stringify(text)}: port ${twice} is named twice; name each once`,
    );
  }
  return ports;
}

/** `--workers N|auto` (1 to 1024; auto is one per CPU), or `null` when not given. */
export function workersFlag(value: unknown): number | null {
  if (value === undefined) return null;
  if (value === "auto") return navigator.hardwareConcurrency;
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 1024) {
    throw new UsageError(
      `Cannot use --workers ${JSON.stringify(text)}: ` +
        `it must be a whole number from 1 to 1024, or auto (one per CPU)`,
    );
  }
  return Number(text);
}

/**
 * `--send-proxy v1|v2` (also `1`, `2`): the PROXY header version a client
 * sends first, or `undefined` when not given; TCP only.
 */
export function sendProxyFlag(value: unknown, transport: "tcp" | "udp"): 1 | 2 | undefined {
  if (value === undefined) return undefined;
  if (transport === "udp") {
    throw new UsageError(
      "Cannot use --send-proxy with UDP: it is for TCP only; drop it or use --transport tcp",
    );
  }
  const text = String(value);
  const version = /^v?([12])$/.exec(text)?.[1];
  if (version === undefined) {
    throw new UsageError(
      `Cannot use --send-proxy ${JSON.stringify(text)}: it must be v1 or v2 ` +
        `(the PROXY protocol version)`,
    );
  }
  return Number(version) as 1 | 2;
}
