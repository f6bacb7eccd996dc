/**
 * How the API droplet's manager-api reaches the managed Postgres over TLS: the cluster's CA
 * in a file, and a DATABASE_URL that verifies the server against it (infra/database.ts
 * builds the URL, render.ts writes both).
 */

/**
 * The managed Postgres cluster's CA, which DATABASE_URL's `sslrootcert` names. DigitalOcean
 * signs the cluster's certificate with a CA of its own, in no public trust store: without
 * it node-postgres (pg-connection-string >= 2.4.0 makes `sslmode=require` verify against
 * Node's default CAs) refuses the server ("self-signed certificate in certificate chain"),
 * and a client that does not verify accepts anyone on the path. Not a secret.
 */
export const DATABASE_CA_PATH = "/etc/manager-api/db-ca.crt";

/**
 * DATABASE_URL must verify the server against the CA written next to it: `verify-full`
 * means the chain and the host name in libpq and in every pg-connection-string version,
 * where `require` means "no check" (libpq) or "check against Node's default CAs", which
 * DigitalOcean's CA is not in (pg-connection-string 2.4.0 to 2.x).
 */
export function checkDatabaseTls(input: { readonly databaseUrl: string; readonly databaseCa: string }): void {
  if (
    !/^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/.test(input.databaseCa)
  ) {
    throw new Error("database: the cluster's CA certificate is not one PEM certificate");
  }
  let params: URLSearchParams;
  try {
    params = new URL(input.databaseUrl).searchParams;
  } catch {
    throw new Error("DATABASE_URL: not a URL");
  }
  if (params.get("sslmode") !== "verify-full" || params.get("sslrootcert") !== DATABASE_CA_PATH) {
    throw new Error(`DATABASE_URL: must ask for sslmode=verify-full and sslrootcert=${DATABASE_CA_PATH}`);
  }
}
