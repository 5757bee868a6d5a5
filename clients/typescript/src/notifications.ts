/**
 * Notification payloads, as PROTOCOL.md and the daemon's handlers describe them.
 * `rpc.methods` names the notification a streaming method pushes (`streams`), but not its
 * fields, so these are written by hand; unknown notifications fall back to
 * `SubscriptionNotificationParams`.
 */
import type {
  CheckStatus,
  CpuUsage,
  DiskIOUsage,
  Disks,
  LoadAverages,
  NetworkUsage,
  ProcessRow,
  Sensors,
  ServiceCheck,
  SwapMemory,
  VirtualMemory,
} from "./generated.js";
import type { Alert, FsPath } from "./results.js";
import type { SubscriptionNotificationParams } from "./subscription.js";

/** One file-system change in a `watch.event` notification. */
export interface WatchFileEvent {
  /** e.g. `created`, `modified`, `deleted`, `moved`. */
  type: string;
  /** A string, or bytes (Uint8Array) for a name that is not valid UTF-8. */
  path: FsPath;
  /** For moves: where it went. */
  dest_path?: FsPath | null;
  is_dir: boolean;
  /** Seconds since the Unix epoch. */
  ts: number;
  [key: string]: unknown;
}

/** `watch.event`: a batch of changes under a watch. */
export interface WatchEventParams {
  subscription: string;
  events: WatchFileEvent[];
  /** The watched directory is gone: this is the subscription's last event. */
  final?: boolean;
  [key: string]: unknown;
}

/** `<ns>.overflow`: the daemon dropped `dropped` events; resync. */
export interface OverflowParams {
  subscription: string;
  dropped: number;
  /** watch.overflow: why (kernel queue overflow, unwatchable directory, slow client...). */
  reason?: string;
  /** watch.overflow: whether `dropped` is an exact count. */
  exact?: boolean;
  path?: FsPath | null;
  [key: string]: unknown;
}

/** `monitor.alert`: an alert was sent. */
export interface MonitorAlertParams {
  subscription: string;
  alert: Alert;
  [key: string]: unknown;
}

/**
 * `sys.snapshot`: one live snapshot of a `sys.subscribe` stream (flat params). Only the
 * sections the subscription asked for are present; each has the fields of the `sys.*`
 * method of the same name.
 */
export interface SysSnapshotParams {
  subscription: string;
  /** 1, 2, ... per subscription; a gap means snapshots were dropped. */
  seq: number;
  /** When the sample was taken, seconds since the Unix epoch. */
  ts: number;
  /** Snapshots replaced unsent so far (a slow reader gets the latest, not a backlog). */
  dropped: number;
  cpu?: CpuUsage;
  memory?: VirtualMemory;
  swap?: SwapMemory;
  load?: LoadAverages;
  disks?: Disks;
  disk_io?: DiskIOUsage;
  network?: NetworkUsage;
  sensors?: Sensors;
  /** The top `top_processes` by `process_sort` (descending cpu_percent or memory_percent). */
  processes?: { processes: ProcessRow[]; total: number; truncated: boolean; sort: "cpu" | "memory"; ts: number };
  /** Monitor check states (`monitor.status` rows) and how many fire. */
  monitor?: { firing: number; checks: CheckStatus[] };
  /** Service checks (`checks.status` rows). */
  checks?: { checks: ServiceCheck[] };
  [key: string]: unknown;
}

/** Known notification payloads by method name. */
export interface KnownNotifications {
  "watch.event": WatchEventParams;
  "watch.overflow": OverflowParams;
  "monitor.alert": MonitorAlertParams;
  "monitor.overflow": OverflowParams;
  "sys.snapshot": SysSnapshotParams;
}

/** The params of notification `N` (a generic map for notifications not listed above). */
export type NotificationOf<N extends string> = N extends keyof KnownNotifications
  ? KnownNotifications[N]
  : SubscriptionNotificationParams;
