//! Database backups: `pg_dump` in PostgreSQL's custom format (compressed), written by keel
//! into a new 0600 file in a root-only directory, checksummed, renamed into place; retention
//! by day and week; an optional upload command; and `restore`, which checks the file before
//! it stops anything and puts a safety backup back if the restored app fails its checks.
use crate::exec::Cmd;
use crate::step::{Ctx, StepError, StepResult};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LOG: &str = "backup";

/// One backup file: `<app>-YYYYMMDD-HHMMSS[-note].dump` beside its `.sha256`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    pub name: String,
    /// Unix seconds, from the name (keel's names are UTC).
    pub time: i64,
    pub size: u64,
    /// The uploads' archive made with it (`media_name`), and its size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<(String, u64)>,
}

/// The uploads' archive that goes with dump `name`: `<app>-<stamp>.media.tar.gz`.
pub fn media_name(dump: &str) -> String {
    format!(
        "{}.media.tar.gz",
        dump.strip_suffix(".dump").unwrap_or(dump)
    )
}

/// The backup directory as keel's file operations see it (host path).
pub fn dir(ctx: &Ctx) -> PathBuf {
    ctx.host(&ctx.cfg.backup_dir().display().to_string())
}

/// Where the last run's outcome is kept (for `keel verify`).
pub fn status_file(ctx: &Ctx) -> PathBuf {
    ctx.host(&format!("/var/lib/keel/backup-{}.json", ctx.cfg.app.name))
}

fn parse_time(app: &str, name: &str) -> Option<i64> {
    let rest = name.strip_prefix(app)?.strip_prefix('-')?;
    let stem = rest.strip_suffix(".dump")?;
    let ts = stem.get(..15)?;
    let f = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    let t = time::PrimitiveDateTime::parse(ts, &f).ok()?;
    Some(t.assume_utc().unix_timestamp())
}

/// The backups in `dir`, newest first (names keel did not make are ignored).
pub fn list(app: &str, dir: &Path) -> Vec<Entry> {
    let mut v: Vec<Entry> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let time = parse_time(app, &name)?;
                    let md = e.metadata().ok().filter(|m| m.is_file())?;
                    let media = std::fs::metadata(dir.join(media_name(&name)))
                        .ok()
                        .filter(|m| m.is_file())
                        .map(|m| (media_name(&name), m.len()));
                    Some(Entry {
                        name,
                        time,
                        size: md.len(),
                        media,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| b.time.cmp(&a.time).then(b.name.cmp(&a.name)));
    v
}

/// What retention deletes: every backup younger than `daily` days is kept; before that,
/// the newest of each of the `weekly` most recent weeks that have one. The newest backup is
/// always kept. `entries` newest first; `now` in Unix seconds.
pub fn to_delete(entries: &[Entry], daily: u64, weekly: u64, now: i64) -> Vec<String> {
    let mut weeks = vec![];
    let mut keep = std::collections::HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        // Weeks from Monday (1970-01-01 was a Thursday).
        let week = (e.time.div_euclid(86_400) + 3).div_euclid(7);
        if i == 0 || now - e.time < daily as i64 * 86_400 {
            keep.insert(e.name.clone());
        } else if !weeks.contains(&week) && (weeks.len() as u64) < weekly {
            weeks.push(week);
            keep.insert(e.name.clone());
        }
    }
    entries
        .iter()
        .filter(|e| !keep.contains(&e.name))
        .map(|e| e.name.clone())
        .collect()
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StepError + '_ {
    move |e| {
        StepError::permanent(
            format!("{}: {e}", path.display()),
            "check the backup directory (backup.dir)",
        )
    }
}

/// SHA-256 of a file keel wrote (root's, in a root-only directory), read in chunks.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    sha256_of(std::fs::File::open(path)?)
}

/// SHA-256 of what an open file holds, from where it stands.
fn sha256_of(mut f: std::fs::File) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Make the backup directory: root's, 0700, never through a link. One that exists is used
/// only if it is root's with mode 0700 already: keel never chowns or chmods a directory it
/// did not make (it could be PostgreSQL's, or the app's).
pub fn ensure_dir(ctx: &Ctx) -> StepResult<PathBuf> {
    let d = dir(ctx);
    if let Some(st) = crate::fsx::lstat(&d)? {
        if crate::fsx::root_private_dir(&st) {
            return Ok(d);
        }
        return Err(StepError::permanent(
            format!(
                "{} exists and is not a directory of root's with mode 0700",
                d.display()
            ),
            "set backup.dir to a new directory; keel never takes over one it did not make",
        ));
    }
    if let Some(parent) = d.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    crate::fsx::mkdir(&d, 0o700, Some((0, 0))).map_err(io(&d))?;
    Ok(d)
}

