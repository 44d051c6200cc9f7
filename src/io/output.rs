//! Output files that appear whole or not at all and never destroy anything else: each is
//! written to a temporary sibling of its target and renamed into place, only over a regular
//! file (or nothing), and never over a file that the same run reads or writes under another
//! name. A symlinked output is followed: the file it points to is replaced and the link kept.
//! `/dev/stdout`, `/dev/null`, a pipe or a directory are refused rather than turned into
//! regular files (a rename would replace the device node itself when running as root).
//!
//! New files get the usual mode under the umask (0644 by default), as `File::create` gives;
//! a replaced file keeps its mode.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Output {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Where writing `path` lands: `path` itself, or the regular file a symlink points to. Refuses
/// anything that exists and is not a regular file, a symlink to nothing, and a missing folder.
pub fn output_target(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(refuse(path, "the path is empty"));
    }
    match std::fs::symlink_metadata(path) {
        Ok(_) => {
            let meta = std::fs::metadata(path).map_err(|e| refuse(path, format!("it is a symlink to nothing ({e})")))?;
            if !meta.is_file() {
                let what = if meta.is_dir() {
                    "a directory"
                } else {
                    "not a regular file (a device, pipe or socket)"
                };
                return Err(refuse(path, format!("it is {what}; outputs only replace regular files")));
            }
            std::fs::canonicalize(path).map_err(|e| refuse(path, e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = path.file_name().ok_or_else(|| refuse(path, "it names no file"))?;
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let dir = std::fs::canonicalize(parent).map_err(|e| refuse(path, format!("its folder {}: {e}", parent.display())))?;
            if !dir.is_dir() {
                return Err(refuse(path, format!("{} is not a folder", parent.display())));
            }
            Ok(dir.join(name))
        }
        Err(e) => Err(refuse(path, e.to_string())),
    }
}

/// How a path is used by a run, for [`check_distinct`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Read,
    Write,
}

/// The identity of the file a path names: device and inode where the file exists (through
/// symlinks, hard links, `./` and `..`), else the resolved path it would be created at.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    #[cfg(unix)]
    Inode(u64, u64),
    Path(PathBuf),
}

fn identity(path: &Path, usage: Use) -> Result<Identity> {
    match std::fs::metadata(path) {
        #[cfg(unix)]
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt;
            Ok(Identity::Inode(meta.dev(), meta.ino()))
        }
        #[cfg(not(unix))]
        Ok(_) => Ok(Identity::Path(std::fs::canonicalize(path)?)),
        Err(e) if usage == Use::Read => Err(Error::Io(format!("{}: {e}", path.display()))),
        Err(_) => Ok(Identity::Path(output_target(path)?)),
    }
}

/// Refuses a run whose outputs name one of its inputs or each other (`(flag, path, use)`;
/// inputs may repeat). The error names both flags and paths.
/// Outputs are checked by [`output_target`] too, so a bad one fails before any work is done.
pub fn check_distinct(paths: &[(&str, &Path, Use)]) -> Result<()> {
    for &(_, p, u) in paths {
        if u == Use::Write {
            output_target(p)?;
        }
    }
    let ids = paths.iter().map(|&(_, p, u)| identity(p, u)).collect::<Result<Vec<_>>>()?;
    for (i, &(flag_i, path_i, use_i)) in paths.iter().enumerate() {
        for (j, &(flag_j, path_j, use_j)) in paths.iter().enumerate().skip(i + 1) {
            if (use_i == Use::Write || use_j == Use::Write) && ids[i] == ids[j] {
                let (out_flag, out, other_flag, other) = if use_j == Use::Write {
                    (flag_j, path_j, flag_i, path_i)
                } else {
                    (flag_i, path_i, flag_j, path_j)
                };
                return Err(refuse(
                    out,
                    format!(
                        "{out_flag} {} and {other_flag} {} name the same file",
                        out.display(),
                        other.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// An output written beside its target, not yet in place: [`StagedFile::commit`] renames it
/// over the target; dropped uncommitted (an error on the way), the temporary file is removed.
#[derive(Debug)]
pub struct StagedFile {
    tmp: PathBuf,
    target: PathBuf,
    shown: PathBuf,
    committed: bool,
}

impl StagedFile {
    /// Checks `path` (see [`output_target`]), creates an empty temporary sibling of the target
    /// and lets `write` fill it (it may truncate or replace it: the mode is set afterwards).
    pub fn write(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let target = output_target(path)?;
        let mode = std::fs::metadata(&target).ok().map(|m| m.permissions());
        let name = target.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let (tmp, file) = loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = target.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => break (tmp, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => continue,
                Err(e) => return Err(Error::Io(format!("{}: {e}", tmp.display()))),
            }
        };
        // Created under the umask (0666 & !umask), as File::create would; a replaced file's own
        // mode wins. Writers that replace the file (safetensors' writer makes it 0600) lose it,
        // so it is put back after `write`.
        let mode = match mode {
            Some(m) => m,
            None => file.metadata()?.permissions(),
        };
        drop(file);
        let staged = Self {
            tmp,
            target,
            shown: path.to_path_buf(),
            committed: false,
        };
        write(&staged.tmp)?;
        std::fs::set_permissions(&staged.tmp, mode).map_err(|e| Error::Io(format!("{}: {e}", staged.tmp.display())))?;
        Ok(staged)
    }

    /// The path the output was asked for.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Renames the file into place, after checking once more that the target is still a
    /// regular file or nothing.
    pub fn commit(mut self) -> Result<()> {
        match std::fs::symlink_metadata(&self.target) {
            Ok(m) if !m.is_file() => return Err(refuse(&self.shown, "it is no longer a regular file")),
            _ => {}
        }
        std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::Io(format!("{}: {e}", self.shown.display())))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `path` whole or not at all ([`StagedFile::write`] then commit).
pub fn write_file(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    StagedFile::write(path, write)?.commit()
}
