//! Rule lookup, through the indexes (per application, per source address) against a plain
//! scan of every rule, for a decided and an undecided flow, for policies of 10, 100 and 1,000
//! rules. Each rule names one application (round robin over the catalog) and one source
//! /24; the flow looked up matches the last rule, the worst case for first match.
use aperture_dataplane::appid::catalog::{AppId, Catalog};
use aperture_dataplane::policy::{compile, Policy, Subject};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

fn policy(rules: usize, catalog: &Catalog) -> (Policy, Subject, AppId) {
    // Named applications only: the catalog's verdicts (unknown-tcp, ...) are not rules' stuff.
    let apps: Vec<&str> = catalog
        .apps
        .iter()
        .map(|a| a.name.as_str())
        .filter(|n| !n.starts_with("unknown") && *n != "incomplete" && *n != "insufficient-data")
        .collect();
    let mut text = String::from("version: 1\nrules:\n");
    for i in 0..rules {
        text.push_str(&format!(
            "  - {{ name: r{i}, source: [10.{}.{}.0/24], application: [{}], service: any, action: allow }}\n",
            i / 256,
            i % 256,
            apps[i % apps.len()]
        ));
    }
    let p = compile(&text, "bench.yaml", catalog, None)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .policy;
    let last = rules - 1;
    let app = catalog.by_name(apps[last % apps.len()]).unwrap();
    let s = Subject {
        from_zone: 0,
        to_zone: 1,
        src: u128::from_be_bytes([
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0xff,
            0xff,
            10,
            (last / 256) as u8,
            (last % 256) as u8,
            9,
        ]),
        dst: u128::from_be_bytes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 1]),
        proto: 6,
        dst_port: 443,
        predicted: false,
    };
    assert_eq!(p.check(&s, Some(app)).rule, last as u16);
    assert_eq!(p.check_decided_linear(&s, app).rule, last as u16);
    (p, s, app)
}

fn benches(c: &mut Criterion) {
    let catalog = Catalog::embedded();
    let mut g = c.benchmark_group("policy");
    for n in [10, 100, 1000] {
        let (p, s, app) = policy(n, &catalog);
        g.bench_with_input(BenchmarkId::new("decided/index", n), &n, |b, _| {
            b.iter(|| black_box(p.check(black_box(&s), Some(app))))
        });
        g.bench_with_input(BenchmarkId::new("decided/scan", n), &n, |b, _| {
            b.iter(|| black_box(p.check_decided_linear(black_box(&s), app)))
        });
        g.bench_with_input(BenchmarkId::new("undecided/index", n), &n, |b, _| {
            b.iter(|| black_box(p.check(black_box(&s), None)))
        });
        g.bench_with_input(BenchmarkId::new("undecided/scan", n), &n, |b, _| {
            b.iter(|| black_box(p.check_undecided_linear(black_box(&s))))
        });
    }
    g.finish();
}

criterion_group!(policy_benches, benches);
criterion_main!(policy_benches);
