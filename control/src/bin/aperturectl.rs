//! `aperturectl`: the operator's command line. `check` validates a policy offline (like
//! `nginx -t`: exit status 1 on errors); `reload` asks aperture-control to reload; `show`
//! prints the dataplane's state. Tables for people, `--json` for scripts.
use aperture_dataplane::appid::catalog::Catalog;
use aperture_dataplane::config::Config;
use aperture_dataplane::policy;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "aperturectl", version, about = "Aperture's command line")]
struct Cli {
    /// dataplane.yaml (ports, catalog, stats segment, control socket); default: embedded.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a policy file: errors and warnings with file, line and column.
    Check { file: PathBuf },
    /// Ask aperture-control to reload its policy file.
    Reload {
        #[arg(long, default_value = "127.0.0.1:9750")]
        control: String,
    },
    #[command(subcommand)]
    Show(Show),
}

#[derive(Subcommand)]
enum Show {
    /// The catalog's applications and what each depends on, with the custom applications
    /// of a policy file (`--policy`, else the one dataplane.yaml names).
    Apps {
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// The dataplane's running policy generation.
    Policy,
    /// Per-worker counters from the stats segment.
    Workers,
    /// The running rules in order with their hits, packets and bytes.
    Rules,
    /// The live flows of the running dataplane.
    Flows {
        /// Only flows of this application (or with it on their path: `ssl` finds facetime).
        #[arg(long)]
        app: Option<String>,
        /// Only flows with this address at either end.
        #[arg(long)]
        address: Option<String>,
        /// Only flows whose verdict this rule gave (`default`: no rule matched).
        #[arg(long)]
        rule: Option<String>,
        /// At most this many flows.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// The SIP ALG's open pinholes: what each admits, from which peer, for which call.
    Pinholes {
        /// Only pinholes of calls of this application.
        #[arg(long)]
        app: Option<String>,
        /// Only pinholes with this address (admitted, peer or inside).
        #[arg(long)]
        address: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// The source-NAT mappings: inside endpoint, external endpoint, users.
    Nat {
        /// Only mappings with this address (inside, external or a remote).
        #[arg(long)]
        address: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

fn main() -> ExitCode {
    aperture_dataplane::port::ensure_cpu_supported();
    let cli = Cli::parse();
    let cfg = match &cli.config {
        Some(p) => Config::load(p),
        None => Ok(Config::embedded()),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let mut out = std::io::stdout().lock();
    let r = match cli.cmd {
        Cmd::Check { file } => return check(&file, &cfg, cli.json, &mut out),
        Cmd::Reload { control } => return reload(&control, cli.json, &mut out),
        Cmd::Show(Show::Apps { policy }) => show_apps(&cfg, policy.as_deref(), cli.json, &mut out),
        Cmd::Show(Show::Policy) => show_policy(&cfg, cli.json, &mut out),
        Cmd::Show(Show::Workers) => show_workers(&cfg, cli.json, &mut out),
        Cmd::Show(Show::Rules) => show_rules(&cfg, cli.json, &mut out),
        Cmd::Show(Show::Flows {
            app,
            address,
            rule,
            limit,
        }) => {
            let mut req = json!({"cmd": "flows", "limit": limit});
            for (k, v) in [("app", app), ("address", address), ("rule", rule)] {
                if let Some(v) = v {
                    req[k] = json!(v);
                }
            }
            show_flows(&cfg, &req, cli.json, &mut out)
        }
        Cmd::Show(Show::Pinholes {
            app,
            address,
            limit,
        }) => {
            let mut req = json!({"cmd": "pinholes", "limit": limit});
            for (k, v) in [("app", app), ("address", address)] {
                if let Some(v) = v {
                    req[k] = json!(v);
                }
            }
            show_pinholes(&cfg, &req, cli.json, &mut out)
        }
        Cmd::Show(Show::Nat { address, limit }) => {
            let mut req = json!({"cmd": "nat", "limit": limit});
            if let Some(a) = address {
                req["address"] = json!(a);
            }
            show_nat(&cfg, &req, cli.json, &mut out)
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &str) -> ExitCode {
    eprintln!("aperturectl: {e}");
    ExitCode::FAILURE
}

fn catalog(cfg: &Config) -> Result<Catalog, String> {
    Catalog::of_config(&cfg.app_id).map_err(|e| e.to_string())
}

fn check(file: &Path, cfg: &Config, as_json: bool, out: &mut impl Write) -> ExitCode {
    let cat = match catalog(cfg) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let name = file.display().to_string();
    let ports: Vec<String> = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let compiled = policy::compile::read_file(file)
        .and_then(|text| policy::compile(&text, &name, &cat, Some(&ports)));
    let (ok, errors, warnings, rules, custom) = match compiled {
        Ok(c) => {
            let custom = c
                .policy
                .catalog
                .as_ref()
                .map_or(0, |k| k.apps.len() - k.builtin);
            (true, vec![], c.warnings, c.policy.rules.len(), custom)
        }
        Err(e) => (false, e, vec![], 0, 0),
    };
    let lines = |d: &[policy::Diagnostic]| d.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let _ = if as_json {
        writeln!(
            out,
            "{}",
            json!({"ok": ok, "rules": rules, "custom_applications": custom,
                   "errors": lines(&errors), "warnings": lines(&warnings)})
        )
    } else {
        for l in lines(&errors).iter().chain(lines(&warnings).iter()) {
            let _ = writeln!(out, "{l}");
        }
        if ok && custom > 0 {
            writeln!(
                out,
                "{name}: ok ({rules} rules, {custom} custom applications, {} warnings)",
                warnings.len()
            )
        } else if ok {
            writeln!(
                out,
                "{name}: ok ({rules} rules, {} warnings)",
                warnings.len()
            )
        } else {
            let n = errors.len();
            writeln!(out, "{name}: {n} error{}", if n == 1 { "" } else { "s" })
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// POST /-/reload to aperture-control (plain HTTP/1.1 on loopback).
fn reload(control: &str, as_json: bool, out: &mut impl Write) -> ExitCode {
    let r = (|| -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(control)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "POST /-/reload HTTP/1.1\r\nHost: {control}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let code = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        Ok((code, body))
    })();
    let (code, body) = match r {
        Ok(x) => x,
        Err(e) => return fail(&format!("aperture-control at {control}: {e}")),
    };
    let v: Value =
        serde_json::from_str(body.trim()).unwrap_or(json!({"ok": false, "errors": [body]}));
    if as_json {
        let _ = writeln!(out, "{v}");
    } else {
        for w in v["warnings"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "{}", w.as_str().unwrap_or(""));
        }
        for e in v["errors"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "{}", e.as_str().unwrap_or(""));
        }
        let _ = match v["generation"].as_u64() {
            Some(g) if code == 200 => writeln!(out, "reloaded: policy generation {g}"),
            _ => writeln!(
                out,
                "reload failed (HTTP {code}); the running policy stays in force"
            ),
        };
    }
    if code == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn show_apps(
    cfg: &Config,
    policy_file: Option<&Path>,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), String> {
    let base = catalog(cfg)?;
    // A policy's custom applications join the list (the policy must compile).
    let extended = match policy_file.or(cfg.policy.as_deref()) {
        Some(file) => {
            let name = file.display().to_string();
            let ports: Vec<String> = cfg.ports.iter().map(|p| p.name.clone()).collect();
            policy::compile::read_file(file)
                .and_then(|text| policy::compile(&text, &name, &base, Some(&ports)))
                .map_err(|e| {
                    let lines: Vec<String> = e.iter().map(|d| d.to_string()).collect();
                    lines.join("\n")
                })?
                .policy
                .catalog
        }
        None => None,
    };
    let cat = extended.as_deref().unwrap_or(&base);
    let names = |v: &[aperture_dataplane::appid::catalog::AppId]| {
        v.iter()
            .map(|a| cat.name(*a).to_string())
            .collect::<Vec<_>>()
    };
    for (i, a) in cat.apps.iter().enumerate() {
        let custom = i >= cat.builtin;
        let r = if as_json {
            writeln!(
                out,
                "{}",
                json!({"name": a.name, "description": a.description, "depends_on": names(&a.depends_on),
                       "implicit_uses": names(&a.implicit_uses), "default_ports": a.default_ports,
                       "custom": custom})
            )
        } else {
            writeln!(
                out,
                "{:<26} depends on: {:<36} implicitly uses: {}{}",
                a.name,
                names(&a.depends_on).join(", "),
                names(&a.implicit_uses).join(", "),
                if custom {
                    "  (custom, from the policy)"
                } else {
                    ""
                }
            )
        };
        if r.is_err() {
            break;
        }
    }
    Ok(())
}

/// One request to the dataplane's control socket; an `ok: false` reply is an error.
fn ask(cfg: &Config, req: &Value) -> Result<Value, String> {
    let socket = &cfg.control.socket;
    let r = aperture_dataplane::control::request(socket, req)
        .map_err(|e| format!("the dataplane's control socket {}: {e}", socket.display()))?;
    if r["ok"] != json!(true) {
        let errors: Vec<&str> = r["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .collect();
        return Err(errors.join("; "));
    }
    Ok(r)
}

fn show_policy(cfg: &Config, as_json: bool, out: &mut impl Write) -> Result<(), String> {
    let r = ask(cfg, &json!({"cmd": "status"}))?;
    let _ = if as_json {
        writeln!(out, "{r}")
    } else {
        writeln!(
            out,
            "policy generation {} ({} rules)",
            r["generation"], r["rules"]
        )
    };
    Ok(())
}

fn show_workers(cfg: &Config, as_json: bool, out: &mut impl Write) -> Result<(), String> {
    let s = aperture_control::Snapshot::read(&cfg.stats.segment).map_err(|e| e.to_string())?;
    let rows = s.rows();
    if as_json {
        let m: serde_json::Map<String, Value> =
            rows.into_iter().map(|(n, v)| (n, json!(v))).collect();
        let _ = writeln!(out, "{}", Value::Object(m));
        return Ok(());
    }
    for (name, values) in rows {
        let v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        if writeln!(out, "{name:<32} {}", v.join(" ")).is_err() {
            break;
        }
    }
    Ok(())
}

/// The running rules (from the control socket) with their counters (from the stats segment,
/// by slot: a rule keeps its counters across reloads while its name stays).
fn show_rules(cfg: &Config, as_json: bool, out: &mut impl Write) -> Result<(), String> {
    let r = ask(cfg, &json!({"cmd": "rules"}))?;
    let s = aperture_control::Snapshot::read(&cfg.stats.segment).map_err(|e| e.to_string())?;
    let t = s.tables_total();
    let mut rows: Vec<Value> = r["rules"].as_array().cloned().unwrap_or_default();
    let mut default = r["default"].clone();
    default["name"] = json!("default");
    rows.push(default);
    for row in &mut rows {
        let [hits, packets, bytes] = t.rule(row["slot"].as_u64().unwrap_or(0) as usize);
        row["hits"] = json!(hits);
        row["packets"] = json!(packets);
        row["bytes"] = json!(bytes);
    }
    if as_json {
        let _ = writeln!(
            out,
            "{}",
            json!({"generation": r["generation"], "rules": rows})
        );
        return Ok(());
    }
    let _ = writeln!(
        out,
        "policy generation {}\n{:<4} {:<32} {:<7} {:<4} {:>12} {:>14} {:>16}",
        r["generation"], "#", "rule", "action", "log", "hits", "packets", "bytes"
    );
    for (i, row) in rows.iter().enumerate() {
        let n = if i + 1 == rows.len() {
            "-".to_string()
        } else {
            (i + 1).to_string()
        };
        let line = writeln!(
            out,
            "{:<4} {:<32} {:<7} {:<4} {:>12} {:>14} {:>16}",
            n,
            row["name"].as_str().unwrap_or(""),
            row["action"].as_str().unwrap_or(""),
            if row["log"] == json!(true) {
                "yes"
            } else {
                "no"
            },
            row["hits"],
            row["packets"],
            row["bytes"]
        );
        if line.is_err() {
            break;
        }
    }
    Ok(())
}

fn show_flows(
    cfg: &Config,
    req: &Value,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), String> {
    let r = ask(cfg, req)?;
    if as_json {
        let _ = writeln!(out, "{r}");
        return Ok(());
    }
    let flows = r["flows"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "{:<9} {:<45} {:<45} {:<20} {:<7} {:<20} {:>10} {:>12}",
        "proto", "source", "destination", "app", "action", "rule", "packets", "bytes"
    );
    // An endpoint: address and port (ICMP has none: the address alone).
    let end = |ip: &Value, port: &Value| {
        let ip = ip.as_str().unwrap_or("");
        match (port.as_u64(), ip.contains(':')) {
            (None, _) => ip.to_string(),
            (Some(p), true) => format!("[{ip}]:{p}"),
            (Some(p), false) => format!("{ip}:{p}"),
        }
    };
    let sum = |f: &Value, a: &str, b: &str| {
        f["flow"][a].as_u64().unwrap_or(0) + f["flow"][b].as_u64().unwrap_or(0)
    };
    for f in &flows {
        let line = writeln!(
            out,
            "{:<9} {:<45} {:<45} {:<20} {:<7} {:<20} {:>10} {:>12}",
            f["proto"].as_str().unwrap_or(""),
            end(&f["src_ip"], &f["src_port"]),
            end(&f["dest_ip"], &f["dest_port"]),
            f["app"].as_str().unwrap_or("(undecided)"),
            f["action"].as_str().unwrap_or("-"),
            f["rule"].as_str().unwrap_or("-"),
            sum(f, "pkts_toserver", "pkts_toclient"),
            sum(f, "bytes_toserver", "bytes_toclient")
        );
        if line.is_err() {
            return Ok(());
        }
    }
    footer(out, &r, flows.len(), "flows");
    Ok(())
}

/// The footer of a listing: how many rows, whether more were left out, who answered.
fn footer(out: &mut impl Write, r: &Value, n: usize, what: &str) {
    let _ = writeln!(
        out,
        "{n} {what}{} ({} of {} workers answered)",
        if r["truncated"] == json!(true) {
            ", more not shown (--limit)"
        } else {
            ""
        },
        r["answered"],
        r["workers"]
    );
}

fn show_pinholes(
    cfg: &Config,
    req: &Value,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), String> {
    let r = ask(cfg, req)?;
    if as_json {
        let _ = writeln!(out, "{r}");
        return Ok(());
    }
    let rows = r["pinholes"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "{:<5} {:<22} {:<16} {:<22} {:<9} {:<10} {:>6} {:>8}",
        "proto", "admits", "from", "inside", "purpose", "app", "flows", "expires"
    );
    for p in &rows {
        let inside = match (p["inside_ip"].as_str(), p["inside_port"].as_u64()) {
            (Some(ip), Some(port)) => format!("{ip}:{port}"),
            _ => "-".to_string(),
        };
        let line = writeln!(
            out,
            "{:<5} {:<22} {:<16} {:<22} {:<9} {:<10} {:>6} {:>7}s",
            p["proto"].as_str().unwrap_or(""),
            format!("{}:{}", p["address"].as_str().unwrap_or(""), p["port"]),
            p["peer"].as_str().unwrap_or(""),
            inside,
            p["purpose"].as_str().unwrap_or(""),
            p["app"].as_str().unwrap_or(""),
            p["flows_admitted"],
            p["expires_in_s"]
        );
        if line.is_err() {
            return Ok(());
        }
    }
    footer(out, &r, rows.len(), "pinholes");
    Ok(())
}

fn show_nat(cfg: &Config, req: &Value, as_json: bool, out: &mut impl Write) -> Result<(), String> {
    let r = ask(cfg, req)?;
    if as_json {
        let _ = writeln!(out, "{r}");
        return Ok(());
    }
    let rows = r["mappings"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "{:<5} {:<22} {:<22} {:>5}  remotes",
        "proto", "inside", "external", "users"
    );
    for m in &rows {
        let remotes: Vec<&str> = m["remotes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        let line = writeln!(
            out,
            "{:<5} {:<22} {:<22} {:>5}  {}",
            m["proto"].as_str().unwrap_or(""),
            format!(
                "{}:{}",
                m["inside_ip"].as_str().unwrap_or(""),
                m["inside_port"]
            ),
            format!(
                "{}:{}",
                m["external_ip"].as_str().unwrap_or(""),
                m["external_port"]
            ),
            m["users"],
            remotes.join(", ")
        );
        if line.is_err() {
            return Ok(());
        }
    }
    footer(out, &r, rows.len(), "mappings");
    Ok(())
}
