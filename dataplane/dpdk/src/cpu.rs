//! The CPU check: Aperture's binaries are built for x86-64-v3 with AES-NI (`.cargo/config.toml`),
//! and would die of SIGILL, without a word, on an older CPU or a virtual CPU model that hides
//! those features. Every binary linking this crate checks, before `main`, that the CPU has what
//! the build was compiled to use, and otherwise says what is missing and exits 1.
//!
//! The check runs from `.init_array` (after the C runtime and the shared libraries' own
//! constructors, which DPDK's packages build for the baseline and dispatch at run time), and
//! is kept to `cpuid`, bit tests and `write(2)` of static text, so that it does not itself use
//! an instruction it is checking for.

/// A feature the build may use: its name, and where `cpuid` reports it.
struct Feature {
    name: &'static str,
    /// Whether this build was compiled to use it.
    compiled: bool,
    /// (leaf, register: 1 = ebx, 2 = ecx, 3 = edx, bit).
    at: (u32, u8, u8),
}

const FEATURES: &[Feature] = &[
    Feature {
        name: "SSE4.2",
        compiled: cfg!(target_feature = "sse4.2"),
        at: (1, 2, 20),
    },
    Feature {
        name: "POPCNT",
        compiled: cfg!(target_feature = "popcnt"),
        at: (1, 2, 23),
    },
    Feature {
        name: "AES-NI",
        compiled: cfg!(target_feature = "aes"),
        at: (1, 2, 25),
    },
    Feature {
        name: "AVX",
        compiled: cfg!(target_feature = "avx"),
        at: (1, 2, 28),
    },
    Feature {
        name: "FMA",
        compiled: cfg!(target_feature = "fma"),
        at: (1, 2, 12),
    },
    Feature {
        name: "MOVBE",
        compiled: cfg!(target_feature = "movbe"),
        at: (1, 2, 22),
    },
    Feature {
        name: "F16C",
        compiled: cfg!(target_feature = "f16c"),
        at: (1, 2, 29),
    },
    Feature {
        name: "AVX2",
        compiled: cfg!(target_feature = "avx2"),
        at: (7, 1, 5),
    },
    Feature {
        name: "BMI1",
        compiled: cfg!(target_feature = "bmi1"),
        at: (7, 1, 3),
    },
    Feature {
        name: "BMI2",
        compiled: cfg!(target_feature = "bmi2"),
        at: (7, 1, 8),
    },
    Feature {
        name: "LZCNT",
        compiled: cfg!(target_feature = "lzcnt"),
        at: (0x8000_0001, 2, 5),
    },
];

/// What `cpuid` said: ecx of leaf 1, ebx of leaf 7, ecx of leaf 0x80000001, and whether the
/// OS saves the AVX registers (XCR0 bits 1 and 2).
#[derive(Clone, Copy, Default)]
pub struct CpuId {
    leaf1_ecx: u32,
    leaf7_ebx: u32,
    ext1_ecx: u32,
    os_avx: bool,
}

impl CpuId {
    #[cfg(target_arch = "x86_64")]
    #[allow(unused_unsafe)] // `__cpuid` is safe from Rust 1.89 on, unsafe before
    fn read() -> CpuId {
        use core::arch::x86_64::{__cpuid, __cpuid_count};
        // SAFETY: `cpuid` exists on every x86-64 CPU; leaves above the maximum the CPU reports
        // are not asked (they would return another leaf's data, not fault).
        let max = unsafe { __cpuid(0) }.eax;
        let max_ext = unsafe { __cpuid(0x8000_0000) }.eax;
        let leaf1 = unsafe { __cpuid(1) };
        let leaf7_ebx = if max >= 7 {
            unsafe { __cpuid_count(7, 0) }.ebx
        } else {
            0
        };
        let ext1_ecx = if max_ext >= 0x8000_0001 {
            unsafe { __cpuid(0x8000_0001) }.ecx
        } else {
            0
        };
        // OSXSAVE (leaf 1 ecx bit 27) says `xgetbv` may be executed.
        let os_avx = leaf1.ecx & (1 << 27) != 0 && {
            let (lo, _hi): (u32, u32);
            // SAFETY: `xgetbv` with ecx = 0 reads XCR0 into edx:eax; allowed because OSXSAVE
            // is set. Written as assembly so the check needs no compiled-in feature.
            unsafe {
                core::arch::asm!(
                    "xgetbv",
                    in("ecx") 0u32,
                    out("eax") lo,
                    out("edx") _hi,
                    options(nomem, nostack, preserves_flags)
                );
            }
            lo & 0b110 == 0b110
        };
        CpuId {
            leaf1_ecx: leaf1.ecx,
            leaf7_ebx,
            ext1_ecx,
            os_avx,
        }
    }

