import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../logger.js';
import { connectionLost } from '../db/pipelined-transaction.js';
import { AppError } from '../errors.js';

/** The one place errors become HTTP answers, always in the JSON error format of SPEC §3. */
export function errorBody(code: string, message: string, details?: unknown) {
  return { error: { code, message, ...(details !== undefined ? { details } : {}) } };
}

export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) return;
    if (err instanceof AppError) {
      if (err.httpStatus >= 500 && err.retryAfterSeconds === undefined) logger.error({ err: err.cause ?? err, path: req.path }, err.message);
      if (err.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(err.retryAfterSeconds))));
      res.status(err.httpStatus).json(errorBody(err.code, err.message, err.details));
      return;
    }
    // body-parser errors carry a `type` and a status.
    const e = err as { type?: string; status?: number };
    if (e.type === 'entity.too.large') {
      res.status(413).json(errorBody('payload_too_large', 'request body is larger than 64 KiB'));
      return;
    }
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
      res.status(415).json(errorBody('unsupported_media_type', 'unsupported body encoding'));
      return;
    }
    if (e.type === 'request.aborted' || e.type === 'request.size.invalid') {
      res.status(400).json(errorBody('bad_request', 'the request body was incomplete'));
      return;
    }
    // Other client errors from Express and body-parser (a body that does not inflate, a path segment
    // that does not percent-decode) carry a 4xx status; their messages are not the API's and stay here.
    const status = (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number' && Number.isInteger(status) && status >= 400 && status < 500) {
      const [code, message] = CLIENT_ERRORS[status] ?? ['bad_request', 'the request is malformed'];
      res.status(CLIENT_ERRORS[status] ? status : 400).json(errorBody(code, message));
      return;
    }
    // Postgres went away under the request (a restart, a terminated connection): the client may try
    // again (an answer lost with the connection is found again by the request's idempotency).
    if (connectionLost(err)) {
      logger.warn({ err: (err as Error).message, path: req.path, method: req.method }, 'database connection lost during the request');
      res.setHeader('Retry-After', '1');
      res.status(503).json(errorBody('service_unavailable', 'the database connection was lost; send the request again'));
      return;
    }
    logger.error({ err, path: req.path, method: req.method }, 'unhandled error');
    res.status(500).json(errorBody('internal_error', 'internal error'));
  };
}

/** The few client-error statuses Express and body-parser produce, in the API's words. */
const CLIENT_ERRORS: Record<number, [string, string]> = {
  400: ['bad_request', 'the request is malformed (its body encoding or a path segment could not be decoded)'],
  403: ['forbidden', 'the request is refused'],
  413: ['payload_too_large', 'request body is larger than 64 KiB'],
  415: ['unsupported_media_type', 'unsupported body encoding'],
};

/**
 * Requests Node's HTTP parser refuses before Express sees them (bytes that are not HTTP, as a lying
 * Content-Length leaves behind; headers over 16 KiB) are answered in the JSON error format too, not
 * with Node's bare `400 Bad Request`. The connection is closed after, as Node does.
 */
export function answerClientErrorsAsJson(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A response already under way on this connection cannot be followed by another.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, code, message]: [number, string, string] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'headers_too_large', 'request headers are larger than the server accepts']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request_timeout', 'the request did not arrive in time']
          : [400, 'bad_request', 'the request is not valid HTTP'];
    const body = JSON.stringify(errorBody(code, message));
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
