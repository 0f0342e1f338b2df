/**
 * `spectra-server token …` and `spectra-server enroll-token …`: manage admin and enrollment tokens directly on the
 * configured database (the same --store / --data-dir flags and SPECTRA_* variables as the server), with or without
 * a running server. A new token is printed once, alone on stdout (so `TOKEN=$(spectra-server token create …)`
 * works); everything else goes to stderr, or stdout for listings.
 */
import { parseArgs } from "node:util";
import { createLogger } from "../../common/logger.js";
import { createAgentAccess } from "../agents/access.js";
import { createAdminTokens } from "../auth/admin-tokens.js";
import { isRoleName } from "../auth/credentials.js";
import { ConfigError, describeStore, parseDuration, parseStore } from "../config.js";
import { ConflictError, InvalidInputError, NotFoundError } from "../errors.js";
import { openStore } from "../store/open.js";
import type { Store } from "../store/store.js";

/** Where a subcommand writes (process streams, or buffers in tests). */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const STORE_OPTIONS = {
  store: { type: "string" },
  "data-dir": { type: "string" },
  "log-level": { type: "string" },
} as const;

const iso = (ms: number | undefined) => (ms === undefined ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z"));

/** Lays rows out in columns, two spaces apart. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

/** Whether argv starts with a token subcommand. */
export function isTokenCommand(argv: string[]): boolean {
  return argv[0] === "token" || argv[0] === "enroll-token";
}

/** Runs `token …` or `enroll-token …`; returns the exit code (0 done, 1 failed, 2 bad usage). */
export async function runTokenCommand(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const [group, action, ...rest] = argv;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: true,
      options: {
        ...STORE_OPTIONS,
        name: { type: "string" },
        role: { type: "string" },
        "auto-approve": { type: "boolean" },
        "multi-use": { type: "boolean" },
        ttl: { type: "string" },
        label: { type: "string", multiple: true },
      },
    });
  } catch (err) {
    io.err(`spectra-server ${group}: ${(err as Error).message}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const usage = (msg: string) => {
    io.err(`spectra-server ${group}: ${msg}\nRun spectra-server --help for the subcommands.\n`);
    return 2;
  };
  const dataDir = values["data-dir"] ?? env["SPECTRA_DATA_DIR"] ?? "./data";
  let setting;
  try {
    setting = parseStore(values.store ?? env["SPECTRA_STORE"], dataDir);
  } catch (err) {
    return usage((err as ConfigError).message);
  }

  // Validate everything before opening the database.
  let run: (store: Store) => Promise<void>;
  const logger = createLogger({ name: "spectra-server", level: values["log-level"] ?? env["SPECTRA_LOG_LEVEL"] ?? "warn" });
  const services = (store: Store) => ({
    tokens: createAdminTokens({ store, logger, clock: Date.now }),
    access: createAgentAccess({ store, logger, clock: Date.now }),
  });
  if (group === "token" && action === "create") {
    const name = values.name;
    const role = values.role ?? "";
    if (!name) return usage("create needs --name");
    if (!isRoleName(role)) return usage("create needs --role viewer, operator or admin");
    run = async (store) => {
      const { token, record } = await services(store).tokens.create(name, role, "cli");
      io.out(`${token}\n`);
      io.err(`created admin token "${record.name}" (role ${record.role}, id ${record.id}); store it now, it is not shown again\n`);
    };
  } else if (group === "token" && action === "list") {
    run = async (store) => {
      const rows = (await services(store).tokens.list()).map((t) => [
        t.id,
        t.name,
        t.role,
        iso(t.createdAtMs),
        iso(t.lastUsedMs),
        t.revokedAtMs === undefined ? "active" : `revoked ${iso(t.revokedAtMs)}`,
      ]);
      io.out(table([["ID", "NAME", "ROLE", "CREATED", "LAST USED", "STATUS"], ...rows]));
    };
  } else if (group === "token" && action === "revoke") {
    if (positionals.length !== 1) return usage("revoke needs one token name or id");
    run = async (store) => {
      const rec = await services(store).tokens.revoke(positionals[0]!, "cli");
      io.err(`revoked admin token "${rec.name}" (id ${rec.id})\n`);
    };
  } else if (group === "enroll-token" && action === "create") {
    let ttlMs: number | undefined;
    const labels: Record<string, string> = {};
    try {
      if (values.ttl !== undefined) ttlMs = parseDuration("ttl", values.ttl);
    } catch (err) {
      return usage((err as Error).message);
    }
    for (const l of values.label ?? []) {
      const eq = l.indexOf("=");
      if (eq <= 0) return usage(`--label ${JSON.stringify(l)}: use key=value`);
      labels[l.slice(0, eq)] = l.slice(eq + 1);
    }
    run = async (store) => {
      const { token, record } = await services(store).access.createEnrollmentToken(
        {
          name: values.name ?? "",
          singleUse: values["multi-use"] !== true,
          autoApprove: values["auto-approve"] === true,
          ...(ttlMs !== undefined ? { ttlMs } : {}),
          labels,
        },
        "cli",
      );
      io.out(`${token}\n`);
      io.err(
        `created enrollment token "${record.name}" (id ${record.id}, ${record.singleUse ? "single use" : "multi use"}, ` +
          `${record.autoApprove ? "approves agents at once" : "agents wait for approval"}, ` +
          `${record.expiresAtMs === undefined ? "never expires" : `expires ${iso(record.expiresAtMs)}`}); ` +
          `give it to an agent with --enroll-token or SPECTRA_ENROLL_TOKEN\n`,
      );
    };
  } else if (group === "enroll-token" && action === "list") {
    run = async (store) => {
      const rows = (await services(store).access.listEnrollmentTokens()).map((t) => [
        t.id,
        t.name,
        t.singleUse ? "single" : "multi",
        t.autoApprove ? "auto" : "manual",
        String(t.uses),
        iso(t.expiresAtMs),
        t.revokedAtMs !== undefined
          ? "revoked"
          : t.expiresAtMs !== undefined && t.expiresAtMs <= Date.now()
            ? "expired"
            : t.singleUse && t.uses > 0
              ? "used"
              : "active",
        Object.entries(t.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(",") || "-",
      ]);
      io.out(table([["ID", "NAME", "USE", "APPROVAL", "USES", "EXPIRES", "STATUS", "LABELS"], ...rows]));
    };
  } else if (group === "enroll-token" && action === "revoke") {
    if (positionals.length !== 1) return usage("revoke needs one enrollment token id");
    run = async (store) => {
      await services(store).access.revokeEnrollmentToken(positionals[0]!, "cli");
      io.err(`revoked enrollment token ${positionals[0]}\n`);
    };
  } else {
    return usage(`unknown subcommand "${[group, action].filter(Boolean).join(" ")}" (create, list, revoke)`);
  }
  if (positionals.length > 0 && action !== "revoke") return usage(`unexpected argument ${JSON.stringify(positionals[0])}`);

  let store: Store;
  try {
    store = await openStore(setting, { instanceId: `cli:${process.pid}`, logger });
  } catch (err) {
    io.err(`spectra-server ${group}: cannot open the database ${describeStore(setting)}: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    await run(store);
    return 0;
  } catch (err) {
    if (err instanceof ConflictError || err instanceof NotFoundError || err instanceof InvalidInputError) {
      io.err(`spectra-server ${group}: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await store.close();
  }
}
