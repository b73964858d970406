//! The dataplane's control socket: a Unix socket on the service thread through which the
//! control plane installs policies and reads the dataplane's state. One JSON request per
//! connection, one JSON line back:
//!
//! - `{"cmd": "status"}` → `{"ok": true, "generation": N, "rules": R}`
//! - `{"cmd": "install", "file": NAME, "text": YAML}` → `{"ok": true, "generation": N,
//!   "warnings": [..]}`, or `{"ok": false, "errors": [..]}` with the running policy untouched.
//! - `{"cmd": "rules"}` → `{"ok": true, "generation": N, "rules": [{"name", "action", "log",
//!   "slot"}..], "default": {"action", "log", "slot"}}`: the running rules and their stats
//!   slots (the counters themselves are in the stats segment).
//! - `{"cmd": "flows", "app": A, "address": IP, "rule": R, "limit": N}` (filters optional) →
//!   `{"ok": true, "flows": [..], "workers": W, "answered": W', "truncated": bool}`: the live
//!   flows, each as the flow log would write it now (`last_ts` instead of an end).
//! - `{"cmd": "pinholes", "app": A, "address": IP, "limit": N}` → `{"ok": true, "pinholes":
//!   [..], ...}`: the SIP ALG's open pinholes (address and port admitted, the one peer, the
//!   inside endpoint under NAT, media or register, the signalling flow, seconds left).
//! - `{"cmd": "nat", "address": IP, "limit": N}` → `{"ok": true, "mappings": [..], ...}`: the
//!   source-NAT mappings (inside and external endpoint, users, remotes sent to).
//!
//! The policy travels as its text and the dataplane compiles it again against its own ports
//! and catalog (it trusts nothing it did not check); the control plane has compiled it before
//! sending, to tell the operator. The workers pick an installed policy up at their next burst.
//! The socket never blocks the service thread for long: accepts are non-blocking and each
//! connection has a one-second budget.
use crate::appid::catalog::{AppId, Catalog};
use crate::flowdump::{Answer, FlowDumps, FlowQuery, Listing, Rows};
use crate::packet::IpAddr16;
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
    /// The workers' `show flows` mailbox, and how many workers answer it.
    dumps: Option<(Arc<FlowDumps>, usize)>,
    /// Policies installed and refused through the socket.
    pub installed: u64,
    pub refused: u64,
}

