/**
 * @xsys/client: a typed client for the xsys daemon.
 *
 *     import { XsysClient } from "@xsys/client";
 *     const client = await XsysClient.connect();
 *     console.log(await client.sys.memory());
 *     await client.close();
 */
export { XsysClient } from "./client.js";
export type {
  ClientEvents,
  ClientOptions,
  ClientState,
  ReconnectOptions,
  ReconnectedInfo,
  ReconnectingInfo,
} from "./client.js";
export type { CallOptions, Caller, Params, Progress, SubscribeOptions } from "./caller.js";
export type { ReadStreamOptions, UploadStream, WriteStreamOptions } from "./streams.js";
export {
  AlreadyExistsError,
  CLIENT_ERROR_CODE,
  ConflictError,
  ConnectionClosedError,
  ErrorCode,
  FrameError,
  InternalError,
  InvalidParamsError,
  InvalidRequestError,
  MethodNotFoundError,
  NotFoundError,
  OverloadedError,
  ParseError,
  PermissionDeniedError,
  RequestTimeoutError,
  TooLargeError,
  UnauthorizedError,
  UntrustedServerError,
  XsysClientError,
  XsysError,
  errorClassFor,
  errorFromWire,
} from "./errors.js";
export type { ErrorCodeName, WireError } from "./errors.js";
export { DEFAULT_MAX_FRAME, FrameDecoder, frame } from "./framing.js";
export { isBinaryPath, pathText } from "./fsPath.js";
export { SERVER_UID_ENV, trustedServerUids } from "./transport.js";
export { WINDOWS_PIPE, defaultSocketPath } from "./socketPath.js";
export type { SocketPathEnv } from "./socketPath.js";
export { Counter, Gauge, Histogram } from "./metrics.js";
export type { HistogramOptions, MetricOptions } from "./metrics.js";
export { Subscription } from "./subscription.js";
export type {
  SubscriptionEvent,
  SubscriptionGap,
  SubscriptionItem,
  SubscriptionNotificationParams,
  SubscriptionOptions,
  SubscriptionState,
} from "./subscription.js";
export type * from "./notifications.js";
export type * from "./results.js";
export * from "./generated.js";
