//! Safe unpacking of an asset archive (tar, or gzip-compressed tar, sniffed from the first
//! bytes) into a fresh directory.
//!
//! Archives come from URLs an operator typed, so they are treated as hostile. Refused:
//! absolute paths, `..` components, entries written through a symbolic link, symbolic links
//! whose target leaves the directory (checked lexically while unpacking and again on the
//! resolved path afterwards), hard links to anything but a regular file unpacked earlier,
//! device files and FIFOs, sparse and unknown entry types, more than [`Limits::max_entries`]
//! entries and more than [`Limits::max_bytes`] of file content. Permissions keep their
//! read/write/execute bits; set-uid, set-gid and sticky bits are dropped, owners are not
//! restored (files belong to whoever unpacks).
//!
//! The path rules are pure functions ([`entry_path`], [`link_target`]) so the fuzz target can
//! check them on their own.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

/// Bounds on what one archive may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of file content (the sum of the entries' sizes, uncompressed).
    pub max_bytes: u64,
    /// Entries of any kind (files, directories, links).
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A Ruby or Python runtime asset is ~100 MiB unpacked; monitoring plugins a few.
            max_bytes: 1 << 30,
            max_entries: 50_000,
        }
    }
}

/// Why an archive was refused. Paths are the archive's, lossily decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    #[error("the asset is neither a tar archive nor a gzip-compressed tar archive")]
    UnknownFormat,
    #[error("archive entry {path:?} has an absolute path")]
    AbsolutePath { path: String },
    #[error("archive entry {path:?} climbs out of the asset directory with '..'")]
    ParentDir { path: String },
    #[error("archive entry {path:?} has an invalid path: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("archive entry {path:?} is a link pointing outside the asset directory ({target:?})")]
    LinkOutside { path: String, target: String },
    #[error(
        "archive entry {path:?} is a hard link to {target:?}, which is not a file unpacked before it"
    )]
    BadHardLink { path: String, target: String },
    #[error("archive entry {path:?} would be written through a symbolic link")]
    ThroughLink { path: String },
    #[error(
        "archive entry {path:?} is a device file or FIFO; assets may hold only files, directories and links"
    )]
    SpecialFile { path: String },
    #[error("archive entry {path:?} has an unsupported type ({kind})")]
    Unsupported { path: String, kind: String },
    #[error("the archive unpacks to more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the archive holds more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    #[error("cannot unpack {path}: {message}")]
    Io { path: String, message: String },
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    pub bytes: u64,
}

/// The relative path an entry's raw name stands for, or `None` for the archive root (`./`).
pub fn entry_path(raw: &[u8]) -> Result<Option<PathBuf>, UnpackError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.is_empty() {
        return Err(UnpackError::InvalidPath {
            path: shown(),
            reason: "empty name",
        });
    }
    if raw.contains(&0) {
        return Err(UnpackError::InvalidPath {
            path: shown(),
            reason: "NUL byte in name",
        });
    }
    if raw[0] == b'/' {
        return Err(UnpackError::AbsolutePath { path: shown() });
    }
    let mut out = PathBuf::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => return Err(UnpackError::ParentDir { path: shown() }),
            p => out.push(os_str(p)),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Where a symbolic link at `entry` (relative to the asset root) pointing at `target` leads,
/// lexically, relative to the root; refused when it is absolute or leaves the root.
pub fn link_target(entry: &Path, target: &[u8]) -> Result<PathBuf, UnpackError> {
    let outside = || UnpackError::LinkOutside {
        path: entry.to_string_lossy().into_owned(),
        target: String::from_utf8_lossy(target).into_owned(),
    };
    if target.is_empty() || target.contains(&0) {
        return Err(UnpackError::InvalidPath {
            path: entry.to_string_lossy().into_owned(),
            reason: "empty link target or NUL byte in it",
        });
    }
    if target[0] == b'/' {
        return Err(outside());
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in entry.parent().into_iter().flat_map(Path::components) {
        match c {
            Component::Normal(p) => parts.push(p.as_encoded_bytes()),
            // entry_path never produces these; refuse rather than guess.
            _ => return Err(outside()),
        }
    }
    for part in target.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(outside());
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.iter().map(|p| os_str(p)).collect())
}

fn os_str(bytes: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes)
}

