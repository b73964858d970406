//! The dataplane's control socket: a Unix socket on the service thread through which the
//! control plane installs policies and reads the dataplane's state. One JSON request per
//! connection, one JSON line back:
//!
//! - `{"cmd": "status"}` → `{"ok": true, "generation": N, "rules": R}`
//! - `{"cmd": "install", "file": NAME, "text": YAML}` → `{"ok": true, "generation": N,
//!   "warnings": [..]}`, or `{"ok": false, "errors": [..]}` with the running policy untouched.
//!
//! The policy travels as its text and the dataplane compiles it again against its own ports
//! and catalog (it trusts nothing it did not check); the control plane has compiled it before
//! sending, to tell the operator. The workers pick an installed policy up at their next burst.
//! The socket never blocks the service thread for long: accepts are non-blocking and each
//! connection has a one-second budget.
use crate::appid::catalog::Catalog;
use crate::policy::{self, compile::MAX_FILE_BYTES, PolicyStore};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    store: Arc<PolicyStore>,
    ports: Vec<String>,
    catalog: Arc<Catalog>,
    /// Policies installed and refused through the socket.
    pub installed: u64,
    pub refused: u64,
}

impl ControlServer {
    /// Listens on `path` (a stale socket file there is replaced).
    pub fn bind(
        path: &Path,
        store: Arc<PolicyStore>,
        ports: Vec<String>,
        catalog: Arc<Catalog>,
    ) -> std::io::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() && UnixStream::connect(path).is_err() {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            store,
            ports,
            catalog,
            installed: 0,
            refused: 0,
        })
    }

    /// Serves every connection waiting; returns at once when there is none.
    pub fn poll(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = self.serve(stream);
        }
    }

    fn serve(&mut self, stream: UnixStream) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.set_write_timeout(Some(Duration::from_secs(1)))?;
        let mut line = String::new();
        let limit = (MAX_FILE_BYTES + (64 << 10)) as u64;
        BufReader::new((&stream).take(limit)).read_line(&mut line)?;
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(req) => self.handle(&req),
            Err(e) => json!({"ok": false, "errors": [format!("bad request: {e}")]}),
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_default();
        out.push(b'\n');
        (&stream).write_all(&out)
    }

    fn handle(&mut self, req: &Value) -> Value {
        match req["cmd"].as_str() {
            Some("status") => {
                let p = self.store.current();
                json!({"ok": true, "generation": p.generation, "rules": p.rules.len()})
            }
            Some("install") => {
                let (Some(file), Some(text)) = (req["file"].as_str(), req["text"].as_str()) else {
                    return json!({"ok": false, "errors": ["install needs `file` and `text`"]});
                };
                match policy::compile(text, file, &self.catalog, Some(&self.ports)) {
                    Ok(c) => {
                        let generation = self.store.install(c.policy);
                        self.installed += 1;
                        let warnings: Vec<String> =
                            c.warnings.iter().map(|w| w.to_string()).collect();
                        json!({"ok": true, "generation": generation, "warnings": warnings})
                    }
                    Err(errors) => {
                        self.refused += 1;
                        let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                        json!({"ok": false, "errors": errors, "generation": self.store.generation()})
                    }
                }
            }
            _ => json!({"ok": false, "errors": ["unknown command (status, install)"]}),
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The client side (used by the control plane and aperturectl): sends one request, returns
/// the reply.
pub fn request(socket: &Path, req: &Value) -> std::io::Result<Value> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut out = serde_json::to_vec(req)?;
    out.push(b'\n');
    s.write_all(&out)?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Policy};

    #[test]
    fn install_and_refuse_through_the_socket() {
        let dir = std::env::temp_dir().join(format!("aperture-ctl-{}", std::process::id()));
        let path = dir.join("control.sock");
        let store = PolicyStore::new(Policy::fixed(Action::Deny));
        let mut server = ControlServer::bind(
            &path,
            store.clone(),
            vec!["inside".into()],
            Arc::new(Catalog::embedded()),
        )
        .unwrap();
        let client = |req: Value| {
            let p = path.clone();
            std::thread::spawn(move || request(&p, &req).unwrap())
        };
        let serve_until = |server: &mut ControlServer, h: std::thread::JoinHandle<Value>| {
            while !h.is_finished() {
                server.poll();
                std::thread::sleep(Duration::from_millis(1));
            }
            h.join().unwrap()
        };
        let h = client(json!({"cmd": "install", "file": "p.yaml",
            "text": "version: 1\nrules:\n  - { name: a, action: allow }\n"}));
        let r = serve_until(&mut server, h);
        assert_eq!(
            (r["ok"].as_bool(), r["generation"].as_u64()),
            (Some(true), Some(2)),
            "{r}"
        );
        assert_eq!(store.current().default_action, Action::Deny);
        assert_eq!(store.current().rules.len(), 1);
        let h = client(json!({"cmd": "install", "file": "p.yaml", "text": "version: 1\nbad: 1\n"}));
        let r = serve_until(&mut server, h);
        assert_eq!(r["ok"], false, "{r}");
        assert!(
            r["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("p.yaml:2:1: error: unknown field `bad`"),
            "{r}"
        );
        assert_eq!(store.generation(), 2, "a refused policy changes nothing");
        let h = client(json!({"cmd": "status"}));
        let r = serve_until(&mut server, h);
        assert_eq!(r["generation"], 2);
        assert_eq!((server.installed, server.refused), (1, 1));
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
