//! Arbitrary bytes as policy.yaml: the compiler never panics, and every policy it accepts
//! gives the same verdicts through its indexes (per application, per source address) as by
//! a plain scan of the rules.
#![no_main]
use aperture_dataplane::appid::catalog::{AppId, Catalog};
use aperture_dataplane::policy::{compile, Subject};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(Catalog::embedded)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ports = vec!["inside".to_string(), "outside".to_string()];
    let Ok(c) = compile(text, "fuzz.yaml", catalog(), Some(&ports)) else {
        return;
    };
    let p = c.policy;
    // Subjects drawn from the input's own bytes.
    for (i, w) in data.chunks(8).take(16).enumerate() {
        let b = |k: usize| w.get(k).copied().unwrap_or(0);
        let s = Subject {
            from_zone: b(0) % 3,
            to_zone: b(1) % 3,
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
                b(2),
                b(3),
                b(4),
            ]),
            dst: u128::from_be_bytes([
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
                192,
                168,
                b(5),
                b(6),
            ]),
            proto: if b(7) & 1 == 0 { 6 } else { 17 },
            dst_port: u16::from_be_bytes([b(6), b(7)]),
            predicted: b(7) & 1 == 1,
        };
        assert_eq!(p.check(&s, None), p.check_undecided_linear(&s));
        let app = AppId((i % catalog().apps.len()) as u16);
        assert_eq!(p.check(&s, Some(app)), p.check_decided_linear(&s, app));
    }
});