/// One backup now: dump, checksum, rename into place, retention, upload. `note` marks
/// special ones ("pre-restore").
pub fn make(ctx: &Ctx, note: &str) -> StepResult<Entry> {
    let d = ensure_dir(ctx)?;
    let ts = crate::paths::stamp();
    let app = &ctx.cfg.app.name;
    let suffix = if note.is_empty() {
        String::new()
    } else {
        format!("-{note}")
    };
    let mut name = format!("{app}-{ts}{suffix}.dump");
    let mut n = 2;
    while d.join(&name).exists() {
        name = format!("{app}-{ts}-{n}{suffix}.dump");
        n += 1;
    }
    let tmp = d.join(format!(".{name}.partial"));
    let _ = std::fs::remove_file(&tmp);
    let dump = Cmd::new("pg_dump")
        .user("postgres")
        .args([
            "--format=custom",
            "--compress=6",
            "--no-password",
            "--dbname",
        ])
        .arg(ctx.cfg.db_name())
        .stdout_file(&tmp)
        .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs));
    // A schema change running beside pg_dump (a deploy's migrations) makes it fail: tried
    // again, a few seconds apart.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ctx.run(LOG, &dump) {
            Ok(_) => break,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                if attempt >= 3 {
                    return Err(e.hint("see /var/log/keel/steps/backup.log"));
                }
                ctx.ui.line(&format!(
                    "[backup] pg_dump failed ({}); again in 3 s",
                    e.msg
                ));
                ctx.exec.pause(Duration::from_secs(3));
            }
        }
    }
    let (dest, size) = seal(ctx, &d, &tmp, &name)?;
    // The uploads belong to the rows: a backup without them is a failed one.
    let media = archive_media(ctx, &d, &name)?;
    // A restore's safety backup prunes nothing: the file being restored must stay.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let old = if note.is_empty() {
        let (daily, weekly) = (ctx.cfg.backup.keep_daily, ctx.cfg.backup.keep_weekly);
        to_delete(&list(app, &d), daily, weekly, now)
    } else {
        vec![]
    };
    for old in old {
        for f in [old.clone(), media_name(&old)] {
            let _ = std::fs::remove_file(d.join(&f));
            let _ = std::fs::remove_file(d.join(format!("{f}.sha256")));
        }
        ctx.ui.line(&format!("[backup] removed {old} (retention)"));
    }
    if let Some((prog, args)) = ctx.cfg.backup.upload_command.split_first() {
        let files = std::iter::once(dest.clone()).chain(media.as_ref().map(|(m, _)| d.join(m)));
        for f in files {
            let shown = ctx.paths.unhost(&f).display().to_string();
            ctx.run(
                LOG,
                &Cmd::new(prog)
                    .args(args.iter().cloned())
                    .arg(shown)
                    .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs)),
            )
            .map_err(|e| {
                e.hint(
                    "the backup itself is in place; see /var/log/keel/steps/backup.log for the upload",
                )
            })?;
        }
    }
    Ok(Entry {
        time: parse_time(app, &name).unwrap_or(0),
        name,
        size,
        media,
    })
}

/// The app's uploads (`shared/media`) into `<stamp>.media.tar.gz` beside dump `name`:
/// tar runs as the app, which owns them (root reads none of the files the app can change),
/// and keel writes what it prints into a new root-only file, checksummed, renamed into
/// place. None when the app has no uploads directory.
fn archive_media(ctx: &Ctx, d: &Path, name: &str) -> StepResult<Option<(String, u64)>> {
    let shared = ctx.host(&ctx.cfg.shared_dir().display().to_string());
    match crate::fsx::lstat(&shared.join("media"))? {
        Some(st) if crate::fsx::kind(&st) == rustix::fs::FileType::Directory => {}
        _ => return Ok(None),
    }
    let mname = media_name(name);
    let tmp = d.join(format!(".{mname}.partial"));
    let _ = std::fs::remove_file(&tmp);
    let tar = Cmd::new("tar")
        .user(&ctx.cfg.app_user())
        .args([
            "--create",
            "--gzip",
            "--file=-",
            "--one-file-system",
            "--directory",
        ])
        .arg(shared.display().to_string())
        .arg("media")
        .stdout_file(&tmp)
        .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs));
    let out = ctx.exec.probe(LOG, &tar).map_err(StepError::from)?;
    // 1: a file changed while it was read (an upload in progress): the archive holds the
    // others whole; anything else is a failure.
    if out.code > 1 {
        let _ = std::fs::remove_file(&tmp);
        return Err(StepError::permanent(
            format!(
                "archiving the uploads failed (tar exit {}): {}",
                out.code,
                out.stderr.trim()
            ),
            "see /var/log/keel/steps/backup.log; the database dump is in place",
        ));
    }
    if out.code == 1 {
        ctx.ui.line(
            "[backup] uploads: a file changed while it was archived (it is in the next backup)",
        );
    }
    let (_, size) = seal(ctx, d, &tmp, &mname)?;
    Ok(Some((mname, size)))
}

