//! The summary tables the binary prints: a replay's packets, drops, protocols, applications
//! and largest flows; worker counters and port statistics; the application catalog. Plain
//! text for people; every figure comes from a `replay::Report` or the stats segment.
use crate::appid::catalog::{AppId, Catalog};
use crate::flowlog::FlowRecord;
use crate::port::PortStats;
use crate::replay::Report;
use crate::stats::{Counters, C, GENERAL};
use std::io::{self, Write};

/// The IP protocol's name in the tables: the flow log's in lower case, `ip-proto-N` for one
/// it only numbers.
pub fn proto_name(p: u8) -> String {
    let name = crate::flowlog::proto_name(p).to_ascii_lowercase();
    if name.bytes().all(|c| c.is_ascii_digit()) {
        format!("ip-proto-{name}")
    } else {
        name
    }
}

/// Everything a replay prints: the summary, applications, largest flows, and with `stats`
/// the worker counters and port statistics.
pub fn replay(out: &mut impl Write, r: &Report, stats: bool) -> io::Result<()> {
    summary(out, r)?;
    apps(out, r)?;
    policy(out, r)?;
    top(out, &r.top, &r.catalog)?;
    if stats {
        counters(out, &r.workers, &r.ports)?;
    }
    paths(out, r)
}

/// Under a policy: its warnings, what each rule allowed and denied, and the same by
/// application.
fn policy(out: &mut impl Write, r: &Report) -> io::Result<()> {
    let Some(p) = &r.policy else {
        return Ok(());
    };
    writeln!(out)?;
    writeln!(out, "Policy {}", p.file.display())?;
    for w in &p.warnings {
        writeln!(out, "  {w}")?;
    }
    writeln!(
        out,
        "  {:<28} {:<7} {:>7} {:>10} {:>12}",
        "rule", "action", "flows", "packets", "bytes"
    )?;
    for ((rule, action), t) in &p.per_rule {
        writeln!(
            out,
            "  {:<28} {:<7} {:>7} {:>10} {:>12}",
            rule,
            action.name(),
            t.flows,
            t.packets,
            t.bytes
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "  {:<28} {:<7} {:>7} {:>10} {:>12}",
        "application", "action", "flows", "packets", "bytes"
    )?;
    let mut by_app: Vec<_> = p.per_app.iter().collect();
    by_app.sort_by_key(|((_, a), t)| {
        (
            *a != crate::policy::Action::Allow,
            std::cmp::Reverse(t.bytes),
        )
    });
    for ((app, action), t) in by_app {
        writeln!(
            out,
            "  {:<28} {:<7} {:>7} {:>10} {:>12}",
            r.catalog.name(*app),
            action.name(),
            t.flows,
            t.packets,
            t.bytes
        )?;
    }
    writeln!(
        out,
        "  (packets and bytes are each flow's total, including what passed before its decision)"
    )
}

fn summary(out: &mut impl Write, r: &Report) -> io::Result<()> {
    let mut c = Counters::default();
    for w in &r.workers {
        c.merge(w);
    }
    writeln!(out)?;
    writeln!(
        out,
        "Replayed {} through DPDK ring ports, {} worker(s), virtual-wire, in {:.2} s",
        r.input.display(),
        r.workers.len(),
        r.elapsed.as_secs_f64()
    )?;
    let skipped = if r.skipped > 0 {
        format!("  ({} frames of unsupported families skipped)", r.skipped)
    } else {
        String::new()
    };
    writeln!(out, "  packets in capture   {:>10}{skipped}", r.packets)?;
    writeln!(
        out,
        "  packets received     {:>10}  ({} bytes)",
        c.get(C::RxPackets),
        c.get(C::RxBytes)
    )?;
    writeln!(
        out,
        "  packets transmitted  {:>10}  ({} bytes)",
        c.get(C::TxPackets),
        c.get(C::TxBytes)
    )?;
    writeln!(out, "  packets dropped      {:>10}", c.get(C::DropPackets))?;
    for (reason, n) in c.drops_by_reason() {
        writeln!(out, "    {reason:<28}{n:>8}")?;
    }
    writeln!(out, "  non-IP frames passed {:>10}", c.get(C::NonIpPackets))?;
    writeln!(
        out,
        "  flows                {:>10}  (created {}, ended by timeout/close {}, evicted {})",
        r.records,
        c.get(C::FlowsCreated),
        c.get(C::FlowsExpired),
        c.get(C::FlowsEvicted)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:<10} {:>8} {:>10} {:>12}",
        "protocol", "flows", "packets", "bytes"
    )?;
    for (p, f, pk, b) in &r.per_proto {
        writeln!(
            out,
            "  {:<10} {:>8} {:>10} {:>12}",
            proto_name(*p),
            f,
            pk,
            b
        )?;
    }
    Ok(())
}

