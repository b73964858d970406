//! `aperture-control serve`: keeps the dataplane on the operator's policy and serves HTTP.
//!
//! - At start, on SIGHUP, on `POST /-/reload` (what `aperturectl reload` calls): read
//!   policy.yaml, compile it against the catalog and the dataplane's ports, and install it
//!   through the control socket. A file that does not compile is refused with its errors and
//!   the running policy stays in force.
//! - Every half second: ask the dataplane for its generation. A dataplane that restarted (its
//!   generation fell below what was installed) or was unreachable when the policy was last
//!   loaded gets the last good policy again.
//! - `GET /metrics`: see `metrics`. `GET /-/healthy`: liveness.
use crate::metrics::{render, to_prometheus_text, ControlState};
use crate::Snapshot;
use aperture_dataplane::appid::catalog::Catalog;
use aperture_dataplane::config::Config;
use aperture_dataplane::control::request;
use aperture_dataplane::policy;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Settings {
    /// The dataplane's configuration (ports, catalog, stats segment, control socket).
    pub dataplane: Config,
    pub policy: PathBuf,
    pub listen: SocketAddr,
}

struct Shared {
    settings: Settings,
    catalog: Catalog,
    state: Mutex<Inner>,
    /// Held while talking to the dataplane: a reload and the watcher never interleave.
    ops: Mutex<()>,
}

#[derive(Default)]
struct Inner {
    metrics: ControlState,
    /// The last policy text that compiled, and the generation the dataplane gave it (None:
    /// not installed yet, e.g. the dataplane was down).
    good: Option<(String, Option<u64>)>,
}

/// What a reload did.
pub enum Reloaded {
    Installed {
        generation: u64,
        warnings: Vec<String>,
    },
    /// It compiled, but the dataplane could not be reached: it is installed when it is.
    Pending {
        warnings: Vec<String>,
        why: String,
    },
    Refused {
        errors: Vec<String>,
    },
}

