import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../../common/logger.js";
import {
  AgentNotRegisteredError,
  ConflictError,
  FailedPreconditionError,
  InvalidInputError,
  NotFoundError,
  PermissionDeniedError,
  QueueFullError,
  RateLimitedError,
  UnauthenticatedError,
} from "../errors.js";

/**
 * Maps a service error to a ConnectError with a deliberate code. Domain errors keep their message; anything
 * unexpected is logged with its cause and answered as Internal without leaking internals.
 */
export function toConnectError(err: unknown, logger: Logger, rpc: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof InvalidInputError) return new ConnectError(err.message, Code.InvalidArgument, undefined, undefined, err);
  if (err instanceof AgentNotRegisteredError) return new ConnectError(err.message, Code.NotFound, undefined, undefined, err);
  if (err instanceof NotFoundError) return new ConnectError(err.message, Code.NotFound, undefined, undefined, err);
  if (err instanceof RateLimitedError) {
    // Retry-After in seconds, as HTTP has it: response headers (Connect unary), trailers (gRPC, Connect streams).
    const meta = new Headers({ "retry-after": String(err.retryAfterSeconds) });
    return new ConnectError(`${err.message}; retry after ${err.retryAfterSeconds} s`, Code.ResourceExhausted, meta, undefined, err);
  }
  if (err instanceof QueueFullError) return new ConnectError(err.message, Code.ResourceExhausted, undefined, undefined, err);
  if (err instanceof UnauthenticatedError) return new ConnectError(err.message, Code.Unauthenticated, undefined, undefined, err);
  if (err instanceof PermissionDeniedError) return new ConnectError(err.message, Code.PermissionDenied, undefined, undefined, err);
  if (err instanceof ConflictError) return new ConnectError(err.message, Code.AlreadyExists, undefined, undefined, err);
  if (err instanceof FailedPreconditionError) return new ConnectError(err.message, Code.FailedPrecondition, undefined, undefined, err);
  if (peerWentAway(err)) {
    // The caller closed its stream or connection mid-call (an agent stopping, a network drop): not a server fault.
    logger.debug({ rpc, code: (err as NodeJS.ErrnoException).code }, "rpc ended: the peer went away");
    return new ConnectError("the peer closed the call", Code.Canceled, undefined, undefined, err);
  }
  logger.error({ err, rpc }, "rpc failed");
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

const PEER_GONE = new Set(["ERR_STREAM_PREMATURE_CLOSE", "ECONNRESET", "ERR_HTTP2_STREAM_CANCEL"]);

/** True for the errors Node raises when the other side of a call closes it before the end. */
function peerWentAway(err: unknown): boolean {
  return err instanceof Error && PEER_GONE.has((err as NodeJS.ErrnoException).code ?? "");
}

/** One interceptor that turns every handler error (unary or mid-stream) into a ConnectError via toConnectError. */
export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const rpc = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const inner = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* inner;
          } catch (err) {
            throw toConnectError(err, logger, rpc);
          }
        })(),
      };
    } catch (err) {
      throw toConnectError(err, logger, rpc);
    }
  };
}