/// The uploads' archive that goes with `dump`, opened and checked as the dump is (root's or
/// postgres', not writable by others, its checksum matching): None when there is none.
pub fn open_media(ctx: &Ctx, dump: &Path) -> StepResult<Option<Archive>> {
    let name = dump
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dump.with_file_name(media_name(&name));
    if crate::fsx::lstat(&path)?.is_none() {
        return Ok(None);
    }
    let a = open_archive(ctx, &path)?;
    let sum_path = PathBuf::from(format!("{}.sha256", path.display()));
    if let Some(text) = crate::fsx::read_text_nofollow(&sum_path, crate::fsx::MAX_INPUT)? {
        let want = text.split_whitespace().next().unwrap_or("");
        let got = crate::exec::rewound(&a.file)
            .and_then(sha256_of)
            .map_err(io(&path))?;
        if want != got {
            return Err(bad_file(format!(
                "{}: checksum mismatch (the file is corrupt or was changed)",
                path.display()
            )));
        }
    }
    Ok(Some(a))
}

/// Put the uploads of `archive` in place in one switch: unpacked by the app (as itself,
/// names that climb out refused by tar) into a new directory inside a root-owned one (so
/// the app cannot swap what is renamed), then `media` is renamed aside as the safety copy
/// and the new one renamed in. Returns the safety copy's path (None: there were none).
pub fn restore_media(ctx: &Ctx, archive: &Archive) -> StepResult<Option<PathBuf>> {
    let shared = ctx.host(&ctx.cfg.shared_dir().display().to_string());
    let stamp = crate::paths::stamp();
    let outer = shared.join(format!(".media-restore-{stamp}"));
    let app = crate::app::app_user_ids(ctx)?;
    crate::fsx::mkdir(&outer, 0o755, Some((0, 0))).map_err(io(&outer))?;
    let inner = outer.join("media");
    crate::fsx::mkdir(&inner, 0o755, Some(app)).map_err(io(&inner))?;
    let untar = Cmd::new("tar")
        .user(&ctx.cfg.app_user())
        .args([
            "--extract",
            "--gzip",
            "--file=-",
            "--no-same-owner",
            "--no-same-permissions",
            "--strip-components=1",
            "--directory",
        ])
        .arg(inner.display().to_string())
        .stdin_open(archive.file.clone())
        .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs));
    if let Err(e) = ctx.run(LOG, &untar) {
        let _ = std::fs::remove_dir_all(&outer);
        return Err(e.hint("the uploads were left as they were"));
    }
    let live = shared.join("media");
    // Never onto an earlier safety copy (rename would replace an empty one).
    let mut safety = shared.join(format!("media.pre-restore-{stamp}"));
    let mut n = 2;
    while crate::fsx::lstat(&safety)?.is_some() {
        safety = shared.join(format!("media.pre-restore-{stamp}-{n}"));
        n += 1;
    }
    let had = crate::fsx::lstat(&live)?.is_some();
    if had {
        std::fs::rename(&live, &safety).map_err(io(&live))?;
    }
    std::fs::rename(&inner, &live).map_err(io(&inner))?;
    let _ = std::fs::remove_dir(&outer);
    Ok(had.then_some(safety))
}

/// The safety copy back in place of the restored uploads (these are kept aside).
pub fn put_back_media(ctx: &Ctx, safety: &Path) -> StepResult {
    let shared = ctx.host(&ctx.cfg.shared_dir().display().to_string());
    let live = shared.join("media");
    let failed = shared.join(format!("media.failed-restore-{}", crate::paths::stamp()));
    std::fs::rename(&live, &failed).map_err(io(&live))?;
    std::fs::rename(safety, &live).map_err(io(safety))?;
    Ok(())
}