impl Shared {
    fn ports(&self) -> Vec<String> {
        self.settings
            .dataplane
            .ports
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads, compiles and installs the policy file.
    fn reload(&self) -> Reloaded {
        let _ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let file = self.settings.policy.display().to_string();
        let text = match policy::compile::read_file(&self.settings.policy) {
            Ok(t) => t,
            Err(e) => return self.refused(e.iter().map(|d| d.to_string()).collect()),
        };
        let warnings = match policy::compile(&text, &file, &self.catalog, Some(&self.ports())) {
            Ok(c) => c.warnings.iter().map(|w| w.to_string()).collect(),
            Err(errors) => return self.refused(errors.iter().map(|e| e.to_string()).collect()),
        };
        match self.install(&file, &text) {
            Ok(generation) => {
                let mut s = self.lock();
                s.good = Some((text, Some(generation)));
                s.metrics.reloads_success += 1;
                Reloaded::Installed {
                    generation,
                    warnings,
                }
            }
            Err(Ok(errors)) => self.refused(errors),
            Err(Err(why)) => {
                let mut s = self.lock();
                s.good = Some((text, None));
                s.metrics.last_reload_successful = false;
                s.metrics.reloads_failure += 1;
                Reloaded::Pending { warnings, why }
            }
        }
    }

    fn refused(&self, errors: Vec<String>) -> Reloaded {
        let mut s = self.lock();
        s.metrics.last_reload_successful = false;
        s.metrics.reloads_failure += 1;
        Reloaded::Refused { errors }
    }

    /// Sends `text` to the dataplane. Err(Ok(errors)): it refused it; Err(Err(why)): it
    /// could not be reached.
    fn install(&self, file: &str, text: &str) -> Result<u64, Result<Vec<String>, String>> {
        let socket = &self.settings.dataplane.control.socket;
        let reply = request(
            socket,
            &json!({"cmd": "install", "file": file, "text": text}),
        )
        .map_err(|e| {
            Err(format!(
                "the dataplane's control socket {}: {e}",
                socket.display()
            ))
        })?;
        if reply["ok"] != true {
            let errors = reply["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            return Err(Ok(errors));
        }
        let generation = reply["generation"].as_u64().unwrap_or(0);
        let mut s = self.lock();
        s.metrics.generation = Some(generation);
        s.metrics.last_reload_successful = true;
        s.metrics.last_reload_success_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Ok(generation)
    }

    /// One watch step: the dataplane's generation, and the last good policy re-installed if
    /// the dataplane does not run it.
    fn watch(&self) {
        let _ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let socket = &self.settings.dataplane.control.socket;
        let generation = request(socket, &json!({"cmd": "status"}))
            .ok()
            .and_then(|r| r["generation"].as_u64());
        let good = {
            let mut s = self.lock();
            s.metrics.generation = generation;
            s.good.clone()
        };
        let (Some(current), Some((text, installed))) = (generation, good) else {
            return;
        };
        if installed.is_none_or(|g| current < g) {
            let file = self.settings.policy.display().to_string();
            match self.install(&file, &text) {
                Ok(g) => {
                    if let Some(good) = &mut self.lock().good {
                        good.1 = Some(g);
                    }
                    tracing::info!("policy installed again (generation {g})")
                }
                Err(Ok(errors)) => {
                    tracing::error!("the dataplane refused the policy: {}", errors.join("; "))
                }
                Err(Err(_)) => {}
            }
        }
    }
}

fn report(r: &Reloaded) -> (StatusCode, Value) {
    match r {
        Reloaded::Installed {
            generation,
            warnings,
        } => (
            StatusCode::OK,
            json!({"ok": true, "generation": generation, "warnings": warnings}),
        ),
        Reloaded::Pending { warnings, why } => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ok": false, "pending": true, "warnings": warnings, "errors": [why]}),
        ),
        Reloaded::Refused { errors } => (
            StatusCode::BAD_REQUEST,
            json!({"ok": false, "errors": errors}),
        ),
    }
}

fn log(r: &Reloaded) {
    match r {
        Reloaded::Installed {
            generation,
            warnings,
        } => {
            for w in warnings {
                tracing::warn!("{w}");
            }
            tracing::info!("policy installed, generation {generation}");
        }
        Reloaded::Pending { why, .. } => {
            tracing::warn!("policy compiled; not installed yet: {why}")
        }
        Reloaded::Refused { errors } => {
            for e in errors {
                tracing::error!("{e}");
            }
            tracing::error!("policy refused; the running policy stays in force");
        }
    }
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the classic text format
/// otherwise.
async fn metrics(State(sh): State<Arc<Shared>>, headers: HeaderMap) -> impl IntoResponse {
    // A segment whose dataplane has exited holds its last counters: not exported as live
    // (the series go stale, as Prometheus expects of a target that went away).
    let snapshot = Snapshot::read(&sh.settings.dataplane.stats.segment)
        .ok()
        .filter(|s| s.live());
    let state = sh.lock().metrics.clone();
    let om = render(snapshot.as_ref(), &state);
    let wants_om = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if wants_om {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            om,
        )
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            to_prometheus_text(&om),
        )
    }
}

async fn reload(State(sh): State<Arc<Shared>>) -> impl IntoResponse {
    let r = tokio::task::spawn_blocking(move || {
        let r = sh.reload();
        log(&r);
        r
    })
    .await;
    match r {
        Ok(r) => {
            let (code, body) = report(&r);
            (code, body.to_string())
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Runs until SIGINT/SIGTERM. A policy that does not compile at start is an error.
pub fn run(settings: Settings) -> Result<(), String> {
    let catalog = Catalog::of_config(&settings.dataplane.app_id).map_err(|e| e.to_string())?;
    let sh = Arc::new(Shared {
        settings,
        catalog,
        state: Mutex::new(Inner::default()),
        ops: Mutex::new(()),
    });
    let first = sh.reload();
    log(&first);
    if let Reloaded::Refused { .. } = first {
        return Err("the policy does not compile".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(sh.settings.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", sh.settings.listen))?;
        tracing::info!(
            "serving http://{}/metrics; policy {}",
            sh.settings.listen,
            sh.settings.policy.display()
        );
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/-/reload", post(reload))
            .route("/-/healthy", get(|| async { "ok\n" }))
            .with_state(sh.clone());
        let watcher = sh.clone();
        tokio::spawn(async move {
            loop {
                let w = watcher.clone();
                let _ = tokio::task::spawn_blocking(move || w.watch()).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let hup = sh.clone();
        tokio::spawn(async move {
            let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while s.recv().await.is_some() {
                let h = hup.clone();
                let _ = tokio::task::spawn_blocking(move || log(&h.reload())).await;
            }
        });
        let stop = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| e.to_string())
    })
}