/// Unpack `archive` into `dest`, which must exist and should be empty. On error `dest` holds
/// a partial tree: the caller unpacks into a temporary directory and removes it.
pub fn unpack(archive: impl Read, dest: &Path, limits: &Limits) -> Result<Unpacked, UnpackError> {
    let mut reader = BufReader::with_capacity(64 * 1024, archive);
    let head = reader.fill_buf().map_err(corrupt)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::bufread::MultiGzDecoder::new(reader);
        let mut inner = BufReader::with_capacity(64 * 1024, gz);
        if !is_tar(inner.fill_buf().map_err(corrupt)?) {
            return Err(UnpackError::UnknownFormat);
        }
        unpack_tar(inner, dest, limits)
    } else if is_tar(head) {
        unpack_tar(reader, dest, limits)
    } else {
        Err(UnpackError::UnknownFormat)
    }
}

/// A POSIX (ustar) or GNU tar header: "ustar" at offset 257. Pre-POSIX v7 archives have no
/// magic and are not accepted, as Sensu's type sniffing does not either.
fn is_tar(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

fn corrupt(e: io::Error) -> UnpackError {
    UnpackError::Corrupt(e.to_string())
}

fn unpack_tar(reader: impl Read, dest: &Path, limits: &Limits) -> Result<Unpacked, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut done = Unpacked::default();
    let mut symlinks: Vec<PathBuf> = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        // Extension headers are folded into the next entry by the tar crate.
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            continue;
        }
        done.entries += 1;
        if done.entries > limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let raw = entry.path_bytes().into_owned();
        let shown = || String::from_utf8_lossy(&raw).into_owned();
        let Some(rel) = entry_path(&raw)? else {
            // The root itself ("./"): already there.
            continue;
        };
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                // The entry's size, a pax `size` record included (the header may say 0).
                let size = entry.size();
                done.bytes = done.bytes.saturating_add(size);
                if done.bytes > limits.max_bytes {
                    return Err(UnpackError::TooLarge {
                        limit: limits.max_bytes,
                    });
                }
                let path = prepare_leaf(dest, &rel, &shown)?;
                let mode = entry.header().mode().unwrap_or(0o644) & 0o777 | 0o600;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)
                    .map_err(|e| io_err(&path, e))?;
                let copied = io::copy(&mut (&mut entry).take(size), &mut file).map_err(corrupt)?;
                if copied != size {
                    return Err(UnpackError::Corrupt(format!(
                        "entry {:?} is truncated",
                        shown()
                    )));
                }
                // The umask may have narrowed the mode given to open.
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .map_err(|e| io_err(&path, e))?;
            }
            EntryType::Directory => {
                let path = dest.join(&rel);
                make_parents(dest, &rel, &shown)?;
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(UnpackError::ThroughLink { path: shown() });
                    }
                    Ok(_) => {
                        fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                        fs::create_dir(&path).map_err(|e| io_err(&path, e))?;
                    }
                    Err(_) => fs::create_dir(&path).map_err(|e| io_err(&path, e))?,
                }
                let mode = entry.header().mode().unwrap_or(0o755) & 0o777 | 0o700;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .map_err(|e| io_err(&path, e))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                link_target(&rel, &target)?;
                let path = prepare_leaf(dest, &rel, &shown)?;
                std::os::unix::fs::symlink(os_str(&target), &path).map_err(|e| io_err(&path, e))?;
                symlinks.push(rel);
            }
            EntryType::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let bad = || UnpackError::BadHardLink {
                    path: shown(),
                    target: String::from_utf8_lossy(&target_raw).into_owned(),
                };
                // Hard link names are archive paths, relative to the root.
                let target_rel = match entry_path(&target_raw) {
                    Ok(Some(t)) => t,
                    Ok(None) => return Err(bad()),
                    Err(UnpackError::AbsolutePath { .. } | UnpackError::ParentDir { .. }) => {
                        return Err(UnpackError::LinkOutside {
                            path: shown(),
                            target: String::from_utf8_lossy(&target_raw).into_owned(),
                        });
                    }
                    Err(e) => return Err(e),
                };
                check_no_links_above(dest, &target_rel).map_err(|_| bad())?;
                let target = dest.join(&target_rel);
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_file() => {}
                    _ => return Err(bad()),
                }
                let path = prepare_leaf(dest, &rel, &shown)?;
                fs::hard_link(&target, &path).map_err(|e| io_err(&path, e))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(UnpackError::SpecialFile { path: shown() });
            }
            other => {
                return Err(UnpackError::Unsupported {
                    path: shown(),
                    kind: format!("{other:?}"),
                });
            }
        }
    }
    verify_symlinks(dest, &symlinks)?;
    Ok(done)
}