    fn has(&self, f: &Feature) -> bool {
        let (leaf, reg, bit) = f.at;
        let word = match (leaf, reg) {
            (1, 2) => self.leaf1_ecx,
            (7, 1) => self.leaf7_ebx,
            (0x8000_0001, 2) => self.ext1_ecx,
            _ => return false,
        };
        let avx_state = !matches!(f.name, "AVX" | "AVX2" | "FMA" | "F16C") || self.os_avx;
        word & (1 << bit) != 0 && avx_state
    }
}

/// The features this build uses that `cpu` lacks, in order; `pretend_missing` (the
/// `APERTURE_FAULT_CPU_MISSING` variable, for tests) names features to treat as missing.
fn missing<'a>(
    cpu: &'a CpuId,
    pretend_missing: &'a [u8],
) -> impl Iterator<Item = &'static str> + 'a {
    FEATURES.iter().filter_map(move |f| {
        let pretend = pretend_missing
            .split(|&b| b == b',')
            .any(|n| n.eq_ignore_ascii_case(f.name.as_bytes()));
        (f.compiled && (pretend || !cpu.has(f))).then_some(f.name)
    })
}

fn say(s: &str) {
    // SAFETY: writes `s`'s bytes (valid for its length) to stderr; a failed write is ignored
    // (there is nowhere else to report it).
    let _ = unsafe { libc::write(2, s.as_ptr().cast(), s.len()) };
}

/// Exits with a message if the CPU lacks a feature this build uses (see the module).
#[cfg(target_arch = "x86_64")]
extern "C" fn check_cpu() {
    let cpu = CpuId::read();
    let pretend = std::env::var_os("APERTURE_FAULT_CPU_MISSING").unwrap_or_default();
    let mut lacking = missing(
        &cpu,
        std::os::unix::ffi::OsStrExt::as_bytes(pretend.as_os_str()),
    )
    .peekable();
    if lacking.peek().is_none() {
        return;
    }
    say("aperture: this CPU lacks ");
    let mut first = true;
    for name in lacking {
        if !first {
            say(", ");
        }
        say(name);
        first = false;
    }
    say(", which this build of Aperture uses (it is built for x86-64-v3 with AES-NI: Intel Haswell, AMD Excavator or later). On a virtual machine, give it the host's CPU model (e.g. QEMU -cpu host); otherwise rebuild with RUSTFLAGS=\"-C target-cpu=native\" (README, Troubleshooting).\n");
    std::process::exit(1);
}

#[cfg(target_arch = "x86_64")]
#[used]
#[link_section = ".init_array"]
static CHECK_CPU: extern "C" fn() = check_cpu;

/// Checks again (a no-op when the constructor ran, which it always does; calling this keeps
/// the constructor's object file in every binary that links the crate).
pub fn ensure_supported() {
    #[cfg(target_arch = "x86_64")]
    {
        let _ = &CHECK_CPU;
        check_cpu();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_cpu_runs_this_build() {
        let cpu = CpuId::read();
        assert_eq!(missing(&cpu, b"").count(), 0);
    }

    #[test]
    fn a_cpu_without_avx2_is_told_so() {
        let mut cpu = CpuId::read();
        cpu.leaf7_ebx &= !(1 << 5);
        let m: Vec<_> = missing(&cpu, b"").collect();
        if cfg!(target_feature = "avx2") {
            assert_eq!(m, ["AVX2"]);
        }
        // An OS that does not save the AVX registers makes every AVX feature unusable.
        let cpu = CpuId {
            os_avx: false,
            ..CpuId::read()
        };
        let m: Vec<_> = missing(&cpu, b"").collect();
        if cfg!(target_feature = "avx2") {
            assert!(m.contains(&"AVX") && m.contains(&"AVX2"), "{m:?}");
        }
        let m: Vec<_> = missing(&CpuId::read(), b"bmi2,aes-ni").collect();
        if cfg!(target_feature = "bmi2") {
            assert_eq!(m, ["AES-NI", "BMI2"]);
        }
    }
}
