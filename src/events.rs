//! JSON-lines event log: one object per line, appended, redacted.
use crate::redact::Redactor;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

pub struct Events {
    path: PathBuf,
    run_id: String,
    redactor: Redactor,
    lock: Mutex<()>,
}

impl Events {
    pub fn new(path: PathBuf, run_id: String, redactor: Redactor) -> Events {
        Events {
            path,
            run_id,
            redactor,
            lock: Mutex::new(()),
        }
    }

    pub fn emit(&self, event: &str, step: Option<&str>, extra: Value) {
        let mut m = Map::new();
        m.insert("ts".into(), json!(crate::paths::now()));
        // Milliseconds for the report's timeline (ts is for people).
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        m.insert("t_ms".into(), json!(ms));
        m.insert("run_id".into(), json!(self.run_id));
        m.insert("event".into(), json!(event));
        if let Some(s) = step {
            m.insert("step".into(), json!(s));
        }
        if let Value::Object(x) = extra {
            m.extend(x);
        }
        let line = self.redactor.redact(&Value::Object(m).to_string());
        let _g = self.lock.lock();
        if let Some(d) = self.path.parent() {
            crate::paths::private_dir(d);
        }
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
