import { InvalidInputError } from "../errors.js";

// Host names as agents report them: letters, digits, '-', '_', '.', at most 253 characters.
const HOSTNAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$/;

/** Throws InvalidInputError unless `name` is a plausible host name. */
export function checkHostname(name: string): void {
  if (name === "") throw new InvalidInputError("Missing hostname");
  if (!HOSTNAME.test(name)) throw new InvalidInputError(`invalid hostname ${JSON.stringify(name.slice(0, 300))}`);
}
