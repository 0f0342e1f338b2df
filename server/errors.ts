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
