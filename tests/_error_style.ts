/**
 * The module's one error-message style, denoland/std's: one sentence in
 * sentence case with no trailing period, "Cannot <what was attempted>
 * <the bad value>: <why>; <the fix>". Shared by `error_style_test.ts` (every
 * message in the source, and the errors the public API throws) and
 * `bad_input_test.ts` (the line each program prints for a bad flag).
 */

import { AssertionError } from "@std/assert";

/** Openings std's style replaces with "Cannot ...". */
const FORBIDDEN_OPENINGS = /^(Invalid|Can't|Unable|Failed to|Error\b)/;

/**
 * What `message` does against the style, one line per rule broken; empty
 * when it follows it. `${}` stands for an interpolated value (in messages
 * read from the source), so a message may not begin with one.
 */
export function styleProblems(message: string): string[] {
  const problems: string[] = [];
  if (!/^[A-Z]/.test(message)) problems.push("does not start with a capital letter");
  if (/\.$/.test(message)) problems.push("ends with a period");
  if (/\s$/.test(message)) problems.push("ends with white space");
  const opening = message.match(FORBIDDEN_OPENINGS);
  if (opening) problems.push(`starts with "${opening[1]}" (use "Cannot ...")`);
  if (message.includes("\n")) problems.push("spans more than one line");
  // Quoted values (JSON of what the caller passed, example code) may hold anything.
  const unquoted = message.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  // A period then a space ends a sentence; the last dot of an ellipsis ("...") does not.
  const at = unquoted.search(/(?<!\.)\.\s/);
  if (at !== -1) {
    problems.push(
      `has a second sentence (". " at "${unquoted.slice(Math.max(0, at - 20), at + 2)}")`,
    );
  }
  return problems;
}

/** Throws unless `message` follows the style; `where` says whose message it is. */
export function assertStdStyle(message: string, where = ""): void {
  const problems = styleProblems(message);
  if (problems.length > 0) {
    throw new AssertionError(
      `${where ? `${where}: ` : ""}${JSON.stringify(message)} ${problems.join(", ")}`,
    );
  }
}
