import { create } from "@bufbuild/protobuf";
import { ApplicationChangeSchema, ApplicationInfoSchema, ApplicationListSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import type { Payload } from "../types.js";
import type { App, InventoryReport } from "./inventory.js";

function info(a: App) {
  return create(ApplicationInfoSchema, {
    name: a.name,
    version: a.version,
    source: a.source,
    ...(a.vendor !== undefined ? { vendor: a.vendor } : {}),
    ...(a.arch !== undefined ? { arch: a.arch } : {}),
  });
}

/** The `application_list` payload: the full inventory plus what was added, removed and upgraded, all by name. */
export function applicationListPayload(r: InventoryReport): Payload {
  return {
    case: "applicationList",
    value: create(ApplicationListSchema, {
      applications: r.apps.map(info),
      added: r.changes.added.map(info),
      removed: r.changes.removed.map(info),
      upgraded: r.changes.upgraded.map((u) =>
        create(ApplicationChangeSchema, { name: u.name, source: u.source, fromVersion: u.fromVersion, toVersion: u.toVersion }),
      ),
    }),
  };
}
