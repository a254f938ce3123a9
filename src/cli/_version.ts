/** The version of @x/echo, as in deno.json. */
export const VERSION = "0.1.0";
