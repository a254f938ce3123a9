/** Temporary directories of the tests that outlive one test: removed when the test module ends. */

const made: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of made) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error; // a test removed it sooner
    }
  }
});

/** A new temporary directory named `prefix…`, removed when the test module ends (or sooner). */
export function moduleTempDir(prefix: string): string {
  const dir = Deno.makeTempDirSync({ prefix });
  made.push(dir);
  return dir;
}
