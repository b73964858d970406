//! A file-backed shared-memory array of 64-bit atomics: the stats segment that workers write
//! and other processes (the control plane) read. Mapping a file is the only unsafe step; after
//! it every access is an atomic load or store, safe from any number of processes.
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

/// A mapped segment of `len` u64 words.
pub struct ShmSegment {
    ptr: *mut AtomicU64,
    len: usize,
    writable: bool,
    path: PathBuf,
    _file: File,
}

// SAFETY: the mapping is shared memory accessed only through atomics.
unsafe impl Send for ShmSegment {}
// SAFETY: as above.
unsafe impl Sync for ShmSegment {}

impl ShmSegment {
    /// Creates (or truncates) `path` to `words` u64s, zeroed, mapped read-write.
    pub fn create(path: &Path, words: usize) -> io::Result<ShmSegment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len((words * 8) as u64)?;
        Self::map(file, path, words, true)
    }

    /// Maps an existing segment read-only.
    pub fn open(path: &Path) -> io::Result<ShmSegment> {
        let file = File::open(path)?;
        let words = (file.metadata()?.len() / 8) as usize;
        Self::map(file, path, words, false)
    }

    fn map(file: File, path: &Path, words: usize, write: bool) -> io::Result<ShmSegment> {
        use std::os::fd::AsRawFd;
        if words == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is empty", path.display()),
            ));
        }
        let prot = libc::PROT_READ | if write { libc::PROT_WRITE } else { 0 };
        // SAFETY: mapping `words*8` bytes of a file we hold open, shared; checked for failure.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                words * 8,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ShmSegment {
            ptr: p as *mut AtomicU64,
            len: words,
            writable: write,
            path: path.to_path_buf(),
            _file: file,
        })
    }

    /// The words, for a segment created read-write (`None` for a read-only mapping, where a
    /// store would fault).
    pub fn words(&self) -> Option<&[AtomicU64]> {
        self.writable.then(|| self.all())
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Loads word `i` (0 past the end).
    #[inline]
    pub fn load(&self, i: usize, order: std::sync::atomic::Ordering) -> u64 {
        self.all().get(i).map_or(0, |w| w.load(order))
    }

    fn all(&self) -> &[AtomicU64] {
        // SAFETY: page-aligned mapping of `len` u64s that lives as long as `self`; AtomicU64 has
        // the size and alignment of u64. Callers reach it read-only except through `words()`,
        // which only a writable mapping returns.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped; no reference outlives `self`.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len * 8);
        }
    }
}
