//! PostgreSQL as keel uses it: SQL as the superuser or as the app's role, the cluster's
//! directory, SCRAM verifiers, the extensions. A floor below the steps: the postgres step,
//! deploys, checks and the report all use it.
use crate::exec::Cmd;
use crate::step::{Ctx, StepError, StepResult};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The newest cluster's config directory, e.g. /etc/postgresql/15/main.
pub fn cluster_dir(ctx: &Ctx) -> StepResult<PathBuf> {
    let base = ctx.host("/etc/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(&base)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("main"))))
        .filter(|(_, p): &(u32, PathBuf)| p.is_dir())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).ok_or_else(|| {
        StepError::permanent(
            format!("no PostgreSQL cluster under {}", base.display()),
            "install the postgresql package (keel install packages)",
        )
    })
}

/// A SCRAM-SHA-256 verifier as PostgreSQL stores it (RFC 5802/7677, 4096 iterations):
/// `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`. keel's passwords are ASCII, for
/// which SASLprep changes nothing.
pub fn scram_verifier(password: &str, salt: &[u8]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    const ITER: u32 = 4096;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, ITER, &mut salted);
    let hmac = |key: &[u8], msg: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(msg);
        m.finalize().into_bytes()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITER}:{}${}:{}",
        b64(salt),
        b64(&stored_key),
        b64(&server_key)
    )
}

pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Run SQL as the postgres superuser over the local socket, logged under `log`; the SQL
/// (and any password in it) goes through stdin.
pub fn admin_sql(ctx: &Ctx, log: &str, sql: &str) -> StepResult<String> {
    let out = ctx.run(
        log,
        &Cmd::new("psql")
            .user("postgres")
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                "postgres",
                "-f",
                "-",
            ])
            .stdin(sql.as_bytes().to_vec()),
    )?;
    Ok(out.stdout)
}

pub fn wait_ready(ctx: &Ctx, log: &str) -> StepResult {
    let start = Instant::now();
    loop {
        let o = ctx.exec.probe(
            log,
            &Cmd::new("pg_isready")
                .user("postgres")
                .args(["-q", "-t", "2"]),
        )?;
        if o.code == 0 {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(StepError::transient(
                "PostgreSQL did not become ready within 60s",
                "see journalctl -u postgresql@*-main",
            ));
        }
        ctx.exec.pause(Duration::from_millis(300));
    }
}

/// The schema extensions live in: the superuser's, never the app's (an extension's script
/// runs as the superuser and must not meet objects the app's role could plant). The role
/// finds it on its search_path.
pub const EXTENSIONS_SCHEMA: &str = "keel_extensions";

/// The SQL that makes `[database] extensions` exist in the app's database, as the superuser:
/// checked against pg_available_extensions first (a missing one names its package).
pub fn extensions_sql(db: &str, user: &str, exts: &[String]) -> String {
    let list: Vec<String> = exts.iter().map(|e| quote_literal(e)).collect();
    let mut sql = format!(
        "\\connect \"{db}\"\n         DO $$ DECLARE missing text; BEGIN\n         SELECT string_agg(n, ', ') INTO missing FROM unnest(ARRAY[{list}]::text[]) AS n WHERE n NOT IN (SELECT name FROM pg_available_extensions);\n         IF missing IS NOT NULL THEN RAISE EXCEPTION 'keel: extension(s) not available in this PostgreSQL: %', missing; END IF; END $$;\n         CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION postgres;\n         REVOKE CREATE ON SCHEMA {s} FROM PUBLIC;\n         GRANT USAGE ON SCHEMA {s} TO \"{user}\";\n",
        list = list.join(", "),
        s = EXTENSIONS_SCHEMA,
    );
    for e in exts {
        sql.push_str(&format!(
            "CREATE EXTENSION IF NOT EXISTS \"{e}\" SCHEMA {EXTENSIONS_SCHEMA};\n"
        ));
    }
    sql.push_str(&format!(
        "ALTER ROLE \"{user}\" IN DATABASE \"{db}\" SET search_path = \"$user\", public, {EXTENSIONS_SCHEMA};\n"
    ));
    sql
}

/// Create the configured extensions (install, and every deploy before its migrations).
pub fn ensure_extensions(ctx: &Ctx, log: &str) -> StepResult {
    let exts = &ctx.cfg.database.extensions;
    // A database on another host: its postgres step (or the provider) creates them.
    if exts.is_empty() || !ctx.cfg.has(crate::config::Role::Database) {
        return Ok(());
    }
    let sql = extensions_sql(&ctx.cfg.db_name(), &ctx.cfg.db_user(), exts);
    admin_sql(ctx, log, &sql).map_err(|e| {
        if e.msg.contains("not available") {
            StepError::permanent(
                e.msg.clone(),
                "install the extension's package under packages.install (pg_trgm, bloom, citext, unaccent come with PostgreSQL; postgis: postgresql-<version>-postgis-3)",
            )
        } else {
            e
        }
    })?;
    ctx.ui
        .step_note(log, &format!("extensions: {}", exts.join(", ")));
    Ok(())
}

/// Run SQL as the app role over TCP, as the app does: a real login with the stored password,
/// read from a 0600 file (not argv, not the environment).
pub fn app_sql(ctx: &Ctx, log: &str, sql: &str) -> StepResult<String> {
    let password = ctx.secrets.get_or_create("postgres_password")?;
    let (db, user, port) = (ctx.cfg.db_name(), ctx.cfg.db_user(), ctx.cfg.postgres.port);
    let mut pass = tempfile::NamedTempFile::new()?;
    writeln!(pass, "127.0.0.1:{port}:{db}:{user}:{password}")?;
    let out = ctx
        .run(log, &Cmd::new("psql").args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-w", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", &user, "-d", &db, "-f", "-"]).env("PGPASSFILE", &pass.path().display().to_string()).stdin(sql.to_string()))
        .map_err(|e| e.hint(format!("the {user} role could not log in over TCP with the stored password (/etc/keel/secrets/postgres_password); check pg_hba.conf")))?;
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    /// RFC 7677's test vector: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==.
    #[test]
    fn scram_verifier_matches_rfc_7677() {
        use base64::Engine;
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap();
        let v = super::scram_verifier("pencil", &salt);
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    /// Extensions go in the superuser's own schema, checked as available first; the role
    /// gets USAGE and a search_path, never more.
    #[test]
    fn extensions_are_the_superusers_in_their_own_schema() {
        let sql = super::extensions_sql("shop", "shop", &["pg_trgm".into(), "bloom".into()]);
        assert!(sql.starts_with("\\connect \"shop\"\n"), "{sql}");
        assert!(sql.contains("ARRAY['pg_trgm', 'bloom']"));
        assert!(
            sql.contains("CREATE SCHEMA IF NOT EXISTS keel_extensions AUTHORIZATION postgres;")
        );
        assert!(sql.contains("CREATE EXTENSION IF NOT EXISTS \"bloom\" SCHEMA keel_extensions;"));
        assert!(sql.contains("GRANT USAGE ON SCHEMA keel_extensions TO \"shop\";"));
        assert!(!sql.to_ascii_uppercase().contains("SUPERUSER"));
    }
}