/// How long `flows` waits for the workers (a worker answers within one poll pass).
const FLOWS_WAIT: Duration = Duration::from_millis(500);

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
            dumps: None,
            installed: 0,
            refused: 0,
        })
    }

    /// Serves `flows` from the `workers` workers that answer `dumps`.
    pub fn with_flow_dumps(mut self, dumps: Arc<FlowDumps>, workers: usize) -> ControlServer {
        self.dumps = Some((dumps, workers));
        self
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
                // Against the running catalog, custom applications included: a custom
                // application keeps its id across reloads, and one the new policy drops
                // keeps its name for the flows that still have it.
                let running = self.store.current().catalog.clone();
                let catalog = running.as_deref().unwrap_or(&self.catalog);
                match policy::compile(text, file, catalog, Some(&self.ports)) {
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
            Some("rules") => {
                let p = self.store.current();
                let rules: Vec<Value> = p
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        json!({"name": p.rule_name(i as u16), "action": r.action.name(),
                               "log": r.log, "slot": p.slot_of(i as u16)})
                    })
                    .collect();
                json!({"ok": true, "generation": p.generation, "rules": rules,
                       "default": {"action": p.default_action.name(), "log": p.default_log,
                                   "slot": p.slot_of(p.rules.len() as u16)}})
            }
            Some("flows") => self.flows(req),
            Some("pinholes") => self.listing(req, Listing::Pinholes, "pinholes"),
            Some("nat") => self.listing(req, Listing::Nat, "mappings"),
            _ => json!({"ok": false,
                        "errors": ["unknown command (status, install, rules, flows, pinholes, nat)"]}),
        }
    }

    /// The filters a listing request gives (application, address), or the error to send.
    fn filters(&self, req: &Value) -> Result<(Option<AppId>, Option<IpAddr16>), Value> {
        let app = match req["app"].as_str() {
            None => None,
            Some(n) => match self.catalog.by_name(n) {
                Some(a) => Some(a),
                None => {
                    return Err(
                        json!({"ok": false, "errors": [format!("unknown application {n:?}")]}),
                    )
                }
            },
        };
        let addr = match req["address"].as_str() {
            None => None,
            Some(a) => match a.parse::<std::net::IpAddr>() {
                Ok(ip) => Some(ip.into()),
                Err(_) => {
                    return Err(json!({"ok": false, "errors": [format!("bad address {a:?}")]}))
                }
            },
        };
        Ok((app, addr))
    }

    /// Asks every worker and gathers the answers that come within `FLOWS_WAIT`, in worker
    /// order.
    fn gather(
        dumps: &FlowDumps,
        workers: usize,
        what: Listing,
        (app, addr): (Option<AppId>, Option<IpAddr16>),
        limit: usize,
    ) -> Vec<Answer> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Answer>(workers);
        dumps.ask(FlowQuery {
            what,
            app,
            addr,
            limit,
            reply: tx,
        });
        let deadline = std::time::Instant::now() + FLOWS_WAIT;
        let mut answers = Vec::new();
        while answers.len() < workers {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(a) => answers.push(a),
                Err(_) => break,
            }
        }
        dumps.clear();
        answers.sort_by_key(|a| a.0);
        answers
    }

    /// `pinholes` or `nat`: the workers' rows under `key`.
    fn listing(&self, req: &Value, what: Listing, key: &str) -> Value {
        let Some((dumps, workers)) = &self.dumps else {
            return json!({"ok": false, "errors": ["this dataplane does not list its state"]});
        };
        let filters = match self.filters(req) {
            Ok(f) => f,
            Err(e) => return e,
        };
        let limit = req["limit"].as_u64().unwrap_or(1000) as usize;
        let answers = Self::gather(dumps, *workers, what, filters, limit);
        let mut truncated = answers.iter().any(|a| a.2);
        let mut rows = Vec::new();
        for (_, r, _) in &answers {
            if let Rows::Json(r) = r {
                for v in r {
                    if rows.len() == limit {
                        truncated = true;
                        break;
                    }
                    rows.push(v.clone());
                }
            }
        }
        let mut out = json!({"ok": true, "workers": workers, "answered": answers.len(),
                             "truncated": truncated});
        out[key] = Value::Array(rows);
        out
    }

    fn flows(&self, req: &Value) -> Value {
        let Some((dumps, workers)) = &self.dumps else {
            return json!({"ok": false, "errors": ["this dataplane does not list flows"]});
        };
        let filters = match self.filters(req) {
            Ok(f) => f,
            Err(e) => return e,
        };
        let rule = req["rule"].as_str();
        let limit = req["limit"].as_u64().unwrap_or(1000) as usize;
        // With a rule filter, the workers list more (the rule is resolved here).
        let ask = if rule.is_some() {
            crate::flowdump::MAX_ROWS
        } else {
            limit
        };
        let answers = Self::gather(dumps, *workers, Listing::Flows, filters, ask);
        let answered = answers.len();
        let mut truncated = answers.iter().any(|a| a.2);
        let mut flows = Vec::new();
        'all: for (_, rows, _) in &answers {
            let Rows::Flows(rows) = rows else { continue };
            for r in rows {
                let ruled = r.rule_of(Some(&self.store));
                if let Some(want) = rule {
                    if ruled.as_ref().map(|x| x.0.as_str()) != Some(want) {
                        continue;
                    }
                }
                if flows.len() == limit {
                    truncated = true;
                    break 'all;
                }
                let mut line = Vec::new();
                if r.write_json(&mut line, &self.catalog, ruled.as_ref())
                    .is_err()
                {
                    continue;
                }
                let Ok(Value::Object(mut o)) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                // A live flow: `flow.end` is its last packet so far.
                if let Some(Value::Object(f)) = o.get_mut("flow") {
                    f.remove("interim");
                }
                flows.push(Value::Object(o));
            }
        }
        json!({"ok": true, "flows": flows, "workers": workers, "answered": answered,
               "truncated": truncated})
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
        // Custom applications across installs: compiled against the running catalog, so a
        // kept one keeps its id and a dropped one keeps its name.
        let custom = |names: &[&str]| {
            let apps: String = names
                .iter()
                .map(|n| {
                    format!(
                        "  - {{ name: {n}, signatures: [{{ on: ssl, host: [{n}.example] }}] }}\n"
                    )
                })
                .collect();
            json!({"cmd": "install", "file": "p.yaml", "text": format!("version: 1\napplications:\n{apps}")})
        };
        let h = client(custom(&["corp-a", "corp-b"]));
        assert_eq!(serve_until(&mut server, h)["ok"], true);
        let first = store.current().catalog.clone().unwrap();
        let h = client(custom(&["corp-c", "corp-b"]));
        assert_eq!(serve_until(&mut server, h)["ok"], true);
        let second = store.current().catalog.clone().unwrap();
        for n in ["corp-a", "corp-b"] {
            assert_eq!(first.by_name(n), second.by_name(n), "{n}");
        }
        assert_eq!(second.apps.len(), first.apps.len() + 1);
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
