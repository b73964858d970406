//! The replay's merge of per-worker outputs, fed two arbitrary byte strings as captures: never
//! a panic; when both read, the merged capture holds every frame of both, in time order, and
//! reads back the same.
#![no_main]
use aperture_dataplane::replay::capture;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fn frames(p: &PathBuf) -> Option<Vec<(std::time::Duration, Vec<u8>)>> {
    let mut out = Vec::new();
    capture::for_each_frame(p, |f| {
        out.push((f.ts, f.data.into_owned()));
        Ok(())
    })
    .ok()?;
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    // The first byte says where the second capture starts.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize * rest.len() / 255).min(rest.len());
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    let inputs = [0, 1].map(|i| dir.join(format!("aperture-fuzz-merge-{pid}-{i}")));
    let out = dir.join(format!("aperture-fuzz-merge-{pid}-out"));
    if std::fs::write(&inputs[0], &rest[..cut]).is_err()
        || std::fs::write(&inputs[1], &rest[cut..]).is_err()
    {
        return;
    }
    let (Some(a), Some(b)) = (frames(&inputs[0]), frames(&inputs[1])) else {
        // A capture that does not read: the merge fails with an error, never a panic.
        let _ = capture::merge(&inputs, &out);
        return;
    };
    // A classic pcap holds 32-bit seconds: later stamps (a pcapng's 64-bit ones) are an
    // error the merge reports, never a panic or a wrapped time.
    let late = a
        .iter()
        .chain(&b)
        .any(|(t, _)| t.as_secs() > u32::MAX as u64);
    let n = match capture::merge(&inputs, &out) {
        Ok(n) => n,
        Err(e) if late => return assert!(e.to_string().contains("u32::MAX"), "{e}"),
        Err(e) => panic!("both inputs read, the merge failed: {e}"),
    };
    assert!(!late, "a time beyond 32-bit seconds was written");
    assert_eq!(n as usize, a.len() + b.len());
    let merged = frames(&out).expect("the merged capture reads");
    assert_eq!(merged.len(), a.len() + b.len());
    assert!(merged.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
    let mut want: Vec<Vec<u8>> = a.into_iter().chain(b).map(|(_, d)| d).collect();
    let mut got: Vec<Vec<u8>> = merged.into_iter().map(|(_, d)| d).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "the same frames");
});
