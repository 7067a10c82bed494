//! The fake host: KEEL_ROOT points keel's file paths into a temp dir, KEEL_FAKE_HOST records
//! every command in commands.log and answers from a rules file.
#![allow(dead_code)]
use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub struct Host {
    pub dir: tempfile::TempDir,
}

pub const REDIS_CONF: &str = "bind 127.0.0.1 -::1\nport 6379\n# requirepass foobared\n";

pub fn config(extra: &str) -> String {
    format!(
        "[app]\nname = \"demo\"\ndomain = \"demo.localhost\"\nbase_dir = \"/opt/demo\"\n\
         [retry]\nattempts = 3\ninitial_delay_ms = 1\nmax_delay_ms = 5\nmax_total_delay_ms = 1000\n\
         [timeouts]\ncommand_secs = 30\napt_secs = 30\ndpkg_lock_secs = 20\n\
         [django]\nsource = \"{}/examples/demo-app\"\ncelery_ping_path = \"/celery-ping/\"\n{extra}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The test config as app `name` (its own domain and directory) with Redis on `port`: an
/// app beside the demo on one host.
pub fn named_config(name: &str, port: u16) -> String {
    config(&format!("[redis]\nport = {port}\n"))
        .replace("name = \"demo\"", &format!("name = \"{name}\""))
        .replace("demo.localhost", &format!("{name}.localhost"))
        .replace("/opt/demo", &format!("/opt/{name}"))
}

/// The test config with the app from git instead of the demo directory.
pub fn git_config(url: &str, git_ref: &str) -> String {
    config("").replace(
        &format!(
            "source = \"{}/examples/demo-app\"",
            env!("CARGO_MANIFEST_DIR")
        ),
        &format!("git = \"{url}\"\ngit_ref = \"{git_ref}\""),
    )
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl Host {
    pub fn new() -> Host {
        let h = Host {
            dir: tempfile::tempdir().unwrap(),
        };
        h.write(
            "root/etc/os-release",
            "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        );
        h.write("root/etc/passwd", "root:x:0:0:root:/root:/bin/bash\npostgres:x:104:108::/var/lib/postgresql:/bin/bash\nredis:x:105:109::/var/lib/redis:/usr/sbin/nologin\ndemo:x:998:998::/opt/demo:/usr/sbin/nologin\ndemo-build:x:997:997::/opt/demo:/usr/sbin/nologin\n");
        h.write(
            "root/etc/group",
            "root:x:0:\ndemo:x:998:\ndemo-build:x:997:\n",
        );
        std::fs::create_dir_all(h.path("root/etc/postgresql/15/main/conf.d")).unwrap();
        std::fs::create_dir_all(h.path("root/var/lib/dpkg")).unwrap();
        h.write("root/var/lib/dpkg/lock-frontend", "");
        // python3-pip-whl's file (python3-venv brings it): keel puts uv in with it.
        h.write(
            "root/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl",
            "",
        );
        h.write("root/etc/redis/redis.conf", REDIS_CONF);
        h.write(
            "root/etc/nginx/sites-available/default",
            "server { listen 80 default_server; }\n",
        );
        std::fs::create_dir_all(h.path("root/etc/nginx/sites-enabled")).unwrap();
        std::os::unix::fs::symlink(
            "/etc/nginx/sites-available/default",
            h.path("root/etc/nginx/sites-enabled/default"),
        )
        .unwrap();
        // dpkg-query answers "installed" for the default package list.
        h.installed(&[]);
        // Every unit asked about is active (one line per unit, as systemctl prints).
        h.rule(&format!(
            "systemctl is-active\t0\t0\t\t{}",
            ["active"; 16].join("\\n")
        ));
        // A healthy stack, as the probes see it: loopback listeners, Gunicorn's socket, the
        // site, the app's pages, Redis with its ACL, PostgreSQL's scratch-table round trip,
        // a Celery worker answering and beat ticking. Tests prepend rules to break one.
        h.write(
            "root/proc/net/tcp",
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
             0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   104        0 11 1\n   \
             1: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 12 1\n   \
             2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13 1\n",
        );
        h.write("root/run/demo/gunicorn.sock", "");
        for r in [
            "net:http GET http://127.0.0.1:80/keel-health \t200\t0\t\tok",
            "net:http GET http://127.0.0.1:80/ Host:\t200\t0\t\t<html>demo-home</html>",
            "net:http GET http://127.0.0.1:80/celery-ping/ \t200\t0\t\tpong",
            "net:http GET http://127.0.0.1:80/heartbeat/ \t200\t0\t\t{\"heartbeat\": 5}",
            "net:https GET https://127.0.0.1:443/keel-health \t200\t0\t\tok",
            "net:https GET https://127.0.0.1:443/ Host:\t200\t0\t\t<html>demo-home</html>",
            "net:https GET https://127.0.0.1:443/celery-ping/ \t200\t0\t\tpong",
            "net:https GET https://127.0.0.1:443/heartbeat/ \t200\t0\t\t{\"heartbeat\": 5}",
            "net:redis 6379 anon PING\t0\t0\t\t-NOAUTH Authentication required.",
            "net:redis 6379 anon AUTH\t0\t0\t\t+OK",
            "net:redis 6379 PING\t0\t0\t\t+PONG",
            "net:redis 6379 SET\t0\t0\t\t+OK",
            "net:redis 6379 GET\t0\t0\t\t42",
            "net:redis 6379 DEL\t0\t0\t\t:1",
            // Celery's queues as its Redis transport keeps them: one binding, nothing waiting.
            "net:redis 6379 SELECT\t0\t0\t\t+OK",
            "net:redis 6379 SCAN\t0\t0\t\t0\\n_kombu.binding.celery",
            "net:redis 6379 SMEMBERS\t0\t0\t\tcelery\x06\x16\x06\x16celery",
            "net:redis 6379 LLEN\t0\t0\t\t:0",
            "net:redis 6379 CONFIG\t0\t0\t\t-NOPERM User default has no permissions to run the 'config|get' command",
            "keel_probe_\t0\t0\t\t42",
            "SELECT 1;\t0\t0\t\t1",
            "ActiveEnterTimestamp\t0\t0\t\t@1",
            "inspect ping\t0\t0\t\t-> demo@host: OK\\n        pong",
            // Django's own view of its settings (the audit's one Python as the app).
            "call_command(\"check\", deploy=True\t0\t0\t\tSystem check identified no issues (0 silenced).\\nkeel-settings {\"DEBUG\": false, \"ALLOWED_HOSTS\": [\"demo.localhost\", \"localhost\"], \"code\": 0}",
            // keel's firewall table, loaded (when a test makes the host a VM).
            "nft list table inet keel\t0\t0\t\ttable inet keel {\\n\\tchain input {\\n\\t\\ttype filter hook input priority filter; policy drop;",
        ] {
            h.rule(r);
        }
        h.write("keel.toml", &config(""));
        h
    }

    /// dpkg-query answers "installed" for the default package list and `more`.
    pub fn installed(&self, more: &[&str]) {
        let list: Vec<String> = [
            "postgresql",
            "redis-server",
            "nginx",
            "python3",
            "python3-venv",
            "certbot",
            "openssl",
            "logrotate",
            "unattended-upgrades",
            "nftables",
            "netbase",
        ]
        .iter()
        .chain(more)
        .map(|p| format!("{p} ii "))
        .collect();
        self.rule(&format!("dpkg-query\t0\t0\t\t{}", list.join("\\n")));
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn write(&self, p: &str, text: &str) {
        let p = self.path(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    pub fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_default()
    }
    /// Prepend a rule (first match wins): SUBSTRING \t EXIT \t TIMES \t STDERR [\t STDOUT].
    pub fn rule(&self, r: &str) {
        // Use counts are kept per rule line: prepending shifts every line, so old counts
        // would land on the wrong rules.
        if let Ok(rd) = std::fs::read_dir(self.path("fake")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("rule") && n.ends_with(".count") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let old = self.read("fake/rules");
        self.write("fake/rules", &format!("{r}\n{old}"));
    }
    pub fn commands(&self) -> String {
        self.read("fake/commands.log")
    }
    pub fn state(&self) -> Value {
        serde_json::from_str(&self.read("state.json")).unwrap()
    }
    pub fn status_of(&self, step: &str) -> String {
        self.state()["steps"][step]["status"]
            .as_str()
            .unwrap_or("pending")
            .to_string()
    }
    pub fn events(&self) -> Vec<Value> {
        self.read("root/var/log/keel/events.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn keel(&self) -> Command {
        let mut c = self.keel_bare();
        c.arg("--config")
            .arg(self.path("keel.toml"))
            .arg("--state-file")
            .arg(self.path("state.json"));
        c
    }

    /// keel on this host with no --config or --state-file: the files are the host's own
    /// (`--app NAME` picks an app's).
    pub fn keel_bare(&self) -> Command {
        let mut c = Command::cargo_bin("keel").unwrap();
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KEEL_ROOT", self.path("root"))
            .env("KEEL_FAKE_HOST", self.path("fake"));
        c
    }

    pub fn install(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        self.keel().arg("install").arg("--yes").args(args).assert()
    }

    /// `install --dry-run --output json`, parsed.
    pub fn dry_run_json(&self, args: &[&str]) -> Value {
        let out = self
            .keel()
            .args(["install", "--dry-run", "--output", "json"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
    pub fn dry_run(&self, args: &[&str]) -> Vec<(String, String)> {
        let v = self.dry_run_json(args);
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

pub fn reason<'a>(plan: &'a [(String, String)], id: &str) -> &'a str {
    plan.iter()
        .find(|(i, _)| i == id)
        .map(|(_, r)| r.as_str())
        .unwrap_or("absent")
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
