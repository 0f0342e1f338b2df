import { create } from "@bufbuild/protobuf";
import { PendingUpdateSchema, UpdateStatusSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import type { Payload } from "../types.js";
import type { PendingPackage } from "./parse.js";

/** At most this many packages are listed in one payload; the counts always cover all of them. */
export const MAX_LISTED_PACKAGES = 1_000;

/** What one update check found. */
export interface UpdateReport {
  /** "apt", "dnf", "yum", "pacman", "apk", "zypper" or "windows_update". */
  packageManager: string;
  packages: PendingPackage[];
  /** Usually the packages marked security; zypper counts security patches instead (see parse.ts). */
  securityCount: number;
  rebootRequired: boolean;
}

/** The `update_status` payload; the package list is capped at {@link MAX_LISTED_PACKAGES}, security ones first. */
export function updateStatusPayload(r: UpdateReport): Payload {
  const listed =
    r.packages.length > MAX_LISTED_PACKAGES
      ? [...r.packages.filter((p) => p.security), ...r.packages.filter((p) => !p.security)].slice(0, MAX_LISTED_PACKAGES)
      : r.packages;
  return {
    case: "updateStatus",
    value: create(UpdateStatusSchema, {
      pendingCount: r.packages.length,
      securityCount: r.securityCount,
      rebootRequired: r.rebootRequired,
      packageManager: r.packageManager,
      packages: listed.map((p) =>
        create(PendingUpdateSchema, {
          name: p.name,
          security: p.security,
          ...(p.version !== undefined ? { version: p.version } : {}),
        }),
      ),
    }),
  };
}