/// Where the replay's outputs are: last, so they are what stays on the screen.
fn paths(out: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(out)?;
    match &r.out {
        Some(o) => writeln!(out, "  output capture: {}", o.display())?,
        None => writeln!(out, "  output capture: none (--out writes one)")?,
    }
    writeln!(out, "  flow log:       {}", r.flow_log.display())
}

fn apps(out: &mut impl Write, r: &Report) -> io::Result<()> {
    let mut rows: Vec<(usize, &(u64, u64, u64))> = r
        .per_app
        .iter()
        .enumerate()
        .filter(|(_, e)| e.0 > 0)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .2));
    writeln!(out)?;
    writeln!(
        out,
        "  {:<26} {:>8} {:>10} {:>12}",
        "application", "flows", "packets", "bytes"
    )?;
    for (a, (f, p, b)) in rows {
        let name = r.catalog.name(AppId(a as u16));
        writeln!(out, "  {name:<26} {f:>8} {p:>10} {b:>12}")?;
    }
    Ok(())
}

fn top(out: &mut impl Write, top: &[FlowRecord], catalog: &Catalog) -> io::Result<()> {
    if top.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "  Largest flows:")?;
    writeln!(
        out,
        "  {:<10} {:<44} {:>8} {:>10}  {:<26} end",
        "protocol", "client -> server", "packets", "bytes", "application"
    )?;
    for f in top {
        let ep = |a: crate::packet::IpAddr16, p: u16| match a.to_std() {
            std::net::IpAddr::V4(v) => format!("{v}:{p}"),
            std::net::IpAddr::V6(v) => format!("[{v}]:{p}"),
        };
        let path: Vec<&str> = f.path().iter().map(|a| catalog.name(*a)).collect();
        writeln!(
            out,
            "  {:<10} {:<44} {:>8} {:>10}  {:<26} {}",
            proto_name(f.proto),
            format!("{} -> {}", ep(f.src, f.src_port), ep(f.dst, f.dst_port)),
            f.packets[0] + f.packets[1],
            f.bytes[0] + f.bytes[1],
            path.join(" > "),
            f.end_reason.map_or("live", |r| r.name())
        )?;
    }
    Ok(())
}

/// Worker counters side by side, drops by reason, and DPDK's port statistics.
pub fn counters(
    out: &mut impl Write,
    workers: &[Counters],
    ports: &[(String, PortStats)],
) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "Worker counters:")?;
    write!(out, "  {:<22}", "counter")?;
    for i in 0..workers.len() {
        write!(out, " {:>12}", format!("worker {i}"))?;
    }
    writeln!(out)?;
    for (i, name) in GENERAL.iter().enumerate() {
        write!(out, "  {name:<22}")?;
        for w in workers {
            write!(out, " {:>12}", w.0[i])?;
        }
        writeln!(out)?;
    }
    for (wi, w) in workers.iter().enumerate() {
        for (reason, n) in w.drops_by_reason() {
            writeln!(out, "  drop {reason:<28} worker {wi}: {n}")?;
        }
    }
    writeln!(out, "Port statistics:")?;
    writeln!(
        out,
        "  {:<14} {:>10} {:>10} {:>12} {:>12} {:>8} {:>8} {:>8} {:>10}",
        "port",
        "ipackets",
        "opackets",
        "ibytes",
        "obytes",
        "imissed",
        "ierrors",
        "oerrors",
        "rx_nombuf"
    )?;
    for (n, s) in ports {
        let w = s.words();
        write!(out, "  {n:<14}")?;
        for (v, width) in w.iter().zip([10, 10, 12, 12, 8, 8, 8, 10]) {
            write!(out, " {v:>width$}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The catalog: each application, what it is identified on, and what it depends on.
pub fn catalog(out: &mut impl Write, c: &Catalog) -> io::Result<()> {
    let names = |v: &[AppId]| -> String {
        let n: Vec<&str> = v.iter().map(|a| c.name(*a)).collect();
        if n.is_empty() {
            "-".into()
        } else {
            n.join(", ")
        }
    };
    writeln!(
        out,
        "{:<26} {:<22} {:<34} description",
        "application", "identified on", "depends on"
    )?;
    for a in &c.apps {
        writeln!(
            out,
            "{:<26} {:<22} {:<34} {}",
            a.name,
            names(&a.parent),
            names(&a.depends_on),
            a.description
        )?;
    }
    Ok(())
}