/// Make the parent directories of `rel` (never through a symbolic link) and clear the way for
/// a new leaf: an existing file or link there is replaced (later entries win, as in tar), a
/// directory is refused.
fn prepare_leaf(
    dest: &Path,
    rel: &Path,
    shown: &dyn Fn() -> String,
) -> Result<PathBuf, UnpackError> {
    make_parents(dest, rel, shown)?;
    let path = dest.join(rel);
    match fs::symlink_metadata(&path) {
        Err(_) => {}
        Ok(m) if m.is_dir() => {
            return Err(UnpackError::Io {
                path: shown(),
                message: "a directory of the same name was unpacked before".into(),
            });
        }
        // Removing a link removes the link, never what it points at.
        Ok(_) => fs::remove_file(&path).map_err(|e| io_err(&path, e))?,
    }
    Ok(path)
}

fn make_parents(dest: &Path, rel: &Path, shown: &dyn Fn() -> String) -> Result<(), UnpackError> {
    let mut at = dest.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .collect();
    for c in parents {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::ThroughLink { path: shown() });
            }
            Ok(_) => {
                return Err(UnpackError::Io {
                    path: shown(),
                    message: format!("{} is not a directory", at.display()),
                });
            }
            Err(_) => fs::create_dir(&at).map_err(|e| io_err(&at, e))?,
        }
    }
    Ok(())
}

fn check_no_links_above(dest: &Path, rel: &Path) -> Result<(), ()> {
    let mut at = dest.to_path_buf();
    for c in rel.parent().into_iter().flat_map(Path::components) {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            _ => return Err(()),
        }
    }
    Ok(())
}

/// The lexical check cannot see a link that goes through another link (`a -> .` then
/// `b -> a/..`): resolve every link that resolves and require it to stay inside. Dangling
/// links passed the lexical check and lead nowhere.
fn verify_symlinks(dest: &Path, links: &[PathBuf]) -> Result<(), UnpackError> {
    if links.is_empty() {
        return Ok(());
    }
    let root = fs::canonicalize(dest).map_err(|e| io_err(dest, e))?;
    for rel in links {
        let path = dest.join(rel);
        if let Ok(resolved) = fs::canonicalize(&path)
            && !resolved.starts_with(&root)
        {
            return Err(UnpackError::LinkOutside {
                path: rel.to_string_lossy().into_owned(),
                target: fs::read_link(&path)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            });
        }
    }
    Ok(())
}

fn io_err(path: &Path, e: io::Error) -> UnpackError {
    UnpackError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Open a file for reading, for [`unpack`] from a downloaded archive.
pub(crate) fn open(path: &Path) -> Result<File, UnpackError> {
    File::open(path).map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        assert_eq!(entry_path(b"./").unwrap(), None);
        assert_eq!(
            entry_path(b"./bin//check").unwrap(),
            Some(PathBuf::from("bin/check"))
        );
        assert!(matches!(
            entry_path(b"/etc/passwd"),
            Err(UnpackError::AbsolutePath { .. })
        ));
        assert!(matches!(
            entry_path(b"bin/../../x"),
            Err(UnpackError::ParentDir { .. })
        ));
        assert!(matches!(
            entry_path(b"a\0b"),
            Err(UnpackError::InvalidPath { .. })
        ));
    }

    #[test]
    fn link_targets() {
        let e = Path::new("lib/libfoo.so");
        assert_eq!(
            link_target(e, b"libfoo.so.1").unwrap(),
            PathBuf::from("lib/libfoo.so.1")
        );
        assert_eq!(link_target(e, b"../bin/x").unwrap(), PathBuf::from("bin/x"));
        assert!(link_target(e, b"../../x").is_err());
        assert!(link_target(e, b"/usr/lib/x").is_err());
        assert!(link_target(Path::new("x"), b"..").is_err());
        assert_eq!(link_target(Path::new("x"), b".").unwrap(), PathBuf::new());
    }
}
