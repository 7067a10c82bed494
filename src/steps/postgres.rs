use crate::pg::{admin_sql, cluster_dir, quote_literal, scram_verifier, wait_ready};
use crate::step::io_err;
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult};
use crate::systemd::{apply, ensure_running, require_active, require_loopback_listener};
use crate::txn::Txn;

pub struct Postgres;
const ID: &str = "postgres";
const UNIT: &str = "postgresql";

impl Step for Postgres {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> Deps {
        &[&super::packages::Apt::SYSTEM, &super::secrets::SecretsStep]
    }
    fn about(&self) -> &'static str {
        "PostgreSQL: loopback only, app role and database"
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
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let cluster = cluster_dir(ctx)?;
        let conf = crate::render::render(
            "postgres.conf",
            serde_json::json!({"port": ctx.cfg.postgres.port}),
        )
        .map_err(|e| StepError::permanent(e, ""))?;
        let path = cluster.join("conf.d/keel.conf");
        let changed = tx
            .write(
                &path,
                conf.as_bytes(),
                0o644,
                crate::step::owner(ctx, "postgres"),
            )
            .map_err(io_err(&path))?;
        ensure_running(ctx, ID, UNIT, tx)?;
        if changed {
            // listen_addresses and port need a restart; the rest of keel.conf only a reload.
            // A fresh cluster already listens where keel wants it: reloading saves seconds.
            wait_ready(ctx, ID)?;
            let now = admin_sql(ctx, ID, "SHOW listen_addresses;\nSHOW port;\n")?;
            let want = format!("localhost\n{}", ctx.cfg.postgres.port);
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
        require_loopback_listener(ctx, ctx.cfg.postgres.port, UNIT)?;
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
                .map(|c| vec![c.join("conf.d/keel.conf")])
                .unwrap_or_default(),
            after: vec![("restart", UNIT.into())],
            active: vec![UNIT.into()],
            ..Managed::default()
        }
    }
}
