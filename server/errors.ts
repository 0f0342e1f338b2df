/** Domain errors of the server's services; the RPC and REST layers map them to codes and statuses. */

/** Bad input from a client: the message is safe to show. */
export class InvalidInputError extends Error {
  override name = "InvalidInputError";
}

/** Something asked for does not exist. */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/** A command was triggered for a host that never registered. */
export class AgentNotRegisteredError extends Error {
  override name = "AgentNotRegisteredError";
  constructor(readonly hostname: string) {
    super(`Agent '${hostname}' is not registered`);
  }
}

/** The host's command queue already holds its maximum of queued commands. */
export class QueueFullError extends Error {
  override name = "QueueFullError";
  constructor(hostname: string, max: number) {
    super(`command queue for ${hostname} is full (${max} queued)`);
  }
}

/** No credential, or one that is malformed, unknown, expired or revoked: the message is safe to show. */
export class UnauthenticatedError extends Error {
  override name = "UnauthenticatedError";
}

/** A valid credential that may not do this (role too low, another host, unusable enrollment token). */
export class PermissionDeniedError extends Error {
  override name = "PermissionDeniedError";
}

/** Something with that name or key already exists. */
export class ConflictError extends Error {
  override name = "ConflictError";
}

/** The request is valid but the target is not in a state that allows it (e.g. approving a revoked agent). */
export class FailedPreconditionError extends Error {
  override name = "FailedPreconditionError";
}

/** Too many requests (a rate limit, or an address slowed after failed authentication): try again after a while. */
export class RateLimitedError extends Error {
  override name = "RateLimitedError";
  constructor(
    message: string,
    /** How long the caller should wait before trying again. */
    readonly retryAfterMs: number,
  ) {
    super(message);
  }

  /** The Retry-After value: whole seconds, at least 1. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.retryAfterMs / 1000));
  }
}