/// A written `.partial` file made final: synced, its SHA-256 beside it (`sha256sum -c`
/// format), renamed to `name` (a half-written backup never has the final name), the
/// directory synced. Returns the final path and size.
fn seal(ctx: &Ctx, d: &Path, tmp: &Path, name: &str) -> StepResult<(PathBuf, u64)> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(tmp))?;
    let sum = sha256_file(tmp).map_err(io(tmp))?;
    let sum_path = d.join(format!("{name}.sha256"));
    crate::fsx::write_atomic(
        &sum_path,
        format!("{sum}  {name}\n").as_bytes(),
        0o600,
        Some((0, 0)),
    )
    .map_err(io(&sum_path))?;
    let dest = d.join(name);
    std::fs::rename(tmp, &dest).map_err(io(&dest))?;
    std::fs::File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(io(d))?;
    let size = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    ctx.ui.line(&format!(
        "[backup] {} ({size} bytes, sha256 {})",
        dest.display(),
        &sum[..12]
    ));
    Ok((dest, size))
}

/// Record a run's outcome for `keel verify`.
pub fn record(ctx: &Ctx, result: &StepResult<Entry>) {
    let v = match result {
        Ok(e) => {
            crate::outbox::resolve(ctx, "backup-failed");
            json!({"at": crate::paths::now(), "ok": true, "file": e.name, "size": e.size})
        }
        Err(e) => {
            // For `keel logs --failed` (and whoever reads keel's events).
            ctx.events
                .emit("backup-failed", None, json!({"error": e.msg}));
            // Until a backup succeeds, one notification a day.
            crate::outbox::raise(
                ctx,
                "backup-failed",
                "backup-failed",
                &format!("the backup failed: {}", e.msg),
                json!({}),
            );
            json!({"at": crate::paths::now(), "ok": false, "error": ctx.exec.redactor.redact(&e.msg)})
        }
    };
    let p = status_file(ctx);
    let _ = crate::txn::write_atomic(&p, v.to_string().as_bytes(), 0o600, Some((0, 0)));
}

/// The last run's outcome: (ok, error).
pub fn last_run(ctx: &Ctx) -> Option<(bool, String)> {
    let text = crate::fsx::read_text_nofollow(&status_file(ctx), crate::fsx::MAX_INPUT).ok()??;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        v["ok"].as_bool()?,
        v["error"].as_str().unwrap_or("").to_string(),
    ))
}

/// A backup file opened once, without following a link, and checked to be root's or the
/// postgres user's and writable by no one else: its checksum, its listing and its load all
/// read this same open file.
pub struct Archive {
    pub path: PathBuf,
    file: std::sync::Arc<std::fs::File>,
}

fn bad_file(msg: String) -> StepError {
    StepError::permanent(
        msg,
        "pick another backup (keel diagnose lists them), or copy it as root into backup.dir with mode 0600; nothing was changed",
    )
}

