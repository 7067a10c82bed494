use crate::pg::{admin_sql, cluster_dir, quote_literal, scram_verifier, wait_ready};
use crate::step::io_err;
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult};
use crate::systemd::{apply, ensure_running, require_active, require_listener};
use crate::txn::Txn;

pub struct Postgres;
const ID: &str = "postgres";
const UNIT: &str = "postgresql";

impl Step for Postgres {
    fn id(&self) -> &'static str {
        ID
    }
    fn not_for(&self, cfg: &crate::config::Config) -> Option<String> {
        crate::step::unless_role(
            cfg,
            &[crate::config::Role::Database],
            "database.url: the database runs elsewhere",
        )
    }
    fn deps(&self) -> Deps {
        &[&super::packages::Apt::SYSTEM, &super::secrets::SecretsStep]
    }
    fn about(&self) -> &'static str {
        "PostgreSQL: loopback (or postgres.listen, TLS), app role and database"
    }
    fn host_wide(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("db", ctx.cfg.db_name())
            .value("role", ctx.cfg.db_user())
            .value("port", ctx.cfg.postgres.port)
            .template("postgres.conf")
            .value("grants", "scram-verifier revoke-public")
            .value("extensions", ctx.cfg.database.extensions.join(","))
            .value("listen", ctx.cfg.postgres.listen.as_deref().unwrap_or(""))
            .value("allow_from", ctx.cfg.postgres.allow_from.join(","))
            .value("tls files", tls_files_hash(ctx))
            .template("postgres-hba.conf")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let cluster = cluster_dir(ctx)?;
        let listen = ctx.cfg.postgres.listen.clone();
        // The cluster's path as the server sees it (the fake host's root stripped).
        let real = |p: &std::path::Path| {
            std::path::Path::new("/")
                .join(p.strip_prefix(&ctx.paths.root).unwrap_or(p))
                .display()
                .to_string()
        };
        let conf = crate::render::render(
            "postgres.conf",
            serde_json::json!({"port": ctx.cfg.postgres.port, "listen": listen, "cluster": real(&cluster)}),
        )
        .map_err(|e| StepError::permanent(e, ""))?;
        let mut changed = false;
        if listen.is_some() {
            changed |= write_host_side(ctx, tx, &cluster)?;
        }
        let path = cluster.join("conf.d/keel.conf");
        changed |= tx
            .write(
                &path,
                conf.as_bytes(),
                0o644,
                crate::step::owner(ctx, "postgres"),
            )
            .map_err(io_err(&path))?;
        ensure_running(ctx, ID, UNIT, tx)?;
        if changed {
            // listen_addresses, port and hba_file need a restart; the rest only a reload.
            // A fresh cluster already listens where keel wants it: reloading saves seconds.
            wait_ready(ctx, ID)?;
            let now = admin_sql(
                ctx,
                ID,
                "SHOW listen_addresses;\nSHOW port;\nSHOW hba_file;\n",
            )?;
            let hba = match &listen {
                Some(_) => real(&cluster.join("keel_hba.conf")),
                None => real(&cluster.join("pg_hba.conf")),
            };
            let want = format!(
                "localhost{}\n{}\n{hba}",
                listen.as_ref().map(|l| format!(",{l}")).unwrap_or_default(),
                ctx.cfg.postgres.port
            );
            let action = if now.trim() == want {
                "reload"
            } else {
                "restart"
            };
            apply(ctx, ID, action, UNIT, tx)?;
        }
        wait_ready(ctx, ID)?;
        let password = ctx.secrets.get_or_create("postgres_password")?;
        let (db, user) = (ctx.cfg.db_name(), ctx.cfg.db_user());
        // The server gets a SCRAM verifier computed here, never the password: not in the
        // SQL, so not in a server log (log_statement) or pg_stat_activity either. Only the
        // app's role may connect to its database.
        let sql = format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {ul}) THEN CREATE ROLE \"{user}\" LOGIN; END IF; END $$;\n\
             ALTER ROLE \"{user}\" WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS PASSWORD {pw};\n\
             SELECT 'CREATE DATABASE \"{db}\" OWNER \"{user}\"' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {dl})\\gexec\n\
             ALTER DATABASE \"{db}\" OWNER TO \"{user}\";\n\
             REVOKE CONNECT, TEMPORARY ON DATABASE \"{db}\" FROM PUBLIC;\n\
             GRANT CONNECT, TEMPORARY ON DATABASE \"{db}\" TO \"{user}\";\n",
            ul = quote_literal(&user),
            dl = quote_literal(&db),
            pw = quote_literal(&scram_verifier(
                &password,
                &crate::secrets::random_bytes(16)
            )),
        );
        admin_sql(ctx, ID, &sql)?;
        crate::pg::ensure_extensions(ctx, ID)?;
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        require_active(ctx, ID, UNIT)?;
        require_listener(
            ctx,
            ctx.cfg.postgres.port,
            UNIT,
            ctx.cfg.postgres.listen.as_deref(),
        )?;
        let table = format!("keel_probe_{}", std::process::id());
        let out = crate::pg::app_sql(
            ctx,
            ID,
            &format!(
                "CREATE TABLE {table} (x int); INSERT INTO {table} VALUES (42); SELECT x FROM {table}; DROP TABLE {table};\n"
            ),
        )?;
        if out.trim() != "42" {
            return Err(StepError::permanent(
                format!("scratch-table round trip returned {:?}", out.trim()),
                "see the postgres step log",
            ));
        }
        Ok(())
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        // The role and the database are data: kept.
        Managed {
            files: cluster_dir(ctx)
                .map(|c| {
                    [
                        "conf.d/keel.conf",
                        "keel_hba.conf",
                        "keel-server.crt",
                        "keel-server.key",
                    ]
                    .map(|f| c.join(f))
                    .to_vec()
                })
                .unwrap_or_default(),
            after: vec![("restart", UNIT.into())],
            active: vec![UNIT.into()],
            ..Managed::default()
        }
    }
}

