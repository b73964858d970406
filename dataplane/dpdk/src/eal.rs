//! EAL initialisation and lcore launch. The EAL can be initialised once per process.
use crate::sys;
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum EalError {
    #[error("the EAL is already initialised in this process (DPDK allows it once)")]
    AlreadyInitialised,
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadArgument(String),
    #[error("rte_eal_init failed with EAL arguments {args:?}: {reason}")]
    Init { args: Vec<String>, reason: String },
    #[error("lcore {0} is not a worker lcore enabled in the EAL arguments")]
    NotAWorker(u32),
    #[error("rte_eal_remote_launch on lcore {lcore} failed: {reason}")]
    Launch { lcore: u32, reason: String },
}

/// An lcore id as the EAL numbers them.
pub type Lcore = u32;

/// What [`Eal::wait`] returns for a job that panicked.
pub const PANICKED: i32 = i32::MIN;

/// Proof that the EAL is initialised. The EAL lives until the process exits (no cleanup is
/// run: ports and pools may still be referenced by threads being torn down).
pub struct Eal {
    _not_send: std::marker::PhantomData<*const ()>,
    /// The EAL's runtime directory (`/var/run/dpdk/<file-prefix>`), removed when the Eal
    /// goes if nothing is left in it.
    runtime_dir: Option<std::path::PathBuf>,
}

impl Drop for Eal {
    fn drop(&mut self) {
        // Only an empty directory goes (remove_dir refuses others): a runtime whose files
        // are still there (shared config, a secondary's socket) keeps them.
        if let Some(d) = &self.runtime_dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Eal {
    /// Initialises the EAL with `args` (without the program name). Once per process.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, EalError> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(EalError::AlreadyInitialised);
        }
        let mut owned = vec![CString::new("aperture").unwrap()];
        for a in args {
            owned.push(
                CString::new(a.as_ref())
                    .map_err(|_| EalError::BadArgument(a.as_ref().to_string()))?,
            );
        }
        // rte_eal_init may permute argv; give it a private array of pointers into `owned`.
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call; the EAL
        // keeps no pointer into them after returning (it copies what it keeps).
        let rc = unsafe { sys::rte_eal_init(argv.len() as c_int, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(EalError::Init {
                args: args.iter().map(|a| a.as_ref().to_string()).collect(),
                reason: crate::last_error(),
            });
        }
        // SAFETY: returns a pointer to the EAL's own NUL-terminated path, valid for the
        // process; copied at once.
        let dir = unsafe { sys::rte_eal_get_runtime_dir() };
        let runtime_dir = (!dir.is_null()).then(|| {
            // SAFETY: non-null, NUL-terminated (checked above).
            let s = unsafe { std::ffi::CStr::from_ptr(dir) };
            std::path::PathBuf::from(s.to_string_lossy().into_owned())
        });
        Ok(Eal {
            _not_send: std::marker::PhantomData,
            runtime_dir,
        })
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> Lcore {
        // SAFETY: getter, valid after init.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// The worker lcores enabled by the EAL arguments, in order.
    pub fn worker_lcores(&self) -> Vec<Lcore> {
        let mut out = Vec::new();
        let mut i = u32::MAX; // -1: start of iteration
        loop {
            // SAFETY: iteration helper over the EAL's lcore table; skip_main=1, wrap=0.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                return out;
            }
            out.push(i);
        }
    }

    /// NUMA socket of an lcore.
    pub fn socket_of(&self, lcore: Lcore) -> u32 {
        // SAFETY: getter; out-of-range ids return SOCKET_ID_ANY.
        unsafe { sys::rte_lcore_to_socket_id(lcore) }
    }

    /// Runs `f` on worker lcore `lcore`. Join with [`Eal::wait`], which returns `f`'s value,
    /// or [`PANICKED`] if it panicked.
    pub fn launch<F>(&self, lcore: Lcore, f: F) -> Result<(), EalError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        if !self.worker_lcores().contains(&lcore) {
            return Err(EalError::NotAWorker(lcore));
        }
        type Job = Box<dyn FnOnce() -> i32 + Send>;
        unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
            // SAFETY: `arg` is the Box<Job> leaked below, handed over exactly once.
            let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
            // A panic may not unwind into the EAL's C frames (the process would abort): the
            // job's caller is told by the status (callers that want the message catch it
            // themselves, as the workers do).
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(PANICKED)
        }
        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job) as *mut c_void;
        // SAFETY: the trampoline takes ownership of `arg`; on failure the job never ran, so we
        // take it back and drop it here.
        let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if rc != 0 {
            drop(unsafe { Box::from_raw(arg as *mut Job) });
            return Err(EalError::Launch {
                lcore,
                reason: format!("lcore busy or invalid (rc {rc})"),
            });
        }
        Ok(())
    }

    /// Waits for the job on `lcore` and returns its return value.
    pub fn wait(&self, lcore: Lcore) -> i32 {
        // SAFETY: blocks until the lcore is back in WAIT state; safe for any lcore id.
        unsafe { sys::rte_eal_wait_lcore(lcore) }
    }

    /// The lcore id of the calling thread (`u32::MAX` on a non-EAL thread).
    pub fn current_lcore() -> Lcore {
        // SAFETY: reads a thread-local.
        unsafe { sys::aperture_lcore_id() }
    }
}