/// Open `path` for a restore (see `Archive`).
pub fn open_archive(ctx: &Ctx, path: &Path) -> StepResult<Archive> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => bad_file(format!(
                "{} is a symbolic link (links are not followed)",
                path.display()
            )),
            Some(libc::ENOENT) => bad_file(format!("{} does not exist", path.display())),
            _ => bad_file(format!("{}: {e}", path.display())),
        })?;
    let md = f.metadata().map_err(io(path))?;
    if !md.is_file() {
        return Err(bad_file(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let postgres = crate::step::owner(ctx, "postgres").map(|(u, _)| u);
    if md.uid() != 0 && Some(md.uid()) != postgres {
        return Err(bad_file(format!(
            "{} belongs to uid {}: a restore loads only files of root's or the postgres user's (another user could have written anything into it)",
            path.display(),
            md.uid()
        )));
    }
    if md.mode() & 0o022 != 0 {
        return Err(bad_file(format!(
            "{} is writable by group or others (mode {:o})",
            path.display(),
            md.mode() & 0o7777
        )));
    }
    Ok(Archive {
        path: path.to_path_buf(),
        file: std::sync::Arc::new(f),
    })
}

/// A file `keel restore` may use (opened by `open_archive`): its checksum matching when a
/// `.sha256` sits beside it, and readable by pg_restore as an archive. Nothing is stopped
/// before this passes.
pub fn check_file(ctx: &Ctx, archive: &Archive) -> StepResult {
    let file = archive.path.as_path();
    let sum_path = PathBuf::from(format!("{}.sha256", file.display()));
    if let Some(text) = crate::fsx::read_text_nofollow(&sum_path, crate::fsx::MAX_INPUT)? {
        let want = text.split_whitespace().next().unwrap_or("");
        let got = crate::exec::rewound(&archive.file)
            .and_then(sha256_of)
            .map_err(io(file))?;
        if want != got {
            return Err(bad_file(format!(
                "{}: checksum mismatch (the file is corrupt or was changed): sha256 {} but {} says {}",
                file.display(),
                &got[..12],
                sum_path.display(),
                want.get(..12).unwrap_or(want)
            )));
        }
    } else {
        ctx.ui.line(&format!(
            "[restore] no {} beside the file: checked as an archive only",
            sum_path.display()
        ));
    }
    ctx.run(
        LOG,
        &Cmd::new("pg_restore")
            .arg("--list")
            .stdin_open(archive.file.clone()),
    )
    .map_err(|e| {
        bad_file(format!(
            "{} is not a readable pg_dump archive: {}",
            file.display(),
            e.msg
        ))
    })?;
    Ok(())
}

/// Load the archive into the app's database in one transaction (all or nothing): objects
/// are dropped and recreated by the app's role itself, logged in over TCP with its stored
/// password (a 0600 passfile, as `app_sql` does). Nothing from the archive ever runs in a
/// superuser session: `--role` would only `SET ROLE`, which SQL in the archive can undo.
pub fn load(ctx: &Ctx, archive: &Archive) -> StepResult {
    use std::io::Write;
    let password = ctx.secrets.get_or_create("postgres_password")?;
    let (db, role, port) = (ctx.cfg.db_name(), ctx.cfg.db_user(), ctx.cfg.postgres.port);
    let mut pass = tempfile::NamedTempFile::new()?;
    writeln!(pass, "127.0.0.1:{port}:{db}:{role}:{password}")?;
    ctx.run(
        LOG,
        &Cmd::new("pg_restore")
            .args([
                "--single-transaction",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--no-password",
                "--host=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--username={role}"))
            .arg(format!("--dbname={db}"))
            .env("PGPASSFILE", &pass.path().display().to_string())
            .stdin_open(archive.file.clone())
            .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs)),
    )
    .map(|_| ())
    .map_err(|e| e.hint("the restore ran in one transaction: the database is as it was before it"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str) -> Entry {
        Entry {
            time: parse_time("demo", name).unwrap(),
            name: name.into(),
            size: 1,
            media: None,
        }
    }

    #[test]
    fn names_parse_and_others_are_ignored() {
        assert_eq!(
            parse_time("demo", "demo-19700102-000000.dump"),
            Some(86_400)
        );
        assert!(parse_time("demo", "demo-19700102-000000-pre-restore.dump").is_some());
        for bad in [
            "demo-1970.dump",
            "other-19700102-000000.dump",
            "demo-19700102-000000.dump.sha256",
        ] {
            assert_eq!(parse_time("demo", bad), None, "{bad}");
        }
    }

    #[test]
    fn retention_keeps_recent_days_then_one_per_week() {
        // Newest first: two on Nov 24, one each on 23, 22, 20, 10, 3 (2026).
        let list: Vec<Entry> = [
            "demo-20261124-120000.dump",
            "demo-20261124-030000.dump",
            "demo-20261123-030000.dump",
            "demo-20261122-030000.dump",
            "demo-20261120-030000.dump",
            "demo-20261110-030000.dump",
            "demo-20261103-030000.dump",
        ]
        .map(e)
        .to_vec();
        let now = parse_time("demo", "demo-20261124-130000.dump").unwrap();
        // 2 days: everything since Nov 22 13:00 (24, 24, 23); then 2 weeks before: 22
        // (the week of Nov 16) and 10 (the week of Nov 9); 20 shares 22's week, 3 is beyond.
        assert_eq!(
            to_delete(&list, 2, 2, now),
            vec!["demo-20261120-030000.dump", "demo-20261103-030000.dump"]
        );
        // The newest is kept whatever the limits.
        assert_eq!(to_delete(&list, 0, 0, now).len(), list.len() - 1);
        assert!(to_delete(&list, 30, 0, now).is_empty());
    }
}