/// The certificate and key the admin gave (root's, checked at load), as the server's own
/// copies, and keel_hba.conf: hostssl with SCRAM for allow_from, nothing else off this host.
fn write_host_side(ctx: &Ctx, tx: &mut Txn, cluster: &std::path::Path) -> StepResult<bool> {
    let pg = &ctx.cfg.postgres;
    let (Some(cert), Some(key)) = (&pg.tls_cert, &pg.tls_key) else {
        return Err(StepError::permanent(
            "postgres.listen without postgres.tls_cert and tls_key",
            "the config check refuses this; run keel install again",
        ));
    };
    let read = |p: &std::path::Path| {
        let h = ctx.host(&p.display().to_string());
        crate::fsx::read_regular(&h, crate::fsx::MAX_INPUT).map_err(io_err(&h))
    };
    let owner = crate::step::owner(ctx, "postgres");
    let hba = crate::render::render(
        "postgres-hba.conf",
        serde_json::json!({
            "db": ctx.cfg.db_name(),
            "user": ctx.cfg.db_user(),
            "allow_from": crate::config::Config::networks(&pg.allow_from),
        }),
    )
    .map_err(|e| StepError::permanent(e, ""))?;
    let mut changed = false;
    for (name, bytes, mode) in [
        ("keel-server.crt", read(cert)?, 0o644),
        ("keel-server.key", read(key)?, 0o600),
        ("keel_hba.conf", hba.into_bytes(), 0o640),
    ] {
        let p = cluster.join(name);
        changed |= tx.write(&p, &bytes, mode, owner).map_err(io_err(&p))?;
    }
    Ok(changed)
}

/// A change of the admin's certificate or key runs the step again (hashes, never the key).
fn tls_files_hash(ctx: &Ctx) -> String {
    let pg = &ctx.cfg.postgres;
    [&pg.tls_cert, &pg.tls_key]
        .into_iter()
        .flatten()
        .map(|p| {
            crate::fsx::read_regular(&ctx.host(&p.display().to_string()), crate::fsx::MAX_INPUT)
                .map(|b| crate::step::sha256_hex(&b))
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(",")
}
